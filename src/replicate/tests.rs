//! The pipeline against the in-memory Secrets Manager (`store::memory`), which keeps AWS's
//! version-stage rules and can be told to fail any call with any AWS code. It covers what moto
//! cannot show: writes to a secret scheduled for deletion, token collisions, races, stale reads.

use super::*;
use crate::config::{NoFetcher, load_document};
use crate::event::DeletionWindow;
use crate::outcome::{ErrorKind, Report};
use crate::secret::SecretValue;
use crate::store::AWSCURRENT;
use crate::store::memory::{MemoryStores, Secret, World};

const OWN: &str = "111122223333";

fn stores() -> MemoryStores {
    MemoryStores::new(OWN, "us-east-1")
}

/// A fresh container's state.
fn fresh() -> ContainerState {
    ContainerState::new(25.0, 1)
}

/// Fast retries: the tests' clock is paused anyway.
const RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial_backoff: Duration::from_millis(1),
    max_backoff: Duration::from_millis(5),
};

async fn source_job(
    stores: &MemoryStores,
    state: &ContainerState,
    c: &Config,
    name: &str,
    job: Job,
) -> SourceResult {
    Replicator {
        stores,
        state,
        config: c,
        retry: RETRY,
    }
    .source(&sref(name), Some("us-east-1"), job, Known::default())
    .await
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

async fn run(
    stores: &MemoryStores,
    state: &ContainerState,
    c: &Config,
    name: &str,
) -> Vec<Outcome> {
    match source_job(stores, state, c, name, Job::VALUE).await {
        SourceResult::Outcomes(o) => o,
        SourceResult::Failed { error, .. } => panic!("source failed: {error}"),
    }
}

const WEST: &str = r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","name":"dr/${SECRET_NAME}"}]}]}"#;

#[tokio::test(start_paused = true)]
async fn first_write_creates_then_steady_state_is_three_calls() {
    let s = stores();
    let shared = fresh();
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

#[tokio::test(start_paused = true)]
async fn a_replay_writes_no_new_version() {
    let s = stores();
    let shared = fresh();
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

#[tokio::test(start_paused = true)]
async fn a_write_to_a_destination_deleted_since_the_check_restores_it() {
    let s = stores();
    let shared = fresh();
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

#[tokio::test(start_paused = true)]
async fn a_token_used_with_another_value_is_rewritten_with_a_fresh_token() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &shared, &c, "app/db").await;
    // Somebody wrote another value under our token (the only way to get a collision).
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.versions[0].value = SecretValue::text("tampered".into())
    });
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated);
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert_eq!(d.versions.len(), 2);
    let cur = d.current().unwrap();
    assert!(crate::token::is_replicator_token(&cur.id));
    assert_eq!(cur.value, SecretValue::text("one".into()));
}

#[tokio::test(start_paused = true)]
async fn awscurrent_is_moved_back_onto_the_token_after_a_hand_edit() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &shared, &c, "app/db").await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::text("by hand".into()))
    });
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(o[0].action, Action::Label);
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

/// A destination whose AWSCURRENT was moved by hand to a version named "hand".
async fn hand_edited(s: &MemoryStores, shared: &ContainerState, c: &Config) {
    s.seed("us-east-1", "app/db", "v1", "one");
    run(s, shared, c, "app/db").await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::text("by hand".into()))
    });
    s.calls();
}

