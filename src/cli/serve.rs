//! `spectradb serve`: the Flight SQL server from the command line.
//! Tokens come from a file or the `SPECTRADB_TOKEN` variable, never from
//! the command line alone (other users of the machine can read that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use spectradb::serve::{Auth, ServeConfig, TlsFiles, Tokens};
use spectradb::Database;

/// The variable a token may come from.
pub const TOKEN_VAR: &str = "SPECTRADB_TOKEN";

#[derive(Args)]
pub struct ServeArgs {
    /// Database directory (created when missing).
    database: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// File of accepted tokens, one per line (else SPECTRADB_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Accept every client without a token (loopback addresses only).
    #[arg(long, conflicts_with = "token_file")]
    no_auth: bool,
    /// PEM certificate chain: serve TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Statements read and write files only under this folder (default:
    /// the database directory's parent).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Queries producing results at once; more wait for a free slot.
    #[arg(long, default_value_t = 16)]
    max_concurrent_queries: usize,
    /// Largest gRPC message in MiB.
    #[arg(long, default_value_t = 16)]
    max_message_mib: usize,
    /// Seconds before an unused session, prepared statement or unread
    /// result stream is dropped.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Memory all queries may hold together (sorts, joins, aggregations), in MiB.
    #[arg(long, default_value_t = 2048)]
    memory_limit_mib: usize,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let auth = if args.no_auth {
        if !args.addr.ip().is_loopback() {
            bail!(
                "--no-auth is allowed only on a loopback address (127.0.0.1 or ::1), not {}: give tokens with --token-file or {TOKEN_VAR}",
                args.addr
            );
        }
        Auth::Disabled
    } else if let Some(file) = &args.token_file {
        Auth::Tokens(Tokens::from_file(file)?)
    } else if let Ok(token) = std::env::var(TOKEN_VAR) {
        Auth::Tokens(Tokens::new([token]).with_context(|| format!("in {TOKEN_VAR}"))?)
    } else {
        bail!(
            "no tokens: give --token-file FILE or set {TOKEN_VAR} (or --no-auth on a loopback address)"
        );
    };
    let mut config = ServeConfig::new(auth);
    config.data_root = args.data_root.clone();
    config.max_concurrent_queries = args.max_concurrent_queries;
    config.max_message_bytes = args.max_message_mib << 20;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.memory_limit_bytes = args.memory_limit_mib << 20;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(TlsFiles::read(cert, key)?);
    }
    let db = Arc::new(Database::open(&args.database)?);
    for w in db.take_warnings() {
        eprintln!("warning: {w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let scheme = if config.tls.is_some() {
            "grpc+tls"
        } else {
            "grpc"
        };
        eprintln!(
            "spectradb: serving {} at {scheme}://{} (Ctrl-C to stop)",
            args.database.display(),
            listener.local_addr()?
        );
        spectradb::serve::run(listener, db, config, shutdown_signal()).await?;
        eprintln!("spectradb: stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
