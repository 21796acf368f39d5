//! The tables statements return: SHOW TABLES, SHOW MODELS, the summary
//! rows of ingests and VACUUM, and the `spectradb_ingest_errors` system
//! table.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::DataFrame;

use super::write::VacuumReport;
use super::Database;
use crate::error::Result;
use crate::model::short_checksum;
use crate::storage::catalog::{Catalog, ModelEntry};

/// Name of the table listing the files ingests skipped.
pub const INGEST_ERRORS_TABLE: &str = "spectradb_ingest_errors";

impl Database {
    pub(super) fn vacuum_result(&self, purged: &VacuumReport) -> Result<DataFrame> {
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
        Ok(self.ctx.read_batch(batch)?)
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
        Ok(self.ctx.read_batch(batch)?)
    }

    pub(super) async fn show_tables(&self, catalog: &Catalog) -> Result<DataFrame> {
        // name, kind, rows, chroma, quality
        type Row<'a> = (String, &'a str, Option<u64>, Option<String>, Option<u8>);
        let mut rows: Vec<Row> = Vec::new();
        for (name, t) in &catalog.tables {
            let n = t.files.iter().map(|f| f.rows).sum();
            rows.push((
                name.clone(),
                "image",
                Some(n),
                Some(t.chroma.clone()),
                Some(t.quality),
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
                if catalog.tables.contains_key(&name) || name == INGEST_ERRORS_TABLE {
                    continue;
                }
                let kind = match schema.table(&name).await?.map(|t| t.table_type()) {
                    Some(datafusion::logical_expr::TableType::View) => "view",
                    _ if catalog.definitions.iter().any(|d| d.name == name) => "external",
                    _ => "table",
                };
                let n = catalog.plain_tables.get(&name).map(|f| f.rows);
                rows.push((name, kind, n, None, None));
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("rows", DataType::UInt64, true),
            Field::new("chroma", DataType::Utf8, true),
            Field::new("quality", DataType::UInt8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3.clone()))),
                Arc::new(UInt8Array::from_iter(rows.iter().map(|r| r.4))),
            ],
        )?;
        Ok(self.ctx.read_batch(batch)?)
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
                    e.options
                        .get("input")
                        .cloned()
                        .unwrap_or_else(|| "pixels".into())
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
        Ok(self.ctx.read_batch(batch)?)
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
