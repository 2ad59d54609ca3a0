//! The pipeline against an in-memory Secrets Manager that keeps AWS's version-stage rules and
//! can be told to fail any call with any AWS code. It covers what moto cannot show: writes to a
//! secret scheduled for deletion, token collisions, expired sessions, injected failures.

use super::*;
use crate::config::{NoFetcher, load_document};
use crate::outcome::{AwsError, ErrorKind, Report};
use crate::store::Description;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: SecretValue,
    stages: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct FakeSecret {
    arn: String,
    versions: Vec<Version>,
    tags: Vec<(String, String)>,
    kms: Option<String>,
    deleted: bool,
}

impl FakeSecret {
    fn current(&self) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == AWSCURRENT))
    }

    fn add(&mut self, id: &str, value: SecretValue) {
        for v in &mut self.versions {
            v.stages.retain(|s| s != "AWSPREVIOUS");
            if v.stages.iter().any(|s| s == AWSCURRENT) {
                v.stages = vec!["AWSPREVIOUS".into()];
            }
        }
        self.versions.push(Version {
            id: id.into(),
            value,
            stages: vec![AWSCURRENT.into()],
        });
    }
}

/// (account, region, name) → secret.
type Key = (String, String, String);

#[derive(Debug, Default)]
struct World {
    secrets: HashMap<Key, FakeSecret>,
    calls: Vec<String>,
    /// (operation, name substring, error code, remaining count)
    faults: Vec<(&'static str, String, &'static str, usize)>,
    assumed: usize,
    /// Runs once, right after the next successful create or put.
    after_write: Option<fn(&mut World)>,
    /// Runs once, as the next UpdateSecretVersionStage arrives (before it is checked).
    before_stage: Option<fn(&mut World)>,
}

#[derive(Debug, Clone)]
struct Fake {
    world: Arc<Mutex<World>>,
    account: String,
    region: String,
}

const OWN: &str = "111122223333";

fn err(op: &'static str, code: &str) -> Error {
    Error::Aws(AwsError {
        kind: crate::store::classify(code, None),
        service: "secretsmanager",
        operation: op,
        code: code.into(),
        message: format!("fake {code}"),
    })
}

impl Fake {
    fn key(&self, id: &str) -> Key {
        // Accept full ARNs for our own secrets.
        let name = id
            .strip_prefix("arn:")
            .and_then(|_| id.splitn(7, ':').nth(6))
            .map(|r| &r[..r.len() - 7])
            .unwrap_or(id);
        (self.account.clone(), self.region.clone(), name.to_string())
    }

    fn enter(&self, op: &'static str, id: &str) -> Result<std::sync::MutexGuard<'_, World>, Error> {
        let mut w = self.world.lock().unwrap();
        w.calls.push(format!("{op} {id}"));
        if let Some(f) = w
            .faults
            .iter_mut()
            .find(|f| f.0 == op && id.contains(&f.1) && f.3 > 0)
        {
            f.3 -= 1;
            return Err(err(op, f.2));
        }
        Ok(w)
    }
}

impl SecretStore for Fake {
    async fn current_value(&self, id: &str) -> Result<CurrentValue, Error> {
        let key = self.key(id);
        let w = self.enter("GetSecretValue", id)?;
        let s = w
            .secrets
            .get(&key)
            .ok_or_else(|| err("GetSecretValue", "ResourceNotFoundException"))?;
        if s.deleted {
            return Err(err("GetSecretValue", "InvalidRequestException"));
        }
        let v = s
            .current()
            .ok_or_else(|| err("GetSecretValue", "ResourceNotFoundException"))?;
        Ok(CurrentValue {
            arn: s.arn.clone(),
            name: key.2,
            version_id: v.id.clone(),
            value: v.value.clone(),
        })
    }

    async fn describe(&self, id: &str) -> Result<Option<Description>, Error> {
        let key = self.key(id);
        let w = self.enter("DescribeSecret", id)?;
        Ok(w.secrets.get(&key).map(|s| Description {
            arn: s.arn.clone(),
            name: key.2.clone(),
            kms_key_id: s.kms.clone(),
            deleted: s.deleted,
            deletion_date: None,
            description: None,
            version_ids: s.versions.iter().map(|v| v.id.clone()).collect(),
            tags: s.tags.clone(),
            current_version: s.current().map(|v| v.id.clone()),
            owning_service: None,
            primary_region: None,
        }))
    }

