//! Engine-level tests: chains, the bundled `sedfiles/`, secret hygiene and property tests.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn vars() -> Vars {
    [
        ("SECRET_NAME", "app/db"),
        ("DEST_SECRET_NAME", "dr/app/db"),
        ("SOURCE_REGION", "us-east-1"),
        ("DEST_REGION", "us-west-2"),
        ("SOURCE_ACCOUNT", "111111111111"),
        ("DEST_ACCOUNT", "222222222222"),
    ]
    .into_iter()
    .collect()
}

fn load_vars() -> LoadVars {
    LoadVars::with_builtins(Vars::new())
}

fn sed(script: &str) -> Arc<Transform> {
    Arc::new(Transform::sed("inline", script, &load_vars()).unwrap())
}

#[test]
fn a_chain_feeds_each_output_to_the_next_transform() {
    let json = Transform::json(
        "inline",
        r#"[{"path":"$.host","sed":"s/east/west/"}]"#,
        &load_vars(),
    )
    .unwrap();
    let chain = Chain::new(vec![sed("s/1/2/g"), Arc::new(json)]);
    assert_eq!(chain.len(), 2);
    assert_eq!(
        chain
            .apply(r#"{"host":"us-east-1", "n": 1}"#, &vars())
            .unwrap()
            .as_deref(),
        Some(r#"{"host":"us-west-2","n":2}"#)
    );
}

#[test]
fn a_chain_that_changes_nothing_returns_none() {
    assert_eq!(Chain::default().apply("x", &vars()).unwrap(), None);
    let chain = Chain::new(vec![sed("s/a/b/"), sed("s/b/a/")]);
    assert_eq!(chain.apply("a", &vars()).unwrap(), None);
}

#[test]
fn a_chain_output_over_the_limit_is_too_large() {
    let chain = Chain::new(vec![sed("s/$/xxxxxxxxxxxxxxxx/")]);
    assert_eq!(
        chain
            .apply(&"x".repeat(MAX_VALUE_BYTES - 8), &vars())
            .unwrap_err(),
        ApplyError::TooLarge {
            bytes: MAX_VALUE_BYTES + 8
        }
    );
    let exact = Chain::new(vec![sed("s/$/x/")]);
    assert!(
        exact
            .apply(&"x".repeat(MAX_VALUE_BYTES - 1), &vars())
            .is_ok()
    );
    assert!(exact.apply(&"x".repeat(MAX_VALUE_BYTES), &vars()).is_err());
}

/// Every failing path: neither the message nor the Debug form may contain the value.
#[test]
fn apply_errors_never_contain_the_value() {
    const CANARY: &str = "hunter2-CANARY";
    let lv = load_vars();
    let mut missing = vars();
    missing = missing
        .iter()
        .filter(|(k, _)| *k != "SECRET_NAME")
        .collect();
    let cases: Vec<(Transform, String, Vars)> = vec![
        (
            Transform::json("j", r#"[{"path":"$.a","set":1}]"#, &lv).unwrap(),
            format!("{{\"a\": \"{CANARY}\""),
            vars(),
        ),
        (
            Transform::json("j", r#"[{"path":"$.b","set":1,"required":true}]"#, &lv).unwrap(),
            format!("{{\"a\": \"{CANARY}\"}}"),
            vars(),
        ),
        (
            Transform::sed("s", "s/${SECRET_NAME}/x/", &lv).unwrap(),
            CANARY.to_string(),
            missing,
        ),
        (
            Transform::sed("s", "s/C/&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&/g", &lv).unwrap(),
            CANARY.repeat(40_000),
            vars(),
        ),
    ];
    for (t, input, vars) in cases {
        let err = Chain::new(vec![Arc::new(t)])
            .apply(&input, &vars)
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
}

#[test]
fn a_dynamic_pattern_that_fails_after_substitution_is_reported_without_the_value() {
    let t = Transform::sed("f.sed", "\n  s/(${SECRET_NAME}){1000}/x/", &load_vars()).unwrap();
    let mut v = vars();
    v.set("SECRET_NAME", "x".repeat(2000));
    let err = t.apply("x", &v).unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.sed:2:3: the regex does not compile once its variables are substituted: it exceeds the regex size limit"
    );
}

/// (file, input, expected output) for every file under `sedfiles/`.
const SEDFILE_CASES: &[(&str, &str, &str)] = &[
    (
        "us-east-1-to-us-west-2.sed",
        "postgres://db.us-east-1.rds.amazonaws.com/app?az=us-east-1a&r=xus-east-1",
        "postgres://db.us-west-2.rds.amazonaws.com/app?az=us-east-1a&r=xus-east-1",
    ),
    (
        "us-west-2-to-us-east-1.sed",
        "arn:aws:sqs:us-west-2:1:q",
        "arn:aws:sqs:us-east-1:1:q",
    ),
    (
        "us-east-1-to-us-east-2.sed",
        "s3.us-east-1.amazonaws.com",
        "s3.us-east-2.amazonaws.com",
    ),
    (
        "us-east-2-to-us-east-1.sed",
        "s3.us-east-2.amazonaws.com",
        "s3.us-east-1.amazonaws.com",
    ),
    (
        "eu-west-1-to-eu-central-1.sed",
        "{\"region\":\"eu-west-1\"}",
        "{\"region\":\"eu-central-1\"}",
    ),
    (
        "eu-central-1-to-eu-west-1.sed",
        "eu-central-1,eu-central-1",
        "eu-west-1,eu-west-1",
    ),
    (
        "ap-southeast-1-to-ap-southeast-2.sed",
        "https://sqs.ap-southeast-1.amazonaws.com/",
        "https://sqs.ap-southeast-2.amazonaws.com/",
    ),
    (
        "region-swap.sed",
        "us-east-1 us-east-10 us-east-1.x",
        "us-west-2 us-east-10 us-west-2.x",
    ),
    (
        "account-swap.sed",
        "arn:aws:iam::111111111111:role/app 111111111111.dkr.ecr.us-east-1.amazonaws.com/img 1111111111112",
        "arn:aws:iam::222222222222:role/app 222222222222.dkr.ecr.us-east-1.amazonaws.com/img 1111111111112",
    ),
    (
        "dev-to-prod.sed",
        "api.dev.example.internal orders-dev-db env=dev env=developer",
        "api.prod.example.internal orders-prod-db env=prod env=developer",
    ),
    (
        "db-connection.json",
        r#"{"host":"db.old","port":5432,"url":"postgres://x.us-east-1/y","replicas":["r1.us-east-1","r2.us-east-1"],"dbInstanceIdentifier":"orders-primary","legacy_password":"p","password":"q"}"#,
        r#"{"host":"db.us-west-2.example.internal","port":5432,"url":"postgres://x.us-west-2/y","replicas":["r1.us-west-2","r2.us-west-2"],"dbInstanceIdentifier":"orders-replica","password":"q"}"#,
    ),
];

#[test]
fn every_bundled_sedfile_loads_and_does_what_its_comment_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sedfiles");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut covered: Vec<String> = SEDFILE_CASES.iter().map(|c| c.0.to_string()).collect();
    covered.sort();
    assert_eq!(
        names, covered,
        "every file under sedfiles/ needs a case here"
    );
    for (name, input, want) in SEDFILE_CASES {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let origin = format!("sedfiles/{name}");
        let t = if name.ends_with(".json") {
            Transform::json(&origin, &text, &load_vars())
        } else {
            Transform::sed(&origin, &text, &load_vars())
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let out = t
            .apply(input, &vars())
            .unwrap()
            .unwrap_or_else(|| input.to_string());
        assert_eq!(&out, want, "{name}");
    }
}

#[test]
fn debug_of_a_transform_shows_config_only() {
    let t = Transform::sed("inline", "s/${SECRET_NAME}/x/", &load_vars()).unwrap();
    t.apply("app/db", &vars()).unwrap();
    let debug = format!("{t:?}");
    assert!(debug.contains("SECRET_NAME"), "{debug}");
    assert!(!debug.contains("app/db"), "{debug}");
}

proptest! {
    #[test]
    fn an_s_command_that_does_not_match_leaves_the_input_unchanged(
        input in "[a-m \n]{0,64}",
        pattern in "[n-z]{1,8}",
        flags in "(g)?(i)?(m)?",
    ) {
        // `i` could match an upper-case input; the inputs are lower-case only.
        let t = Transform::sed("p", &format!("s/{pattern}/X/{flags}"), &load_vars()).unwrap();
        prop_assert_eq!(t.apply(&input, &vars()).unwrap(), None);
    }

    #[test]
    fn y_is_a_bijection_on_its_characters(
        (src, dst) in proptest::sample::subsequence("abcdefxyzé日本ü0123".chars().collect::<Vec<_>>(), 1..10)
            .prop_flat_map(|src| (Just(src.clone()), Just(src).prop_shuffle())),
        input in "[a-fxyzé日本ü0-9 ]{0,40}",
    ) {
        let s: String = src.iter().collect();
        let d: String = dst.iter().collect();
        let there = Transform::sed("p", &format!("y/{s}/{d}/"), &load_vars()).unwrap();
        let back = Transform::sed("p", &format!("y/{d}/{s}/"), &load_vars()).unwrap();
        let mid = there.apply(&input, &vars()).unwrap().unwrap_or_else(|| input.clone());
        prop_assert_eq!(mid.chars().count(), input.chars().count());
        let round = back.apply(&mid, &vars()).unwrap().unwrap_or_else(|| mid.clone());
        prop_assert_eq!(round, input);
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_text(script in any::<String>()) {
        let _ = Transform::sed("p", &script, &load_vars());
        let _ = Transform::json("p", &script, &load_vars());
    }

    #[test]
    fn parsing_never_panics_on_sed_like_text(script in r"[sy/|\\$\{\}\[\]()&;#gimM0-9 \nab*.^-]{0,40}") {
        if let Ok(t) = Transform::sed("p", &script, &load_vars()) {
            let _ = t.apply("ab\nba ${x} [a]", &vars());
            let _ = t.canonical();
        }
    }

    #[test]
    fn a_variable_value_with_regex_metacharacters_matches_only_itself(
        value in r"[.*+?()\[\]{}|^$\\a-c]{1,8}",
        parts in proptest::collection::vec("[a-c.*]{0,6}", 1..4),
    ) {
        let input = parts.join(&value);
        let t = Transform::sed("p", "s/${SECRET_NAME}/X/g", &load_vars()).unwrap();
        let mut v = vars();
        v.set("SECRET_NAME", value.clone());
        let out = t.apply(&input, &v).unwrap().unwrap_or_else(|| input.clone());
        prop_assert_eq!(out, input.replace(&value, "X"));
    }

    #[test]
    fn a_variable_value_in_a_replacement_is_literal(value in r"[&\\0-9$a{}]{0,8}") {
        let t = Transform::sed("p", "s/x/${SECRET_NAME}/", &load_vars()).unwrap();
        let mut v = vars();
        v.set("SECRET_NAME", value.clone());
        let out = t.apply("x", &v).unwrap().unwrap_or_else(|| "x".to_string());
        prop_assert_eq!(out, value);
    }
}

#[test]
fn transforms_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Transform>();
    shared::<Chain>();
}

#[test]
fn a_name_template_context_can_leave_out_dest_secret_name() {
    let names = LoadVars::new(
        BUILTIN_VARS
            .iter()
            .filter(|n| **n != "DEST_SECRET_NAME")
            .map(|n| n.to_string()),
        Vars::new(),
    );
    assert!(Template::parse("dr/${SECRET_NAME}$", &names).is_ok());
    let err = Template::parse("${DEST_SECRET_NAME}", &names).unwrap_err();
    assert_eq!(err.col, 1);
    assert!(matches!(
        err.kind,
        vars::TemplateErrorKind::Undefined { .. }
    ));
}
