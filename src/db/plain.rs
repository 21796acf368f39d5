//! Ordinary tables, views and external tables made with DataFusion's own
//! statements, kept across sessions like DuckDB does.
//!
//! DataFusion keeps `CREATE TABLE` data in memory. When such a statement
//! changes a file-backed database, a transaction is opened first (the
//! writer lock), the statement runs, each changed table is written to one
//! Parquet file and the transaction commits; views and external tables are
//! kept as the statement that made them and replayed when a database
//! opens. Statements that would change memory without a way to keep it
//! (`EXPLAIN ANALYZE` or `PREPARE` of a change) are refused.

use std::any::Any;
use std::fs::File;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType, Statement, TableObject};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::Type as PhysicalType;
use parquet::file::properties::WriterProperties;

use super::{off_worker, Database};
use crate::error::{Error, Result};
use crate::sql::statements::normalize_ident;
use crate::storage::catalog::{DataFile, DatabaseDir, Definition};
use crate::storage::checksum::ChecksumWriter;
use crate::storage::commit::Transaction;

/// What a DataFusion statement changes in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Reads only (or changes nothing that is kept).
    None,
    /// Rewrite these ordinary tables (or forget them when they are gone).
    Tables(Vec<String>),
    /// Rewrite every ordinary table (UPDATE / DELETE / TRUNCATE).
    AllTables,
    /// Keep a view or external table definition.
    Define(String),
    /// Forget these views.
    Drop(Vec<String>),
    /// Would change data without keeping it: refused, with the reason.
    Refused(String),
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .unwrap_or_default()
}

/// Classifies one statement; parse errors are left for DataFusion to report.
pub fn classify(sql: &str) -> Effect {
    let Ok(mut statements) = DFParser::parse_sql(sql) else {
        return Effect::None;
    };
    if statements.len() != 1 {
        return Effect::None;
    }
    classify_statement(statements.pop_front().expect("one statement"))
}

fn classify_statement(statement: DfStatement) -> Effect {
    match statement {
        DfStatement::CreateExternalTable(t) => Effect::Define(object_name(&t.name)),
        DfStatement::Explain(e) if e.options.analyze => match classify_statement(*e.statement) {
            Effect::None => Effect::None,
            _ => Effect::Refused(
                "EXPLAIN ANALYZE of a statement that changes tables would change them \
                     without keeping the change: run the statement itself (EXPLAIN without \
                     ANALYZE shows its plan)"
                    .into(),
            ),
        },
        DfStatement::Statement(s) => match *s {
            Statement::CreateTable(t) => Effect::Tables(vec![object_name(&t.name)]),
            Statement::CreateView(v) => Effect::Define(object_name(&v.name)),
            Statement::Insert(i) => match &i.table {
                TableObject::TableName(n) => Effect::Tables(vec![object_name(n)]),
                _ => Effect::AllTables,
            },
            Statement::Update(_) | Statement::Delete(_) | Statement::Truncate(_) => {
                Effect::AllTables
            }
            Statement::Drop {
                object_type: ObjectType::View,
                names,
                ..
            } => Effect::Drop(names.iter().map(object_name).collect()),
            Statement::Prepare { statement, .. } => {
                match classify_statement(DfStatement::Statement(statement)) {
                    Effect::None => Effect::None,
                    _ => Effect::Refused(
                        "PREPARE of a statement that changes tables is not supported in a \
                         database directory (EXECUTE would change them without keeping the \
                         change): run the statement itself"
                            .into(),
                    ),
                }
            }
            _ => Effect::None,
        },
        _ => Effect::None,
    }
}

/// The in-memory table `name` of the session, if it is one.
async fn mem_table(ctx: &SessionContext, name: &str) -> Result<Option<Arc<MemTable>>> {
    let Ok(provider) = ctx.table_provider(name).await else {
        return Ok(None);
    };
    let any: Arc<dyn Any + Send + Sync> = provider;
    Ok(any.downcast::<MemTable>().ok())
}

/// An ordinary table's rows after the statement, or `None` when it is gone.
type TableData = (String, Option<(SchemaRef, Vec<RecordBatch>)>);