    async fn create(&self, new: &NewSecret<'_>) -> Result<Written, Error> {
        let key = self.key(new.name);
        let mut w = self.enter("CreateSecret", new.name)?;
        if w.secrets.contains_key(&key) {
            return Err(err("CreateSecret", "ResourceExistsException"));
        }
        let mut s = FakeSecret {
            arn: format!(
                "arn:aws:secretsmanager:{}:{}:secret:{}-AbCdEf",
                key.1, key.0, key.2
            ),
            tags: new.tags.to_vec(),
            kms: new.kms_key_id.map(str::to_string),
            ..FakeSecret::default()
        };
        s.add(new.token, new.value.clone());
        let arn = s.arn.clone();
        w.secrets.insert(key, s);
        if let Some(hook) = w.after_write.take() {
            hook(&mut w);
        }
        Ok(Written {
            arn,
            version_id: new.token.into(),
            stages: vec![AWSCURRENT.into()],
        })
    }

    async fn put(&self, id: &str, value: &SecretValue, token: &str) -> Result<Written, Error> {
        let key = self.key(id);
        let mut w = self.enter("PutSecretValue", id)?;
        let s = w
            .secrets
            .get_mut(&key)
            .ok_or_else(|| err("PutSecretValue", "ResourceNotFoundException"))?;
        if s.deleted {
            // Real Secrets Manager refuses writes to a secret scheduled for deletion.
            return Err(err("PutSecretValue", "InvalidRequestException"));
        }
        if let Some(v) = s.versions.iter().find(|v| v.id == token) {
            return if &v.value == value {
                Ok(Written {
                    arn: s.arn.clone(),
                    version_id: v.id.clone(),
                    stages: v.stages.clone(),
                })
            } else {
                Err(err("PutSecretValue", "ResourceExistsException"))
            };
        }
        s.add(token, value.clone());
        let arn = s.arn.clone();
        if let Some(hook) = w.after_write.take() {
            hook(&mut w);
        }
        Ok(Written {
            arn,
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
        let s = w
            .secrets
            .get_mut(&key)
            .ok_or_else(|| err("UpdateSecretVersionStage", "ResourceNotFoundException"))?;
        let holder = s.current().map(|v| v.id.clone());
        if holder.is_some() && holder.as_deref() != from {
            return Err(err("UpdateSecretVersionStage", "InvalidParameterException"));
        }
        for v in &mut s.versions {
            v.stages.retain(|st| st != AWSCURRENT);
            if v.id == to {
                v.stages.push(AWSCURRENT.into());
            }
        }
        Ok(())
    }

    async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("TagResource", id)?;
        let s = w
            .secrets
            .get_mut(&key)
            .ok_or_else(|| err("TagResource", "ResourceNotFoundException"))?;
        s.tags.extend(tags.iter().cloned());
        Ok(())
    }

    async fn set_kms_key(&self, id: &str, key_id: &str) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("UpdateSecret", id)?;
        if let Some(s) = w.secrets.get_mut(&key) {
            s.kms = Some(key_id.into());
        }
        Ok(())
    }

    async fn restore(&self, id: &str) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("RestoreSecret", id)?;
        if let Some(s) = w.secrets.get_mut(&key) {
            s.deleted = false;
        }
        Ok(())
    }

