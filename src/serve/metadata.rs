//! The metadata calls: catalogs, schemas, tables (with their Arrow
//! schemas), table types and server info, answered from the client's
//! session with arrow-flight's builders (which apply the request's filters).
//! Each command is a [`Metadata`], so that the service answers all of them
//! with one pair of calls.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, ProstMessageExt, SqlInfo, SqlSupportedTransaction,
};
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use crate::db::Connection;
use crate::error::{Error, Result};

/// A metadata command: the schema of its answer (for `GetFlightInfo`,
/// whose ticket is the command itself) and the answer (for `DoGet`).
pub(super) trait Metadata: ProstMessageExt + Clone + Send + 'static {
    fn schema(&self) -> SchemaRef;
    fn answer(self, session: Arc<Connection>) -> BoxFuture<'static, Result<RecordBatch>>;
}

impl Metadata for CommandGetCatalogs {
    fn schema(&self) -> SchemaRef {
        self.into_builder().schema()
    }
    fn answer(self, session: Arc<Connection>) -> BoxFuture<'static, Result<RecordBatch>> {
        Box::pin(async move { catalogs(&session.context(), self) })
    }
}

impl Metadata for CommandGetDbSchemas {
    fn schema(&self) -> SchemaRef {
        self.clone().into_builder().schema()
    }
    fn answer(self, session: Arc<Connection>) -> BoxFuture<'static, Result<RecordBatch>> {
        Box::pin(async move { schemas(&session.context(), self) })
    }
}

impl Metadata for CommandGetTables {
    fn schema(&self) -> SchemaRef {
        self.clone().into_builder().schema()
    }
    fn answer(self, session: Arc<Connection>) -> BoxFuture<'static, Result<RecordBatch>> {
        Box::pin(async move {
            // Tables other clients or processes created since the last statement.
            session.sql("SELECT 1").await?;
            tables(&session.context(), self).await
        })
    }
}

impl Metadata for CommandGetTableTypes {
    fn schema(&self) -> SchemaRef {
        self.into_builder().schema()
    }
    fn answer(self, _session: Arc<Connection>) -> BoxFuture<'static, Result<RecordBatch>> {
        Box::pin(async move { table_types(self) })
    }
}

impl Metadata for CommandGetSqlInfo {
    fn schema(&self) -> SchemaRef {
        self.clone().into_builder(&SQL_INFO).schema()
    }
    fn answer(self, _session: Arc<Connection>) -> BoxFuture<'static, Result<RecordBatch>> {
        Box::pin(async move { self.into_builder(&SQL_INFO).build().map_err(internal) })
    }
}

/// The builders fail only on inconsistent input: a bug.
fn internal(e: arrow_flight::error::FlightError) -> Error {
    Error::Internal(format!("building a metadata answer: {e}"))
}

/// The table types [`table_type`] names.
pub(super) const TABLE_TYPES: [&str; 3] = ["TABLE", "VIEW", "LOCAL TEMPORARY"];

fn table_type(t: TableType) -> &'static str {
    match t {
        TableType::Base => TABLE_TYPES[0],
        TableType::View => TABLE_TYPES[1],
        TableType::Temporary => TABLE_TYPES[2],
    }
}

/// What `GetSqlInfo` answers.
static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "spectradb");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow format version of the IPC messages.
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, false);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().expect("static server info is valid")
});

fn catalogs(ctx: &SessionContext, query: CommandGetCatalogs) -> Result<RecordBatch> {
    let mut b = query.into_builder();
    for name in ctx.catalog_names() {
        b.append(name);
    }
    b.build().map_err(internal)
}

fn schemas(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch> {
    let mut b = query.into_builder();
    for catalog in ctx.catalog_names() {
        if let Some(c) = ctx.catalog(&catalog) {
            for schema in c.schema_names() {
                b.append(&catalog, schema);
            }
        }
    }
    b.build().map_err(internal)
}

async fn tables(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch> {
    let mut b = query.into_builder();
    for catalog in ctx.catalog_names() {
        let Some(c) = ctx.catalog(&catalog) else {
            continue;
        };
        for schema in c.schema_names() {
            let Some(s) = c.schema(&schema) else {
                continue;
            };
            let mut names = s.table_names();
            names.sort();
            for name in names {
                if let Some(table) = s.table(&name).await? {
                    b.append(
                        &catalog,
                        &schema,
                        &name,
                        table_type(table.table_type()),
                        table.schema().as_ref(),
                    )
                    .map_err(internal)?;
                }
            }
        }
    }
    b.build().map_err(internal)
}

fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch> {
    let mut b = query.into_builder();
    for t in TABLE_TYPES {
        b.append(t);
    }
    b.build().map_err(internal)
}
