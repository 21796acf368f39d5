//! `spectradb scheduler` and `spectradb executor`: the two server roles of
//! a Ballista cluster that runs spectradb's queries (`spectradb <db>
//! --cluster df://host:port` is the client).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use spectradb::distributed::cluster::{
    run_executor, run_scheduler, ExecutorOptions, SchedulerOptions,
};

#[derive(Args)]
pub struct SchedulerArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:50050")]
    addr: SocketAddr,
    /// Seconds without a word from an executor before its tasks run
    /// elsewhere.
    #[arg(long, default_value_t = 60)]
    executor_timeout: u64,
}

#[derive(Args)]
pub struct ExecutorArgs {
    /// The scheduler's address.
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: SocketAddr,
    /// Address of this executor's Flight service (shuffle data), reached by
    /// other executors and clients at the same address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Tasks run at once (one core each).
    #[arg(long, default_value_t = 1)]
    tasks: usize,
    /// Folder for shuffle files (default: a new temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seconds between the executor's heartbeats to the scheduler.
    #[arg(long, default_value_t = 10)]
    heartbeat: u64,
    /// MiB of model outputs kept between tasks (0: none).
    #[arg(long, default_value_t = 256)]
    cache_mib: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn scheduler(args: SchedulerArgs) -> Result<()> {
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read the address from this line.
        println!("spectradb scheduler listening on df://{addr}");
        let options = SchedulerOptions {
            executor_timeout_seconds: args.executor_timeout,
        };
        run_scheduler(listener, options).await?;
        Ok(())
    })
}

pub fn executor(args: ExecutorArgs) -> Result<()> {
    let temp;
    let work_dir = match args.work_dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new()
                .prefix("spectradb-executor-")
                .tempdir()
                .context("making a work folder")?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "spectradb executor on {} working for df://{}",
        args.addr, args.scheduler
    );
    runtime()?.block_on(run_executor(ExecutorOptions {
        scheduler: args.scheduler,
        flight: args.addr,
        tasks: args.tasks,
        work_dir,
        heartbeat_seconds: args.heartbeat,
        cache_bytes: args.cache_mib << 20,
    }))?;
    Ok(())
}