    async fn delete(&self, id: &str, _window_days: i64) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("DeleteSecret", id)?;
        if let Some(s) = w.secrets.get_mut(&key) {
            s.deleted = true;
        }
        Ok(())
    }

    async fn untag(&self, id: &str, keys: &[String]) -> Result<(), Error> {
        let key = self.key(id);
        let mut w = self.enter("UntagResource", id)?;
        if let Some(s) = w.secrets.get_mut(&key) {
            s.tags.retain(|(k, _)| !keys.contains(k));
        }
        Ok(())
    }

    async fn set_description(&self, id: &str, _description: &str) -> Result<(), Error> {
        let _w = self.enter("UpdateSecret", id)?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<crate::store::Listed>, Error> {
        let w = self.enter("ListSecrets", "")?;
        Ok(w.secrets
            .iter()
            .filter(|(k, _)| k.0 == self.account && k.1 == self.region)
            .map(|(k, s)| crate::store::Listed {
                arn: s.arn.clone(),
                name: k.2.clone(),
                tags: s.tags.clone(),
                deleted: s.deleted,
            })
            .collect())
    }

    async fn key_arn(&self, key_id: &str) -> Result<String, Error> {
        let _w = self.enter("DescribeKey", key_id)?;
        Ok(format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region,
            self.account,
            key_id.trim_start_matches("alias/")
        ))
    }
}

#[derive(Debug, Clone, Default)]
struct FakeStores {
    world: Arc<Mutex<World>>,
}

impl Stores for FakeStores {
    type Store = Fake;

    fn own(&self, region: Option<&str>) -> Fake {
        Fake {
            world: self.world.clone(),
            account: OWN.into(),
            region: region.unwrap_or("us-east-1").into(),
        }
    }

    async fn destination(
        &self,
        region: &str,
        role: Option<&crate::config::Role>,
    ) -> Result<Fake, Error> {
        if role.is_some() {
            self.world.lock().unwrap().assumed += 1;
        }
        Ok(Fake {
            world: self.world.clone(),
            account: role
                .map(|r| r.account.clone())
                .unwrap_or_else(|| OWN.into()),
            region: region.into(),
        })
    }
}

impl FakeStores {
    fn seed(&self, region: &str, name: &str, version: &str, value: &str) {
        let mut w = self.world.lock().unwrap();
        let key = (OWN.to_string(), region.to_string(), name.to_string());
        let s = w.secrets.entry(key).or_insert_with(|| FakeSecret {
            arn: format!("arn:aws:secretsmanager:{region}:{OWN}:secret:{name}-AbCdEf"),
            ..FakeSecret::default()
        });
        s.add(version, SecretValue::String(value.into()));
    }

    fn secret(&self, account: &str, region: &str, name: &str) -> Option<FakeSecret> {
        let w = self.world.lock().unwrap();
        w.secrets
            .get(&(account.to_string(), region.to_string(), name.to_string()))
            .cloned()
    }

    fn value(&self, account: &str, region: &str, name: &str) -> Option<String> {
        self.secret(account, region, name)
            .and_then(|s| s.current().cloned())
            .map(|v| match v.value {
                SecretValue::String(s) => s,
                SecretValue::Binary(_) => "<binary>".into(),
            })
    }

    fn fail(&self, op: &'static str, name: &str, code: &'static str, times: usize) {
        self.world
            .lock()
            .unwrap()
            .faults
            .push((op, name.into(), code, times));
    }

    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.world.lock().unwrap().calls)
    }

    fn edit(&self, account: &str, region: &str, name: &str, f: impl FnOnce(&mut FakeSecret)) {
        let mut w = self.world.lock().unwrap();
        if let Some(s) =
            w.secrets
                .get_mut(&(account.to_string(), region.to_string(), name.to_string()))
        {
            f(s);
        }
    }
}

async fn config(doc: &str) -> Config {
    load_document(doc, &NoFetcher).await.unwrap()
}

fn sref(name: &str) -> SecretRef {
    SecretRef {
        id: name.into(),
        name: Some(name.into()),
    }
}

async fn run(stores: &FakeStores, shared: &Shared, c: &Config, name: &str) -> Vec<Outcome> {
    match replicate_source(
        stores,
        shared,
        c,
        &sref(name),
        Some("us-east-1"),
        Job::VALUE,
    )
    .await
    {
        SourceResult::Outcomes(o) => o,
        SourceResult::Failed { error, .. } => panic!("source failed: {error}"),
    }
}

const WEST: &str = r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","name":"dr/${SECRET_NAME}"}]}]}"#;

#[tokio::test]
async fn first_write_creates_then_steady_state_is_three_calls() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Create)
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
    let first = s.calls();
    assert_eq!(first.len(), 4, "{first:?}");

    s.seed("us-east-1", "app/db", "v2", "two");
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Update)
    );
    let steady = s.calls();
    assert_eq!(
        steady,
        [
            "GetSecretValue app/db",
            "PutSecretValue dr/app/db",
            "DescribeSecret arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf"
        ]
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
}