#[tokio::test(start_paused = true)]
async fn a_label_move_whose_lost_answer_is_retried_is_not_a_failure() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    hand_edited(&s, &shared, &c).await;
    // The first attempt moved the label, its answer was lost, and the SDK's retry finds the
    // label gone from "hand": AWS answers InvalidParameterException.
    s.before_next_label_move(|w: &mut World| {
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

#[tokio::test(start_paused = true)]
async fn a_label_moved_by_someone_else_meanwhile_is_moved_from_where_it_is_now() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    hand_edited(&s, &shared, &c).await;
    // Between our look and our move, another hand edit takes the label.
    s.before_next_label_move(|w: &mut World| {
        for s in w
            .secrets
            .values_mut()
            .filter(|s| s.arn.contains("dr/app/db"))
        {
            s.add("hand2", SecretValue::text("by hand again".into()));
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

#[tokio::test(start_paused = true)]
async fn a_label_that_keeps_moving_fails_after_bounded_rounds() {
    let s = stores();
    let shared = fresh();
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
    assert_eq!(stage_calls, MAX_RACES, "bounded");
}

#[tokio::test(start_paused = true)]
async fn an_unowned_destination_is_refused_unless_adopted() {
    let s = stores();
    let shared = fresh();
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
    let o = run(&s, &fresh(), &config(&adopt).await, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert!(
        d.tags
            .iter()
            .any(|(k, v)| k == MARKER_TAG && v == "111122223333:us-east-1:app/db")
    );
}

#[tokio::test(start_paused = true)]
async fn a_marker_naming_another_source_is_always_a_conflict() {
    let s = stores();
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
    let o = run(&s, &fresh(), &config(&adopt).await, "app/db").await;
    assert_eq!(
        o[0].error.as_ref().unwrap().kind,
        ErrorKind::DestinationConflict
    );
}

#[tokio::test(start_paused = true)]
async fn the_kms_key_is_brought_to_the_configured_one() {
    let s = stores();
    s.seed("us-east-1", "app/db", "v1", "one");
    s.add_key(OWN, "us-west-2", "key-a", &["alias/a"], true);
    s.add_key(OWN, "us-west-2", "key-b", &["alias/b"], true);
    let with_key = |k: &str| {
        WEST.replace(
            r#""name":"dr/${SECRET_NAME}""#,
            &format!(r#""name":"dr/${{SECRET_NAME}}","kms_key_id":"{k}""#),
        )
    };
    run(&s, &fresh(), &config(&with_key("alias/a")).await, "app/db").await;
    assert_eq!(
        s.secret(OWN, "us-west-2", "dr/app/db")
            .unwrap()
            .kms
            .as_deref(),
        Some("alias/a")
    );
    s.calls();
    // A new container with another key: the ownership check moves the secret to it.
    let o = run(&s, &fresh(), &config(&with_key("alias/b")).await, "app/db").await;
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
    // The current value is a version written after the key change: readable with the
    // configured key alone (SPEC §8).
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert_eq!(d.versions.len(), 2);
    assert_eq!(d.current().unwrap().written_key.as_deref(), Some("alias/b"));
}

#[tokio::test(start_paused = true)]
async fn one_failing_destination_does_not_stop_the_others() {
    let s = stores();
    let c = config(
        r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2"},{"region":"eu-west-1","name":"eu/${SECRET_NAME}"}]}]}"#,
    )
    .await;
    s.seed("us-east-1", "app/db", "v1", "one");
    s.fail("CreateSecret", "eu/app/db", "AccessDeniedException", 1);
    let o = run(&s, &fresh(), &c, "app/db").await;
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

#[tokio::test(start_paused = true)]
async fn a_source_that_moves_during_replication_is_replicated_again() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    // Another writer changes the source while our first write is in flight.
    s.after_next_write(|w: &mut World| {
        let key = (
            OWN.to_string(),
            "us-east-1".to_string(),
            "app/db".to_string(),
        );
        if let Some(sec) = w.secrets.get_mut(&key) {
            sec.add("v2", SecretValue::text("two".into()));
        }
    });
    let o = run(&s, &fresh(), &c, "app/db").await;
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

#[tokio::test(start_paused = true)]
async fn a_binary_source_with_transforms_fails_instead_of_corrupting() {
    let s = stores();
    let c = config(
        r#"{"rules":[{"match":["**"],"destinations":[{"region":"us-west-2","transforms":[{"sed":"s/a/b/"}]}]}]}"#,
    )
    .await;
    {
        let mut w = s.world.lock().unwrap();
        let mut sec = Secret {
            arn: format!("arn:aws:secretsmanager:us-east-1:{OWN}:secret:bin-AbCdEf"),
            ..Secret::default()
        };
        sec.add("v1", SecretValue::bytes(vec![0, 1, 2]));
        w.secrets
            .insert((OWN.into(), "us-east-1".into(), "bin".into()), sec);
    }
    let o = run(&s, &fresh(), &c, "bin").await;
    assert_eq!(
        o[0].error.as_ref().unwrap().kind,
        ErrorKind::TransformFailed
    );
    assert!(s.secret(OWN, "us-west-2", "bin").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_name_no_rule_matches_is_not_even_read() {
    let s = stores();
    let c = config(WEST).await;
    let o = run(&s, &fresh(), &c, "other/db").await;
    assert_eq!(o[0].reason, Some(SkipReason::NoMatchingRule));
    assert!(s.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_source_is_source_not_found() {
    let s = stores();
    let c = config(WEST).await;
    match source_job(&s, &fresh(), &c, "app/none", Job::VALUE).await {
        SourceResult::Failed { error, .. } => assert_eq!(error.kind(), ErrorKind::SourceNotFound),
        other => panic!("{other:?}"),
    }
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
    s: &MemoryStores,
    shared: &ContainerState,
    c: &Config,
    name: &str,
    mode: Mode,
) -> Vec<Outcome> {
    let job = Job {
        mode,
        scope: Scope::Both,
    };
    match source_job(s, shared, c, name, job).await {
        SourceResult::Outcomes(o) => o,
        SourceResult::Failed { error, .. } => panic!("{error}"),
    }
}

#[tokio::test(start_paused = true)]
async fn compare_mode_writes_nothing_when_the_copy_is_in_sync_and_repairs_drift() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Compare).await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Create)
    );
    s.calls();
    // A fresh container, nothing changed: reads only.
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Compare).await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Unchanged, Action::None)
    );
    assert!(writes(&s.calls()).is_empty());
    // Hand-edited: rewritten.
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::text("drift".into()))
    });
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Compare).await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

#[tokio::test(start_paused = true)]
async fn compare_mode_leaves_an_equal_value_written_by_someone_else_alone() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run_job(&s, &fresh(), &c, "app/db", Mode::Compare).await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.add("hand", SecretValue::text("one".into()))
    });
    s.calls();
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Compare).await;
    assert_eq!(o[0].status, Status::Unchanged);
    assert!(writes(&s.calls()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_reports_and_writes_nothing() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "a value");
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Plan).await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Planned, Action::Create)
    );
    assert_eq!((o[0].size, o[0].would_change), (Some(7), Some(true)));
    assert!(writes(&s.calls()).is_empty());
    assert!(s.secret(OWN, "us-west-2", "dr/app/db").is_none());

    run_job(&s, &fresh(), &c, "app/db", Mode::Compare).await;
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Plan).await;
    assert_eq!(
        (o[0].action, o[0].would_change),
        (Action::None, Some(false))
    );
    s.seed("us-east-1", "app/db", "v2", "another");
    s.calls();
    let o = run_job(&s, &fresh(), &c, "app/db", Mode::Plan).await;
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
async fn deletion(s: &MemoryStores, c: &Config) -> Vec<Outcome> {
    let r = Replicator {
        stores: s,
        state: &fresh(),
        config: c,
        retry: RETRY,
    }
    .delete(
        &sref("app/db"),
        Some("us-east-1"),
        None,
        DeletionWindow::Unknown,
        false,
    )
    .await;
    match r {
        SourceResult::Outcomes(o) => o,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn deletion_follows_the_source_only_where_configured_and_owned() {
    let s = stores();
    let c = config(
        r#"{"rules":[{"match":["app/**"],"destinations":[
            {"region":"us-west-2","delete_with_source":true},
            {"region":"eu-west-1"}
        ]}]}"#,
    )
    .await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &fresh(), &c, "app/db").await;
    s.edit(OWN, "us-east-1", "app/db", |d| d.deleted = true);
    let o = deletion(&s, &c).await;
    let by_region = |r: &str| {
        o.iter()
            .find(|x| x.destination.as_ref().unwrap().region == r)
            .unwrap()
    };
    assert_eq!(by_region("us-west-2").status, Status::Deleted);
    assert_eq!(
        by_region("eu-west-1").reason,
        Some(SkipReason::DeleteSyncOff)
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

#[tokio::test(start_paused = true)]
async fn deletion_never_touches_a_secret_this_source_does_not_own() {
    let s = stores();
    let c = config(r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","delete_with_source":true}]}]}"#).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed("us-west-2", "app/db", "x", "not ours");
    s.edit(OWN, "us-east-1", "app/db", |d| d.deleted = true);
    let o = deletion(&s, &c).await;
    assert_eq!(o[0].reason, Some(SkipReason::NotOwned));
    assert!(!s.secret(OWN, "us-west-2", "app/db").unwrap().deleted);
}

// ---- SPEC §12: AWS as documented ---------------------------------------------------------------

/// A destination with a copy of `app/db` written by a first container, then a new container.
async fn owned_copy(s: &MemoryStores, c: &Config) {
    s.seed("us-east-1", "app/db", "v1", "one");
    run(s, &fresh(), c, "app/db").await;
    s.seed("us-east-1", "app/db", "v2", "two");
    s.calls();
}

#[tokio::test(start_paused = true)]
async fn primary_region_on_an_owned_primary_is_not_a_native_replica() {
    // AWS returns PrimaryRegion on primaries too (the memory does, like AWS): a fresh container
    // must still write the copies it owns.
    let s = stores();
    let c = config(WEST).await;
    owned_copy(&s, &c).await;
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert!(d.replica_of.is_none());
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Update),
        "{o:?}"
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
}

#[tokio::test(start_paused = true)]
async fn a_native_replica_is_never_written() {
    let s = stores();
    let c = config(WEST).await;
    owned_copy(&s, &c).await;
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.replica_of = Some("eu-central-1".into())
    });
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].status_code, 409, "{o:?}");
    assert!(writes(&s.calls()).is_empty());
}

