//! The Secrets Manager and KMS calls of the in-memory store, with the rules of the API
//! reference.

use super::{AWSPREVIOUS, Key, MemoryStore, Secret, Stale, World, err};
use crate::outcome::{AwsError, Error, classify};
use crate::secret::SecretValue;
use crate::store::{
    AWSCURRENT, CurrentValue, Description, KeyInfo, ListFilter, Listed, ManageSecrets, NewSecret,
    ReadSecrets, ResolveKeys, VersionRead, WriteSecrets, Written,
};
use std::time::{Duration, SystemTime};

fn not_found(op: &'static str) -> Error {
    err(
        op,
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

fn scheduled_for_deletion(op: &'static str) -> Error {
    err(
        op,
        "InvalidRequestException",
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

fn live<'w>(w: &'w mut World, key: &Key, op: &'static str) -> Result<&'w mut Secret, Error> {
    let s = w.secrets.get_mut(key).ok_or_else(|| not_found(op))?;
    if s.deleted {
        return Err(scheduled_for_deletion(op));
    }
    if s.replica_of.is_some() {
        return Err(err(
            op,
            "InvalidRequestException",
            "Operation not permitted on a replica secret.",
        ));
    }
    Ok(s)
}

impl ReadSecrets for MemoryStore {
    async fn current_value(&self, id: &str) -> Result<CurrentValue, Error> {
        let key = self.key(id);
        let mut w = self.enter("GetSecretValue", id)?;
        if let Some(Stale::Value(v)) = Self::stale(&mut w, "GetSecretValue", &key.2) {
            return Ok(v);
        }
        let s = w
            .secrets
            .get(&key)
            .ok_or_else(|| not_found("GetSecretValue"))?;
        if s.deleted {
            return Err(scheduled_for_deletion("GetSecretValue"));
        }
        let v = s.current().ok_or_else(|| {
            err(
                "GetSecretValue",
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
            )
        })?;
        Ok(CurrentValue {
            arn: s.arn.clone(),
            name: key.2.clone(),
            version_id: v.id.clone(),
            value: v.value.clone(),
            created: Some(v.created),
        })
    }

    async fn version(&self, id: &str, version_id: &str) -> Result<Option<VersionRead>, Error> {
        let key = self.key(id);
        let mut w = self.enter("GetSecretValue", id)?;
        if let Some(Stale::Version(v)) = Self::stale(&mut w, super::BY_VERSION, &key.2) {
            return Ok(v);
        }
        let Some(s) = w.secrets.get(&key) else {
            return Ok(None);
        };
        if s.deleted {
            return Err(scheduled_for_deletion("GetSecretValue"));
        }
        Ok(s.versions
            .iter()
            .find(|v| v.id == version_id)
            .map(|v| VersionRead {
                value: CurrentValue {
                    arn: s.arn.clone(),
                    name: key.2.clone(),
                    version_id: v.id.clone(),
                    value: v.value.clone(),
                    created: Some(v.created),
                },
                current: v.stages.iter().any(|st| st == AWSCURRENT),
            }))
    }

    async fn describe(&self, id: &str) -> Result<Option<Description>, Error> {
        let key = self.key(id);
        let mut w = self.enter("DescribeSecret", id)?;
        if let Some(Stale::Describe(d)) = Self::stale(&mut w, "DescribeSecret", &key.2) {
            return Ok(d);
        }
        Ok(w.secrets.get(&key).map(|s| s.description(&key.2)))
    }

    async fn list(&self, filter: ListFilter<'_>) -> Result<Vec<Listed>, Error> {
        let w = self.enter("ListSecrets", "")?;
        let mut out: Vec<Listed> = w
            .secrets
            .iter()
            .filter(|(k, s)| {
                k.0 == self.account
                    && k.1 == self.region
                    && (filter.include_deleted || !s.deleted)
                    && filter
                        .tag_key
                        .is_none_or(|t| s.tags.iter().any(|(k, _)| k == t))
            })
            .map(|(k, s)| {
                let d = s.description(&k.2);
                Listed {
                    arn: s.arn.clone(),
                    name: k.2.clone(),
                    tags: s.tags.clone(),
                    deleted: s.deleted,
                    // ListSecrets answers a key ARN where DescribeSecret may answer an alias.
                    kms_key_id: s
                        .kms
                        .clone()
                        .map(|k| w.key_arn(&self.account, &self.region, &k)),
                    description: d.description,
                    current_version: d.current_version,
                    primary_region: d.primary_region,
                    owning_service: d.owning_service,
                }
            })
            .collect();
        // One call per page of 100, as AWS counts them.
        let pages = out.len().div_ceil(100).max(1);
        drop(w);
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 1..pages {
            w.calls.push("ListSecrets (next page)".into());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl WriteSecrets for MemoryStore {
    async fn create(&self, new: &NewSecret<'_>) -> Result<Written, Error> {
        let key = self.key(new.name);
        let mut w = self.enter("CreateSecret", new.name)?;
        match w.secrets.get(&key) {
            Some(s) if s.deleted => return Err(scheduled_for_deletion("CreateSecret")),
            Some(_) => {
                return Err(err(
                    "CreateSecret",
                    "ResourceExistsException",
                    "The operation failed because the secret already exists.",
                ));
            }
            None => {}
        }
        if new
            .tags
            .iter()
            .filter(|(k, _)| !k.starts_with("aws:"))
            .count()
            > 50
        {
            return Err(err(
                "CreateSecret",
                "ValidationException",
                "too many tags (at most 50)",
            ));
        }
        let mut s = Secret {
            arn: format!(
                "arn:aws:secretsmanager:{}:{}:secret:{}-AbCdEf",
                key.1, key.0, key.2
            ),
            tags: new.tags.to_vec(),
            kms: new.kms_key_id.map(str::to_string),
            description: Some(new.description.to_string()).filter(|d| !d.is_empty()),
            ..Secret::default()
        };
        s.add(new.token, new.value.clone());
        w.secrets.insert(key, s);
        if let Some(hook) = w.after_write.take() {
            hook(&mut w);
        }
        Ok(Written {
            version_id: new.token.into(),
            stages: vec![AWSCURRENT.into()],
        })
    }

    async fn put(&self, id: &str, value: &SecretValue, token: &str) -> Result<Written, Error> {
        let key = self.key(id);
        let mut w = self.enter("PutSecretValue", id)?;
        let s = live(&mut w, &key, "PutSecretValue")?;
        if let Some(v) = s.versions.iter().find(|v| v.id == token) {
            // A repeated token: ignored with the same value (AWSCURRENT does not move), an error
            // with another.
            return if &v.value == value {
                Ok(Written {
                    version_id: v.id.clone(),
                    stages: v.stages.clone(),
                })
            } else {
                Err(err(
                    "PutSecretValue",
                    "ResourceExistsException",
                    "A resource with the ID you requested already exists.",
                ))
            };
        }
        s.add(token, value.clone());
        if let Some(hook) = w.after_write.take() {
            hook(&mut w);
        }
        Ok(Written {
            version_id: token.into(),
            stages: vec![AWSCURRENT.into()],
        })
    }

    async fn make_current(&self, id: &str, to: &str, from: Option<&str>) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("UpdateSecretVersionStage", id)?;
        if let Some(hook) = w.before_stage.take() {
            hook(&mut w);
        }
        let op = "UpdateSecretVersionStage";
        let s = live(&mut w, &key, op)?;
        if !s.versions.iter().any(|v| v.id == to) {
            return Err(err(op, "InvalidParameterException", "Not a valid version"));
        }
        let holder = s.current().map(|v| v.id.clone());
        if holder.is_some() && holder.as_deref() != from {
            return Err(err(
                op,
                "InvalidParameterException",
                "The parameter RemoveFromVersionId must name the version AWSCURRENT is attached to.",
            ));
        }
        if holder.as_deref() == Some(to) {
            return Ok(());
        }
        // AWSPREVIOUS follows automatically: to the version AWSCURRENT leaves.
        for v in &mut s.versions {
            v.stages.retain(|st| st != AWSCURRENT && st != AWSPREVIOUS);
            if v.id == to {
                v.stages.push(AWSCURRENT.into());
            } else if Some(v.id.as_str()) == holder.as_deref() {
                v.stages.push(AWSPREVIOUS.into());
            }
        }
        Ok(())
    }
}

impl ManageSecrets for MemoryStore {
    async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("TagResource", id)?;
        let s = live(&mut w, &key, "TagResource")?;
        for (k, v) in tags {
            s.tags.retain(|(have, _)| have != k);
            s.tags.push((k.clone(), v.clone()));
        }
        if s.tags
            .iter()
            .filter(|(k, _)| !k.starts_with("aws:"))
            .count()
            > 50
        {
            return Err(err(
                "TagResource",
                "ValidationException",
                "too many tags (at most 50)",
            ));
        }
        Ok(())
    }

    async fn untag(&self, id: &str, keys: &[String]) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("UntagResource", id)?;
        let s = live(&mut w, &key, "UntagResource")?;
        s.tags.retain(|(k, _)| !keys.contains(k));
        Ok(())
    }

    async fn set_kms_key(&self, id: &str, key_id: &str) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("UpdateSecret", id)?;
        let s = live(&mut w, &key, "UpdateSecret")?;
        s.kms = Some(key_id.into());
        Ok(())
    }

    async fn set_description(&self, id: &str, description: &str) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("UpdateSecret", id)?;
        let s = live(&mut w, &key, "UpdateSecret")?;
        s.description = Some(description.to_string()).filter(|d| !d.is_empty());
        Ok(())
    }

    async fn restore(&self, id: &str) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("RestoreSecret", id)?;
        let s = w
            .secrets
            .get_mut(&key)
            .ok_or_else(|| not_found("RestoreSecret"))?;
        s.deleted = false;
        s.deletion_date = None;
        Ok(())
    }

    async fn delete(&self, id: &str, window_days: i64) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("DeleteSecret", id)?;
        if !(7..=30).contains(&window_days) {
            return Err(err(
                "DeleteSecret",
                "InvalidParameterException",
                "RecoveryWindowInDays must be between 7 and 30",
            ));
        }
        let s = w
            .secrets
            .get_mut(&key)
            .ok_or_else(|| not_found("DeleteSecret"))?;
        if !s.deleted {
            s.deleted = true;
            s.deletion_date =
                Some(SystemTime::now() + Duration::from_secs(window_days as u64 * 86_400));
        }
        Ok(())
    }
}

impl ResolveKeys for MemoryStore {
    async fn key(&self, key_id: &str) -> Result<KeyInfo, Error> {
        let w = self.enter("DescribeKey", key_id)?;
        let keys = w
            .keys
            .get(&(self.account.clone(), self.region.clone()))
            .cloned()
            .unwrap_or_default();
        let alias = crate::arn::kms_alias(key_id);
        let found = keys.iter().find(|k| {
            k.info.arn == key_id
                || k.info.key_id == key_id
                || alias.is_some_and(|a| k.aliases.iter().any(|x| x == a))
        });
        let kms_err = |code: &str, message: &str| {
            Error::Aws(AwsError {
                kind: classify(code, None),
                service: "kms",
                operation: "DescribeKey",
                code: code.into(),
                message: message.into(),
            })
        };
        match found {
            Some(k) if k.describable => Ok(k.info.clone()),
            Some(k) => Err(kms_err(
                "AccessDeniedException",
                &format!(
                    "not authorized to perform kms:DescribeKey on {}",
                    k.info.arn
                ),
            )),
            None => Err(kms_err("NotFoundException", &format!("{key_id} not found"))),
        }
    }
}