#[tokio::test]
async fn a_replay_writes_no_new_version() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &shared, &c, "app/db").await;
    run(&s, &shared, &c, "app/db").await;
    run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        s.secret(OWN, "us-west-2", "dr/app/db")
            .unwrap()
            .versions
            .len(),
        1
    );
}

#[tokio::test]
async fn a_write_to_a_destination_deleted_since_the_check_restores_it() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &shared, &c, "app/db").await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| d.deleted = true);
    s.seed("us-east-1", "app/db", "v2", "two");
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Restored, Action::Restore),
        "{o:?}"
    );
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert!(!d.deleted);
    assert!(s.calls().iter().any(|c| c.starts_with("RestoreSecret")));
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
}

#[tokio::test]
async fn a_token_used_with_another_value_is_rewritten_with_a_fresh_token() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &shared, &c, "app/db").await;
    // Somebody wrote another value under our token (the only way to get a collision).
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.versions[0].value = SecretValue::String("tampered".into())
    });
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated);
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert_eq!(d.versions.len(), 2);
    let cur = d.current().unwrap();
    assert!(crate::token::is_replicator_token(&cur.id));
    assert_eq!(cur.value, SecretValue::String("one".into()));
}

#[tokio::test]
async fn awscurrent_is_moved_back_onto_the_token_after_a_hand_edit() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &shared, &c, "app/db").await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::String("by hand".into()))
    });
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(o[0].action, Action::Label);
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

/// A destination whose AWSCURRENT was moved by hand to a version named "hand".
async fn hand_edited(s: &FakeStores, shared: &Shared, c: &Config) {
    s.seed("us-east-1", "app/db", "v1", "one");
    run(s, shared, c, "app/db").await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::String("by hand".into()))
    });
    s.calls();
}

#[tokio::test]
async fn a_label_move_whose_lost_answer_is_retried_is_not_a_failure() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    hand_edited(&s, &shared, &c).await;
    // The first attempt moved the label, its answer was lost, and the SDK's retry finds the
    // label gone from "hand": AWS answers InvalidParameterException.
    s.world.lock().unwrap().before_stage = Some(|w: &mut World| {
        for s in w
            .secrets
            .values_mut()
            .filter(|s| s.arn.contains("dr/app/db"))
        {
            for v in &mut s.versions {
                v.stages.retain(|st| st != AWSCURRENT);
            }
            if let Some(v) = s
                .versions
                .iter_mut()
                .find(|v| v.id != "hand" && v.id != "v1")
            {
                v.stages.push(AWSCURRENT.into());
            }
        }
    });
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Label)
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
    let stage_calls = s
        .calls()
        .iter()
        .filter(|c| c.starts_with("UpdateSecretVersionStage"))
        .count();
    assert_eq!(
        stage_calls, 1,
        "no second move once the label is where it should be"
    );
}

#[tokio::test]
async fn a_label_moved_by_someone_else_meanwhile_is_moved_from_where_it_is_now() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    hand_edited(&s, &shared, &c).await;
    // Between our look and our move, another hand edit takes the label.
    s.world.lock().unwrap().before_stage = Some(|w: &mut World| {
        for s in w
            .secrets
            .values_mut()
            .filter(|s| s.arn.contains("dr/app/db"))
        {
            s.add("hand2", SecretValue::String("by hand again".into()));
        }
    });
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Label)
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

#[tokio::test]
async fn a_label_that_keeps_moving_fails_after_bounded_rounds() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    let c = config(WEST).await;
    hand_edited(&s, &shared, &c).await;
    s.fail(
        "UpdateSecretVersionStage",
        "dr/app/db",
        "InvalidParameterException",
        10,
    );
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!((o[0].status, o[0].action), (Status::Failed, Action::Label));
    let stage_calls = s
        .calls()
        .iter()
        .filter(|c| c.starts_with("UpdateSecretVersionStage"))
        .count();
    assert_eq!(stage_calls, crate::replicate::LABEL_ROUNDS);
}

