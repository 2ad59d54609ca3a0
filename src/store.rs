//! The seam to AWS: a small `SecretStore` trait (Secrets Manager plus KMS key resolution, one
//! region and one set of credentials) and its SDK implementation. The SDK's types and error
//! shapes stay in this file; the pipeline sees `SecretValue`, `Error` and plain structs.

use crate::config::Role;
use crate::credentials::{AssumedRoles, RoleProvider};
use crate::outcome::{AwsError, Error, ErrorKind};
use crate::secret::SecretValue;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The stage that marks a secret's current version.
pub const AWSCURRENT: &str = "AWSCURRENT";

/// The source's current version, as read at processing time.
#[derive(Debug, Clone)]
pub struct CurrentValue {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub value: SecretValue,
}

/// DescribeSecret, reduced to what the pipeline decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    pub arn: String,
    pub name: String,
    pub kms_key_id: Option<String>,
    /// Scheduled for deletion.
    pub deleted: bool,
    /// When a secret scheduled for deletion will be deleted.
    pub deletion_date: Option<std::time::SystemTime>,
    pub description: Option<String>,
    /// Every version id the secret has.
    pub version_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// The version that holds AWSCURRENT.
    pub current_version: Option<String>,
    /// Set when another AWS service manages the secret (RDS, ...).
    pub owning_service: Option<String>,
    /// Set on a native (Secrets Manager) replica.
    pub primary_region: Option<String>,
}

impl Description {
    /// The value of one tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One entry of ListSecrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub arn: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub deleted: bool,
}

/// A new secret: value, token, key, description and tags in one CreateSecret.
#[derive(Debug)]
pub struct NewSecret<'a> {
    pub name: &'a str,
    pub value: &'a SecretValue,
    pub token: &'a str,
    pub kms_key_id: Option<&'a str>,
    pub description: &'a str,
    pub tags: &'a [(String, String)],
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub arn: String,
    pub version_id: String,
    /// The stages the written version carries after the write.
    pub stages: Vec<String>,
}

