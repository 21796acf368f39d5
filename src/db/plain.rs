//! Ordinary tables, views and external tables made with DataFusion's own
//! statements, kept across sessions like DuckDB does.
//!
//! DataFusion keeps `CREATE TABLE` data in memory. When such a statement
//! changes a file-backed database, the writer lock is taken first, the
//! statement runs, each changed table is written to one Parquet file and a
//! new catalog version is published; views and external tables are kept as
//! the statement that made them and replayed when a database opens.

use std::any::Any;
use std::fs::File;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType, Statement, TableObject};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};
use crate::sql::statements::normalize_ident;
use crate::storage::catalog::{Catalog, DataFile, DatabaseDir, Definition, WriteLock};

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
    /// Forget these tables or views.
    Drop(Vec<String>),
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
    match statements.pop_front().expect("one statement") {
        DfStatement::CreateExternalTable(t) => Effect::Define(object_name(&t.name)),
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
                object_type: ObjectType::Table | ObjectType::View,
                names,
                ..
            } => Effect::Drop(names.iter().map(object_name).collect()),
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

/// Applies `effect` (the statement `sql` already ran) to `catalog`.
/// Returns the files replaced, to delete once the catalog is published.
pub async fn apply(
    ctx: &SessionContext,
    dir: &DatabaseDir,
    lock: &WriteLock,
    catalog: &mut Catalog,
    effect: &Effect,
    sql: &str,
) -> Result<Vec<String>> {
    let mut replaced = Vec::new();
    let names: Vec<String> = match effect {
        Effect::None => return Ok(replaced),
        Effect::Tables(n) => n.clone(),
        Effect::AllTables => catalog.plain_tables.keys().cloned().collect(),
        Effect::Define(name) => {
            catalog.definitions.retain(|d| &d.name != name);
            catalog.definitions.push(Definition {
                name: name.clone(),
                sql: sql.trim().to_string(),
            });
            return Ok(replaced);
        }
        Effect::Drop(names) => {
            for n in names {
                catalog.definitions.retain(|d| &d.name != n);
                if let Some(old) = catalog.plain_tables.remove(n) {
                    replaced.push(old.path);
                }
            }
            return Ok(replaced);
        }
    };
    for name in names {
        match mem_table(ctx, &name).await? {
            Some(table) => {
                let schema = datafusion::catalog::TableProvider::schema(table.as_ref());
                let batches = ctx.read_table(table)?.collect().await?;
                let (rel, abs) = dir.new_plain_file(lock)?;
                let file = File::create(&abs).map_err(|e| Error::io(&abs, e))?;
                let mut w = ArrowWriter::try_new(file, schema, None)
                    .map_err(|e| Error::parquet(&abs, e))?;
                let mut rows = 0;
                for b in &batches {
                    rows += b.num_rows() as u64;
                    w.write(b).map_err(|e| Error::parquet(&abs, e))?;
                }
                let file = w.into_inner().map_err(|e| Error::parquet(&abs, e))?;
                file.sync_all().map_err(|e| Error::io(&abs, e))?;
                let bytes = file.metadata().map_err(|e| Error::io(&abs, e))?.len();
                let new = DataFile {
                    path: rel,
                    rows,
                    bytes,
                };
                if let Some(old) = catalog.plain_tables.insert(name.clone(), new) {
                    replaced.push(old.path);
                }
            }
            None => {
                if let Some(old) = catalog.plain_tables.remove(&name) {
                    replaced.push(old.path);
                }
            }
        }
    }
    Ok(replaced)
}

/// Reads an ordinary table's file back into an in-memory table.
pub fn load(dir: &DatabaseDir, file: &DataFile) -> Result<MemTable> {
    let path = dir.root().join(&file.path);
    let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| Error::parquet(&path, e))?
        .build()
        .map_err(|e| Error::parquet(&path, e))?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(MemTable::try_new(schema, vec![batches])?)
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
        assert_eq!(classify("SELEC oops"), Effect::None);
    }
}