#[tokio::test]
async fn an_unowned_destination_is_refused_unless_adopted() {
    let s = FakeStores::default();
    let shared = Shared::new(25);
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed("us-west-2", "dr/app/db", "mine", "precious");
    let o = run(&s, &shared, &config(WEST).await, "app/db").await;
    assert_eq!(o[0].status, Status::Failed);
    assert_eq!(o[0].status_code, 409);
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("precious")
    );

    let adopt = WEST.replace(
        r#""name":"dr/${SECRET_NAME}""#,
        r#""name":"dr/${SECRET_NAME}","adopt":true"#,
    );
    let o = run(&s, &Shared::new(25), &config(&adopt).await, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert!(
        d.tags
            .iter()
            .any(|(k, v)| k == MARKER_TAG && v == "111122223333:us-east-1:app/db")
    );
}

#[tokio::test]
async fn a_marker_naming_another_source_is_always_a_conflict() {
    let s = FakeStores::default();
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed("us-west-2", "dr/app/db", "x", "other's");
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.tags
            .push((MARKER_TAG.into(), "999999999999:us-east-1:app/db".into()))
    });
    let adopt = WEST.replace(
        r#""name":"dr/${SECRET_NAME}""#,
        r#""name":"dr/${SECRET_NAME}","adopt":true"#,
    );
    let o = run(&s, &Shared::new(25), &config(&adopt).await, "app/db").await;
    assert_eq!(
        o[0].error.as_ref().unwrap().kind,
        ErrorKind::DestinationConflict
    );
}

#[tokio::test]
async fn the_kms_key_is_brought_to_the_configured_one() {
    let s = FakeStores::default();
    s.seed("us-east-1", "app/db", "v1", "one");
    let with_key = |k: &str| {
        WEST.replace(
            r#""name":"dr/${SECRET_NAME}""#,
            &format!(r#""name":"dr/${{SECRET_NAME}}","kms_key_id":"{k}""#),
        )
    };
    run(
        &s,
        &Shared::new(25),
        &config(&with_key("alias/a")).await,
        "app/db",
    )
    .await;
    assert_eq!(
        s.secret(OWN, "us-west-2", "dr/app/db")
            .unwrap()
            .kms
            .as_deref(),
        Some("alias/a")
    );
    s.calls();
    // A new container with another key: the ownership check moves the secret to it.
    let o = run(
        &s,
        &Shared::new(25),
        &config(&with_key("alias/b")).await,
        "app/db",
    )
    .await;
    assert_eq!(o[0].status, Status::Replicated);
    assert_eq!(
        s.secret(OWN, "us-west-2", "dr/app/db")
            .unwrap()
            .kms
            .as_deref(),
        Some("alias/b")
    );
    assert_eq!(
        s.calls()
            .iter()
            .filter(|c| c.starts_with("UpdateSecret "))
            .count(),
        1
    );
}

#[tokio::test]
async fn one_failing_destination_does_not_stop_the_others() {
    let s = FakeStores::default();
    let c = config(
        r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2"},{"region":"eu-west-1","name":"eu/${SECRET_NAME}"}]}]}"#,
    )
    .await;
    s.seed("us-east-1", "app/db", "v1", "one");
    s.fail("CreateSecret", "eu/app/db", "AccessDeniedException", 1);
    let o = run(&s, &Shared::new(25), &c, "app/db").await;
    let statuses: Vec<Status> = o.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == Status::Failed).count(),
        1,
        "{o:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == Status::Replicated)
            .count(),
        1,
        "{o:?}"
    );
    assert_eq!(s.value(OWN, "us-west-2", "app/db").as_deref(), Some("one"));
    let report = Report::from_results(o, vec![]);
    assert_eq!(report.status_code, 207);
}

#[tokio::test]
async fn a_source_that_moves_during_replication_is_replicated_again() {
    let s = FakeStores::default();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    // Another writer changes the source while our first write is in flight.
    s.world.lock().unwrap().after_write = Some(|w: &mut World| {
        let key = (
            OWN.to_string(),
            "us-east-1".to_string(),
            "app/db".to_string(),
        );
        if let Some(sec) = w.secrets.get_mut(&key) {
            sec.add("v2", SecretValue::String("two".into()));
        }
    });
    let o = run(&s, &Shared::new(25), &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated);
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
    let reads = s
        .calls()
        .iter()
        .filter(|c| c.starts_with("GetSecretValue"))
        .count();
    assert_eq!(reads, 2);
}

