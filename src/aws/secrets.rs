//! The Secrets Manager and KMS adapter: the store traits of `store.rs` over the SDK clients of one
//! region and one set of credentials. SDK shapes stay here; the pipeline sees `store` values.

use super::errors::{codes, map_sdk_error};
use super::roles::AssumedRoles;
use crate::config::Role;
use crate::outcome::{AwsError, Error, ErrorKind};
use crate::secret::SecretValue;
use crate::store::{
    AWSCURRENT, CurrentValue, Description, KeyInfo, ListFilter, Listed, ManageSecrets, NewSecret,
    ReadSecrets, ResolveKeys, VersionRead, WriteSecrets, Written,
};
use aws_sdk_secretsmanager::primitives::{Blob, DateTime};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const SM: &str = "secretsmanager";

/// Secrets Manager and KMS in one region, with one set of credentials.
#[derive(Clone, Debug)]
pub struct AwsStore {
    pub(super) sm: aws_sdk_secretsmanager::Client,
    pub(super) kms: aws_sdk_kms::Client,
    /// Set for destination roles: an ExpiredToken refreshes the session once and retries.
    pub(super) role: Option<(Arc<AssumedRoles>, Role)>,
    /// Configured keys already resolved with kms:DescribeKey.
    pub(super) keys: Arc<Mutex<HashMap<String, KeyInfo>>>,
}

/// Mutating calls make one attempt: the pipeline retries them itself, each attempt through the
/// write budget's token bucket (SPEC §2), so that no retry escapes the pacing.
fn one_attempt() -> aws_sdk_secretsmanager::config::Builder {
    aws_sdk_secretsmanager::config::Builder::default()
        .retry_config(aws_config::retry::RetryConfig::disabled())
}

impl AwsStore {
    /// The one way a call is sent: its SDK error mapped (service, operation and AWS code kept),
    /// and, with assumed credentials, an ExpiredToken answered by refreshing the session once and
    /// sending again.
    async fn send<T, E, F, Fut>(
        &self,
        service: &'static str,
        op: &'static str,
        f: F,
    ) -> Result<T, Error>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, SdkError<E, Response>>> + Send,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        T: Send,
    {
        match f().await.map_err(|e| map_sdk_error(service, op, e)) {
            Err(e) if is_expired(&e) => match &self.role {
                Some((roles, role)) => {
                    tracing::info!(role = %role.arn, "assumed-role session expired; refreshing once");
                    roles.invalidate(role).await;
                    f().await.map_err(|e| map_sdk_error(service, op, e))
                }
                None => Err(e),
            },
            other => other,
        }
    }
}

fn is_expired(e: &Error) -> bool {
    e.aws()
        .is_some_and(|a| codes::EXPIRED.contains(&a.code.as_str()))
}

/// The value of a GetSecretValue answer, taken out of it (moved, not copied).
fn value_of(string: Option<String>, binary: Option<Blob>) -> Option<SecretValue> {
    match (string, binary) {
        (Some(s), _) => Some(SecretValue::text(s)),
        (None, Some(b)) => Some(SecretValue::bytes(b.into_inner())),
        (None, None) => None,
    }
}

/// The value as the SDK's request builders take it (the SDK keeps its own copy).
fn exposed(value: &SecretValue) -> (Option<String>, Option<Blob>) {
    match value {
        SecretValue::String(s) => (Some(s.expose_secret().to_string()), None),
        SecretValue::Binary(b) => (None, Some(Blob::new(b.expose_secret().to_vec()))),
    }
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn time(d: Option<&DateTime>) -> Option<SystemTime> {
    d.and_then(|d| SystemTime::try_from(*d).ok())
}

impl AwsStore {
    /// GetSecretValue with a stage or a version id: the value, and the version's stages.
    async fn get_value(
        &self,
        id: &str,
        version_id: Option<&str>,
    ) -> Result<(CurrentValue, Vec<String>), Error> {
        let req = self.sm.get_secret_value().secret_id(id);
        let req = match version_id {
            Some(v) => req.version_id(v),
            None => req.version_stage(AWSCURRENT),
        };
        let mut out = self
            .send(SM, "GetSecretValue", || req.clone().send())
            .await?;
        let malformed = |what: &str| {
            Error::Aws(AwsError {
                kind: ErrorKind::AwsClientError,
                service: SM,
                operation: "GetSecretValue",
                code: "NoValue".into(),
                message: format!("{id}: the answer has no {what}"),
            })
        };
        let value = value_of(out.secret_string.take(), out.secret_binary.take())
            .ok_or_else(|| malformed("SecretString or SecretBinary"))?;
        // Every decision about staleness rests on the version id: an answer without one is
        // not a value to copy (parse, don't default).
        let version = out
            .version_id()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| malformed("VersionId"))?
            .to_string();
        let current = CurrentValue {
            arn: out.arn().unwrap_or(id).to_string(),
            name: out.name().unwrap_or(id).to_string(),
            version_id: version,
            value,
            created: time(out.created_date()),
        };
        Ok((current, out.version_stages.take().unwrap_or_default()))
    }
}

