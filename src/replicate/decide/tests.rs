//! The decision over every AWS state SPEC §12 names, without AWS or a fake: one table.

use super::*;
use crate::replicate::job::Scope;

const TOKEN: &str = "11111111-2222-8a5e-8333-444444444444";
const MARKER: &str = "111122223333:us-east-1:app/db";
const KEY_ARN: &str = "arn:aws:kms:us-west-2:222233334444:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn value() -> SecretValue {
    SecretValue::text("v".into())
}

fn key() -> KeyInfo {
    KeyInfo {
        arn: KEY_ARN.into(),
        key_id: KEY_ID.into(),
    }
}

/// An owned destination in us-west-2 whose current version is the token, as AWS describes it:
/// `PrimaryRegion` on a primary too.
fn owned() -> Description {
    Description {
        arn: "arn:aws:secretsmanager:us-west-2:222233334444:secret:dr/app/db-AbCdEf".into(),
        name: "dr/app/db".into(),
        version_ids: vec![TOKEN.into()],
        current_version: Some(TOKEN.into()),
        tags: vec![(MARKER_TAG.into(), MARKER.into())],
        primary_region: Some("us-west-2".into()),
        ..Description::default()
    }
}

fn with(f: impl FnOnce(&mut Description)) -> Seen {
    let mut d = owned();
    f(&mut d);
    Seen::Present(Box::new(d))
}

#[derive(Clone, Copy)]
struct W {
    kms: Option<&'static str>,
    adopt: bool,
    tags: Option<&'static [(&'static str, &'static str)]>,
    description: Option<&'static str>,
}

const PLAIN: W = W {
    kms: None,
    adopt: false,
    tags: None,
    description: None,
};

struct Case {
    what: &'static str,
    seen: Seen,
    key: Option<KeyInfo>,
    current_value: Option<SecretValue>,
    learned: Learned,
    want: W,
    job: Job,
    /// Ok((steps, status, action)) or Err(kind).
    expect: Result<(Vec<Step>, Status, Action), ErrorKind>,
}

const WRITE: Job = Job {
    mode: Mode::Write,
    scope: Scope::Value,
};
const COMPARE: Job = Job {
    mode: Mode::Compare,
    scope: Scope::Both,
};
const PLAN: Job = Job {
    mode: Mode::Plan,
    scope: Scope::Both,
};
const TAGS: Job = Job {
    mode: Mode::Write,
    scope: Scope::Metadata,
};

fn case(what: &'static str, seen: Seen) -> Case {
    Case {
        what,
        seen,
        key: None,
        current_value: None,
        learned: Learned::default(),
        want: PLAIN,
        job: WRITE,
        expect: Ok((vec![], Status::Unchanged, Action::None)),
    }
}

impl Case {
    fn want(mut self, w: W) -> Self {
        self.want = w;
        self
    }
    fn job(mut self, j: Job) -> Self {
        self.job = j;
        self
    }
    fn key(mut self) -> Self {
        self.key = Some(key());
        self
    }
    fn current(mut self, v: &str) -> Self {
        self.current_value = Some(SecretValue::text(v.into()));
        self
    }
    fn learned(mut self, l: Learned) -> Self {
        self.learned = l;
        self
    }
    fn ok(mut self, steps: Vec<Step>, status: Status, action: Action) -> Self {
        self.expect = Ok((steps, status, action));
        self
    }
    fn err(mut self, kind: ErrorKind) -> Self {
        self.expect = Err(kind);
        self
    }
}

fn put() -> Step {
    Step::Put { fresh: false }
}

fn fresh_put() -> Step {
    Step::Put { fresh: true }
}

