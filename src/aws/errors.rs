//! AWS errors → the function's error (SPEC §7): the one list of codes per family, the
//! classification, and the mapping of SDK errors that keeps service, operation and AWS code.

use crate::outcome::{AwsError, Error, ErrorKind};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The AWS error codes the function tells apart, one list per family (SPEC §7). Everything
/// that classifies, counts or paces by error code uses these lists.
pub mod codes {
    /// "Slow down": retried with backoff; a write answered with one of these halves the
    /// write rate to its destination (SPEC §2) and counts in `ThrottledAttempts`.
    pub const THROTTLE: &[&str] = &[
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
    ];
    /// A quota (too many versions, ...), not a burst: Throttled, but never retried within
    /// the invocation.
    pub const QUOTA: &[&str] = &["LimitExceededException"];
    /// The caller may not do this.
    pub const ACCESS: &[&str] = &[
        "AccessDeniedException",
        "AccessDenied",
        "NotAuthorized",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    ];
    /// Assumed-role credentials that ran out: refreshed once, then retried.
    pub const EXPIRED: &[&str] = &["ExpiredTokenException", "ExpiredToken"];
    /// The KMS key cannot be used.
    pub const KMS: &[&str] = &[
        "EncryptionFailure",
        "DecryptionFailure",
        "DisabledException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSAccessDeniedException",
        "KeyUnavailableException",
        "InvalidKeyUsageException",
        "KMSInternalException",
    ];
    /// The service failed: retried whatever HTTP status it comes with.
    pub const SERVICE: &[&str] = &[
        "InternalServiceError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    ];
    /// The request timed out on the service side.
    pub const TIMEOUT: &[&str] = &["RequestTimeout", "RequestTimeoutException"];
}

/// Error kind from an AWS error code and HTTP status (SPEC §7). Context-dependent kinds
/// (SourceNotFound, DestinationConflict) are decided by the pipeline.
pub fn classify(code: &str, status: Option<u16>) -> ErrorKind {
    let is = |list: &[&str]| list.contains(&code);
    if is(codes::ACCESS) || is(codes::EXPIRED) {
        ErrorKind::AccessDenied
    } else if is(codes::THROTTLE) || is(codes::QUOTA) {
        ErrorKind::Throttled
    } else if is(codes::KMS) {
        ErrorKind::KmsUnavailable
    } else if is(codes::SERVICE) {
        ErrorKind::ServiceError
    } else if is(codes::TIMEOUT) {
        ErrorKind::Timeout
    } else if status.is_some_and(|s| s >= 500) {
        ErrorKind::ServiceError
    } else {
        ErrorKind::AwsClientError
    }
}

/// Whether the error is AWS saying "slow down" (not a quota).
pub fn is_throttle(e: &Error) -> bool {
    e.aws()
        .is_some_and(|a| codes::THROTTLE.contains(&a.code.as_str()))
}

/// Whether a failed call may be tried again within the invocation: throttling, service errors
/// and timeouts, but never a quota (LimitExceededException).
pub fn is_retriable(e: &Error) -> bool {
    e.retry_class() == crate::outcome::RetryClass::Retriable
        && !e
            .aws()
            .is_some_and(|a| codes::QUOTA.contains(&a.code.as_str()))
}

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