/// WEST with a KMS key on its destination.
fn west_with_key(key: &str) -> String {
    WEST.replace(
        r#""name":"dr/${SECRET_NAME}""#,
        &format!(r#""name":"dr/${{SECRET_NAME}}","kms_key_id":"{key}""#),
    )
}

#[tokio::test(start_paused = true)]
async fn the_destination_s_own_key_is_never_described_and_a_rekey_writes_a_new_version() {
    let s = stores();
    s.add_key(OWN, "us-west-2", "configured", &["alias/dr"], true);
    // Somebody else's key: the function may not describe it (least privilege).
    s.add_key(OWN, "us-west-2", "theirs", &["alias/theirs"], false);
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed(
        "us-west-2",
        "dr/app/db",
        "00000000-0000-4000-8000-0000000000aa",
        "old",
    );
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.kms = Some(format!("arn:aws:kms:us-west-2:{OWN}:key/theirs"))
    });
    let adopt =
        west_with_key("alias/dr").replace(r#""kms_key_id""#, r#""adopt":true,"kms_key_id""#);
    let c = config(&adopt).await;
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    let calls = s.calls();
    let described: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("DescribeKey"))
        .collect();
    assert_eq!(described, ["DescribeKey alias/dr"], "{calls:?}");
    let d = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert_eq!(d.kms.as_deref(), Some("alias/dr"));
    // The current value was written after UpdateSecret(KmsKeyId).
    let cur = d.current().unwrap();
    assert_eq!(cur.written_key.as_deref(), Some("alias/dr"));
    assert_eq!(cur.value, SecretValue::text("one".into()));
    // UpdateSecret carried the key only; the value went through PutSecretValue.
    let update = calls
        .iter()
        .position(|c| c.starts_with("UpdateSecret "))
        .unwrap();
    let put = calls
        .iter()
        .position(|c| c.starts_with("PutSecretValue"))
        .unwrap();
    assert!(update < put, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_destination_already_on_the_configured_key_in_any_form_is_left_alone() {
    for have in [
        format!("arn:aws:kms:us-west-2:{OWN}:key/configured"),
        "configured".to_string(),
        format!("arn:aws:kms:us-west-2:{OWN}:alias/dr"),
        "alias/dr".to_string(),
    ] {
        let s = stores();
        s.add_key(OWN, "us-west-2", "configured", &["alias/dr"], true);
        let c = config(&west_with_key("alias/dr")).await;
        owned_copy(&s, &c).await;
        s.edit(OWN, "us-west-2", "dr/app/db", |d| {
            d.kms = Some(have.clone())
        });
        let o = run(&s, &fresh(), &c, "app/db").await;
        assert_eq!(o[0].action, Action::Update, "{have}: {o:?}");
        let calls = s.calls();
        assert!(
            !calls.iter().any(|c| c.starts_with("UpdateSecret ")),
            "{have}: no re-key, {calls:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_managed_key_matches_a_destination_without_key_id_and_is_never_described() {
    let s = stores();
    let c = config(&west_with_key("alias/aws/secretsmanager")).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &fresh(), &c, "app/db").await;
    // AWS omits KmsKeyId for the managed key.
    s.edit(OWN, "us-west-2", "dr/app/db", |d| d.kms = None);
    s.calls();
    for mode in [Mode::Compare, Mode::Plan] {
        let o = run_job(&s, &fresh(), &c, "app/db", mode).await;
        assert_eq!(o[0].action, Action::None, "{mode:?}: {o:?}");
    }
    let calls = s.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("DescribeKey")),
        "{calls:?}"
    );
    assert!(writes(&calls).is_empty(), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_create_refused_as_existing_that_describe_does_not_find_yet_is_retried() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    // Another invocation created it; our describes lag behind (eventual consistency).
    s.seed(
        "us-west-2",
        "dr/app/db",
        "00000000-0000-4000-8000-0000000000bb",
        "other copy",
    );
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.tags = vec![(MARKER_TAG.into(), format!("{OWN}:us-east-1:app/db"))]
    });
    s.hide("dr/app/db", 3);
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );

    // When the contradiction persists: retriable (502), never a permanent 409.
    let s = stores();
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed(
        "us-west-2",
        "dr/app/db",
        "00000000-0000-4000-8000-0000000000bb",
        "other copy",
    );
    s.hide("dr/app/db", 100);
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].status, Status::Failed);
    assert_eq!(o[0].status_code, 502, "{o:?}");
    assert_eq!(
        o[0].retry_class,
        Some(crate::outcome::RetryClass::Retriable)
    );
    assert_eq!(o[0].error.as_ref().unwrap().kind, ErrorKind::ServiceError);
}

