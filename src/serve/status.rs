//! spectradb errors as gRPC statuses: the code says who has to act (the
//! client for bad SQL, the operator for a missing runtime, us for a bug),
//! the message says what to do.

use datafusion::error::DataFusionError;
use tonic::{Code, Status};

use crate::error::Error;

/// The status a client receives for `e`.
pub fn to_status(e: Error) -> Status {
    let code = code(&e);
    Status::new(code, e.to_string())
}

fn code(e: &Error) -> Code {
    match e {
        Error::InvalidArgument(_)
        | Error::Sql(_)
        | Error::ImageDecode { .. }
        | Error::ImageTooLarge { .. }
        | Error::Model(_)
        | Error::Arrow(_) => Code::InvalidArgument,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => Code::NotFound,
            std::io::ErrorKind::PermissionDenied => Code::PermissionDenied,
            _ => Code::Unavailable,
        },
        Error::CorruptFile { .. } | Error::Parquet { .. } | Error::DamagedTable { .. } => {
            Code::DataLoss
        }
        Error::Store { reason, .. } if reason.starts_with("access denied") => {
            Code::PermissionDenied
        }
        e @ Error::Store { .. } if crate::storage::remote::is_not_found(e) => Code::NotFound,
        Error::Locked { .. } | Error::Store { .. } | Error::Cluster(_) => Code::Unavailable,
        Error::Runtime(_) => Code::FailedPrecondition,
        Error::Cancelled(_) => Code::Cancelled,
        Error::Function { source, .. } => code(source),
        Error::DataFusion(e) => datafusion_code(e),
        Error::Internal(_) => Code::Internal,
    }
}

fn datafusion_code(e: &DataFusionError) -> Code {
    use DataFusionError as D;
    match e.find_root() {
        D::Plan(_)
        | D::SQL(..)
        | D::SchemaError(..)
        | D::Execution(_)
        | D::ArrowError(..)
        | D::Configuration(_)
        | D::Substrait(_) => Code::InvalidArgument,
        D::NotImplemented(_) => Code::Unimplemented,
        D::ResourcesExhausted(_) => Code::ResourceExhausted,
        D::IoError(io) if io.kind() == std::io::ErrorKind::NotFound => Code::NotFound,
        D::IoError(_) | D::ObjectStore(_) => Code::Unavailable,
        D::ExecutionJoin(_) => Code::Cancelled,
        D::Internal(_) => Code::Internal,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_mistakes_are_invalid_argument_and_bugs_internal() {
        let plan: Error = DataFusionError::Plan("no column x".into()).into();
        assert_eq!(to_status(plan).code(), Code::InvalidArgument);
        let wrapped: Error = DataFusionError::Context(
            "planning".into(),
            Box::new(DataFusionError::ResourcesExhausted("pool".into())),
        )
        .into();
        assert_eq!(to_status(wrapped).code(), Code::ResourceExhausted);
        let store = |reason: &str| Error::Store {
            url: "s3://b/k".into(),
            reason: reason.into(),
        };
        assert_eq!(to_status(store("no such object")).code(), Code::NotFound);
        let refused = store("access denied (SignatureDoesNotMatch: ..): check the credentials");
        assert_eq!(to_status(refused).code(), Code::PermissionDenied);
        assert_eq!(
            to_status(store("connection refused")).code(),
            Code::Unavailable
        );
        let denied = to_status(Error::PermissionDenied("'/etc' is outside".into()));
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(denied.message().contains("/etc"), "{}", denied.message());
        let missing = Error::io("a.onnx", std::io::ErrorKind::NotFound.into());
        assert_eq!(to_status(missing).code(), Code::NotFound);
        let function = Error::Function {
            name: "to_png".into(),
            source: Box::new(Error::InvalidArgument("scale 9".into())),
        };
        assert_eq!(to_status(function).code(), Code::InvalidArgument);
        assert_eq!(
            to_status(Error::Internal("x".into())).code(),
            Code::Internal
        );
    }
}
