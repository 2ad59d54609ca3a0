//! The seam between the pipeline and AWS: the values the pipeline decides on, and narrow traits
//! per capability (read, write values, manage metadata and lifecycle, resolve keys). No SDK type
//! crosses it: `aws/` implements the traits with the SDK, `store/memory.rs` in memory.

use crate::config::Role;
use crate::outcome::Error;
use crate::secret::SecretValue;
use std::future::Future;
use std::time::SystemTime;

/// The stage that marks a secret's current version.
pub const AWSCURRENT: &str = "AWSCURRENT";

/// The source's current version, as read at processing time.
#[derive(Debug, Clone)]
pub struct CurrentValue {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub value: SecretValue,
    /// When this version was created (`CreatedDate`), for the replication lag.
    pub created: Option<SystemTime>,
}

/// One version read by its id (GetSecretValue with `VersionId`).
#[derive(Debug, Clone)]
pub struct VersionRead {
    pub value: CurrentValue,
    /// Whether the version holds AWSCURRENT (its `VersionStages`).
    pub current: bool,
}

/// DescribeSecret, reduced to what the pipeline decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    pub arn: String,
    pub name: String,
    /// As AWS answers it: a key id, a key ARN or an alias ARN; absent for the AWS managed key.
    pub kms_key_id: Option<String>,
    /// Scheduled for deletion.
    pub deleted: bool,
    /// DescribeSecret's `DeletedDate` (documented as the date the deletion is scheduled for).
    pub deletion_date: Option<SystemTime>,
    pub description: Option<String>,
    /// The versions that carry a staging label (AWS lists no others).
    pub version_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// The version that holds AWSCURRENT.
    pub current_version: Option<String>,
    /// Set when another AWS service manages the secret (RDS, ...).
    pub owning_service: Option<String>,
    /// "The Region the secret is in" for a primary, the primary's region for a native replica.
    /// AWS may return it on every secret.
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

    /// A native (Secrets Manager) replica: `PrimaryRegion` present and different from the region
    /// of the secret's own ARN (SPEC §12). Its presence alone says nothing: AWS shows it on
    /// primaries too.
    pub fn is_native_replica(&self) -> bool {
        let own = crate::arn::region(&self.arn);
        self.primary_region
            .as_deref()
            .is_some_and(|p| own.is_some_and(|own| own != p))
    }
}

/// One entry of ListSecrets: everything `all` compares by (SPEC §6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub arn: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    /// Scheduled for deletion (a listing's `DeletedDate` says when the deletion *occurred*, not
    /// when it is due: never derive a window from it, SPEC §12).
    pub deleted: bool,
    /// As ListSecrets answers it: a key ARN; absent for the AWS managed key.
    pub kms_key_id: Option<String>,
    pub description: Option<String>,
    /// The version holding AWSCURRENT.
    pub current_version: Option<String>,
    pub primary_region: Option<String>,
    pub owning_service: Option<String>,
}

impl Listed {
    /// The value of one tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A native replica (see [`Description::is_native_replica`]).
    pub fn is_native_replica(&self) -> bool {
        let own = crate::arn::region(&self.arn);
        self.primary_region
            .as_deref()
            .is_some_and(|p| own.is_some_and(|own| own != p))
    }
}

/// Which secrets a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter<'a> {
    /// `IncludePlannedDeletion`: secrets scheduled for deletion too.
    pub include_deleted: bool,
    /// Only secrets carrying this tag key (the `tag-key` filter).
    pub tag_key: Option<&'a str>,
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

/// The result of a value write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version_id: String,
    /// The stages the written version carries after the write. Without AWSCURRENT, the token's
    /// version already existed and the write was ignored (SPEC §8).
    pub stages: Vec<String>,
}

impl Written {
    /// Whether the written version is the current one.
    pub fn is_current(&self) -> bool {
        self.stages.iter().any(|s| s == AWSCURRENT)
    }
}

/// A configured KMS key as kms:DescribeKey answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `arn:aws:kms:REGION:ACCOUNT:key/KEY-ID`.
    pub arn: String,
    /// The bare key id.
    pub key_id: String,
}

/// Reading secrets: values, descriptions, listings.
pub trait ReadSecrets: Send + Sync {
    /// GetSecretValue with `VersionStage=AWSCURRENT`.
    fn current_value(&self, id: &str) -> impl Future<Output = Result<CurrentValue, Error>> + Send;
    /// GetSecretValue with `VersionId`: that version's value and whether it is current;
    /// `None` when AWS finds no such version (or secret).
    fn version(
        &self,
        id: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<VersionRead>, Error>> + Send;
    /// DescribeSecret; `None` when there is no such secret.
    fn describe(&self, id: &str)
    -> impl Future<Output = Result<Option<Description>, Error>> + Send;
    /// ListSecrets, every page, 100 secrets a page.
    fn list(
        &self,
        filter: ListFilter<'_>,
    ) -> impl Future<Output = Result<Vec<Listed>, Error>> + Send;
}

/// Writing values. Each call is one attempt: the pipeline paces and retries writes itself.
pub trait WriteSecrets: Send + Sync {
    /// CreateSecret.
    fn create(&self, new: &NewSecret<'_>) -> impl Future<Output = Result<Written, Error>> + Send;
    /// PutSecretValue with a client request token.
    fn put(
        &self,
        id: &str,
        value: &SecretValue,
        token: &str,
    ) -> impl Future<Output = Result<Written, Error>> + Send;
    /// UpdateSecretVersionStage: move AWSCURRENT to `to` from `from` (where it is now).
    fn make_current(
        &self,
        id: &str,
        to: &str,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Metadata and lifecycle: tags, key, description, deletion. Each call is one attempt.
pub trait ManageSecrets: Send + Sync {
    /// TagResource.
    fn tag(
        &self,
        id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// UntagResource.
    fn untag(&self, id: &str, keys: &[String]) -> impl Future<Output = Result<(), Error>> + Send;
    /// UpdateSecret with only a KMS key (never a value).
    fn set_kms_key(&self, id: &str, key: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// UpdateSecret with only a description (never a value).
    fn set_description(
        &self,
        id: &str,
        description: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// RestoreSecret.
    fn restore(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// DeleteSecret with a recovery window (never a forced delete).
    fn delete(&self, id: &str, window_days: i64) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Resolving configured KMS keys.
pub trait ResolveKeys: Send + Sync {
    /// kms:DescribeKey of a configured key (cached): its ARN and key id. Never called on a
    /// destination's current key (least privilege grants DescribeKey on configured keys only).
    fn key(&self, key_id: &str) -> impl Future<Output = Result<KeyInfo, Error>> + Send;
}

/// Everything one region with one set of credentials offers.
pub trait SecretStore: ReadSecrets + WriteSecrets + ManageSecrets + ResolveKeys {}

impl<T: ReadSecrets + WriteSecrets + ManageSecrets + ResolveKeys> SecretStore for T {}

/// How failed writes are retried: like the SDK retries reads (attempts, exponential backoff
/// with jitter), but by the pipeline, so that every attempt takes a slot of the write budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(2),
        }
    }
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
    /// How writes are retried (the same policy the clients use for reads).
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    /// Invokes a Lambda function asynchronously (`InvocationType=Event`) with this payload: how
    /// an `all` run continues itself.
    fn invoke_async(
        &self,
        function: &str,
        payload: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// A store in a destination account and region. Assumes the role if needed.
    fn destination(
        &self,
        region: &str,
        role: Option<&Role>,
    ) -> impl Future<Output = Result<Self::Store, Error>> + Send;
}

#[cfg(any(test, feature = "test-util"))]
pub mod memory;