fn source_key() -> crate::store::memory::Key {
    (OWN.into(), "us-east-1".into(), "app/db".into())
}

#[tokio::test(start_paused = true)]
async fn a_stale_re_read_of_the_source_never_starts_another_round() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    run(&s, &fresh(), &c, "app/db").await;
    // v2 lands. Right after we write it, the source's reads lag behind: its description does
    // not list v2 yet and a value read would still answer v1.
    s.edit(OWN, "us-east-1", "app/db", |d| {
        d.add("v2", SecretValue::text("two".into()))
    });
    let before = s.secret(OWN, "us-east-1", "app/db").unwrap();
    s.after_next_write(move |w: &mut World| {
        let now = w.secrets.insert(source_key(), before.clone());
        // The state as it was before v2, for a while.
        let mut old = before.clone();
        old.versions.retain(|v| v.id == "v1");
        old.versions[0].stages = vec![AWSCURRENT.into()];
        w.secrets.insert(source_key(), old);
        w.freeze_describe(&source_key(), 2);
        w.freeze_value(&source_key(), 5);
        if let Some(now) = now {
            w.secrets.insert(source_key(), now);
        }
    });
    s.calls();
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    let calls = s.calls();
    let reads = calls
        .iter()
        .filter(|c| c.starts_with("GetSecretValue"))
        .count();
    assert_eq!(reads, 1, "a stale re-read is no move: {calls:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two"),
        "never rolled back to the stale version"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_behind_the_re_read_is_read_again_and_never_writes_the_older_value() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    // While v1 is written, v2 lands; the description shows it, the next two value reads do not.
    s.after_next_write(|w: &mut World| {
        w.freeze_value(&source_key(), 2);
        if let Some(sec) = w.secrets.get_mut(&source_key()) {
            sec.add("v2", SecretValue::text("two".into()));
        }
    });
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
    let calls = s.calls();
    let puts = writes(&calls)
        .iter()
        .filter(|c| c.starts_with("PutSecretValue"))
        .count();
    assert_eq!(
        puts, 1,
        "v1 created, v2 put, the stale answers never written: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_writes_are_retried_through_the_budget_which_slows_down() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let state = ContainerState::new(10.0, 2);
    run(&s, &state, &c, "app/db").await;
    s.seed("us-east-1", "app/db", "v2", "two");
    s.fail("PutSecretValue", "dr/app/db", "ThrottlingException", 2);
    s.calls();
    let o = run(&s, &state, &c, "app/db").await;
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    let puts = s
        .calls()
        .iter()
        .filter(|c| c.starts_with("PutSecretValue"))
        .count();
    assert_eq!(puts, 3, "two throttled attempts, then the write");
    // 10/s for 2 containers = 5/s; halved twice.
    assert_eq!(state.budget.share(), 5.0);
    assert_eq!(state.budget.rate(OWN, "us-west-2"), 1.25);

    // A quota is never retried within the invocation.
    s.seed("us-east-1", "app/db", "v3", "three");
    s.fail("PutSecretValue", "dr/app/db", "LimitExceededException", 5);
    s.calls();
    let o = run(&s, &state, &c, "app/db").await;
    assert_eq!(o[0].error.as_ref().unwrap().kind, ErrorKind::Throttled);
    let puts = s
        .calls()
        .iter()
        .filter(|c| c.starts_with("PutSecretValue"))
        .count();
    assert_eq!(puts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_secret_created_without_a_value_is_skipped_no_value() {
    let s = stores();
    let c = config(WEST).await;
    s.world.lock().unwrap().secrets.insert(
        (OWN.into(), "us-east-1".into(), "app/db".into()),
        Secret {
            arn: format!("arn:aws:secretsmanager:us-east-1:{OWN}:secret:app/db-AbCdEf"),
            ..Secret::default()
        },
    );
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].status, o[0].reason),
        (Status::Skipped, Some(SkipReason::NoValue))
    );
    // A secret that does not exist is still SourceNotFound.
    match source_job(&s, &fresh(), &c, "app/none", Job::VALUE).await {
        SourceResult::Failed { error, .. } => assert_eq!(error.kind(), ErrorKind::SourceNotFound),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn aws_tags_do_not_count_toward_50_and_creates_check_the_limit() {
    let doc = r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","copy_tags":true}]}]}"#;
    let c = config(doc).await;
    for (user_tags, ok) in [(49usize, true), (50, false)] {
        let s = stores();
        s.seed("us-east-1", "app/db", "v1", "one");
        s.edit(OWN, "us-east-1", "app/db", |d| {
            d.tags = (0..user_tags)
                .map(|i| (format!("k{i}"), "v".into()))
                .collect();
            d.tags
                .extend((0..20).map(|i| (format!("aws:t{i}"), "v".into())));
        });
        let o = run(&s, &fresh(), &c, "app/db").await;
        if ok {
            assert_eq!(o[0].status, Status::Replicated, "{user_tags}: {o:?}");
            let d = s.secret(OWN, "us-west-2", "app/db").unwrap();
            assert_eq!(d.tags.len(), 50, "49 copied + the marker, no aws: tags");
        } else {
            assert!(
                o[0].error.as_ref().unwrap().code.as_deref() == Some("TooManyTags"),
                "{o:?}"
            );
            assert_eq!(o[0].action, Action::Create);
            assert!(writes(&s.calls()).is_empty(), "refused before the call");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_adopted_destination_scheduled_for_deletion_is_restored_before_it_is_tagged() {
    let s = stores();
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed(
        "us-west-2",
        "dr/app/db",
        "00000000-0000-4000-8000-0000000000cc",
        "theirs",
    );
    s.edit(OWN, "us-west-2", "dr/app/db", |d| d.deleted = true);
    let adopt = WEST.replace(
        r#""name":"dr/${SECRET_NAME}""#,
        r#""name":"dr/${SECRET_NAME}","adopt":true"#,
    );
    let o = run(&s, &fresh(), &config(&adopt).await, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Restored, Action::Restore),
        "{o:?}"
    );
    let calls = writes(&s.calls());
    assert_eq!(
        calls
            .iter()
            .map(|c| c.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["RestoreSecret", "TagResource", "PutSecretValue"]
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_transformed_value_is_transform_failed() {
    let s = stores();
    let c = config(
        r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","transforms":[{"sed":"s/.*//"}]}]}]}"#,
    )
    .await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(
        o[0].error.as_ref().unwrap().kind,
        ErrorKind::TransformFailed,
        "{o:?}"
    );
    assert_eq!(o[0].status_code, 422);
    assert!(writes(&s.calls()).is_empty());
}

/// WEST restricted to sources tagged `replicate=dr`.
const WEST_TAGGED: &str = r#"{"rules":[{"match":["app/**"],"tags":{"replicate":"dr"},"destinations":[{"region":"us-west-2","name":"dr/${SECRET_NAME}"}]}]}"#;

#[tokio::test(start_paused = true)]
async fn a_tag_rule_replicates_only_tagged_sources_and_a_tag_event_starts_it() {
    let s = stores();
    let c = config(WEST_TAGGED).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].reason, Some(SkipReason::NoMatchingRule), "{o:?}");
    // One DescribeSecret for the tags, no write.
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("DescribeSecret"))
            .count(),
        1,
        "{calls:?}"
    );
    assert!(writes(&calls).is_empty());
    // The owner adds the opt-in tag: the TagResource event replicates the value at once.
    s.edit(OWN, "us-east-1", "app/db", |d| {
        d.tags.push(("replicate".into(), "dr".into()))
    });
    let tag_event = Job {
        mode: Mode::Write,
        scope: Scope::Metadata,
    };
    let o = match source_job(&s, &fresh(), &c, "app/db", tag_event).await {
        SourceResult::Outcomes(o) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Create),
        "{o:?}"
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
    // Removing the tag stops future replication and leaves the copy in place.
    s.edit(OWN, "us-east-1", "app/db", |d| d.tags.clear());
    s.seed("us-east-1", "app/db", "v2", "two");
    let o = run(&s, &fresh(), &c, "app/db").await;
    assert_eq!(o[0].reason, Some(SkipReason::NoMatchingRule));
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

/// The `Change` the event parser makes of a real-shaped record (`fixture`, naming the secret in
/// `requestParameters.<id_field>`) whose `clientRequestToken` is `version`, at `at`: the guard
/// is armed from the record, never set by hand.
fn change_of(
    fixture: &str,
    id_field: &str,
    version: &str,
    at: std::time::SystemTime,
) -> crate::event::Change {
    let mut record: serde_json::Value = serde_json::from_str(fixture).unwrap();
    record["detail"]["requestParameters"][id_field] = "app/db".into();
    record["detail"]["requestParameters"]["clientRequestToken"] = version.into();
    record["detail"]["eventTime"] = crate::time::format_rfc3339(at).into();
    let me = crate::event::Identity {
        function_name: "secret-replicator".into(),
        role_arn: None,
    };
    crate::event::parse(&record, &me).unwrap().change
}

/// A PutSecretValue record's `Change`.
fn put_change(version: &str, at: std::time::SystemTime) -> crate::event::Change {
    let fixture = include_str!("../../tests/fixtures/events/cloudtrail-put-secret-value.json");
    change_of(fixture, "secretId", version, at)
}

/// The outcomes of a source that must not fail as a whole.
fn outcomes(r: SourceResult) -> Vec<Outcome> {
    match r {
        SourceResult::Outcomes(o) => o,
        other => panic!("{other:?}"),
    }
}

async fn run_change(s: &MemoryStores, c: &Config, change: &crate::event::Change) -> SourceResult {
    Replicator {
        stores: s,
        state: &fresh(),
        config: c,
        retry: RETRY,
    }
    .source(
        &sref("app/db"),
        Some("us-east-1"),
        Job::VALUE,
        Known {
            change: Some(change),
            ..Known::default()
        },
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn a_first_read_that_answers_the_previous_version_never_copies_it() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    // The event reports v2; the first read still answers v1 (eventual consistency).
    s.freeze_value(OWN, "us-east-1", "app/db", 1);
    s.seed("us-east-1", "app/db", "v2", "two");
    let change = put_change("v2", std::time::SystemTime::now());
    s.calls();
    let o = outcomes(run_change(&s, &c, &change).await);
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    let dest = s.secret(OWN, "us-west-2", "dr/app/db").unwrap();
    assert_eq!(
        dest.versions.len(),
        1,
        "one version: the old value was never written"
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
    // The check costs one read by VersionId, only because the first read was stale.
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("GetSecretValue"))
            .count(),
        2,
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fresh_first_read_costs_no_extra_call() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let change = put_change("v1", std::time::SystemTime::now());
    s.calls();
    run_change(&s, &c, &change).await;
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("GetSecretValue"))
            .count(),
        1,
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_put_processed_after_a_rollback_copies_the_rolled_back_value() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed("us-east-1", "app/db", "v2", "two");
    // Rolled back: AWSCURRENT on v1 again, v2 kept without it.
    s.edit(OWN, "us-east-1", "app/db", |d| {
        for v in &mut d.versions {
            v.stages.retain(|st| st != AWSCURRENT);
            if v.id == "v1" {
                v.stages.push(AWSCURRENT.into());
            }
        }
    });
    let change = put_change("v2", std::time::SystemTime::now());
    let o = outcomes(run_change(&s, &c, &change).await);
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

#[tokio::test(start_paused = true)]
async fn a_version_not_visible_yet_is_read_again_then_retriable_and_nothing_is_written() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let change = put_change("v2", std::time::SystemTime::now());
    // v2 is visible on the third look: read again, then copied.
    s.freeze_value(OWN, "us-east-1", "app/db", 3);
    s.seed("us-east-1", "app/db", "v2", "two");
    s.hide_versions(OWN, "us-east-1", "app/db", 2);
    let o = outcomes(run_change(&s, &c, &change).await);
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
    // Never visible: retriable, nothing written.
    let s = stores();
    s.seed("us-east-1", "app/db", "v1", "one");
    match run_change(&s, &c, &change).await {
        SourceResult::Failed { error, .. } => {
            assert_eq!(error.kind(), ErrorKind::ServiceError);
            assert_eq!(
                error.retry_class(),
                crate::outcome::RetryClass::Retriable,
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(s.secret(OWN, "us-west-2", "dr/app/db").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_event_older_than_fifteen_minutes_arms_no_guard() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    let change = put_change(
        "v2",
        std::time::SystemTime::now() - Duration::from_secs(16 * 60),
    );
    s.calls();
    let o = outcomes(run_change(&s, &c, &change).await);
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    // The current value is copied; no read by VersionId.
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("GetSecretValue"))
            .count(),
        1,
        "{calls:?}"
    );
}

/// A CreateSecret record's `Change` (`responseElements: null`, as AWS's own example).
fn create_change(version: &str, at: std::time::SystemTime) -> crate::event::Change {
    let fixture =
        include_str!("../../tests/fixtures/events/cloudtrail-create-secret-null-response.json");
    change_of(fixture, "name", version, at)
}

#[tokio::test(start_paused = true)]
async fn a_young_create_not_readable_yet_is_read_again() {
    let s = stores();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    // The first two reads do not find the new secret yet.
    s.fail("GetSecretValue", "app/db", "ResourceNotFoundException", 2);
    let change = create_change("v1", std::time::SystemTime::now());
    let o = outcomes(run_change(&s, &c, &change).await);
    assert_eq!(o[0].status, Status::Replicated, "{o:?}");
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("one")
    );
}

#[tokio::test(start_paused = true)]
async fn a_young_create_without_a_value_is_no_value_after_about_ten_seconds_of_reads() {
    let s = stores();
    let c = config(WEST).await;
    s.world.lock().unwrap().secrets.insert(
        (OWN.into(), "us-east-1".into(), "app/db".into()),
        Secret {
            arn: format!("arn:aws:secretsmanager:us-east-1:{OWN}:secret:app/db-AbCdEf"),
            ..Secret::default()
        },
    );
    let change = create_change("v1", std::time::SystemTime::now());
    s.calls();
    let started = tokio::time::Instant::now();
    let o = outcomes(run_change(&s, &c, &change).await);
    assert_eq!(
        (o[0].status, o[0].reason),
        (Status::Skipped, Some(SkipReason::NoValue))
    );
    // Paused clock: the waits are the schedule's, not the machine's.
    let waited = started.elapsed();
    let schedule: Duration = YOUNG_CREATE_BACKOFF.iter().sum();
    assert_eq!(waited, schedule);
    assert!(schedule <= Duration::from_secs(10), "{schedule:?}");
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("GetSecretValue"))
            .count(),
        1 + YOUNG_CREATE_BACKOFF.len(),
        "{calls:?}"
    );
    // An old CreateSecret (a redrive) is decided by its first read.
    let old = create_change(
        "v1",
        std::time::SystemTime::now() - Duration::from_secs(120),
    );
    let o = outcomes(run_change(&s, &c, &old).await);
    assert_eq!(o[0].reason, Some(SkipReason::NoValue));
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("GetSecretValue"))
            .count(),
        1,
        "{calls:?}"
    );
}

