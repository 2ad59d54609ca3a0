//! An in-memory Secrets Manager and KMS that keeps the rules of the API reference (SPEC §12)
//! rather than an emulator's: `PrimaryRegion` on every secret, only labelled versions listed,
//! AWSPREVIOUS following AWSCURRENT, a repeated token ignored (same value) or refused (another
//! value), writes to a secret scheduled for deletion refused, DescribeKey allowed on configured
//! keys only. It can be told to fail any call with any AWS code, to answer a read from an earlier
//! state (eventual consistency), and to run a hook right after a write or before a label move.
//!
//! Available to the crate's own tests and, with the `test-util` feature, to integration tests and
//! benches.

use crate::config::Role;
use crate::outcome::{AwsError, Error, classify};
use crate::secret::SecretValue;
use crate::store::{AWSCURRENT, CurrentValue, Description, KeyInfo, Stores};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// The stage that follows AWSCURRENT.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// One version of a secret.
#[derive(Debug, Clone)]
pub struct Version {
    pub id: String,
    pub value: SecretValue,
    pub stages: Vec<String>,
    /// The secret's KMS key when this version was written (AWS keeps every version decryptable
    /// by the key it was written with, SPEC §8).
    pub written_key: Option<String>,
    pub created: SystemTime,
}

/// One secret.
#[derive(Debug, Clone, Default)]
pub struct Secret {
    pub arn: String,
    pub versions: Vec<Version>,
    pub tags: Vec<(String, String)>,
    /// The key as the caller gave it; None = the AWS managed key.
    pub kms: Option<String>,
    pub description: Option<String>,
    /// Scheduled for deletion.
    pub deleted: bool,
    /// When a scheduled deletion happens.
    pub deletion_date: Option<SystemTime>,
    /// The primary's region when this is a native replica.
    pub replica_of: Option<String>,
    pub owning_service: Option<String>,
}

impl Secret {
    /// The version holding AWSCURRENT.
    pub fn current(&self) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == AWSCURRENT))
    }

    /// A new version that becomes current; the previous current becomes AWSPREVIOUS and the
    /// version that was AWSPREVIOUS loses its label (deprecated).
    pub fn add(&mut self, id: &str, value: SecretValue) {
        for v in &mut self.versions {
            v.stages.retain(|s| s != AWSPREVIOUS);
            if v.stages.iter().any(|s| s == AWSCURRENT) {
                v.stages.retain(|s| s != AWSCURRENT);
                v.stages.push(AWSPREVIOUS.into());
            }
        }
        self.versions.push(Version {
            id: id.into(),
            value,
            stages: vec![AWSCURRENT.into()],
            written_key: self.kms.clone(),
            created: SystemTime::now(),
        });
    }

    fn region(&self) -> &str {
        crate::arn::region(&self.arn).unwrap_or_default()
    }

    pub(crate) fn description(&self, name: &str) -> Description {
        Description {
            arn: self.arn.clone(),
            name: name.to_string(),
            kms_key_id: self.kms.clone(),
            deleted: self.deleted,
            deletion_date: self.deletion_date,
            description: self.description.clone(),
            version_ids: self
                .versions
                .iter()
                .filter(|v| !v.stages.is_empty())
                .map(|v| v.id.clone())
                .collect(),
            tags: self.tags.clone(),
            current_version: self.current().map(|v| v.id.clone()),
            owning_service: self.owning_service.clone(),
            primary_region: Some(
                self.replica_of
                    .clone()
                    .unwrap_or_else(|| self.region().to_string()),
            ),
        }
    }
}

/// (account, region, name).
pub type Key = (String, String, String);

/// A KMS key the memory knows.
#[derive(Debug, Clone)]
pub struct MemoryKey {
    pub info: KeyInfo,
    pub aliases: Vec<String>,
    /// Whether the caller may describe it (least privilege: configured keys only).
    pub describable: bool,
}

/// A read answered from an earlier state, `times` more times.
#[derive(Debug, Clone)]
pub enum Stale {
    /// DescribeSecret answers this description (None: not found).
    Describe(Option<Description>),
    /// GetSecretValue answers this value.
    Value(CurrentValue),
    /// GetSecretValue by `VersionId` answers this (None: not found).
    Version(Option<crate::store::VersionRead>),
}

/// The key under which stale answers to GetSecretValue by `VersionId` are kept (apart from
/// those by stage).
pub(crate) const BY_VERSION: &str = "GetSecretValue(VersionId)";

/// A hook run with the whole world.
pub type Hook = Box<dyn FnOnce(&mut World) + Send>;

