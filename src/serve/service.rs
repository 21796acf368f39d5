//! arrow-flight's `FlightSqlService` over a [`Database`]: every statement
//! goes through the client's [`Connection`], so spectradb's own statements,
//! `SET` and the format planner work as in the shell.
//!
//! `GetFlightInfo` plans a statement (statements that change the database
//! run there, once) and keeps the physical plan under a handle; the
//! FlightInfo's schema is that plan's schema, and `DoGet` executes exactly
//! that plan, so the stream's schema is the advertised one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::DataFrame;
use datafusion::scalar::ScalarValue;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{presented_token, Auth};
use super::clients::Clients;
use super::handles::Handles;
use super::metadata::Metadata;
use super::query::{batches_stream, FlightStream, Limits};
use super::status::to_status;
use crate::db::Connection;
use crate::error::Error;
use crate::sql::statements::parse_command;

/// A physical plan waiting for its `DoGet`.
struct Planned {
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    schema: SchemaRef,
}

/// A prepared statement: its text, the client it belongs to and the
/// parameters last bound.
struct Prepared {
    sql: String,
    session: Arc<Connection>,
    params: Option<Vec<ScalarValue>>,
}

/// What a call on a prepared statement needs of it: text, client, parameters.
type PreparedParts = (String, Arc<Connection>, Option<Vec<ScalarValue>>);

/// The Flight SQL service (cheap to clone: everything is shared).
#[derive(Clone)]
pub(super) struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Auth,
    clients: Clients,
    limits: Limits,
    planned: Handles<Planned>,
    prepared: Handles<Prepared>,
}

impl Service {
    pub(super) fn new(auth: Auth, clients: Clients, limits: Limits) -> Self {
        let ttl = limits.idle_timeout;
        Service {
            inner: Arc::new(Inner {
                auth,
                clients,
                limits,
                planned: Handles::new("planned query", ttl),
                prepared: Handles::new("prepared statement", ttl),
            }),
        }
    }

    pub(super) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    fn session<T>(&self, request: &Request<T>) -> Arc<Connection> {
        let peer: Option<SocketAddr> = request.remote_addr();
        self.inner.clients.session(peer)
    }