fn cases() -> Vec<Case> {
    use Action as A;
    use Status as S;
    let not_current = |d: &mut Description| {
        d.current_version = Some("hand-edit".into());
        d.version_ids.push("hand-edit".into());
    };
    vec![
        // Trusted (owned earlier in the container): just the write.
        case("trusted", Seen::Trusted).ok(vec![put()], S::Replicated, A::Update),
        case("trusted after a collision", Seen::Trusted)
            .learned(Learned {
                collision: true,
                exists: true,
                ..Learned::default()
            })
            .ok(vec![fresh_put()], S::Replicated, A::Update),
        case("absent: create", Seen::Absent).ok(vec![Step::Create], S::Replicated, A::Create),
        case("absent, dry run", Seen::Absent).job(PLAN).ok(
            vec![Step::Create],
            S::Planned,
            A::Create,
        ),
        case("absent, tag event", Seen::Absent)
            .job(TAGS)
            .ok(vec![], S::Skipped, A::None),
        // Ownership, with PrimaryRegion on every secret (SPEC §12).
        // Write mode puts even when the token looks current: only the write can tell that the
        // token's version holds this very value (a collision otherwise goes unseen).
        case("owned and in sync, event", with(|_| {})).ok(vec![put()], S::Replicated, A::Update),
        case("owned and in sync, compare: nothing", with(|_| {})).job(COMPARE),
        case(
            "owned, a new source version",
            with(|d| {
                d.current_version = Some("older".into());
                d.version_ids = vec!["older".into()];
            }),
        )
        .ok(vec![put()], S::Replicated, A::Update),
        case(
            "PrimaryRegion of its own region is a primary",
            with(|d| d.primary_region = Some("us-west-2".into())),
        )
        .job(COMPARE),
        case(
            "a native replica",
            with(|d| d.primary_region = Some("us-east-1".into())),
        )
        .err(ErrorKind::DestinationConflict),
        case(
            "managed by another service",
            with(|d| d.owning_service = Some("rds".into())),
        )
        .err(ErrorKind::DestinationConflict),
        case(
            "another source's marker",
            with(|d| d.tags = vec![(MARKER_TAG.into(), "9:us-east-1:x".into())]),
        )
        .want(W {
            adopt: true,
            ..PLAIN
        })
        .err(ErrorKind::DestinationConflict),
        case("unowned", with(|d| d.tags.clear())).err(ErrorKind::DestinationConflict),
        case(
            "unowned, adopt",
            with(|d| {
                d.tags.clear();
                d.current_version = Some("theirs".into());
                d.version_ids = vec!["theirs".into()];
            }),
        )
        .want(W {
            adopt: true,
            ..PLAIN
        })
        .ok(vec![Step::Adopt, put()], S::Replicated, A::Update),
        // Restore before any other write (AWS refuses writes to a deleted secret).
        case(
            "unowned and scheduled for deletion, adopt",
            with(|d| {
                d.tags.clear();
                d.deleted = true;
                d.current_version = Some("theirs".into());
                d.version_ids = vec!["theirs".into()];
            }),
        )
        .want(W {
            adopt: true,
            ..PLAIN
        })
        .ok(
            vec![Step::Restore, Step::Adopt, put()],
            S::Restored,
            A::Restore,
        ),
        case(
            "owned and scheduled for deletion",
            with(|d| d.deleted = true),
        )
        .ok(vec![Step::Restore, put()], S::Restored, A::Restore),
        // The token's version exists but is not current: move the label, from where it is.
        // An event first puts (the answer shows the token's version), then moves it.
        case("hand edit, event", with(not_current)).ok(vec![put()], S::Replicated, A::Update),
        case("hand edit: label back", with(not_current))
            .job(COMPARE)
            .ok(
                vec![Step::Label {
                    from: Some("hand-edit".into()),
                }],
                S::Replicated,
                A::Label,
            ),
        case(
            "a write ignored (token exists, unlisted)",
            with(|d| {
                d.current_version = Some("other".into());
                d.version_ids = vec!["other".into()];
            }),
        )
        .learned(Learned {
            token_exists: true,
            exists: true,
            ..Learned::default()
        })
        .ok(
            vec![Step::Label {
                from: Some("other".into()),
            }],
            S::Replicated,
            A::Label,
        ),
        case("the label already on the token: no move", with(|_| {})).learned(Learned {
            token_exists: true,
            exists: true,
            ..Learned::default()
        }),
        case(
            "equal bytes under another version: no label move",
            with(not_current),
        )
        .learned(Learned {
            token_exists: true,
            exists: true,
            ..Learned::default()
        })
        .current("v"),
        case(
            "a collision: a fresh token",
            with(|d| {
                d.current_version = Some("older".into());
                d.version_ids = vec!["older".into()];
            }),
        )
        .learned(Learned {
            collision: true,
            exists: true,
            ..Learned::default()
        })
        .ok(vec![fresh_put()], S::Replicated, A::Update),
        // Compare mode: equal bytes written by someone else are in sync.
        case("compare: equal bytes", with(not_current))
            .job(COMPARE)
            .current("v"),
        case(
            "compare: drift",
            with(|d| {
                d.current_version = Some("hand-edit".into());
                d.version_ids = vec!["hand-edit".into()];
            }),
        )
        .job(COMPARE)
        .current("drift")
        .ok(vec![put()], S::Replicated, A::Update),
        case(
            "dry run: drift",
            with(|d| {
                d.current_version = Some("hand-edit".into());
                d.version_ids = vec!["hand-edit".into()];
            }),
        )
        .job(PLAN)
        .current("drift")
        .ok(vec![put()], S::Planned, A::Update),
        // KMS (SPEC §8): every form AWS answers matches; the managed key needs no DescribeKey.
        case("key by ARN", with(|d| d.kms_key_id = Some(KEY_ARN.into())))
            .want(W {
                kms: Some("alias/dr"),
                ..PLAIN
            })
            .key()
            .job(COMPARE),
        case("key by id", with(|d| d.kms_key_id = Some(KEY_ID.into())))
            .want(W {
                kms: Some(KEY_ARN),
                ..PLAIN
            })
            .key()
            .job(COMPARE),
        case(
            "key by alias ARN",
            with(|d| d.kms_key_id = Some("arn:aws:kms:us-west-2:222233334444:alias/dr".into())),
        )
        .want(W {
            kms: Some("alias/dr"),
            ..PLAIN
        })
        .key()
        .job(COMPARE),
        case(
            "key by alias name",
            with(|d| d.kms_key_id = Some("alias/dr".into())),
        )
        .want(W {
            kms: Some("arn:aws:kms:us-west-2:222233334444:alias/dr"),
            ..PLAIN
        })
        .key()
        .job(COMPARE),
        case("managed key, no KmsKeyId", with(|d| d.kms_key_id = None))
            .want(W {
                kms: Some(MANAGED_KEY),
                ..PLAIN
            })
            .job(COMPARE),
        case(
            "another key: re-key and a new version",
            with(|d| d.kms_key_id = Some("arn:aws:kms:us-west-2:222233334444:key/other".into())),
        )
        .want(W {
            kms: Some("alias/dr"),
            ..PLAIN
        })
        .key()
        .ok(vec![Step::SetKey, fresh_put()], S::Replicated, A::Kms),
        case(
            "the managed key where a customer key is configured",
            with(|d| d.kms_key_id = None),
        )
        .want(W {
            kms: Some("alias/dr"),
            ..PLAIN
        })
        .key()
        .ok(vec![Step::SetKey, fresh_put()], S::Replicated, A::Kms),
        case(
            "re-keyed, and a new source version",
            with(|d| {
                d.kms_key_id = None;
                d.current_version = Some("older".into());
                d.version_ids = vec!["older".into()];
            }),
        )
        .want(W {
            kms: Some("alias/dr"),
            ..PLAIN
        })
        .key()
        .ok(vec![Step::SetKey, put()], S::Replicated, A::Update),
        // Metadata.
        case(
            "tags and description follow",
            with(|d| {
                d.tags.push(("team".into(), "old".into()));
                d.tags.push(("gone".into(), "x".into()));
                d.tags
                    .push(("aws:cloudformation:stack-name".into(), "s".into()));
            }),
        )
        .job(COMPARE)
        .want(W {
            tags: Some(&[("team", "new")]),
            description: Some("d"),
            ..PLAIN
        })
        .ok(
            vec![
                Step::Untag(vec!["gone".into()]),
                Step::Tag(vec![("team".into(), "new".into())]),
                Step::SetDescription("d".into()),
            ],
            S::Replicated,
            A::Tags,
        ),
        case(
            "a tag event on an unowned destination",
            with(|d| d.tags.clear()),
        )
        .job(TAGS)
        .want(W {
            tags: Some(&[("team", "new")]),
            adopt: true,
            ..PLAIN
        })
        .err(ErrorKind::DestinationConflict),
    ]
}