/// Everything the memory holds.
#[derive(Default)]
pub struct World {
    pub secrets: BTreeMap<Key, Secret>,
    /// `"Operation id"`, in order.
    pub calls: Vec<String>,
    /// (operation, name substring, error code, remaining count)
    pub faults: Vec<(String, String, String, usize)>,
    /// (account, region) → keys.
    pub keys: BTreeMap<(String, String), Vec<MemoryKey>>,
    /// (operation, name, remaining, answer)
    pub stale: Vec<(&'static str, String, usize, Stale)>,
    /// AssumeRole calls.
    pub assumed: usize,
    /// Asynchronous invocations: (function, payload).
    pub invocations: Vec<(String, String)>,
    /// How many of the next asynchronous invocations fail (ServiceError).
    pub failing_invocations: usize,
    /// Runs once, right after the next successful create or put.
    pub after_write: Option<Hook>,
    /// Runs once, as the next UpdateSecretVersionStage arrives (before it is checked).
    pub before_stage: Option<Hook>,
    counter: u64,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("secrets", &self.secrets.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl World {
    /// The ARN of a key known by id, ARN or alias in (account, region); the text itself when
    /// unknown.
    pub fn key_arn(&self, account: &str, region: &str, key: &str) -> String {
        let alias = crate::arn::kms_alias(key);
        self.keys
            .get(&(account.to_string(), region.to_string()))
            .and_then(|keys| {
                keys.iter().find(|k| {
                    k.info.arn == key
                        || k.info.key_id == key
                        || alias.is_some_and(|a| k.aliases.iter().any(|x| x == a))
                })
            })
            .map(|k| k.info.arn.clone())
            .unwrap_or_else(|| key.to_string())
    }

    /// The next `times` DescribeSecret calls naming this secret answer it as it is now
    /// (eventual consistency: a read that does not show a later write).
    pub fn freeze_describe(&mut self, key: &Key, times: usize) {
        let now = self.secrets.get(key).map(|s| s.description(&key.2));
        self.stale
            .push(("DescribeSecret", key.2.clone(), times, Stale::Describe(now)));
    }

    /// The next `times` GetSecretValue calls naming this secret answer its current value as it
    /// is now.
    pub fn freeze_value(&mut self, key: &Key, times: usize) {
        let Some(s) = self.secrets.get(key) else {
            return;
        };
        let Some(v) = s.current() else { return };
        let now = CurrentValue {
            arn: s.arn.clone(),
            name: key.2.clone(),
            version_id: v.id.clone(),
            value: v.value.clone(),
            created: Some(v.created),
        };
        self.stale
            .push(("GetSecretValue", key.2.clone(), times, Stale::Value(now)));
    }

    /// A fresh AWS-shaped (UUIDv4) version id.
    pub fn version_id(&mut self) -> String {
        self.counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.counter)
    }
}

fn err(op: &'static str, code: &str, message: &str) -> Error {
    Error::Aws(AwsError {
        kind: classify(code, None),
        service: "secretsmanager",
        operation: op,
        code: code.into(),
        message: message.into(),
    })
}

/// The stores of one test world: the function's own account and any destination account.
#[derive(Debug, Clone)]
pub struct MemoryStores {
    pub world: Arc<Mutex<World>>,
    /// The function's own account.
    pub account: String,
    /// The region of `own(None)`.
    pub region: String,
}

impl MemoryStores {
    /// An empty world; the function's own account and region.
    pub fn new(account: &str, region: &str) -> Self {
        MemoryStores {
            world: Arc::default(),
            account: account.into(),
            region: region.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key_of(&self, account: &str, region: &str, name: &str) -> Key {
        (account.into(), region.into(), name.into())
    }

    /// A secret of the own account gets `value` as a new current version `version`, created
    /// if needed.
    pub fn seed(&self, region: &str, name: &str, version: &str, value: &str) {
        self.seed_value(region, name, version, SecretValue::text(value.into()));
    }

    /// Like [`seed`](Self::seed), any value.
    pub fn seed_value(&self, region: &str, name: &str, version: &str, value: SecretValue) {
        let mut w = self.lock();
        let account = self.account.clone();
        let s = w
            .secrets
            .entry(self.key_of(&account, region, name))
            .or_insert_with(|| Secret {
                arn: format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"),
                ..Secret::default()
            });
        s.add(version, value);
    }

    /// A copy of one secret.
    pub fn secret(&self, account: &str, region: &str, name: &str) -> Option<Secret> {
        self.lock()
            .secrets
            .get(&self.key_of(account, region, name))
            .cloned()
    }

    /// The current string value of one secret (`<binary>` for a binary one).
    pub fn value(&self, account: &str, region: &str, name: &str) -> Option<String> {
        self.secret(account, region, name)
            .and_then(|s| s.current().cloned())
            .map(|v| match v.value {
                SecretValue::String(s) => secrecy::ExposeSecret::expose_secret(&s).to_string(),
                SecretValue::Binary(_) => "<binary>".into(),
            })
    }

    /// The next `times` calls of `op` whose id contains `name` fail with `code`.
    pub fn fail(&self, op: &str, name: &str, code: &str, times: usize) {
        self.lock()
            .faults
            .push((op.into(), name.into(), code.into(), times));
    }

    /// The calls so far, emptying the log.
    pub fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().calls)
    }

    /// Changes one secret in place.
    pub fn edit(&self, account: &str, region: &str, name: &str, f: impl FnOnce(&mut Secret)) {
        if let Some(s) = self
            .lock()
            .secrets
            .get_mut(&self.key_of(account, region, name))
        {
            f(s);
        }
    }

    /// A KMS key in (account, region) with these aliases (`alias/...`); `describable` says
    /// whether the function's policy lets it call DescribeKey on it.
    pub fn add_key(
        &self,
        account: &str,
        region: &str,
        key_id: &str,
        aliases: &[&str],
        describable: bool,
    ) -> KeyInfo {
        let info = KeyInfo {
            arn: format!("arn:aws:kms:{region}:{account}:key/{key_id}"),
            key_id: key_id.into(),
        };
        self.lock()
            .keys
            .entry((account.into(), region.into()))
            .or_default()
            .push(MemoryKey {
                info: info.clone(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                describable,
            });
        info
    }

    /// The next `times` DescribeSecret calls naming `name` answer the secret as it is now
    /// (eventual consistency: a read that does not show a later write).
    pub fn freeze_describe(&self, account: &str, region: &str, name: &str, times: usize) {
        let key = self.key_of(account, region, name);
        self.lock().freeze_describe(&key, times);
    }

    /// The next `times` DescribeSecret calls naming `name` answer "not found".
    pub fn hide(&self, name: &str, times: usize) {
        self.lock()
            .stale
            .push(("DescribeSecret", name.into(), times, Stale::Describe(None)));
    }

    /// The next `times` GetSecretValue calls naming `name` answer its current value as it is now.
    pub fn freeze_value(&self, account: &str, region: &str, name: &str, times: usize) {
        let key = self.key_of(account, region, name);
        self.lock().freeze_value(&key, times);
    }

    /// The next `times` GetSecretValue calls by `VersionId` on the secret answer
    /// ResourceNotFoundException, as a read that does not see a new version yet does.
    pub fn hide_versions(&self, account: &str, region: &str, name: &str, times: usize) {
        let key = self.key_of(account, region, name);
        self.lock()
            .stale
            .push((BY_VERSION, key.2, times, Stale::Version(None)));
    }

    /// Runs `f` once, right after the next successful create or put.
    pub fn after_next_write(&self, f: impl FnOnce(&mut World) + Send + 'static) {
        self.lock().after_write = Some(Box::new(f));
    }

    /// Runs `f` once, as the next UpdateSecretVersionStage arrives.
    pub fn before_next_label_move(&self, f: impl FnOnce(&mut World) + Send + 'static) {
        self.lock().before_stage = Some(Box::new(f));
    }

    /// How many times a destination role was assumed.
    pub fn assumed(&self) -> usize {
        self.lock().assumed
    }
}

/// One region with one set of credentials.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    world: Arc<Mutex<World>>,
    account: String,
    region: String,
}

impl MemoryStore {
    /// (account, region, name) of an id: a name, or a full ARN of a secret of this store.
    fn key(&self, id: &str) -> Key {
        let name = crate::arn::secret_name_if_full(id).unwrap_or_else(|| id.to_string());
        (self.account.clone(), self.region.clone(), name)
    }

    /// Logs the call, then fails it if a fault says so.
    fn enter(&self, op: &'static str, id: &str) -> Result<MutexGuard<'_, World>, Error> {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.calls.push(format!("{op} {id}"));
        if let Some(f) = w
            .faults
            .iter_mut()
            .find(|f| f.0 == op && id.contains(&f.1) && f.3 > 0)
        {
            f.3 -= 1;
            let code = f.2.clone();
            return Err(err(op, &code, &format!("injected {code}")));
        }
        Ok(w)
    }

    fn stale(w: &mut World, op: &'static str, name: &str) -> Option<Stale> {
        let entry = w
            .stale
            .iter_mut()
            .find(|s| s.0 == op && s.1 == name && s.2 > 0)?;
        entry.2 -= 1;
        Some(entry.3.clone())
    }
}

mod api;

impl Stores for MemoryStores {
    type Store = MemoryStore;

    async fn invoke_async(&self, function: &str, payload: &str) -> Result<(), Error> {
        let mut w = self.lock();
        w.calls.push(format!("Invoke {function}"));
        if w.failing_invocations > 0 {
            w.failing_invocations -= 1;
            return Err(Error::Aws(AwsError {
                kind: crate::outcome::ErrorKind::ServiceError,
                service: "lambda",
                operation: "Invoke",
                code: "ServiceException".into(),
                message: "injected".into(),
            }));
        }
        w.invocations.push((function.into(), payload.into()));
        Ok(())
    }

    fn own(&self, region: Option<&str>) -> MemoryStore {
        MemoryStore {
            world: self.world.clone(),
            account: self.account.clone(),
            region: region.unwrap_or(&self.region).into(),
        }
    }

    async fn destination(&self, region: &str, role: Option<&Role>) -> Result<MemoryStore, Error> {
        if role.is_some() {
            self.lock().assumed += 1;
        }
        Ok(MemoryStore {
            world: self.world.clone(),
            account: role
                .map(|r| r.account.clone())
                .unwrap_or_else(|| self.account.clone()),
            region: region.into(),
        })
    }
}
