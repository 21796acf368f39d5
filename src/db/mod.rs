//! The embedded database: a database directory plus a DataFusion session
//! that sees every image table, the image functions and spectradb's own
//! statements.
//!
//! - `session`: keeps the session in step with the published catalog
//! - `dispatch`: one statement -> ours or DataFusion's
//! - `write`: statements that change the database, each one commit
//! - `plain`: ordinary tables, views and external tables kept on disk
//! - `views`: materialized views: lineage, status, incremental refresh
//! - `access`: [`DataRoot`], where a connection's statements may touch files
//! - `ctas`: `CREATE TABLE .. AS` of image values makes an image table
//! - `calibrate`: CALIBRATE, SHOW FORMATS, EXPLAIN ANALYZE with model timings
//! - `check`: CHECK TABLE / CHECK DATABASE: every file read and verified
//! - `system_tables`: the tables SHOW statements and system tables return
//! - `options`: `WITH (...)` and `RESET` option parsing
//! - [`BlockingDatabase`]: the same database for callers without a runtime
//! - [`Connection`]: one client of a shared database (its own settings,
//!   memory pool and [`DataRoot`]), as the server gives each client
//!
//! Every statement starts by comparing the published catalog version with
//! the one the session was built from and re-registers what changed, so a
//! statement plans against one consistent catalog version. Data files are
//! immutable and a superseded file stays until no snapshot can need it
//! (see [`crate::storage::commit`]), so a table provider holding a version's
//! file list is a snapshot.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use crate::cancel::QueryCancel;
use crate::error::{Error, Result};
use crate::model::vector::vector_functions;
use crate::planner::calibrate::CalibrationProgress;
use crate::planner::rule::FormatPlanner;
use crate::planner::PlannerOptions;
use crate::read_format::profile::Profile;
use crate::reuse::cache::ModelCache;
use crate::reuse::Reuse;
use crate::sql::functions::image_functions;
use crate::sql::image_scan::ScanStats;
use crate::storage::catalog::{Catalog, DatabaseDir};

mod access;
mod blocking;
mod calibrate;
mod check;
mod connection;
mod ctas;
mod dispatch;
mod options;
mod plain;
mod session;
mod system_tables;
mod views;
mod write;

pub use access::DataRoot;
pub use blocking::BlockingDatabase;
pub use check::{check_report, CheckScope, FileCheck, CHECK_OK};
pub use connection::Connection;
pub use write::{IngestMode, IngestProgress, VacuumReport};

/// Name of the system table listing the files ingests skipped.
pub const INGEST_ERRORS_TABLE: &str = "spectradb_ingest_errors";
/// Name of the system table of the output cache's counters.
pub const CACHE_TABLE: &str = "spectradb_cache";

/// An open spectradb database.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> spectradb::Result<()> {
/// use spectradb::Database;
/// let db = Database::in_memory()?;
/// db.sql("CREATE IMAGE TABLE photos FROM 'tests/data/photos/dev' WITH (on_error = 'skip')").await?;
/// let batches = db.sql("SELECT count(*) AS n FROM photos").await?.collect().await?;
/// assert_eq!(batches[0].num_rows(), 1);
/// # Ok(())
/// # }
/// ```
pub struct Database {
    ctx: SessionContext,
    /// Where statements' own results (summaries, reports, SHOW) are read
    /// from: rows this process already has, never sent to a cluster.
    results: SessionContext,
    dir: DatabaseDir,
    /// Holds the directory of an in-memory database until it is dropped.
    temp: Option<tempfile::TempDir>,
    registered: Mutex<session::Registered>,
    stats: Arc<ScanStats>,
    progress: Mutex<Option<Arc<dyn IngestProgress>>>,
    /// Definitions that could not be restored, not yet reported.
    warnings: Mutex<Vec<String>>,
    /// Messages for the user that are not results (e.g. a chart's path).
    notices: Mutex<Vec<String>>,
    /// The catalog's profiles, as the format planner sees them.
    profiles: Arc<RwLock<Vec<Profile>>>,
    /// The output cache and the materialized views the planner may read.
    reuse: Arc<Reuse>,
    calibration_progress: Mutex<Option<Arc<dyn CalibrationProgress>>>,
    /// Set to stop the running statements (Ctrl-C in the shell).
    interrupt: Arc<AtomicBool>,
    /// Whether queries run on a cluster (`open_on_cluster`).
    #[cfg_attr(not(feature = "distributed"), allow(dead_code))]
    on_cluster: bool,
}

