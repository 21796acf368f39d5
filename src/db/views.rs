//! Materialized views: a query's result kept as Parquet in the database
//! directory with its lineage, refreshed incrementally when it is a
//! per-row projection of one image table, and read by the planner in place
//! of the model calls it holds.
//!
//! A view is published like a table (one commit, files written first).
//! Its lineage records the image tables it read (identity, version, the
//! next id then), the models it ran (file checksums) and which columns hold
//! which model's output under which read format; from that it knows when
//! it is stale (a model or a replaced table) or behind (rows appended).

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::DataFrame;

use super::plain::{read_file, write_table};
use super::{off_worker, Database};
use crate::error::{Error, Result};
use crate::planner::rule::{image_table, model_call};
use crate::reuse::compress;
use crate::reuse::views::ViewSource;
use crate::sql::image_scan::IMAGE_COLUMN;
use crate::storage::catalog::{
    Catalog, Compression, DatabaseDir, Lineage, MaterializedView, ModelRead, TableRead, ViewOutput,
};
use crate::storage::commit::Transaction;
use crate::storage::layout::COL_ID;

/// Reads a view's files: its schema and rows, float vectors decoded back
/// to float32 when the view stores them compressed.
pub(super) fn load_view(
    dir: &DatabaseDir,
    view: &MaterializedView,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut schema = None;
    let mut batches = Vec::new();
    for f in &view.files {
        let (s, b) = read_file(dir, f)?;
        schema.get_or_insert(s);
        batches.extend(b);
    }
    let schema =
        schema.ok_or_else(|| Error::Internal("a materialized view with no file".into()))?;
    if view.compressed_columns.is_empty() {
        return Ok((schema, batches));
    }
    compress::decode(&schema, &batches, &view.compressed_columns)
}

