//! The one error type and the error table (SPEC §7), which exists once, here:
//! `ErrorKind::status_code`, `ErrorKind::retry_class`, and which AWS codes map to which kind
//! (`codes`, `classify`).

use serde::Serialize;

/// Every kind of failure the function reports (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorKind {
    InvalidEvent,
    InvalidConfig,
    AwsClientError,
    AccessDenied,
    SourceNotFound,
    DestinationConflict,
    TooLarge,
    TransformFailed,
    KmsUnavailable,
    Throttled,
    ServiceError,
    Timeout,
    /// An `all` chain that reached its link cap with work left (SPEC §6).
    BackfillIncomplete,
}

/// Whether retrying later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryClass {
    Permanent,
    Retriable,
}

impl ErrorKind {
    /// The HTTP-style status code of the error table.
    pub fn status_code(self) -> u16 {
        match self {
            ErrorKind::InvalidEvent | ErrorKind::InvalidConfig | ErrorKind::AwsClientError => 400,
            ErrorKind::AccessDenied => 403,
            ErrorKind::SourceNotFound => 404,
            ErrorKind::DestinationConflict => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::TransformFailed => 422,
            ErrorKind::KmsUnavailable => 424,
            ErrorKind::Throttled => 429,
            ErrorKind::ServiceError => 502,
            ErrorKind::BackfillIncomplete => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// Throttling, 5xx and network failures are retriable; everything else is permanent.
    pub fn retry_class(self) -> RetryClass {
        match self {
            ErrorKind::Throttled
            | ErrorKind::ServiceError
            | ErrorKind::Timeout
            | ErrorKind::BackfillIncomplete => RetryClass::Retriable,
            _ => RetryClass::Permanent,
        }
    }

    /// Every kind, in the order of the error table.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::InvalidEvent,
        ErrorKind::InvalidConfig,
        ErrorKind::AwsClientError,
        ErrorKind::AccessDenied,
        ErrorKind::SourceNotFound,
        ErrorKind::DestinationConflict,
        ErrorKind::TooLarge,
        ErrorKind::TransformFailed,
        ErrorKind::KmsUnavailable,
        ErrorKind::Throttled,
        ErrorKind::ServiceError,
        ErrorKind::Timeout,
        ErrorKind::BackfillIncomplete,
    ];

    /// The kind of a stable name ([`ErrorKind::as_str`]), e.g. from a `resume` cursor.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The stable name (Lambda's `errorType`, the metric dimension).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidEvent => "InvalidEvent",
            ErrorKind::InvalidConfig => "InvalidConfig",
            ErrorKind::AwsClientError => "AwsClientError",
            ErrorKind::AccessDenied => "AccessDenied",
            ErrorKind::SourceNotFound => "SourceNotFound",
            ErrorKind::DestinationConflict => "DestinationConflict",
            ErrorKind::TooLarge => "TooLarge",
            ErrorKind::TransformFailed => "TransformFailed",
            ErrorKind::KmsUnavailable => "KmsUnavailable",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::ServiceError => "ServiceError",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::BackfillIncomplete => "BackfillIncomplete",
        }
    }
}

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
    e.retry_class() == RetryClass::Retriable
        && !e
            .aws()
            .is_some_and(|a| codes::QUOTA.contains(&a.code.as_str()))
}

/// A failed AWS call, with what AWS said about it. Messages come from AWS and name resources,
/// never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub kind: ErrorKind,
    /// `secretsmanager`, `sts` or `kms`.
    pub service: &'static str,
    /// The API operation, e.g. `PutSecretValue`.
    pub operation: &'static str,
    /// The AWS error code (`ResourceNotFoundException`), or a transport description.
    pub code: String,
    pub message: String,
}

impl AwsError {
    /// True when AWS answered with this error code.
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// The one error type of the function. Never carries a secret value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{} {}: {}: {}", .0.service, .0.operation, .0.code, .0.message)]
    Aws(AwsError),
    #[error("source secret not found: {0}")]
    SourceNotFound(String),
    #[error("{0}")]
    DestinationConflict(String),
    #[error("transformed value is {0} bytes, over the limit of 65536")]
    TooLarge(usize),
    #[error("{0}")]
    TransformFailed(String),
    /// Secrets Manager contradicted itself (eventual consistency, SPEC §12): a write reported
    /// done that a read does not show yet, or a create refused as existing that a describe does
    /// not find. Retried after a short backoff; when it persists, retriable (502).
    #[error("{0}")]
    Inconsistent(String),
    /// The `all` chain reached its link cap with work left.
    #[error("{0}")]
    BackfillIncomplete(String),
    /// The last link of an `all` chain with `failOnError`, when only earlier links failed: of
    /// the kind of the chain's first failure (SPEC §6), so `errorType` names what failed.
    #[error("{count} destination(s) failed in earlier links of this backfill (the first: {})", .kind.as_str())]
    EarlierLinks { kind: ErrorKind, count: u64 },
}

impl Error {
    /// The kind of the error table.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidEvent(_) => ErrorKind::InvalidEvent,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::Aws(e) => e.kind,
            Error::SourceNotFound(_) => ErrorKind::SourceNotFound,
            Error::DestinationConflict(_) => ErrorKind::DestinationConflict,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            Error::TransformFailed(_) => ErrorKind::TransformFailed,
            Error::Inconsistent(_) => ErrorKind::ServiceError,
            Error::BackfillIncomplete(_) => ErrorKind::BackfillIncomplete,
            Error::EarlierLinks { kind, .. } => *kind,
        }
    }

    /// Shorthand for `kind().status_code()`.
    pub fn status_code(&self) -> u16 {
        self.kind().status_code()
    }

    /// Shorthand for `kind().retry_class()`.
    pub fn retry_class(&self) -> RetryClass {
        self.kind().retry_class()
    }

    /// The AWS error, if this came from an AWS call.
    pub fn aws(&self) -> Option<&AwsError> {
        match self {
            Error::Aws(e) => Some(e),
            _ => None,
        }
    }

    /// True when AWS answered with this error code.
    pub fn is_aws(&self, code: &str) -> bool {
        self.aws().is_some_and(|e| e.is(code))
    }

    /// The `error` object of the result document.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            kind: self.kind(),
            message: self.to_string(),
            code: self.aws().map(|e| e.code.clone()),
        }
    }
}

/// `error: {kind, message[, code]}` in the result document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
    /// The AWS error code, when AWS produced the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_found_by_its_name() {
        let names: std::collections::BTreeSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(ErrorKind::from_name("NoSuchKind"), None);
    }

    #[test]
    fn a_failure_of_earlier_links_keeps_their_kind() {
        let e = Error::EarlierLinks {
            kind: ErrorKind::DestinationConflict,
            count: 3,
        };
        assert_eq!(e.kind(), ErrorKind::DestinationConflict);
        assert_eq!(e.status_code(), 409);
        assert_eq!(
            e.to_string(),
            "3 destination(s) failed in earlier links of this backfill (the first: DestinationConflict)"
        );
    }
}