/// Secrets Manager and KMS in one region, with one set of credentials.
pub trait SecretStore: Send + Sync {
    /// GetSecretValue with `VersionStage=AWSCURRENT`.
    fn current_value(&self, id: &str) -> impl Future<Output = Result<CurrentValue, Error>> + Send;
    /// DescribeSecret; `None` when there is no such secret.
    fn describe(&self, id: &str)
    -> impl Future<Output = Result<Option<Description>, Error>> + Send;
    /// CreateSecret.
    fn create(&self, new: &NewSecret<'_>) -> impl Future<Output = Result<Written, Error>> + Send;
    /// PutSecretValue with a client request token.
    fn put(
        &self,
        id: &str,
        value: &SecretValue,
        token: &str,
    ) -> impl Future<Output = Result<Written, Error>> + Send;
    /// UpdateSecretVersionStage: move AWSCURRENT to `to`.
    fn make_current(
        &self,
        id: &str,
        to: &str,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// TagResource.
    fn tag(
        &self,
        id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// UpdateSecret with only a KMS key: re-encrypts with the new key.
    fn set_kms_key(&self, id: &str, key: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// RestoreSecret.
    fn restore(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// DeleteSecret with a recovery window (never a forced delete).
    fn delete(&self, id: &str, window_days: i64) -> impl Future<Output = Result<(), Error>> + Send;
    /// UntagResource.
    fn untag(&self, id: &str, keys: &[String]) -> impl Future<Output = Result<(), Error>> + Send;
    /// UpdateSecret with only a description.
    fn set_description(
        &self,
        id: &str,
        description: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// ListSecrets, every page (secrets scheduled for deletion excluded).
    fn list(&self) -> impl Future<Output = Result<Vec<Listed>, Error>> + Send;
    /// kms:DescribeKey, resolved to the key ARN (cached).
    fn key_arn(&self, key_id: &str) -> impl Future<Output = Result<String, Error>> + Send;
}

/// Where stores come from: the function's own credentials, or a destination role.
pub trait Stores: Send + Sync {
    type Store: SecretStore + Clone + 'static;
    /// A store with the function's own credentials (`None` = the default region).
    fn own(&self, region: Option<&str>) -> Self::Store;
    /// AWS call attempts answered with throttling since the last call (which resets the count),
    /// for the `ThrottledAttempts` metric.
    fn take_throttled(&self) -> u64 {
        0
    }
    /// A store in a destination account and region. Assumes the role if needed.
    fn destination(
        &self,
        region: &str,
        role: Option<&Role>,
    ) -> impl Future<Output = Result<Self::Store, Error>> + Send;
}

/// Error kind from an AWS error code and HTTP status (SPEC §7). Context-dependent kinds
/// (SourceNotFound, DestinationConflict) are decided by the pipeline.
pub fn classify(code: &str, status: Option<u16>) -> ErrorKind {
    match code {
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "IncompleteSignature" => ErrorKind::AccessDenied,
        "ThrottlingException"
        | "Throttling"
        | "LimitExceededException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled" => ErrorKind::Throttled,
        "EncryptionFailure"
        | "DecryptionFailure"
        | "DisabledException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSAccessDeniedException"
        | "KeyUnavailableException"
        | "InvalidKeyUsageException"
        | "KMSInternalException" => ErrorKind::KmsUnavailable,
        "InternalServiceError"
        | "InternalFailure"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => ErrorKind::ServiceError,
        "RequestTimeout" | "RequestTimeoutException" => ErrorKind::Timeout,
        _ if status.is_some_and(|s| s >= 500) => ErrorKind::ServiceError,
        _ => ErrorKind::AwsClientError,
    }
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

/// Secrets Manager's LimitExceededException means a quota (for example too many versions), not
/// a burst: retrying within the invocation cannot help, so the SDK must not retry it.
#[derive(Debug, Default)]
pub struct NoRetryOnLimitExceeded;

impl ClassifyRetry for NoRetryOnLimitExceeded {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        // The SDK runs the classifiers on every response, successes included (twice: once more
        // to decide whether to drop the connection), so look at nothing but error statuses.
        let Some(resp) = ctx.response().filter(|r| r.status().as_u16() == 400) else {
            return RetryAction::NoActionIndicated;
        };
        let header = resp
            .headers()
            .get("x-amzn-errortype")
            .is_some_and(|h| h.starts_with("LimitExceededException"));
        if header
            || resp
                .body()
                .bytes()
                .is_some_and(|b| contains(b, b"LimitExceededException"))
        {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "NoRetryOnLimitExceeded"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The SDK implementation of `SecretStore`.
#[derive(Clone, Debug)]
pub struct AwsStore {
    sm: aws_sdk_secretsmanager::Client,
    kms: aws_sdk_kms::Client,
    /// Set for destination roles: an ExpiredToken refreshes the session once and retries.
    role: Option<(Arc<AssumedRoles>, Role)>,
    keys: Arc<Mutex<HashMap<String, String>>>,
}

impl AwsStore {
    /// Runs one call; on ExpiredToken with assumed credentials, refreshes them once and retries.
    async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, Error>> + Send,
        T: Send,
    {
        match f().await {
            Err(e) if is_expired(&e) => match &self.role {
                Some((roles, role)) => {
                    tracing::info!(role = %role.arn, "assumed-role session expired; refreshing once");
                    roles.invalidate(role).await;
                    f().await
                }
                None => Err(e),
            },
            other => other,
        }
    }
}

fn is_expired(e: &Error) -> bool {
    e.is_aws("ExpiredTokenException") || e.is_aws("ExpiredToken")
}

const SM: &str = "secretsmanager";

fn value_of(string: Option<&str>, binary: Option<&Blob>) -> Option<SecretValue> {
    match (string, binary) {
        (Some(s), _) => Some(SecretValue::String(s.to_string())),
        (None, Some(b)) => Some(SecretValue::Binary(b.as_ref().to_vec())),
        (None, None) => None,
    }
}

fn tags_of(tags: &[(String, String)]) -> Result<Vec<Tag>, Error> {
    Ok(tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect())
}

impl SecretStore for AwsStore {
    async fn current_value(&self, id: &str) -> Result<CurrentValue, Error> {
        let out = self
            .call(|| async {
                self.sm
                    .get_secret_value()
                    .secret_id(id)
                    .version_stage(AWSCURRENT)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(SM, "GetSecretValue", e))
            })
            .await?;
        let value = value_of(out.secret_string(), out.secret_binary()).ok_or_else(|| {
            Error::Aws(AwsError {
                kind: ErrorKind::AwsClientError,
                service: SM,
                operation: "GetSecretValue",
                code: "NoValue".into(),
                message: format!("{id} has neither SecretString nor SecretBinary"),
            })
        })?;
        Ok(CurrentValue {
            arn: out.arn().unwrap_or(id).to_string(),
            name: out.name().unwrap_or(id).to_string(),
            version_id: out.version_id().unwrap_or_default().to_string(),
            value,
        })
    }

    async fn describe(&self, id: &str) -> Result<Option<Description>, Error> {
        let res = self
            .call(|| async {
                self.sm
                    .describe_secret()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(SM, "DescribeSecret", e))
            })
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) if e.is_aws("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(e),
        };
        let current_version = out.version_ids_to_stages().and_then(|m| {
            m.iter()
                .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT))
                .map(|(v, _)| v.clone())
        });
        Ok(Some(Description {
            arn: out.arn().unwrap_or(id).to_string(),
            name: out.name().unwrap_or(id).to_string(),
            kms_key_id: out.kms_key_id().map(str::to_string),
            deleted: out.deleted_date().is_some(),
            deletion_date: out
                .deleted_date()
                .and_then(|d| std::time::SystemTime::try_from(*d).ok()),
            description: out.description().map(str::to_string),
            version_ids: out
                .version_ids_to_stages()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            tags: out
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect(),
            current_version,
            owning_service: out.owning_service().map(str::to_string),
            primary_region: out.primary_region().map(str::to_string),
        }))
    }

    async fn create(&self, new: &NewSecret<'_>) -> Result<Written, Error> {
        let tags = tags_of(new.tags)?;
        let out = self
            .call(|| async {
                let req = self
                    .sm
                    .create_secret()
                    .name(new.name)
                    .client_request_token(new.token)
                    .set_kms_key_id(new.kms_key_id.map(str::to_string))
                    .description(new.description)
                    .set_tags(Some(tags.clone()));
                let req = match new.value {
                    SecretValue::String(s) => req.secret_string(s),
                    SecretValue::Binary(b) => req.secret_binary(Blob::new(b.clone())),
                };
                req.send()
                    .await
                    .map_err(|e| map_sdk_error(SM, "CreateSecret", e))
            })
            .await?;
        Ok(Written {
            arn: out.arn().unwrap_or(new.name).to_string(),
            version_id: out.version_id().unwrap_or(new.token).to_string(),
            stages: vec![AWSCURRENT.to_string()],
        })
    }

    async fn put(&self, id: &str, value: &SecretValue, token: &str) -> Result<Written, Error> {
        let out = self
            .call(|| async {
                let req = self
                    .sm
                    .put_secret_value()
                    .secret_id(id)
                    .client_request_token(token);
                let req = match value {
                    SecretValue::String(s) => req.secret_string(s),
                    SecretValue::Binary(b) => req.secret_binary(Blob::new(b.clone())),
                };
                req.send()
                    .await
                    .map_err(|e| map_sdk_error(SM, "PutSecretValue", e))
            })
            .await?;
        Ok(Written {
            arn: out.arn().unwrap_or(id).to_string(),
            version_id: out.version_id().unwrap_or(token).to_string(),
            stages: out.version_stages().to_vec(),
        })
    }

    async fn make_current(&self, id: &str, to: &str, from: Option<&str>) -> Result<(), Error> {
        self.call(|| async {
            self.sm
                .update_secret_version_stage()
                .secret_id(id)
                .version_stage(AWSCURRENT)
                .move_to_version_id(to)
                .set_remove_from_version_id(from.map(str::to_string))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "UpdateSecretVersionStage", e))
        })
        .await
    }

    async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), Error> {
        let tags = tags_of(tags)?;
        self.call(|| async {
            self.sm
                .tag_resource()
                .secret_id(id)
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "TagResource", e))
        })
        .await
    }

    async fn set_kms_key(&self, id: &str, key: &str) -> Result<(), Error> {
        self.call(|| async {
            self.sm
                .update_secret()
                .secret_id(id)
                .kms_key_id(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "UpdateSecret", e))
        })
        .await
    }

    async fn restore(&self, id: &str) -> Result<(), Error> {
        self.call(|| async {
            self.sm
                .restore_secret()
                .secret_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "RestoreSecret", e))
        })
        .await
    }

    async fn delete(&self, id: &str, window_days: i64) -> Result<(), Error> {
        self.call(|| async {
            self.sm
                .delete_secret()
                .secret_id(id)
                .recovery_window_in_days(window_days)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "DeleteSecret", e))
        })
        .await
    }

    async fn untag(&self, id: &str, keys: &[String]) -> Result<(), Error> {
        self.call(|| async {
            self.sm
                .untag_resource()
                .secret_id(id)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "UntagResource", e))
        })
        .await
    }

    async fn set_description(&self, id: &str, description: &str) -> Result<(), Error> {
        self.call(|| async {
            self.sm
                .update_secret()
                .secret_id(id)
                .description(description)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(SM, "UpdateSecret", e))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Listed>, Error> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .call(|| async {
                    self.sm
                        .list_secrets()
                        .max_results(100)
                        .set_next_token(next.clone())
                        .send()
                        .await
                        .map_err(|e| map_sdk_error(SM, "ListSecrets", e))
                })
                .await?;
            for s in page.secret_list() {
                let (Some(arn), Some(name)) = (s.arn(), s.name()) else {
                    continue;
                };
                out.push(Listed {
                    arn: arn.to_string(),
                    name: name.to_string(),
                    tags: s
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                        })
                        .collect(),
                    deleted: s.deleted_date().is_some(),
                });
            }
            next = page
                .next_token()
                .map(str::to_string)
                .filter(|t| !t.is_empty());
            if next.is_none() {
                return Ok(out);
            }
        }
    }

    async fn key_arn(&self, key_id: &str) -> Result<String, Error> {
        if let Some(arn) = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
        {
            return Ok(arn.clone());
        }
        let out = self
            .call(|| async {
                self.kms
                    .describe_key()
                    .key_id(key_id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("kms", "DescribeKey", e))
            })
            .await
            .map_err(|e| match e {
                // A configured key that does not exist is a dependency failure of the write.
                Error::Aws(mut a) if a.is("NotFoundException") => {
                    a.kind = ErrorKind::KmsUnavailable;
                    Error::Aws(a)
                }
                other => other,
            })?;
        let arn = out
            .key_metadata()
            .map(|m| m.arn().unwrap_or(m.key_id()).to_string())
            .unwrap_or_else(|| key_id.to_string());
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id.to_string(), arn.clone());
        Ok(arn)
    }
}

