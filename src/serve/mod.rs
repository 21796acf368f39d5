//! An Arrow Flight SQL server over a [`Database`] (`spectradb serve`), so
//! that any Flight SQL client (the ADBC driver from Python, pandas, polars,
//! JDBC) reaches the database over the network.
//!
//! - `service`: arrow-flight's `FlightSqlService`: statements, prepared
//!   statements, updates, metadata calls
//! - `clients`: one [`crate::db::Connection`] per client (its own `SET`)
//! - `query`: a query's results streamed batch by batch under the limits
//! - `handles`: planned queries and prepared statements between calls
//! - `metadata`: catalogs, schemas, tables, table types, server info
//! - `auth`: tokens, the Basic handshake, the interceptor
//! - `status`: spectradb errors as gRPC status codes
//!
//! Model inference is CPU-heavy: statements are planned and plans run on a
//! runtime of their own (one worker per core), apart from the runtime that
//! serves gRPC, so other clients' calls are answered while every core
//! infers; each result stream is fed from there through small channels.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::db::DataRoot;
use crate::error::{Error, Result};
use crate::Database;

mod auth;
mod clients;
mod handles;
mod metadata;
mod query;
mod service;
mod status;

pub use auth::{Auth, Tokens, MIN_TOKEN_LEN};
pub use query::ServeStats;
pub use status::to_status;

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl TlsFiles {
    /// Reads the certificate chain and key from PEM files.
    pub fn read(cert: &std::path::Path, key: &std::path::Path) -> Result<Self> {
        Ok(TlsFiles {
            cert_pem: std::fs::read(cert).map_err(|e| Error::io(cert, e))?,
            key_pem: std::fs::read(key).map_err(|e| Error::io(key, e))?,
        })
    }
}

/// How the server runs. [`ServeConfig::new`] gives the defaults.
#[derive(Clone)]
pub struct ServeConfig {
    pub auth: Auth,
    /// TLS when set; plain HTTP/2 otherwise.
    pub tls: Option<TlsFiles>,
    /// Statements read and write files only under this folder (default:
    /// the database directory's parent).
    pub data_root: Option<PathBuf>,
    /// Queries producing results at once; more wait (up to the idle
    /// timeout) for one to finish.
    pub max_concurrent_queries: usize,
    /// The largest gRPC message received or sent; result batches are split
    /// into messages of at most half of it.
    pub max_message_bytes: usize,
    /// Sessions, prepared statements and planned queries unused this long
    /// are dropped; a result stream the client does not read for this long
    /// is stopped.
    pub idle_timeout: Duration,
    /// The memory pool all queries share (sorts, joins, aggregations fail
    /// with `resource_exhausted` rather than take more).
    pub memory_limit_bytes: usize,
    /// On shutdown, how long running queries may go on before they are
    /// cancelled.
    pub shutdown_grace: Duration,
    /// Worker threads of the runtime statements and plans run on (the
    /// network is served by the caller's runtime).
    pub query_threads: usize,
    /// Counters the server keeps up to date.
    pub stats: Arc<ServeStats>,
}

impl ServeConfig {
    pub fn new(auth: Auth) -> Self {
        ServeConfig {
            auth,
            tls: None,
            data_root: None,
            max_concurrent_queries: 16,
            max_message_bytes: 16 << 20,
            idle_timeout: Duration::from_secs(300),
            memory_limit_bytes: 2 << 30,
            shutdown_grace: Duration::from_secs(10),
            query_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stats: Arc::default(),
        }
    }
}

/// Serves `db` on `listener` until `shutdown` completes, then stops
/// accepting calls, lets running queries go on for the grace period,
/// cancels the rest and returns once they have stopped.
///
/// Refuses [`Auth::Disabled`] unless the listener is on a loopback address.
pub async fn run(
    listener: TcpListener,
    db: Arc<Database>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::io("listener", e))?;
    if matches!(config.auth, Auth::Disabled) && !addr.ip().is_loopback() {
        return Err(Error::InvalidArgument(format!(
            "refusing to serve {addr} without authentication: --no-auth is allowed only on a loopback address (127.0.0.1 or ::1); give tokens with --token-file or SPECTRADB_TOKEN"
        )));
    }
    let data_root = match &config.data_root {
        Some(root) => DataRoot::new(root)?,
        None => DataRoot::new(db.path().parent().unwrap_or(db.path()))?,
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(config.memory_limit_bytes, 1.0)
        .build_arc()?;
    let cpu = query::CpuRuntime::new(config.query_threads)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = query::Limits {
        permits: Arc::new(Semaphore::new(config.max_concurrent_queries.max(1))),
        max_queries: config.max_concurrent_queries.max(1),
        idle_timeout: config.idle_timeout,
        max_flight_data: (config.max_message_bytes / 2).max(1024),
        stop: stop_rx,
        stats: config.stats.clone(),
        cpu: cpu.handle(),
    };
    let clients = clients::Clients::new(db, runtime, Some(data_root), config.idle_timeout);
    let service = service::Service::new(config.auth.clone(), clients, limits);
    let auth = service.auth().clone();
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let flight = InterceptedService::new(flight, move |r| auth.check(r));

    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(60)));
    if let Some(tls) = &config.tls {
        let identity = Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| Error::InvalidArgument(format!("bad TLS certificate or key: {e}")))?;
    }
    let grace = config.shutdown_grace;
    let signal = async move {
        shutdown.await;
        // Running queries get the grace period, then are cancelled.
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = stop_tx.send(true);
        });
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let served = builder
        .add_service(flight)
        .serve_with_incoming_shutdown(incoming, signal)
        .await
        .map_err(|e| Error::io(addr.to_string(), std::io::Error::other(e)));
    // Cancelled queries stop within a chunk of images; wait for that, but
    // not for ever.
    let stopping = std::time::Instant::now();
    while config.stats.running_queries() > 0 && stopping.elapsed() < STOP_WAIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(cpu);
    served
}

/// How long `run` waits at the end for cancelled queries to stop.
const STOP_WAIT: Duration = Duration::from_secs(10);
