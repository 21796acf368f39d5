//! Stopping a query that is already running.
//!
//! Dropping a DataFusion stream stops its operators at their next `await`,
//! but a model function is a synchronous call inside one batch: it would
//! run all of that batch's images (thousands, for seconds) after nobody
//! wants them. So every statement's session carries a [`QueryCancel`] as
//! a config extension; DataFusion hands the session's options to each
//! scalar function call, and the model functions check the token between
//! their chunks of images.
//!
//! A token fires when [`QueryCancel::cancel`] is called (the Flight server
//! does when a client drops a result stream, stops reading or the server
//! shuts down) or when the database's interrupt flag is set (the shell's
//! Ctrl-C, [`crate::Database::interrupt_flag`]).

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::prelude::DataFrame;

use crate::error::{Error, Result};

/// The cancellation signal of one statement (clones share it).
#[derive(Debug, Clone)]
pub struct QueryCancel {
    cancelled: Arc<AtomicBool>,
    /// The database's interrupt flag.
    interrupt: Arc<AtomicBool>,
}

impl QueryCancel {
    /// A token that also fires when `interrupt` is set.
    pub(crate) fn new(interrupt: Arc<AtomicBool>) -> Self {
        QueryCancel {
            cancelled: Arc::new(AtomicBool::new(false)),
            interrupt,
        }
    }

    /// A fresh token for a new statement, fired by the same interrupt flag.
    pub(crate) fn fresh(&self) -> Self {
        Self::new(self.interrupt.clone())
    }

    /// Stops the query: its model functions fail with [`Error::Cancelled`]
    /// before their next chunk of images.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the query was cancelled or interrupted.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.interrupt.load(Ordering::Relaxed)
    }

    /// [`Error::Cancelled`] with `what` (called only then) once cancelled.
    pub fn check(&self, what: impl FnOnce() -> String) -> Result<()> {
        if self.is_cancelled() {
            return Err(Error::Cancelled(what()));
        }
        Ok(())
    }

    /// The token in a session's options, if it carries one.
    pub fn of_options(options: &ConfigOptions) -> Option<&QueryCancel> {
        options.extensions.get::<QueryCancel>()
    }

    /// The token of a query about to run in `task`.
    pub fn of_task(task: &TaskContext) -> Option<QueryCancel> {
        Self::of_options(task.session_config().options()).cloned()
    }

    /// The token of `df`'s statement (to cancel it from another task).
    pub fn of_frame(df: &DataFrame) -> Option<QueryCancel> {
        Self::of_task(&df.task_ctx())
    }

    /// `df` with a fresh token of its own, so that cancelling it stops this
    /// statement only (and running a frame again after a cancel works). A
    /// frame without a token is returned as it is.
    pub fn renew(df: DataFrame) -> DataFrame {
        let (mut state, plan) = df.into_parts();
        let options = state.config().options();
        if let Some(token) = Self::of_options(options).map(Self::fresh) {
            state.config_mut().options_mut().extensions.insert(token);
            // Scalar functions get the options captured here, not the
            // config's: capture them again with the new token.
            state.mark_start_execution();
        }
        DataFrame::new(state, plan)
    }
}

impl ConfigExtension for QueryCancel {
    const PREFIX: &'static str = "spectradb_query";
}

impl ExtensionOptions for QueryCancel {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    /// Shares the signal on purpose: DataFusion copies a session's options
    /// into each plan, and a cancel must reach every copy.
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> datafusion::common::Result<()> {
        Err(DataFusionError::Configuration(format!(
            "{}.{key}: not a setting (this namespace holds a query's cancellation signal)",
            Self::PREFIX
        )))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{SessionConfig, SessionContext};

    #[tokio::test]
    async fn a_renewed_frame_has_its_own_token_and_shares_the_interrupt() {
        let interrupt = Arc::new(AtomicBool::new(false));
        let config =
            SessionConfig::new().with_option_extension(QueryCancel::new(interrupt.clone()));
        let ctx = SessionContext::new_with_config(config);
        let a = QueryCancel::renew(ctx.sql("SELECT 1").await.unwrap());
        let b = QueryCancel::renew(ctx.sql("SELECT 2").await.unwrap());
        let (ta, tb) = (
            QueryCancel::of_frame(&a).unwrap(),
            QueryCancel::of_frame(&b).unwrap(),
        );
        ta.cancel();
        assert!(ta.is_cancelled() && !tb.is_cancelled());
        // The options scalar functions are handed carry the new token.
        let props = a.into_parts().0;
        let captured = props.execution_props().config_options().unwrap();
        assert!(QueryCancel::of_options(captured).unwrap().is_cancelled());
        let err = tb.check(|| "stopped".into());
        assert!(err.is_ok());
        interrupt.store(true, Ordering::Relaxed);
        let err = tb.check(|| "stopped".into()).unwrap_err();
        assert!(matches!(err, Error::Cancelled(m) if m == "stopped"));
        // It is no setting.
        let mut ctx_config = SessionConfig::new().with_option_extension(ta);
        assert!(ctx_config
            .options_mut()
            .set("spectradb_query.x", "1")
            .is_err());
    }
}