#[test]
fn every_aws_state_gets_its_plan() {
    for c in cases() {
        let tags: Option<Vec<(String, String)>> = c.want.tags.map(|t| {
            t.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        let v = value();
        let want = Want {
            name: "dr/app/db",
            marker: MARKER,
            token: TOKEN,
            value: &v,
            kms_key: c.want.kms,
            adopt: c.want.adopt,
            tags: tags.as_deref(),
            description: c.want.description,
        };
        let state = DestState {
            seen: c.seen.clone(),
            key: c.key.clone(),
            current_value: c.current_value.clone(),
            learned: c.learned,
        };
        let got = decide(&state, &want, c.job)
            .map(|p| (p.steps, p.status, p.action))
            .map_err(|e| e.kind());
        assert_eq!(got, c.expect, "{}", c.what);
    }
}

#[test]
fn too_many_tags_are_refused_without_counting_aws_tags() {
    let mut d = owned();
    for i in 0..40 {
        d.tags.push((format!("aws:t{i}"), "x".into()));
    }
    let source: Vec<(String, String)> = (0..49).map(|i| (format!("k{i}"), "v".into())).collect();
    let v = value();
    let want = |tags| Want {
        name: "dr/app/db",
        marker: MARKER,
        token: TOKEN,
        value: &v,
        kms_key: None,
        adopt: false,
        tags: Some(tags),
        description: None,
    };
    let state = DestState::new(Seen::Present(Box::new(d)));
    // 49 copied + the marker = 50: allowed, whatever the aws: tags.
    assert!(decide(&state, &want(&source), COMPARE).is_ok());
    let over: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    let e = decide(&state, &want(&over), COMPARE).unwrap_err();
    assert!(e.is_aws("TooManyTags"), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::AwsClientError);
}

#[test]
fn key_matching_forms() {
    let k = key();
    let alias_arn = "arn:aws:kms:us-west-2:222233334444:alias/dr";
    let table: &[(&str, Option<&str>, bool)] = &[
        ("alias/dr", Some(KEY_ARN), true),
        ("alias/dr", Some(KEY_ID), true),
        ("alias/dr", Some(alias_arn), true),
        ("alias/dr", Some("alias/dr"), true),
        (alias_arn, Some("alias/dr"), true),
        (KEY_ID, Some(KEY_ARN), true),
        (KEY_ARN, Some(KEY_ID), true),
        ("alias/dr", None, false),
        (
            "alias/dr",
            Some("arn:aws:kms:us-west-2:222233334444:alias/other"),
            false,
        ),
        (
            "alias/dr",
            Some("arn:aws:kms:us-west-2:222233334444:key/other"),
            false,
        ),
    ];
    for (configured, have, want) in table {
        assert_eq!(
            key_matches(configured, Some(&k), *have),
            *want,
            "{configured} vs {have:?}"
        );
    }
    // The managed key: no DescribeKey, and a destination without KmsKeyId is on it.
    assert!(key_matches(MANAGED_KEY, None, None));
    assert!(key_matches(
        MANAGED_KEY,
        None,
        Some("alias/aws/secretsmanager")
    ));
    assert!(key_matches(
        "arn:aws:kms:us-west-2:222233334444:alias/aws/secretsmanager",
        None,
        None
    ));
    assert!(!key_matches(MANAGED_KEY, None, Some(KEY_ARN)));
}

#[test]
fn deletion_decides_on_fresh_ownership() {
    let d = |f: fn(&mut Description)| {
        let mut d = owned();
        f(&mut d);
        Seen::Present(Box::new(d))
    };
    assert_eq!(
        decide_delete(&Seen::Absent, MARKER, false),
        DeletePlan::Skip(SkipReason::Absent)
    );
    assert_eq!(
        decide_delete(&d(|d| d.tags.clear()), MARKER, false),
        DeletePlan::Skip(SkipReason::NotOwned)
    );
    assert_eq!(
        decide_delete(&d(|d| d.deleted = true), MARKER, false),
        DeletePlan::Unchanged
    );
    assert_eq!(decide_delete(&d(|_| {}), MARKER, true), DeletePlan::Planned);
    assert_eq!(decide_delete(&d(|_| {}), MARKER, false), DeletePlan::Delete);
}