/// The function's AWS configuration: the standard region, credential and endpoint chains, with
/// explicit timeouts and a bounded retry policy so that one slow region cannot eat an
/// invocation's deadline. Retriable errors (throttling, 5xx, timeouts, resets) are retried with
/// exponential backoff and jitter: at most 3 attempts, each at most 5 s, 20 s in all.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

/// The loader behind `sdk_config`, for callers (tests) that add an endpoint or credentials.
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use std::time::Duration;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(2)),
        )
}

/// (region, role): one set of clients each.
type ClientKey = (Option<String>, Option<Role>);

/// SDK clients per (region, role), built once per container and reused.
#[derive(Debug)]
pub struct AwsStores {
    base: aws_config::SdkConfig,
    roles: Arc<AssumedRoles>,
    clients: Mutex<HashMap<ClientKey, AwsStore>>,
    /// Shared by every client's interceptor.
    throttles: crate::metrics::ThrottleCounter,
}

impl AwsStores {
    /// `base` carries the region chain, credentials, endpoint, timeouts and retry policy.
    pub fn new(base: aws_config::SdkConfig, function_name: &str) -> Self {
        let throttles = crate::metrics::ThrottleCounter::default();
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&base)
                .interceptor(throttles.clone())
                .build(),
        );
        AwsStores {
            roles: Arc::new(AssumedRoles::new(sts, function_name)),
            base,
            clients: Mutex::new(HashMap::new()),
            throttles,
        }
    }

    fn store(&self, region: Option<&str>, role: Option<&Role>) -> AwsStore {
        let key = (region.map(str::to_string), role.cloned());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = clients.get(&key) {
            return s.clone();
        }
        let mut sm = aws_sdk_secretsmanager::config::Builder::from(&self.base)
            .retry_classifier(NoRetryOnLimitExceeded)
            .interceptor(self.throttles.clone());
        let mut kms =
            aws_sdk_kms::config::Builder::from(&self.base).interceptor(self.throttles.clone());
        if let Some(r) = region {
            sm = sm.region(aws_config::Region::new(r.to_string()));
            kms = kms.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(role) = role {
            let provider = RoleProvider {
                roles: self.roles.clone(),
                role: role.clone(),
            };
            // The shared cache in `AssumedRoles` is the one cache; the SDK's own per-client
            // cache would assume the role once per region.
            sm = sm
                .credentials_provider(provider.clone())
                .identity_cache(aws_config::identity::IdentityCache::no_cache());
            kms = kms
                .credentials_provider(provider)
                .identity_cache(aws_config::identity::IdentityCache::no_cache());
        }
        let store = AwsStore {
            sm: aws_sdk_secretsmanager::Client::from_conf(sm.build()),
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            role: role.map(|r| (self.roles.clone(), r.clone())),
            keys: Arc::default(),
        };
        clients.insert(key, store.clone());
        store
    }
}

impl Stores for AwsStores {
    type Store = AwsStore;

    fn own(&self, region: Option<&str>) -> AwsStore {
        self.store(region, None)
    }

    fn take_throttled(&self) -> u64 {
        self.throttles.take()
    }

    async fn destination(&self, region: &str, role: Option<&Role>) -> Result<AwsStore, Error> {
        if let Some(role) = role {
            // Assume up front, so that an STS failure is reported as what it is (AccessDenied,
            // Throttled...) rather than as an opaque credentials error inside a later call.
            self.roles.get(role).await?;
        }
        Ok(self.store(Some(region), role))
    }
}

#[cfg(test)]
mod tests;