/// The table provider and the planner's view of one view.
pub(super) fn view_providers(
    name: &str,
    view: &MaterializedView,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(MemTable, ViewSource)> {
    let table = MemTable::try_new(schema, vec![batches.clone()])?;
    Ok((table, ViewSource::new(name, view.clone(), batches)))
}

/// How a view stands against the catalog: `fresh`, `behind: ...` (rows
/// appended to its table; usable, a refresh computes them) or `stale: ...`
/// (a model or table changed; a refresh recomputes everything).
pub fn view_status(catalog: &Catalog, view: &MaterializedView) -> String {
    let mut behind = Vec::new();
    for t in &view.lineage.tables {
        match catalog.tables.get(&t.name) {
            None => return format!("stale: table {} was dropped", t.name),
            Some(e) if e.identity(&t.name) != t.uid => {
                return format!("stale: table {} was replaced", t.name)
            }
            Some(e) if e.version != t.version => behind.push(format!(
                "{} rows added to {}",
                e.next_id.saturating_sub(t.next_id),
                t.name
            )),
            Some(_) => {}
        }
    }
    for m in &view.lineage.models {
        match catalog.models.get(&m.name) {
            None => return format!("stale: model {} was dropped", m.name),
            Some(e) if e.checksum != m.checksum => {
                return format!("stale: model {} changed", m.name)
            }
            Some(_) => {}
        }
    }
    if behind.is_empty() {
        "fresh".into()
    } else {
        format!("behind: {}", behind.join(", "))
    }
}

/// The lineage of a view computed by `plan` (optimized, so model calls are
/// bound to their read formats).
fn lineage(plan: &LogicalPlan, catalog: &Catalog) -> Result<Lineage> {
    let mut lineage = Lineage::default();
    let mut scans = 0usize;
    let mut per_row = true;
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                scans += 1;
                if let Some(t) = image_table(&scan.source) {
                    let next_id = catalog.tables.get(t.name()).map_or(0, |e| e.next_id);
                    if !lineage.tables.iter().any(|r| r.name == t.name()) {
                        lineage.tables.push(TableRead {
                            name: t.name().to_string(),
                            uid: t.uid(),
                            version: t.version(),
                            next_id,
                        });
                    }
                } else {
                    per_row = false;
                }
            }
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            }
            _ => per_row = false,
        }
        node.apply_expressions(|e| {
            e.apply(|x| {
                if let Expr::ScalarFunction(f) = x {
                    if let Some(m) = crate::model::udf::as_model_fn(&f.func) {
                        let mut h = Some(m.handle().clone());
                        while let Some(model) = h {
                            if !lineage.models.iter().any(|r| r.name == model.name) {
                                lineage.models.push(ModelRead {
                                    name: model.name.clone(),
                                    checksum: model.entry.checksum.clone(),
                                });
                            }
                            h = model.backbone.clone();
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    let single = scans == 1 && lineage.tables.len() == 1;
    if let (LogicalPlan::Projection(p), true) = (plan, single) {
        let table = lineage.tables[0].name.clone();
        for (i, expr) in p.expr.iter().enumerate() {
            let column = p.schema.field(i).name().clone();
            let inner = match expr {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            if let Some((m, _)) = model_call(inner) {
                lineage.outputs.push(ViewOutput {
                    column,
                    function: datafusion::logical_expr::ScalarUDFImpl::name(m).to_string(),
                    model: m.handle().name.clone(),
                    checksum: m.handle().entry.checksum.clone(),
                    format: m.format(),
                    table: table.clone(),
                });
            } else if matches!(inner, Expr::Column(c) if c.name == COL_ID)
                && per_row
                && lineage.id_column.is_none()
            {
                lineage.id_column = Some(column);
            }
        }
    }
    if !per_row || !single {
        lineage.id_column = None;
    }
    Ok(lineage)
}

impl Database {
    fn view_name(&self, name: &crate::sql::statements::TableName) -> Result<String> {
        let name = self.resolve(name)?;
        super::write::check_table_name(&name)?;
        Ok(name)
    }

    /// A transaction, with the session at its catalog version (under the
    /// lock the query must see the latest one).
    async fn begin_synced(&self) -> Result<Transaction> {
        let dir = self.dir.clone();
        let tx = off_worker(move || dir.begin()).await?;
        self.sync_async(tx.catalog().clone()).await?;
        self.restore_definitions(tx.catalog()).await;
        Ok(tx)
    }

    /// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [WITH (compression
    /// = ..)] AS query`.
    pub(super) async fn create_materialized_view(
        &self,
        name: &crate::sql::statements::TableName,
        if_not_exists: bool,
        compression: Compression,
        query: &str,
    ) -> Result<DataFrame> {
        let name = self.view_name(name)?;
        let tx = self.begin_synced().await?;
        let taken = tx.catalog().materialized_views.contains_key(&name)
            || self.ctx.table_exist(name.as_str())?;
        if taken {
            if if_not_exists && tx.catalog().materialized_views.contains_key(&name) {
                return self.view_result(&name, "exists", 0, 0);
            }
            return Err(Error::InvalidArgument(format!(
                "a table or view named '{name}' already exists"
            )));
        }
        let (mut tx, view, rows) = self.compute_view(tx, query, compression).await?;
        tx.catalog_mut()
            .materialized_views
            .insert(name.clone(), view);
        self.commit_view(tx).await?;
        self.view_result(&name, "created", rows, rows)
    }

    /// Runs a view's query under `tx`: writes its rows (float vectors
    /// stored as `compression` says) to a new file of the transaction (on
    /// the blocking pool) and returns the transaction, the view entry and
    /// the row count.
    async fn compute_view(
        &self,
        tx: Transaction,
        query: &str,
        compression: Compression,
    ) -> Result<(Transaction, MaterializedView, u64)> {
        let df = self.ctx.sql(query).await?;
        let plan = df.clone().into_optimized_plan()?;
        let lineage = lineage(&plan, tx.catalog())?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        check_columns(&schema)?;
        let compressed_columns = compress::compressible_columns(&schema, compression)?;
        let batches = df.collect().await?;
        let columns = compressed_columns.clone();
        let (tx, file) = off_worker(move || {
            let mut tx = tx;
            let (schema, batches) = if columns.is_empty() {
                (schema, batches)
            } else {
                compress::encode(&schema, &batches, &columns, compression)?
            };
            let file = write_table(&mut tx, schema, &batches)?;
            Ok((tx, file))
        })
        .await?;
        let rows = file.rows;
        let view = MaterializedView {
            query: query.to_string(),
            files: vec![file],
            lineage,
            compression,
            compressed_columns,
        };
        Ok((tx, view, rows))
    }

    async fn commit_view(&self, tx: Transaction) -> Result<()> {
        let catalog = off_worker(move || Ok(tx.commit()?.0)).await?;
        self.sync_async(catalog).await
    }

    /// `REFRESH MATERIALIZED VIEW name`: computes the rows appended to its
    /// table since (a per-row projection of one image table whose models
    /// and table identity are unchanged), else recomputes it whole.
    pub(super) async fn refresh_materialized_view(
        &self,
        name: &crate::sql::statements::TableName,
    ) -> Result<DataFrame> {
        let name = self.resolve(name)?;
        let tx = self.begin_synced().await?;
        let Some(view) = tx.catalog().materialized_views.get(&name).cloned() else {
            return Err(Error::InvalidArgument(format!(
                "no materialized view named '{name}' (SHOW TABLES lists them)"
            )));
        };
        let status = view_status(tx.catalog(), &view);
        if status == "fresh" {
            let rows = view.files.iter().map(|f| f.rows).sum();
            return self.view_result(&name, "fresh", 0, rows);
        }
        let incremental = status.starts_with("behind") && view.lineage.id_column.is_some();
        let (mut tx, new_view, computed, mode) = if incremental {
            let id = view.lineage.id_column.clone().expect("checked");
            let from = view.lineage.tables[0].next_id;
            let query = format!(
                "SELECT * FROM ({}) AS spectradb_refresh WHERE spectradb_refresh.\"{}\" >= {from}",
                view.query,
                id.replace('"', "\"\"")
            );
            let (tx, delta, rows) = self.compute_view(tx, &query, view.compression).await?;
            let mut updated = view.clone();
            updated.files.extend(delta.files);
            updated.lineage.tables = delta.lineage.tables;
            if updated.lineage.tables.is_empty() {
                return Err(Error::Internal(format!(
                    "refreshing {name}: the query no longer reads its table"
                )));
            }
            (tx, updated, rows, "appended rows")
        } else {
            let (mut tx, fresh, rows) =
                self.compute_view(tx, &view.query, view.compression).await?;
            for f in &view.files {
                tx.retire(&f.path);
            }
            (tx, fresh, rows, "recomputed")
        };
        let total = new_view.files.iter().map(|f| f.rows).sum();
        tx.catalog_mut()
            .materialized_views
            .insert(name.clone(), new_view);
        self.commit_view(tx).await?;
        self.view_result(&name, mode, computed, total)
    }

    /// `DROP MATERIALIZED VIEW [IF EXISTS] name`.
    pub(super) async fn drop_materialized_view(
        &self,
        name: &crate::sql::statements::TableName,
        if_exists: bool,
    ) -> Result<()> {
        let name = self.resolve(name)?;
        let gone = name.clone();
        let dropped = self
            .write(move |tx| {
                let Some(view) = tx.catalog_mut().materialized_views.remove(&gone) else {
                    return if if_exists {
                        Ok(false)
                    } else {
                        Err(Error::InvalidArgument(format!(
                            "no materialized view named '{gone}'"
                        )))
                    };
                };
                for f in &view.files {
                    tx.retire(&f.path);
                }
                Ok(true)
            })
            .await?;
        if dropped.0 {
            let _ = self.ctx.deregister_table(name.as_str());
        }
        Ok(())
    }

    fn view_result(&self, name: &str, action: &str, computed: u64, rows: u64) -> Result<DataFrame> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("view", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, false),
            Field::new("rows_computed", DataType::UInt64, false),
            Field::new("rows", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![name])),
                Arc::new(StringArray::from(vec![action])),
                Arc::new(UInt64Array::from(vec![computed])),
                Arc::new(UInt64Array::from(vec![rows])),
            ],
        )?;
        Ok(self.results.read_batch(batch)?)
    }
}

/// A view keeps results, not images: an image column would store every
/// band of every row again.
fn check_columns(schema: &Schema) -> Result<()> {
    for f in schema.fields() {
        let binary = matches!(
            f.data_type(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        );
        if binary && f.name() == IMAGE_COLUMN {
            return Err(Error::InvalidArgument(format!(
                "a materialized view keeps model outputs, not images: drop column '{}' (an image table already stores it)",
                f.name()
            )));
        }
    }
    Ok(())
}