// ---- SPEC §11: a denied write to a destination cached as owned is looked at once more ----------
//
// The destination role allows writes only where `secretsmanager:ResourceTag/secret-replicator:source`
// exists (`iam/destination-role.yaml`), so AWS answers AccessDeniedException, not
// ResourceNotFoundException or a conflict, when the secret changed hands after this container
// found it owned. The in-memory store is told to answer that code, as IAM would.

/// A container that has written `dr/app/db` once (its ownership cached), and a new source
/// version to replicate.
async fn cached_owner(s: &MemoryStores, shared: &ContainerState, c: &Config) {
    s.seed("us-east-1", "app/db", "v1", "one");
    run(s, shared, c, "app/db").await;
    s.seed("us-east-1", "app/db", "v2", "two");
    s.calls();
}

#[tokio::test(start_paused = true)]
async fn a_denied_write_to_a_cached_destination_deleted_since_creates_it_again() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    cached_owner(&s, &shared, &c).await;
    // Deleted by hand (and the deletion window over): nothing carries the marker any more.
    s.world
        .lock()
        .unwrap()
        .secrets
        .retain(|k, _| k.2 != "dr/app/db");
    s.fail("PutSecretValue", "dr/app/db", "AccessDeniedException", 1);
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(
        (o[0].status, o[0].action),
        (Status::Replicated, Action::Create),
        "{o:?}"
    );
    assert_eq!(
        writes(&s.calls()),
        ["PutSecretValue dr/app/db", "CreateSecret dr/app/db"]
    );
    assert_eq!(
        s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
        Some("two")
    );
}

