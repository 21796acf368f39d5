//! One client of a shared [`Database`]: its own settings, its own limits.
//!
//! The database's session is shared by everyone who uses it (tables,
//! models and profiles are the database's). A [`Connection`] keeps what
//! belongs to one client apart: `SET` changes only that connection's
//! settings, queries plan with them, and a server can give it a bounded
//! memory pool and a [`DataRoot`] its statements are confined to.

use std::sync::{Arc, Mutex};

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use super::access::DataRoot;
use super::options::reset_planner_option;
use super::plain::{self, Effect};
use super::{calibrate, Database};
use crate::cancel::QueryCancel;
use crate::error::{Error, Result};
use crate::planner::PlannerOptions;
use crate::sql::statements::{parse_command, Command};

/// A client's view of a shared [`Database`] (see the module docs).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> spectradb::Result<()> {
/// use std::sync::Arc;
/// let db = Arc::new(spectradb::Database::in_memory()?);
/// let (a, b) = (db.connect(), db.connect());
/// a.sql("SET datafusion.execution.batch_size = 100").await?;
/// let shown = |c: &spectradb::db::Connection| c.config().batch_size();
/// assert_eq!((shown(&a), shown(&b)), (100, 8192));
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    db: Arc<Database>,
    /// This client's settings (`SET` changes them here only).
    config: Mutex<SessionConfig>,
    /// The memory pool (and spill folder) its queries run with.
    runtime: Option<Arc<RuntimeEnv>>,
    data_root: Option<DataRoot>,
}

impl Database {
    /// A connection with the database's current settings.
    pub fn connect(self: &Arc<Self>) -> Connection {
        Connection {
            db: self.clone(),
            config: Mutex::new(self.ctx.state().config().clone()),
            runtime: None,
            data_root: None,
        }
    }
}

