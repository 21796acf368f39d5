//! The tables statements return: SHOW TABLES, SHOW MODELS, the summary
//! rows of ingests and VACUUM, and the `spectradb_ingest_errors` system
//! table.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::DataFrame;

use super::views::view_status;
use super::{Database, CACHE_TABLE, INGEST_ERRORS_TABLE};
use crate::error::Result;
use crate::model::short_checksum;
use crate::reuse::cache::ModelCache;
use crate::storage::catalog::{Catalog, Compression, ModelEntry};
use crate::storage::commit::Purged;

/// `spectradb_cache`: the cache's counters when the query runs.
#[derive(Debug)]
pub(super) struct CacheTable {
    cache: Arc<ModelCache>,
}

impl CacheTable {
    pub(super) fn new(cache: Arc<ModelCache>) -> Self {
        CacheTable { cache }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("entries", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("capacity", DataType::UInt64, false),
            Field::new("hits", DataType::UInt64, false),
            Field::new("misses", DataType::UInt64, false),
            Field::new("evictions", DataType::UInt64, false),
        ]))
    }

    fn batch(&self) -> Result<RecordBatch> {
        let s = self.cache.stats();
        let col = |f: fn(&crate::reuse::cache::CacheStats) -> u64| {
            Arc::new(UInt64Array::from_iter_values(s.iter().map(f))) as ArrayRef
        };
        Ok(RecordBatch::try_new(
            Self::schema(),
            vec![
                Arc::new(StringArray::from_iter_values(s.iter().map(|x| x.kind))),
                col(|x| x.entries),
                col(|x| x.bytes),
                col(|x| x.capacity),
                col(|x| x.hits),
                col(|x| x.misses),
                col(|x| x.evictions),
            ],
        )?)
    }
}

#[async_trait]
impl TableProvider for CacheTable {
    fn schema(&self) -> SchemaRef {
        Self::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self
            .batch()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        MemTable::try_new(Self::schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

impl Database {
    pub(super) fn vacuum_result(&self, purged: &Purged) -> Result<DataFrame> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("files_removed", DataType::UInt64, false),
            Field::new("bytes_freed", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(vec![purged.files])),
                Arc::new(UInt64Array::from(vec![purged.bytes])),
            ],
        )?;
        Ok(self.results.read_batch(batch)?)
    }