impl ReadSecrets for AwsStore {
    async fn current_value(&self, id: &str) -> Result<CurrentValue, Error> {
        self.get_value(id, None).await.map(|(v, _)| v)
    }

    async fn version(&self, id: &str, version_id: &str) -> Result<Option<VersionRead>, Error> {
        match self.get_value(id, Some(version_id)).await {
            Ok((value, stages)) => Ok(Some(VersionRead {
                value,
                current: stages.iter().any(|s| s == AWSCURRENT),
            })),
            Err(e) if e.is_aws("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn describe(&self, id: &str) -> Result<Option<Description>, Error> {
        let req = self.sm.describe_secret().secret_id(id);
        let out = match self.send(SM, "DescribeSecret", || req.clone().send()).await {
            Ok(out) => out,
            Err(e) if e.is_aws("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(e),
        };
        let stages = out.version_ids_to_stages();
        // AWS lists only versions that carry a label; an entry with none is skipped all the same.
        let version_ids = stages
            .map(|m| {
                m.iter()
                    .filter(|(_, s)| !s.is_empty())
                    .map(|(v, _)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        let current_version = stages.and_then(|m| {
            m.iter()
                .find(|(_, s)| s.iter().any(|s| s == AWSCURRENT))
                .map(|(v, _)| v.clone())
        });
        Ok(Some(Description {
            arn: out.arn().unwrap_or(id).to_string(),
            name: out.name().unwrap_or(id).to_string(),
            kms_key_id: out.kms_key_id().map(str::to_string),
            deleted: out.deleted_date().is_some(),
            deletion_date: time(out.deleted_date()),
            description: out.description().map(str::to_string),
            version_ids,
            tags: pairs(out.tags()),
            current_version,
            owning_service: out.owning_service().map(str::to_string),
            primary_region: out.primary_region().map(str::to_string),
        }))
    }

    async fn list(&self, filter: ListFilter<'_>) -> Result<Vec<Listed>, Error> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        let filters = filter.tag_key.map(|k| {
            vec![
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(k)
                    .build(),
            ]
        });
        loop {
            let req = self
                .sm
                .list_secrets()
                .max_results(100)
                .include_planned_deletion(filter.include_deleted)
                .set_filters(filters.clone())
                .set_next_token(next.clone());
            let page = self.send(SM, "ListSecrets", || req.clone().send()).await?;
            for s in page.secret_list() {
                let (Some(arn), Some(name)) = (s.arn(), s.name()) else {
                    continue;
                };
                let current_version = s.secret_versions_to_stages().and_then(|m| {
                    m.iter()
                        .find(|(_, st)| st.iter().any(|x| x == AWSCURRENT))
                        .map(|(v, _)| v.clone())
                });
                out.push(Listed {
                    arn: arn.to_string(),
                    name: name.to_string(),
                    tags: pairs(s.tags()),
                    deleted: s.deleted_date().is_some(),
                    kms_key_id: s.kms_key_id().map(str::to_string),
                    description: s.description().map(str::to_string),
                    current_version,
                    primary_region: s.primary_region().map(str::to_string),
                    owning_service: s.owning_service().map(str::to_string),
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
}

impl WriteSecrets for AwsStore {
    async fn create(&self, new: &NewSecret<'_>) -> Result<Written, Error> {
        let req = self
            .sm
            .create_secret()
            .name(new.name)
            .client_request_token(new.token)
            .set_kms_key_id(new.kms_key_id.map(str::to_string))
            .description(new.description)
            .set_tags(Some(sdk_tags(new.tags)));
        let (string, binary) = exposed(new.value);
        let req = req.set_secret_string(string).set_secret_binary(binary);
        let out = self
            .send(SM, "CreateSecret", || {
                req.clone()
                    .customize()
                    .config_override(one_attempt())
                    .send()
            })
            .await?;
        Ok(Written {
            version_id: out.version_id().unwrap_or(new.token).to_string(),
            stages: vec![AWSCURRENT.to_string()],
        })
    }

    async fn put(&self, id: &str, value: &SecretValue, token: &str) -> Result<Written, Error> {
        let req = self
            .sm
            .put_secret_value()
            .secret_id(id)
            .client_request_token(token);
        let (string, binary) = exposed(value);
        let req = req.set_secret_string(string).set_secret_binary(binary);
        let out = self
            .send(SM, "PutSecretValue", || {
                req.clone()
                    .customize()
                    .config_override(one_attempt())
                    .send()
            })
            .await?;
        Ok(Written {
            version_id: out.version_id().unwrap_or(token).to_string(),
            stages: out.version_stages().to_vec(),
        })
    }

    async fn make_current(&self, id: &str, to: &str, from: Option<&str>) -> Result<(), Error> {
        let req = self
            .sm
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage(AWSCURRENT)
            .move_to_version_id(to)
            .set_remove_from_version_id(from.map(str::to_string));
        self.send(SM, "UpdateSecretVersionStage", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }
}

impl ManageSecrets for AwsStore {
    async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), Error> {
        let req = self
            .sm
            .tag_resource()
            .secret_id(id)
            .set_tags(Some(sdk_tags(tags)));
        self.send(SM, "TagResource", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn untag(&self, id: &str, keys: &[String]) -> Result<(), Error> {
        let req = self
            .sm
            .untag_resource()
            .secret_id(id)
            .set_tag_keys(Some(keys.to_vec()));
        self.send(SM, "UntagResource", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn set_kms_key(&self, id: &str, key: &str) -> Result<(), Error> {
        let req = self.sm.update_secret().secret_id(id).kms_key_id(key);
        self.send(SM, "UpdateSecret", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn set_description(&self, id: &str, description: &str) -> Result<(), Error> {
        let req = self
            .sm
            .update_secret()
            .secret_id(id)
            .description(description);
        self.send(SM, "UpdateSecret", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn restore(&self, id: &str) -> Result<(), Error> {
        let req = self.sm.restore_secret().secret_id(id);
        self.send(SM, "RestoreSecret", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn delete(&self, id: &str, window_days: i64) -> Result<(), Error> {
        let req = self
            .sm
            .delete_secret()
            .secret_id(id)
            .recovery_window_in_days(window_days);
        self.send(SM, "DeleteSecret", || {
            req.clone()
                .customize()
                .config_override(one_attempt())
                .send()
        })
        .await
        .map(|_| ())
    }
}

impl ResolveKeys for AwsStore {
    async fn key(&self, key_id: &str) -> Result<KeyInfo, Error> {
        if let Some(k) = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
        {
            return Ok(k.clone());
        }
        let req = self.kms.describe_key().key_id(key_id);
        let out = self
            .send("kms", "DescribeKey", || req.clone().send())
            .await
            .map_err(|e| match e {
                // A configured key that does not exist is a dependency failure of the write.
                Error::Aws(mut a) if a.is("NotFoundException") => {
                    a.kind = ErrorKind::KmsUnavailable;
                    Error::Aws(a)
                }
                other => other,
            })?;
        let info = match out.key_metadata() {
            Some(m) => KeyInfo {
                arn: m.arn().unwrap_or(m.key_id()).to_string(),
                key_id: m.key_id().to_string(),
            },
            None => KeyInfo {
                arn: key_id.to_string(),
                key_id: key_id.to_string(),
            },
        };
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id.to_string(), info.clone());
        Ok(info)
    }
}