impl Connection {
    /// Runs this connection's queries with `runtime` (its memory pool bounds
    /// what one query may hold in sorts, joins and aggregations).
    pub fn with_runtime(mut self, runtime: Arc<RuntimeEnv>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Refuses statements that name files outside `root`.
    pub fn with_data_root(mut self, root: DataRoot) -> Self {
        self.data_root = Some(root);
        self
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// This connection's settings.
    pub fn config(&self) -> SessionConfig {
        self.config.lock().expect("config lock").clone()
    }

    /// A DataFusion context over the database's tables and functions with
    /// this connection's settings: plan with it for anything beyond SQL.
    pub fn context(&self) -> SessionContext {
        // The catalogs are the database's: building the state must not make
        // (and so replace the shared) default catalog.
        let config = self.config().with_create_default_catalog_and_schema(false);
        let mut builder =
            SessionStateBuilder::new_from_existing(self.db.ctx.state()).with_config(config);
        if let Some(runtime) = &self.runtime {
            builder = builder.with_runtime_env(runtime.clone());
        }
        SessionContext::new_with_state(builder.build())
    }

    /// Runs one statement like [`Database::sql`]; `SET` and `RESET` change
    /// this connection's settings only. The frame carries its own
    /// [`QueryCancel`] ([`QueryCancel::of_frame`]).
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        if let Some(root) = &self.data_root {
            root.check_statement(sql)?;
        }
        self.db.clear_interrupt();
        self.statement(sql).await.map(QueryCancel::renew)
    }

    async fn statement(&self, sql: &str) -> Result<DataFrame> {
        let db = &self.db;
        let catalog = db.refresh_async().await?;
        db.restore_definitions(&catalog).await;
        match parse_command(sql)? {
            Some(Command::ResetOption { name }) => {
                self.reset_option(&name)?;
                Ok(db.results.read_empty()?)
            }
            Some(_) => db.dispatch(sql, &catalog).await,
            None => {
                // `CREATE TABLE .. AS` may make an image table, in memory too.
                let in_memory = db.is_in_memory() && super::ctas::parse(sql).is_none();
                let reads_only = in_memory || plain::classify(sql) == Effect::None;
                if !reads_only || calibrate::is_explain_analyze(sql) {
                    // Writes take the database's path (one transaction each).
                    return db.dispatch(sql, &catalog).await;
                }
                let ctx = self.context();
                let before = cache_size_of(ctx.state().config());
                let df = ctx.sql(sql).await?;
                // Keeps what a SET changed. The cache is the database's: only
                // a statement that changed this connection's size resizes it
                // (a resize empties it), not every query of a connection
                // whose size differs from another's.
                let config = ctx.state().config().clone();
                if let Some(opts) = config.options().extensions.get::<PlannerOptions>() {
                    if Some(&opts.cache_size) != before.as_ref() {
                        db.apply_cache_size_of(opts)?;
                    }
                }
                *self.config.lock().expect("config lock") = config;
                Ok(df)
            }
        }
    }

    fn reset_option(&self, name: &str) -> Result<()> {
        let mut config = self.config.lock().expect("config lock");
        let opts = config
            .options_mut()
            .extensions
            .get_mut::<PlannerOptions>()
            .ok_or_else(|| Error::Internal("planner options missing".into()))?;
        reset_planner_option(opts, name)?;
        let opts = opts.clone();
        drop(config);
        self.db.apply_cache_size_of(&opts)
    }
}

/// A session's `spectradb.cache_size` as set (unparsed).
fn cache_size_of(config: &SessionConfig) -> Option<String> {
    config
        .options()
        .extensions
        .get::<PlannerOptions>()
        .map(|o| o.cache_size.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    fn target(config: &SessionConfig) -> Option<f64> {
        config
            .options()
            .extensions
            .get::<PlannerOptions>()
            .unwrap()
            .accuracy_target
    }

    #[tokio::test]
    async fn set_and_reset_stay_inside_one_connection() {
        let db = Arc::new(Database::in_memory().unwrap());
        let (a, b) = (db.connect(), db.connect());
        a.sql("SET spectradb.accuracy_target = 0.5").await.unwrap();
        assert_eq!(target(&a.config()), Some(0.5));
        assert_ne!(target(&b.config()), Some(0.5));
        // The shared session did not change either.
        assert_ne!(target(db.session().state().config()), Some(0.5));
        // Queries plan with the connection's settings.
        a.sql("SET datafusion.execution.batch_size = 123")
            .await
            .unwrap();
        let shown = a
            .sql("SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(shown[0].column(0).as_string::<i32>().value(0), "123");
        a.sql("RESET spectradb.accuracy_target").await.unwrap();
        assert_eq!(target(&a.config()), target(&b.config()));
        // The cache is the database's: a connection's size applies to it,
        // and a size that does not parse changes nothing.
        a.sql("SET spectradb.cache_size = '1MiB'").await.unwrap();
        assert_eq!(db.cache().capacity(), 1 << 20);
        assert!(a.sql("SET spectradb.cache_size = 'lots'").await.is_err());
        assert_eq!(db.cache().capacity(), 1 << 20);
        // A statement on the database itself, or another connection's
        // query, leaves that size (and what the cache holds) alone.
        db.sql("SELECT 1").await.unwrap();
        assert_eq!(db.cache().capacity(), 1 << 20);
        b.sql("SELECT 1").await.unwrap();
        assert_eq!(db.cache().capacity(), 1 << 20);
        a.sql("RESET spectradb.cache_size").await.unwrap();
        assert_eq!(
            db.cache().capacity(),
            crate::reuse::cache::DEFAULT_CACHE_BYTES
        );
    }

    #[tokio::test]
    async fn a_connection_sees_tables_others_create() {
        let db = Arc::new(Database::in_memory().unwrap());
        let (a, b) = (db.connect(), db.connect());
        a.sql("CREATE TABLE notes AS SELECT 1 AS n").await.unwrap();
        let rows = b
            .sql("SELECT n FROM notes")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows[0].num_rows(), 1);
    }

    #[tokio::test]
    async fn a_data_root_refuses_paths_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::in_memory().unwrap());
        let c = db
            .connect()
            .with_data_root(DataRoot::new(dir.path()).unwrap());
        let err = c
            .sql("CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PermissionDenied(_)), "{err}");
        assert!(err.to_string().contains("/etc/passwd"), "{err}");
    }
}
