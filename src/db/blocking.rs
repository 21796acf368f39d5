//! [`Database`] for callers without an async runtime.

use std::path::Path;

use arrow::array::RecordBatch;

use super::Database;
use crate::error::{Error, Result};

/// [`Database`] for callers without an async runtime: runs each call to
/// completion on its own runtime and returns record batches.
///
/// It cannot be used from inside an async runtime (a thread cannot block
/// on one runtime while driving another): there, use [`Database`].
pub struct BlockingDatabase {
    db: Database,
    /// Always `Some` until drop.
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingDatabase {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::wrap(Database::open(path)?)
    }

    pub fn in_memory() -> Result<Self> {
        Self::wrap(Database::in_memory()?)
    }

    fn wrap(db: Database) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start a runtime: {e}")))?;
        Ok(BlockingDatabase {
            db,
            runtime: Some(runtime),
        })
    }

    /// Runs one statement and collects its result.
    pub fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidArgument(
                "BlockingDatabase::sql was called from inside an async runtime, where it \
                 cannot block: use spectradb::Database and `.await` its calls there"
                    .into(),
            ));
        }
        self.runtime().block_on(async {
            let df = self.db.sql(sql).await?;
            Ok(df.collect().await?)
        })
    }

    /// The async database inside.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The runtime calls run on (to drive a DataFrame from [`Self::database`]).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for BlockingDatabase {
    fn drop(&mut self) {
        // Dropping a runtime inside another one panics; shut it down
        // without waiting there instead.
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inside_a_runtime_it_says_to_use_database_instead_of_panicking() {
        let db = BlockingDatabase::in_memory().unwrap();
        let err = db.sql("SELECT 1").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("spectradb::Database"), "{err}");
        // Dropping it here must not panic either.
        drop(db);
    }

    #[test]
    fn outside_a_runtime_it_runs_statements() {
        let db = BlockingDatabase::in_memory().unwrap();
        let batches = db.sql("SELECT 40 + 2 AS n").unwrap();
        let n = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 42);
    }
}
