//! The three roles of a Ballista cluster, set up for spectradb: a
//! scheduler and executors that know spectradb's codecs and functions, and
//! the client session a [`crate::Database`] plans in when it is opened on a
//! cluster.
//!
//! Scheduling is pull-based (executors ask the scheduler for work), so the
//! scheduler never dials an executor and only the executors' Flight ports
//! (shuffle data) must be reachable from other executors and the client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use ballista_scheduler::SessionBuilder;
use datafusion::common::Result as DfResult;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::codec::{set_output_cache_bytes, LogicalCodec, PhysicalCodec};
use crate::error::{Error, Result};
use crate::model::vector::vector_functions;
use crate::planner::PlannerOptions;
use crate::sql::functions::image_functions;

/// The scheduler's port when a URL names none (Ballista's).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// `df://host:port` (or `host:port`) as the `http://` URL Ballista's client
/// dials.
pub fn scheduler_url(text: &str) -> Result<String> {
    let rest = text
        .strip_prefix("df://")
        .or_else(|| (!text.contains("://")).then_some(text))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cluster '{text}': expected df://host:port, the scheduler's address"
            ))
        })?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::InvalidArgument(format!(
            "cluster '{text}': expected df://host:port, the scheduler's address"
        )));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => {
            let port: u16 = p.parse().map_err(|_| {
                Error::InvalidArgument(format!("cluster '{text}': '{p}' is not a port number"))
            })?;
            (h.to_string(), port)
        }
        _ => (rest.to_string(), DEFAULT_SCHEDULER_PORT),
    };
    Ok(format!("http://{host}:{port}"))
}

/// Settings every process of a cluster starts from: Ballista's, the
/// `spectradb.*` settings a client sends along, and spectradb's codecs.
fn cluster_config() -> SessionConfig {
    with_codecs(SessionConfig::new_with_ballista().with_option_extension(PlannerOptions::default()))
}

fn with_codecs(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
}

/// A scheduler's or executor's session: Ballista's, plus the image and
/// vector functions, which travel by name (model functions travel with
/// their plans).
fn cluster_session(config: SessionConfig) -> DfResult<SessionState> {
    let mut state = default_session_builder(config)?;
    for f in image_functions().into_iter().chain(vector_functions()) {
        state.register_udf(Arc::new(f))?;
    }
    Ok(state)
}

/// A client context that plans with `config` here and runs every query on
/// the cluster whose scheduler `url` names. Register optimizer rules,
/// functions and tables on it afterwards.
pub fn client_context(config: SessionConfig, url: &str) -> Result<SessionContext> {
    let url = scheduler_url(url)?;
    let config = with_codecs(config.upgrade_for_ballista());
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build()
        .upgrade_for_ballista(url)?;
    Ok(SessionContext::new_with_state(state))
}

fn cluster_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster(format!("{what}: {e}"))
}

/// How a scheduler treats its executors.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// An executor not heard from for this long is taken as lost, and its
    /// tasks run again elsewhere.
    pub executor_timeout_seconds: u64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            executor_timeout_seconds: 60,
        }
    }
}

/// Runs a scheduler on `listener` until the task is dropped or fails.
pub async fn run_scheduler(
    listener: tokio::net::TcpListener,
    options: SchedulerOptions,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| cluster_error("scheduler address", e))?;
    let builder: SessionBuilder = Arc::new(cluster_session);
    let producer: ConfigProducer = Arc::new(cluster_config);
    let mut config = SchedulerConfig::default()
        .with_hostname(addr.ip().to_string())
        .with_port(addr.port())
        .with_scheduler_policy(TaskSchedulingPolicy::PullStaged)
        .with_override_session_builder(builder)
        .with_override_config_producer(producer);
    config.executor_timeout_seconds = options.executor_timeout_seconds.max(1);
    config.expire_dead_executor_interval_seconds = (options.executor_timeout_seconds / 4).max(1);
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    config
        .validate()
        .map_err(|e| cluster_error("scheduler settings", e))?;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| cluster_error("scheduler state", e))?;
    let server = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(|e| cluster_error("starting the scheduler", e))?;
    start_grpc_service_with_listener(listener, server)
        .await
        .map_err(|e| cluster_error(&format!("scheduler on {addr}"), e))
}

/// Where an executor serves, which scheduler it works for, and how much.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's address.
    pub scheduler: SocketAddr,
    /// The address its Flight service (shuffle data) binds and is reached at.
    pub flight: SocketAddr,
    /// Tasks it runs at once (one core each).
    pub tasks: usize,
    /// Where shuffle files go.
    pub work_dir: PathBuf,
    /// How often it tells the scheduler it is alive.
    pub heartbeat_seconds: u64,
    /// Bytes of model outputs it keeps between tasks (its own cache).
    pub cache_bytes: u64,
}

/// Runs an executor until it is stopped (Ctrl-C, SIGTERM) or fails.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    set_output_cache_bytes(options.cache_bytes);
    let state =
        cluster_session(cluster_config()).map_err(|e| cluster_error("executor session", e))?;
    let registry = BallistaFunctionRegistry::from(&state);
    let runtime: Arc<RuntimeEnv> = state.runtime_env().clone();
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    let host = options.flight.ip().to_string();
    let config = ExecutorProcessConfig {
        bind_host: host.clone(),
        external_host: Some(host),
        port: options.flight.port(),
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: options.tasks.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: Some(options.work_dir.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: options.heartbeat_seconds.max(1),
        override_function_registry: Some(Arc::new(registry)),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_runtime_producer: Some(runtime_producer),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| cluster_error(&format!("executor on {}", options.flight), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses_become_the_url_the_client_dials() {
        assert_eq!(
            scheduler_url("df://127.0.0.1:50051").unwrap(),
            "http://127.0.0.1:50051"
        );
        assert_eq!(scheduler_url("df://sched").unwrap(), "http://sched:50050");
        assert_eq!(
            scheduler_url("localhost:7000/").unwrap(),
            "http://localhost:7000"
        );
        for bad in [
            "http://h:1",
            "df://",
            "df://h:port",
            "df://h:1/x",
            "s3://b/k",
        ] {
            let e = scheduler_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