/// The rows of every ordinary table `effect` changed, read from the session.
async fn changed_tables(
    ctx: &SessionContext,
    effect: &Effect,
    tx: &Transaction,
) -> Result<Vec<TableData>> {
    let names: Vec<String> = match effect {
        Effect::Tables(n) => n.clone(),
        Effect::AllTables => tx.catalog().plain_tables.keys().cloned().collect(),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for name in names {
        let data = match mem_table(ctx, &name).await? {
            Some(table) => {
                let schema = datafusion::catalog::TableProvider::schema(table.as_ref());
                Some((schema, ctx.read_table(table)?.collect().await?))
            }
            None => None,
        };
        out.push((name, data));
    }
    Ok(out)
}

/// Applies `effect` (the statement `sql` already ran) to the transaction:
/// writes each changed table to a new file and retires the file it had.
fn apply(tx: &mut Transaction, effect: &Effect, sql: &str, tables: Vec<TableData>) -> Result<()> {
    match effect {
        Effect::Define(name) => {
            let catalog = tx.catalog_mut();
            catalog.definitions.retain(|d| &d.name != name);
            catalog.definitions.push(Definition {
                name: name.clone(),
                sql: sql.trim().to_string(),
            });
        }
        Effect::Drop(names) => {
            for n in names {
                tx.catalog_mut().definitions.retain(|d| &d.name != n);
            }
        }
        _ => {}
    }
    for (name, data) in tables {
        let new = match data {
            Some((schema, batches)) => Some(write_table(tx, schema, &batches)?),
            None => None,
        };
        // `CREATE OR REPLACE TABLE` over an image table replaces it: the
        // image table (its files, profiles, ingest errors) goes.
        if new.is_some() && tx.catalog_mut().tables.contains_key(&name) {
            super::write::remove_tables(tx, std::slice::from_ref(&name));
        }
        let catalog = tx.catalog_mut();
        let old = match new {
            Some(file) => catalog.plain_tables.insert(name, file),
            None => catalog.plain_tables.remove(&name),
        };
        if let Some(old) = old {
            tx.retire(&old.path);
        }
    }
    Ok(())
}

/// Writes one ordinary table to a new Parquet file of the transaction.
/// Parquet's defaults, except that float columns (embeddings, scores) are
/// written without a dictionary: their values are nearly all distinct, so
/// a dictionary page only adds to the plain pages it falls back to (a
/// float32 feature view took 1.44x its raw bytes).
fn writer_properties(schema: &SchemaRef) -> parquet::errors::Result<WriterProperties> {
    let descr = ArrowSchemaConverter::new().convert(schema)?;
    let mut props = WriterProperties::builder();
    for column in descr.columns() {
        if matches!(
            column.physical_type(),
            PhysicalType::FLOAT | PhysicalType::DOUBLE
        ) {
            props = props.set_column_dictionary_enabled(column.path().clone(), false);
        }
    }
    Ok(props.build())
}

pub(super) fn write_table(
    tx: &mut Transaction,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<DataFile> {
    let (rel, abs) = tx.new_plain_file()?;
    let file = ChecksumWriter::new(File::create(&abs).map_err(|e| Error::io(&abs, e))?);
    let props = writer_properties(&schema).map_err(|e| Error::parquet(&abs, e))?;
    let mut w =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::parquet(&abs, e))?;
    let mut rows = 0;
    for b in batches {
        rows += b.num_rows() as u64;
        w.write(b).map_err(|e| Error::parquet(&abs, e))?;
    }
    let (file, checksum) = w
        .into_inner()
        .map_err(|e| Error::parquet(&abs, e))?
        .finish();
    file.sync_all().map_err(|e| Error::io(&abs, e))?;
    let bytes = file.metadata().map_err(|e| Error::io(&abs, e))?.len();
    Ok(DataFile {
        checksum: Some(checksum),
        ..DataFile::new(rel, rows, bytes)
    })
}

impl Database {
    /// Runs a DataFusion statement that changes kept state as one
    /// transaction. If it fails after DataFusion changed the session, the
    /// session reloads from the published catalog.
    pub(super) async fn run_kept(&self, sql: &str, effect: Effect) -> Result<DataFrame> {
        let dir = self.dir.clone();
        let tx = off_worker(move || dir.begin()).await?;
        self.run_kept_with(tx, sql, effect).await
    }

    /// [`Self::run_kept`] in a transaction already begun.
    pub(super) async fn run_kept_with(
        &self,
        tx: Transaction,
        sql: &str,
        effect: Effect,
    ) -> Result<DataFrame> {
        let touched = match &effect {
            Effect::Tables(names) | Effect::Drop(names) => names.clone(),
            Effect::Define(name) => vec![name.clone()],
            _ => Vec::new(),
        };
        let result = self.run_kept_in(tx, sql, effect).await;
        if result.is_err() {
            self.forget_kept_tables(&touched);
        }
        result
    }

    async fn run_kept_in(
        &self,
        mut tx: Transaction,
        sql: &str,
        effect: Effect,
    ) -> Result<DataFrame> {
        // Under the lock, the session must see the latest version.
        self.sync_async(tx.catalog().clone()).await?;
        self.restore_definitions(tx.catalog()).await;
        let df = self.ctx.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let tables = changed_tables(&self.ctx, &effect, &tx).await?;
        let sql_text = sql.to_string();
        let catalog = off_worker(move || {
            apply(&mut tx, &effect, &sql_text, tables)?;
            Ok(tx.commit()?.0)
        })
        .await?;
        {
            // The session already holds what was published.
            let mut reg = self.registered.lock().expect("registry lock");
            reg.plain = catalog
                .plain_tables
                .iter()
                .map(|(n, f)| (n.clone(), f.path.clone()))
                .collect();
            reg.definitions = catalog.definitions.clone();
        }
        self.sync_async(catalog).await?;
        Ok(if batches.is_empty() {
            self.results.read_batch(RecordBatch::new_empty(schema))?
        } else {
            self.results.read_batches(batches)?
        })
    }
}

/// Reads an ordinary table's file back into an in-memory table.
pub fn load(dir: &DatabaseDir, file: &DataFile) -> Result<MemTable> {
    let (schema, batches) = read_file(dir, file)?;
    Ok(MemTable::try_new(schema, vec![batches])?)
}

/// The schema and rows of a kept Parquet file.
pub(super) fn read_file(
    dir: &DatabaseDir,
    file: &DataFile,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let path = dir.root().join(&file.path);
    let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| Error::parquet(&path, e))?
        .build()
        .map_err(|e| Error::parquet(&path, e))?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::corrupt(&path, e.to_string()))?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statements_that_change_kept_state() {
        assert_eq!(classify("SELECT 1"), Effect::None);
        assert_eq!(
            classify("CREATE TABLE Notes AS SELECT 1"),
            Effect::Tables(vec!["notes".into()])
        );
        assert_eq!(
            classify("INSERT INTO \"Notes\" VALUES (1)"),
            Effect::Tables(vec!["Notes".into()])
        );
        assert_eq!(classify("DELETE FROM notes"), Effect::AllTables);
        assert_eq!(
            classify("CREATE VIEW v AS SELECT 1"),
            Effect::Define("v".into())
        );
        assert_eq!(
            classify("CREATE EXTERNAL TABLE e STORED AS CSV LOCATION 'x.csv'"),
            Effect::Define("e".into())
        );
        assert_eq!(
            classify("DROP VIEW IF EXISTS v"),
            Effect::Drop(vec!["v".into()])
        );
        assert_eq!(classify("EXPLAIN ANALYZE SELECT 1"), Effect::None);
        assert_eq!(
            classify("EXPLAIN INSERT INTO notes VALUES (1)"),
            Effect::None
        );
        for refused in [
            "EXPLAIN ANALYZE INSERT INTO notes VALUES (1)",
            "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
            "PREPARE ins(INT) AS INSERT INTO notes VALUES ($1)",
        ] {
            assert!(
                matches!(classify(refused), Effect::Refused(_)),
                "{refused}: {:?}",
                classify(refused)
            );
        }
        assert_eq!(classify("PREPARE q(INT) AS SELECT $1"), Effect::None);
        assert_eq!(classify("SELEC oops"), Effect::None);
    }
}