#[tokio::test]
async fn a_binary_source_with_transforms_fails_instead_of_corrupting() {
    let s = FakeStores::default();
    let c = config(
        r#"{"rules":[{"match":["**"],"destinations":[{"region":"us-west-2","transforms":[{"sed":"s/a/b/"}]}]}]}"#,
    )
    .await;
    {
        let mut w = s.world.lock().unwrap();
        let mut sec = FakeSecret {
            arn: format!("arn:aws:secretsmanager:us-east-1:{OWN}:secret:bin-AbCdEf"),
            ..FakeSecret::default()
        };
        sec.add("v1", SecretValue::Binary(vec![0, 1, 2]));
        w.secrets
            .insert((OWN.into(), "us-east-1".into(), "bin".into()), sec);
    }
    let o = run(&s, &Shared::new(25), &c, "bin").await;
    assert_eq!(
        o[0].error.as_ref().unwrap().kind,
        ErrorKind::TransformFailed
    );
    assert!(s.secret(OWN, "us-west-2", "bin").is_none());
}

#[tokio::test]
async fn a_name_no_rule_matches_is_not_even_read() {
    let s = FakeStores::default();
    let c = config(WEST).await;
    let o = run(&s, &Shared::new(25), &c, "other/db").await;
    assert_eq!(
        o[0].reason.as_deref(),
        Some(rules::reason::NO_MATCHING_RULE)
    );
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn a_missing_source_is_source_not_found() {
    let s = FakeStores::default();
    let c = config(WEST).await;
    match replicate_source(
        &s,
        &Shared::new(25),
        &c,
        &sref("app/none"),
        None,
        Job::VALUE,
    )
    .await
    {
        SourceResult::Failed { error, .. } => assert_eq!(error.kind(), ErrorKind::SourceNotFound),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_limiter_allows_a_burst_then_spaces_writes() {
    let l = WriteLimiter::new(4);
    let waits: Vec<Duration> = (0..6).map(|_| l.reserve("1", "r")).collect();
    assert!(waits[..4].iter().all(|w| w.is_zero()), "{waits:?}");
    assert!(waits[4] > Duration::from_millis(200), "{waits:?}");
    assert!(waits[5] > waits[4]);
    // Another account/region has its own budget.
    assert!(l.reserve("2", "r").is_zero());
}

const WRITES: [&str; 8] = [
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "UpdateSecret",
    "TagResource",
    "UntagResource",
    "RestoreSecret",
    "DeleteSecret",
];

fn writes(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| WRITES.iter().any(|w| c.starts_with(&format!("{w} "))))
        .cloned()
        .collect()
}

async fn run_job(
    s: &FakeStores,
    shared: &Shared,
    c: &Config,
    name: &str,
    mode: Mode,
) -> Vec<Outcome> {
    let job = Job {
        mode,
        value: true,
        metadata: true,
    };
    match replicate_source(s, shared, c, &sref(name), Some("us-east-1"), job).await {
        SourceResult::Outcomes(o) => o,
        SourceResult::Failed { error, .. } => panic!("{error}"),
    }
}

#[tokio::test]
async fn compare_mode_writes_nothing_when_the_copy_is_in_sync_and_repairs_drift() {
    let s = FakeStores::default();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Compare).await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Create)
    );
    s.calls();
    // A fresh container, nothing changed: reads only.
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Compare).await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Unchanged, Action::None)
    );
    assert!(writes(&s.calls()).is_empty());
    // Hand-edited: rewritten.
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::String("drift".into()))
    });
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Compare).await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