    pub(super) fn ingest_result(
        &self,
        table: &str,
        ingested: u64,
        skipped: u64,
    ) -> Result<DataFrame> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("ingested", DataType::UInt64, false),
            Field::new("skipped", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![table])),
                Arc::new(UInt64Array::from(vec![ingested])),
                Arc::new(UInt64Array::from(vec![skipped])),
            ],
        )?;
        Ok(self.results.read_batch(batch)?)
    }

    pub(super) async fn show_tables(&self, catalog: &Catalog) -> Result<DataFrame> {
        // name, kind, rows, chroma, quality, status
        type Row<'a> = (
            String,
            &'a str,
            Option<u64>,
            Option<String>,
            Option<u8>,
            Option<String>,
        );
        let mut rows: Vec<Row> = Vec::new();
        // Tables that failed to load, or whose files a scan or CHECK found
        // damaged since.
        let mut damaged = self
            .registered
            .lock()
            .expect("registry lock")
            .damaged
            .clone();
        for name in catalog.tables.keys() {
            if let Some(why) = self.stats.damage(name) {
                damaged.entry(name.clone()).or_insert(why);
            }
        }
        for (name, t) in &catalog.tables {
            let n = t.files.iter().map(|f| f.rows).sum();
            rows.push((
                name.clone(),
                "image",
                Some(n),
                Some(t.chroma.clone()),
                Some(t.quality),
                damaged.get(name).map(|why| format!("damaged: {why}")),
            ));
        }
        for (name, v) in &catalog.materialized_views {
            let n: u64 = v.files.iter().map(|f| f.rows).sum();
            let damage = damaged.get(name);
            let mut status = match damage {
                Some(why) => format!("damaged: {why}"),
                None => view_status(catalog, v),
            };
            // A damaged view's bytes are not what it holds: only its damage is shown.
            if v.compression != Compression::None && damage.is_none() {
                // What compression buys is the point of choosing it.
                let bytes: u64 = v.files.iter().map(|f| f.bytes).sum();
                status.push_str(&format!(
                    "; {} vectors, {} bytes per row",
                    v.compression.name(),
                    bytes / n.max(1)
                ));
            }
            rows.push((
                name.clone(),
                "materialized view",
                Some(n),
                None,
                None,
                Some(status),
            ));
        }
        let state = self.ctx.state();
        let default = &state.config_options().catalog;
        if let Some(schema) = self
            .ctx
            .catalog(&default.default_catalog)
            .and_then(|c| c.schema(&default.default_schema))
        {
            for name in schema.table_names() {
                if catalog.tables.contains_key(&name)
                    || catalog.materialized_views.contains_key(&name)
                    || name == INGEST_ERRORS_TABLE
                    || name == CACHE_TABLE
                {
                    continue;
                }
                let kind = match schema.table(&name).await?.map(|t| t.table_type()) {
                    Some(datafusion::logical_expr::TableType::View) => "view",
                    _ if catalog.definitions.iter().any(|d| d.name == name) => "external",
                    _ => "table",
                };
                let n = catalog.plain_tables.get(&name).map(|f| f.rows);
                let status = damaged.get(&name).map(|why| format!("damaged: {why}"));
                rows.push((name, kind, n, None, None, status));
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, true),
            Field::new("chroma", DataType::Utf8, true),
            Field::new("quality", DataType::UInt8, true),
            Field::new("status", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3.clone()))),
                Arc::new(UInt8Array::from_iter(rows.iter().map(|r| r.4))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.5.clone()))),
            ],
        )?;
        Ok(self.results.read_batch(batch)?)
    }

    pub(super) fn show_models(&self, catalog: &Catalog) -> Result<DataFrame> {
        let m: Vec<(&String, &ModelEntry)> = catalog.models.iter().collect();
        let output = |e: &ModelEntry| {
            e.options.get("output").cloned().unwrap_or_else(|| {
                if e.labels_file.is_some() {
                    "label"
                } else {
                    "class"
                }
                .to_string()
            })
        };
        let shape = |e: &ModelEntry| {
            let dims: Vec<String> = e
                .input_shape
                .iter()
                .map(|d| {
                    if *d < 0 {
                        "?".to_string()
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            format!("[{}] at {}x{}", dims.join(", "), e.size, e.size)
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("input", DataType::Utf8, false),
            Field::new("input_shape", DataType::Utf8, false),
            Field::new("output", DataType::Utf8, false),
            Field::new("outputs", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
            Field::new("checksum", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|(n, _)| n.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(m.iter().map(|(_, e)| {
                    let members: Vec<String> =
                        e.members.iter().map(|m| m.format.to_string()).collect();
                    match &e.backbone {
                        Some(b) => format!("features of {b}"),
                        None if !members.is_empty() => {
                            format!("family: {}", members.join(", "))
                        }
                        None => e
                            .options
                            .get("input")
                            .cloned()
                            .unwrap_or_else(|| "pixels".into()),
                    }
                }))),
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|(_, e)| shape(e)),
                )),
                Arc::new(StringArray::from_iter_values(
                    m.iter().map(|(_, e)| output(e)),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    m.iter().map(|(_, e)| e.outputs),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    m.iter().map(|(_, e)| e.bytes),
                )),
                Arc::new(StringArray::from_iter_values(m.iter().map(|(_, e)| {
                    format!("sha256:{}", short_checksum(&e.checksum, 16))
                }))),
            ],
        )?;
        Ok(self.results.read_batch(batch)?)
    }
}

pub(super) fn ingest_errors_table(catalog: &Catalog) -> Result<MemTable> {
    let e = &catalog.ingest_errors;
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("uri", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.table))),
            Arc::new(UInt64Array::from_iter_values(e.iter().map(|x| x.version))),
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.uri))),
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.reason))),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}