#[tokio::test(start_paused = true)]
async fn a_denied_write_to_a_cached_destination_whose_marker_is_gone_or_foreign_is_a_conflict() {
    for marker in [None, Some("999999999999:us-east-1:app/db")] {
        let s = stores();
        let shared = fresh();
        let c = config(WEST).await;
        cached_owner(&s, &shared, &c).await;
        s.edit(OWN, "us-west-2", "dr/app/db", |d| {
            d.tags.retain(|(k, _)| k != MARKER_TAG);
            if let Some(m) = marker {
                d.tags.push((MARKER_TAG.into(), m.into()));
            }
        });
        s.fail("PutSecretValue", "dr/app/db", "AccessDeniedException", 1);
        let o = run(&s, &shared, &c, "app/db").await;
        assert_eq!(o[0].status, Status::Failed, "{marker:?}: {o:?}");
        assert_eq!(o[0].status_code, 409, "{marker:?}: {o:?}");
        assert_eq!(
            o[0].error.as_ref().unwrap().kind,
            ErrorKind::DestinationConflict
        );
        let calls = s.calls();
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.starts_with("DescribeSecret dr/app/db"))
                .count(),
            1,
            "{marker:?}: observed once more: {calls:?}"
        );
        assert_eq!(writes(&calls), ["PutSecretValue dr/app/db"], "{marker:?}");
        assert_eq!(
            s.value(OWN, "us-west-2", "dr/app/db").as_deref(),
            Some("one"),
            "{marker:?}: never written"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_denied_write_to_a_destination_still_ours_is_access_denied_after_one_look() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    cached_owner(&s, &shared, &c).await;
    s.fail("PutSecretValue", "dr/app/db", "AccessDeniedException", 5);
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(o[0].status, Status::Failed, "{o:?}");
    assert_eq!(o[0].status_code, 403);
    assert_eq!(o[0].error.as_ref().unwrap().kind, ErrorKind::AccessDenied);
    let calls = s.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("DescribeSecret dr/app/db"))
            .count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        writes(&calls),
        ["PutSecretValue dr/app/db"],
        "one look, then the denial reported without writing again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_denied_write_without_cached_ownership_is_reported_at_once() {
    let s = stores();
    let shared = fresh();
    let c = config(WEST).await;
    s.seed("us-east-1", "app/db", "v1", "one");
    s.seed("us-west-2", "dr/app/db", "x", "old");
    s.edit(OWN, "us-west-2", "dr/app/db", |d| {
        d.tags
            .push((MARKER_TAG.into(), "111122223333:us-east-1:app/db".into()))
    });
    s.fail("PutSecretValue", "dr/app/db", "AccessDeniedException", 5);
    let o = run(&s, &shared, &c, "app/db").await;
    assert_eq!(o[0].error.as_ref().unwrap().kind, ErrorKind::AccessDenied);
    let calls = s.calls();
    assert_eq!(writes(&calls), ["PutSecretValue dr/app/db"], "{calls:?}");
}
