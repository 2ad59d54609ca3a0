//! SDK errors → the function's error (SPEC §7), keeping service, operation and AWS code; the
//! codes are classified by the error table in `outcome` (one list per code family).

use crate::outcome::{AwsError, Error, ErrorKind};
pub use crate::outcome::{classify, codes, is_retriable, is_throttle};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Maps an SDK error to the function's error, keeping the service, operation and AWS code.
pub fn map_sdk_error<E, R>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    let (kind, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status();
            let code = e.code().unwrap_or("UnknownError").to_string();
            let message = e.message().unwrap_or("").to_string();
            (classify(&code, Some(status)), code, message)
        }
        SdkError::TimeoutError(_) => (
            ErrorKind::Timeout,
            "Timeout".to_string(),
            "the request timed out".to_string(),
        ),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "connect timeout"
            } else if d.is_io() {
                "connection failed or was reset"
            } else if d.is_user() {
                "invalid request"
            } else {
                "dispatch failure"
            };
            let kind = if d.is_user() {
                ErrorKind::AwsClientError
            } else {
                ErrorKind::Timeout
            };
            (kind, "DispatchFailure".to_string(), what.to_string())
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status();
            let kind = if status >= 500 || status == 0 {
                ErrorKind::ServiceError
            } else {
                classify("", Some(status))
            };
            (
                kind,
                format!("HTTP{status}"),
                "unparseable response".to_string(),
            )
        }
        _ => (
            ErrorKind::AwsClientError,
            "ConstructionFailure".to_string(),
            "the request could not be built".to_string(),
        ),
    };
    Error::Aws(AwsError {
        kind,
        service,
        operation,
        code,
        message,
    })
}

/// The HTTP status of a raw response, abstracted so that `map_sdk_error` works for every
/// operation's response type.
pub trait HttpStatus {
    fn status(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}