impl Database {
    /// Opens (creating when missing) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_dir(DatabaseDir::open(path)?, None, None)
    }

    /// Opens the database in directory `path` and runs its queries on the
    /// Ballista cluster whose scheduler `url` names (`df://host:port`).
    /// Statements that change the database still commit here; the
    /// scheduler and executors must see the directory at the same path
    /// (models are read from it), tables' data files there or on object
    /// storage.
    #[cfg(feature = "distributed")]
    pub fn open_on_cluster(path: impl AsRef<Path>, url: &str) -> Result<Self> {
        Self::with_dir(DatabaseDir::open(path)?, None, Some(url))
    }

    /// A database that lives in a temporary directory, removed on drop.
    pub fn in_memory() -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("spectradb-mem-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Self::with_dir(DatabaseDir::open(temp.path())?, Some(temp), None)
    }

    /// The database of `dir`, planning here, or as the client of the
    /// cluster whose scheduler `cluster` names.
    fn with_dir(
        dir: DatabaseDir,
        temp: Option<tempfile::TempDir>,
        cluster: Option<&str>,
    ) -> Result<Self> {
        let interrupt = Arc::new(AtomicBool::new(false));
        // Every session made from this one (connections, statements) carries
        // a token the interrupt flag fires; each statement gets its own.
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_option_extension(PlannerOptions::default())
            .with_option_extension(QueryCancel::new(interrupt.clone()));
        // On a cluster, statements' own results are read from a local
        // context; here the session itself is local.
        let (ctx, results) = match cluster {
            None => {
                let ctx = SessionContext::new_with_config(config);
                (ctx.clone(), ctx)
            }
            #[cfg(feature = "distributed")]
            Some(url) => (
                crate::distributed::cluster::client_context(config.clone(), url)?,
                SessionContext::new_with_config(config),
            ),
            #[cfg(not(feature = "distributed"))]
            Some(url) => {
                return Err(Error::InvalidArgument(format!(
                    "cluster {url}: this spectradb was built without the `distributed` feature"
                )))
            }
        };
        let profiles = Arc::new(RwLock::new(Vec::new()));
        let reuse = Arc::new(Reuse::default());
        ctx.add_optimizer_rule(Arc::new(FormatPlanner::new(
            profiles.clone(),
            reuse.clone(),
        )));
        for f in image_functions().into_iter().chain(vector_functions()) {
            ctx.register_udf(f);
        }
        let db = Database {
            ctx,
            results,
            dir,
            temp,
            registered: Mutex::new(session::Registered::default()),
            stats: Arc::new(ScanStats::default()),
            progress: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            notices: Mutex::new(Vec::new()),
            profiles,
            reuse,
            calibration_progress: Mutex::new(None),
            interrupt,
            on_cluster: cluster.is_some(),
        };
        db.ctx.register_table(
            CACHE_TABLE,
            Arc::new(system_tables::CacheTable::new(db.reuse.cache.clone())),
        )?;
        db.refresh()?;
        Ok(db)
    }

    /// The database directory (a temporary one for in-memory databases).
    pub fn path(&self) -> &Path {
        self.dir.root()
    }

    /// True for a database made by [`Database::in_memory`].
    pub fn is_in_memory(&self) -> bool {
        self.temp.is_some()
    }

    /// The DataFusion session, for anything spectradb does not wrap.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Counters of what image scans have read so far.
    pub fn scan_stats(&self) -> &ScanStats {
        &self.stats
    }

    /// The published catalog.
    pub fn catalog(&self) -> Result<Catalog> {
        self.dir.read_catalog()
    }

    /// Runs one SQL statement. Queries are lazy (collect the DataFrame);
    /// statements that change the database run here and return a summary.
    /// The frame carries its own [`QueryCancel`] ([`QueryCancel::of_frame`]).
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.clear_interrupt();
        let catalog = self.refresh_async().await?;
        self.restore_definitions(&catalog).await;
        let result = self.dispatch(sql, &catalog).await;
        let first = sql.split_whitespace().next().unwrap_or("");
        let sets = first.eq_ignore_ascii_case("set") || first.eq_ignore_ascii_case("reset");
        if result.is_ok() && sets {
            // `SET spectradb.cache_size` takes effect for the next query
            // (only a SET: a connection may have sized the cache since).
            self.apply_cache_size()?;
        }
        result.map(QueryCancel::renew)
    }

    /// The cache of model outputs this database keeps between queries.
    pub fn cache(&self) -> &Arc<ModelCache> {
        &self.reuse.cache
    }

    /// Views or external tables of the catalog that could not be restored
    /// (for example a view over a dropped table), each with the reason.
    /// Reported once.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings lock"))
    }

    /// Messages from the last statements that are not part of their result
    /// (for example where SHOW FORMATS wrote its chart). Reported once.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().expect("notices lock"))
    }

    fn warn(&self, message: String) {
        self.warnings.lock().expect("warnings lock").push(message);
    }

    fn notice(&self, message: String) {
        self.notices.lock().expect("notices lock").push(message);
    }
}

/// Runs blocking work (file I/O, decoding, model loading) on the runtime's
/// blocking pool, so that it never stalls the async workers other queries
/// run on.
async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Error::Cancelled(format!("the statement was cancelled: {e}")),
        })?
}
