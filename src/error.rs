//! The one error type of the library.
//!
//! Variants follow DataFusion's split between bad user input, bad data on
//! disk, I/O and bugs, and always say *where* (file path, column) so that a
//! user can act on the message without a backtrace.

use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in spectradb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A source image (JPEG, PNG, WebP, ...) could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    ImageDecode { path: String, reason: String },

    /// A source image is larger than the configured limit (decompression bomb guard).
    #[error("{path}: image is {width}x{height} pixels, over the limit of {limit} pixels")]
    ImageTooLarge {
        path: String,
        width: u64,
        height: u64,
        limit: u64,
    },

    /// A table file or a band inside it is not what the format promises.
    #[error("{path}: corrupt image table file: {reason}")]
    CorruptFile { path: String, reason: String },

    /// An image table whose files could not be opened when the database
    /// loaded it: statements that read it fail with this, the rest of the
    /// database works (`CHECK TABLE` reports every file).
    #[error("table '{table}' is damaged: {reason} (CHECK TABLE {table} reports each file)")]
    DamagedTable { table: String, reason: String },

    /// Another process is the database's writer.
    #[error("{path}: database is locked by {holder}")]
    Locked { path: String, holder: String },

    /// The caller asked for something that cannot be done (bad option, bad scale, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A request to an object store failed (the object's URL and why).
    #[error("{url}: {reason}")]
    Store { url: String, reason: String },

    /// An error from the Parquet library on a named file.
    #[error("{}: parquet: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// An error from Arrow while assembling batches.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    /// A statement spectradb parses itself is malformed (position included).
    #[error("SQL error: {0}")]
    Sql(String),

    /// An error from the SQL engine (planning, execution, parsing).
    #[error("{0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),

    /// ONNX Runtime is missing or cannot be loaded (the message says how to install it).
    #[error("{0}")]
    Runtime(String),

    /// A model cannot be loaded, does not fit its options, or failed to run.
    #[error("{0}")]
    Model(String),

    /// A Ballista scheduler or executor could not start or be reached.
    #[error("cluster: {0}")]
    Cluster(String),

    /// A SQL function failed on its input (the function's name, then what
    /// went wrong, kept typed).
    #[error("{name}: {source}")]
    Function {
        name: String,
        #[source]
        source: Box<Error>,
    },

    /// A statement named a file outside what this connection may touch
    /// (the data root of a server).
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// The user interrupted a long statement; nothing was committed.
    #[error("{0}")]
    Cancelled(String),

    /// A bug in spectradb: please report it.
    #[error("internal error (this is a bug in spectradb): {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Wraps a Parquet error with the path it happened on.
    pub fn parquet(path: impl AsRef<Path>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A corrupt-file error for `path`.
    pub fn corrupt(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::CorruptFile {
            path: path.as_ref().display().to_string(),
            reason: reason.into(),
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        ours(e).unwrap_or_else(|e| Error::DataFusion(Box::new(e)))
    }
}

/// Our own error if `e` carries one (functions and scans hand them to
/// DataFusion as `External`, which may wrap them on the way back), else `e`.
fn ours(
    e: datafusion::error::DataFusionError,
) -> std::result::Result<Error, datafusion::error::DataFusionError> {
    use datafusion::error::DataFusionError as D;
    match e {
        D::External(inner) => inner.downcast::<Error>().map(|b| *b).map_err(D::External),
        D::Context(what, inner) => ours(*inner).map_err(|i| D::Context(what, Box::new(i))),
        D::Diagnostic(d, inner) => ours(*inner).map_err(|i| D::Diagnostic(d, Box::new(i))),
        D::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(inner) => ours(inner),
            Err(shared) => Err(D::Shared(shared)),
        },
        D::ArrowError(arrow, context) => match *arrow {
            arrow_schema::ArrowError::ExternalError(inner) => {
                inner.downcast::<Error>().map(|b| *b).map_err(|i| {
                    D::ArrowError(
                        Box::new(arrow_schema::ArrowError::ExternalError(i)),
                        context,
                    )
                })
            }
            other => Err(D::ArrowError(Box::new(other), context)),
        },
        other => Err(other),
    }
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;

    #[test]
    fn our_errors_come_back_typed_through_datafusion_wrappers() {
        let wrapped = DataFusionError::Context(
            "while running".into(),
            Box::new(DataFusionError::Shared(std::sync::Arc::new(
                Error::InvalidArgument("scale 9".into()).into(),
            ))),
        );
        assert!(matches!(Error::from(wrapped), Error::InvalidArgument(m) if m == "scale 9"));
        let plain = DataFusionError::Plan("no such column".into());
        assert!(matches!(Error::from(plain), Error::DataFusion(_)));
    }
}