    /// Runs `sql` on `session` (under a query permit, on the CPU runtime:
    /// statements that change the database run here) and keeps its
    /// physical plan.
    async fn plan(
        &self,
        session: Arc<Connection>,
        sql: String,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<(String, SchemaRef), Status> {
        let _permit = self.inner.limits.permit().await?;
        let planned = self
            .inner
            .limits
            .on_cpu(async move {
                let mut df = session.sql(&sql).await?;
                if let Some(values) = params {
                    df = df.with_param_values(values)?;
                }
                physical(df).await
            })
            .await?
            .map_err(to_status)?;
        let schema = planned.schema.clone();
        Ok((self.inner.planned.insert(planned), schema))
    }

    /// The text, client and parameters of the prepared statement `handle`.
    #[allow(clippy::result_large_err)]
    fn prepared(&self, handle: &[u8]) -> Result<PreparedParts, Status> {
        self.inner.prepared.with(handle, |p| {
            (p.sql.clone(), p.session.clone(), p.params.clone())
        })
    }

    /// Streams the results of the planned query `handle` (once).
    async fn run_planned(&self, handle: &[u8]) -> Result<Response<FlightStream>, Status> {
        let planned = self.inner.planned.take(handle)?;
        let permit = self.inner.limits.permit().await?;
        Ok(Response::new(self.inner.limits.stream(
            planned.plan,
            planned.task,
            planned.schema,
            permit,
        )))
    }

    /// A FlightInfo whose one endpoint fetches the planned query `handle`.
    #[allow(clippy::result_large_err)]
    fn info(
        handle: String,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    /// Runs a statement that returns no rows to the client (on the CPU
    /// runtime); the number of rows it reports changing, or -1 when it
    /// does not say.
    async fn update(&self, session: Arc<Connection>, sql: String) -> Result<i64, Status> {
        let _permit = self.inner.limits.permit().await?;
        let batches = self
            .inner
            .limits
            .on_cpu(async move { Ok::<_, Error>(session.sql(&sql).await?.collect().await?) })
            .await?
            .map_err(to_status)?;
        Ok(affected_rows(&batches))
    }

    /// `GetFlightInfo` of a metadata command: the ticket is the command.
    #[allow(clippy::result_large_err)]
    fn metadata_info<M: Metadata>(
        command: M,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = command.schema();
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(command.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    /// `DoGet` of a metadata command, answered from the client's session.
    async fn metadata<M: Metadata>(
        &self,
        command: M,
        request: Request<Ticket>,
    ) -> Result<Response<FlightStream>, Status> {
        let batch = command
            .answer(self.session(&request))
            .await
            .map_err(to_status)?;
        Ok(Response::new(batches_stream(batch.schema(), batch)))
    }
}

/// What `async_trait` makes of an `async fn` answering `Response<T>`.
type Call<'a, T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send + 'a>>;

/// The `GetFlightInfo` and `DoGet` calls of metadata commands, each the
/// generic helper of [`Service`] above. Written as `async_trait` writes an
/// `async fn` (which it does not do for what a macro makes), so that the
/// five pairs are one definition.
macro_rules! metadata_calls {
    ($($info:ident, $get:ident: $command:ty;)*) => {$(
        fn $info<'s, 'a>(&'s self, query: $command, request: Request<FlightDescriptor>)
            -> Call<'a, FlightInfo> where 's: 'a, Self: 'a {
            Box::pin(async move { Self::metadata_info(query, request) })
        }

        fn $get<'s, 'a>(&'s self, query: $command, request: Request<Ticket>)
            -> Call<'a, FlightStream> where 's: 'a, Self: 'a {
            Box::pin(self.metadata(query, request))
        }
    )*};
}

/// Plans `df` down to an executable plan and the context to run it in.
async fn physical(df: DataFrame) -> crate::Result<Planned> {
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    let schema = plan.schema();
    Ok(Planned { plan, task, schema })
}

/// DataFusion's DML reports `count`; spectradb's ingest `ingested`.
fn affected_rows(batches: &[RecordBatch]) -> i64 {
    let Some(batch) = batches.first() else {
        return -1;
    };
    for name in ["count", "ingested"] {
        if let Ok(i) = batch.schema().index_of(name) {
            let column = batch.column(i);
            if column.len() == 1 {
                if let Ok(ScalarValue::UInt64(Some(n))) = ScalarValue::try_from_array(column, 0)
                    .and_then(|v| v.cast_to(&DataType::UInt64))
                {
                    return n as i64;
                }
            }
        }
    }
    -1
}

/// The one row of parameters a prepared query is bound to.
#[allow(clippy::result_large_err)]
fn parameter_row(batches: &[RecordBatch]) -> Result<Option<Vec<ScalarValue>>, Status> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match rows {
        0 => Ok(None),
        1 => {
            let batch = batches.iter().find(|b| b.num_rows() == 1).expect("one row");
            batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, 0))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(|e| Status::invalid_argument(format!("bad parameter value: {e}")))
        }
        n => Err(Status::invalid_argument(format!(
            "a prepared query takes one row of parameters, got {n}"
        ))),
    }
}

/// The batches of a `DoPut` request (parameters of a prepared statement).
async fn put_batches(
    request: Request<PeekableFlightDataStream>,
) -> Result<Vec<RecordBatch>, Status> {
    // The first message (the descriptor, often with the schema) was peeked.
    // A message with only the descriptor carries no Arrow data.
    let stream = request
        .into_inner()
        .into_peekable()
        .try_filter(|d| futures::future::ready(!d.data_header.is_empty()))
        .map_err(FlightError::from);
    FlightRecordBatchStream::new_from_flight_data(stream)
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| {
            Status::internal(format!("cannot encode a schema: {e}"))
        })?;
    Ok(message.0)
}

/// The parameters of a query as a schema `$1, $2, ...` (type `Null` where
/// DataFusion cannot tell).
fn parameter_schema(df: &DataFrame) -> crate::Result<Schema> {
    let types: HashMap<String, Option<DataType>> = df.logical_plan().get_parameter_types()?;
    let mut names: Vec<&String> = types.keys().collect();
    names.sort_by_key(|n| {
        let number = n.trim_start_matches('$').parse::<u64>().unwrap_or(u64::MAX);
        (number, (*n).clone())
    });
    Ok(Schema::new(
        names
            .into_iter()
            .map(|n| Field::new(n, types[n].clone().unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    ))
}

#[tonic::async_trait]
impl FlightSqlService for Service {
    type FlightService = Service;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // The interceptor already accepted the credentials.
        let token = match self.auth() {
            Auth::Disabled => String::new(),
            Auth::Tokens(_) => presented_token(request.metadata())?,
        };
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let stream = futures::stream::iter([Ok(reply)]);
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(stream));
        if !token.is_empty() {
            let header = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::invalid_argument("the token is not a valid header value"))?;
            response.metadata_mut().insert("authorization", header);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request);
        let (handle, schema) = self.plan(session, query.query, None).await?;
        Self::info(handle, &schema, request.into_inner())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (sql, session, params) = self.prepared(&query.prepared_statement_handle)?;
        let (handle, schema) = self.plan(session, sql, params).await?;
        Self::info(handle, &schema, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.run_planned(&ticket.statement_handle).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        // Clients fetch the ticket GetFlightInfo gave them; one that sends
        // the command itself gets the same.
        let (sql, session, params) = self.prepared(&query.prepared_statement_handle)?;
        let (handle, _) = self.plan(session, sql, params).await?;
        self.run_planned(handle.as_bytes()).await
    }

    metadata_calls! {
        get_flight_info_catalogs, do_get_catalogs: CommandGetCatalogs;
        get_flight_info_schemas, do_get_schemas: CommandGetDbSchemas;
        get_flight_info_tables, do_get_tables: CommandGetTables;
        get_flight_info_table_types, do_get_table_types: CommandGetTableTypes;
        get_flight_info_sql_info, do_get_sql_info: CommandGetSqlInfo;
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session(&request);
        self.update(session, command.query).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = query.prepared_statement_handle.clone();
        let params = parameter_row(&put_batches(request).await?)?;
        self.inner.prepared.with(&handle, |p| p.params = params)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let batches = put_batches(request).await?;
        if batches.iter().any(|b| b.num_rows() > 0) {
            return Err(Status::unimplemented(
                "parameters are supported for prepared queries; run statements that change data without parameters",
            ));
        }
        let (sql, session, _) = self.prepared(&query.prepared_statement_handle)?;
        self.update(session, sql).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request);
        // DataFusion statements are planned now (planning changes nothing;
        // SQL errors show here); spectradb's own statements run when executed.
        let ours = parse_command(&query.query).map_err(to_status)?.is_some();
        let (dataset, params) = if !ours {
            let df = session
                .context()
                .state()
                .create_logical_plan(&query.query)
                .await
                .map_err(|e| to_status(e.into()))?;
            let df = DataFrame::new(session.context().state(), df);
            let params = parameter_schema(&df).map_err(to_status)?;
            (df.schema().as_arrow().clone(), params)
        } else {
            (Schema::empty(), Schema::empty())
        };
        let handle = self.inner.prepared.insert(Prepared {
            sql: query.query,
            session,
            params: None,
        });
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_bytes(&dataset)?,
            parameter_schema: schema_bytes(&params)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.inner
            .prepared
            .take(&query.prepared_statement_handle)
            .map(|_| ())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        to_status(e)
    }
}