#[tokio::test]
async fn compare_mode_leaves_an_equal_value_written_by_someone_else_alone() {
    let s = FakeStores::default();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run_job(&s, &Shared::new(25), &c, "app/db", Mode::Compare).await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::String("one".into()))
    });
    s.calls();
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Compare).await;
    assert_eq!(o[0].status, Status::Unchanged);
    assert!(writes(&s.calls()).is_empty());
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let s = FakeStores::default();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "a value");
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Plan).await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Planned, Action::Create)
    );
    assert_eq!((o[0].size, o[0].would_change), (Some(7), Some(true)));
    assert!(writes(&s.calls()).is_empty());
    assert!(s.secret(OWN, "us-west-2", "dr/app/db").is_none());

    run_job(&s, &Shared::new(25), &c, "app/db", Mode::Compare).await;
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Plan).await;
    assert_eq!(
        (o[0].action, o[0].would_change),
        (Action::None, Some(false))
    );
    s.seed("us-east-1", "app/db", "v2", "another");
    s.calls();
    let o = run_job(&s, &Shared::new(25), &c, "app/db", Mode::Plan).await;
    assert_eq!(
        (o[0].action, o[0].would_change),
        (Action::Update, Some(true))
    );
    assert!(writes(&s.calls()).is_empty());
    let json = serde_json::to_value(&o[0]).unwrap();
    assert_eq!(json["status"], "planned");
    assert_eq!(json["wouldChange"], true);
    assert_eq!(json["size"], 7);
}

/// A DeleteSecret event for `app/db`, processed by a fresh container.
async fn deletion(s: &FakeStores, c: &Config) -> Vec<Outcome> {
    let r = delete_source(
        s,
        &Shared::new(25),
        c,
        &sref("app/db"),
        Some("us-east-1"),
        None,
        false,
    )
    .await;
    match r {
        SourceResult::Outcomes(o) => o,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deletion_follows_the_source_only_where_configured_and_owned() {
    let s = FakeStores::default();
    let c = config(
        r#"{"rules":[{"match":["app/**"],"destinations":[
            {"region":"us-west-2","delete_with_source":true},
            {"region":"eu-west-1"}
        ]}]}"#,
    )
    .await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &Shared::new(25), &c, "app/db").await;
    s.edit(OWN, "us-east-1", "app/db", |d| d.deleted = true);
    let o = deletion(&s, &c).await;
    let by_region = |r: &str| {
        o.iter()
            .find(|x| x.destination.as_ref().unwrap().region == r)
            .unwrap()
    };
    assert_eq!(by_region("us-west-2").status, Status::Deleted);
    assert_eq!(
        by_region("eu-west-1").reason.as_deref(),
        Some(reason::DELETE_SYNC_OFF)
    );
    assert!(s.secret(OWN, "us-west-2", "app/db").unwrap().deleted);
    assert!(!s.secret(OWN, "eu-west-1", "app/db").unwrap().deleted);

    // A restored source brings its copy back (the next event converges on the source's state).
    s.edit(OWN, "us-east-1", "app/db", |d| d.deleted = false);
    let o = deletion(&s, &c).await;
    let restored = o
        .iter()
        .find(|x| x.destination.as_ref().unwrap().region == "us-west-2")
        .unwrap();
    assert_eq!(restored.status, Status::Restored, "{o:?}");
    assert!(o.iter().all(|x| !x.is_failure()), "{o:?}");
    assert!(!s.secret(OWN, "us-west-2", "app/db").unwrap().deleted);
}

#[tokio::test]
async fn deletion_never_touches_a_secret_this_source_does_not_own() {
    let s = FakeStores::default();
    let c = config(r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","delete_with_source":true}]}]}"#).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed("us-west-2", "app/db", "x", "not ours");
    s.edit(OWN, "us-east-1", "app/db", |d| d.deleted = true);
    let o = deletion(&s, &c).await;
    assert_eq!(o[0].reason.as_deref(), Some(reason::NOT_OWNED));
    assert!(!s.secret(OWN, "us-west-2", "app/db").unwrap().deleted);
}

#[test]
fn the_recovery_window_is_what_is_left_of_the_source_s_at_least_7_days() {
    let now = std::time::SystemTime::now();
    let days = |d: u64| Some(now + Duration::from_secs(d * 86_400 - 60));
    assert_eq!(window_days(days(20)), 20);
    assert_eq!(window_days(days(2)), 7);
    assert_eq!(window_days(None), 7);
    assert_eq!(window_days(days(40)), 30);
}
