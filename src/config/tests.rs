use super::*;

use crate::settings::Shorthand;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn doc_err(doc: &str) -> String {
    block_on(load_document(doc, &NoFetcher))
        .unwrap_err()
        .to_string()
}

fn doc_ok(doc: &str) -> Config {
    block_on(load_document(doc, &NoFetcher)).unwrap()
}

#[test]
fn the_shorthand_compiles_to_one_rule() {
    let sh = Shorthand {
        region: "us-west-2".into(),
        name: Some("dr/${SECRET_NAME}".into()),
        role_arn: Some("arn:aws:iam::222233334444:role/dest".into()),
        external_id: Some("ext-1".into()),
        kms_key_id: Some("alias/dr".into()),
        transforms: vec![],
        matches: vec!["app/**".into()],
    };
    let c = block_on(load_shorthand(&sh, &NoFetcher)).unwrap();
    assert_eq!(c.rules.len(), 1);
    let d = &c.rules[0].destinations[0];
    assert_eq!(d.region.as_deref(), Some("us-west-2"));
    assert_eq!(d.role.as_ref().unwrap().account, "222233334444");
    assert_eq!(
        d.role.as_ref().unwrap().external_id.as_deref(),
        Some("ext-1")
    );
    assert_eq!(d.kms_key_id.as_deref(), Some("alias/dr"));
    assert!(c.matches_any("app/x/y"));
    assert!(!c.matches_any("other"));
    // Shorthand errors name the variable.
    let bad = Shorthand {
        region: "west".into(),
        role_arn: Some("nope".into()),
        ..sh
    };
    let e = block_on(load_shorthand(&bad, &NoFetcher))
        .unwrap_err()
        .to_string();
    assert!(e.contains("DEST_REGION: expected an AWS region"), "{e}");
    assert!(e.contains("DEST_ROLE_ARN: expected an IAM role ARN"), "{e}");
}

#[test]
fn document_errors_name_the_field() {
    let cases = [
        (
            r#"{"rules":[{"destinations":[{"regoin":"us-west-2"}]}]}"#,
            "rules[0].destinations[0].regoin: unknown field `regoin`",
        ),
        (r#"{"rules":[], "extra": 1}"#, "unknown field `extra`"),
        (
            r#"{"rules":[{"destinations":[{"region":"Mars"}]}]}"#,
            "rules[0].destinations[0].region: expected an AWS region",
        ),
        (
            r#"{"rules":[{"destinations":[]}]}"#,
            "rules[0].destinations: at least one destination",
        ),
        (
            r#"{"rules":[{"destinations":[{"account_role_arn":"arn:aws:iam::12:role/x"}]}]}"#,
            "rules[0].destinations[0].account_role_arn: expected an IAM role ARN",
        ),
        (
            r#"{"rules":[{"destinations":[{"external_id":"abc"}]}]}"#,
            "rules[0].destinations[0].external_id: only meaningful with account_role_arn",
        ),
        (
            r#"{"rules":[{"match":["a/[b"],"destinations":[{}]}]}"#,
            "rules[0].match[0]: invalid glob",
        ),
        (
            r#"{"rules":[{"destinations":[{"name":"${NOPE}"}]}]}"#,
            "rules[0].destinations[0].name:",
        ),
        (
            r#"{"rules":[{"destinations":[{"name":"${DEST_SECRET_NAME}"}]}]}"#,
            "rules[0].destinations[0].name:",
        ),
        (
            r#"{"rules":[{"destinations":[{"variables":{"SECRET_NAME":"x"}}]}]}"#,
            "variables.SECRET_NAME: shadows a built-in",
        ),
        (
            r#"{"rules":[{"destinations":[{"transforms":["x.txt"]}]}]}"#,
            "rules[0].destinations[0].transforms[0]:",
        ),
        (
            r#"{"rules":[{"destinations":[{"transforms":[{"sed":"s/a/b"}]}]}]}"#,
            "rules[0].destinations[0].transforms[0]:",
        ),
        (
            r#"{"rules":[{"destinations":[{"transforms":[{"awk":"x"}]}]}]}"#,
            "rules[0].destinations[0].transforms[0]: expected",
        ),
        (
            r#"{"rules":[{"destinations":[{"transforms":["missing/file.sed"]}]}]}"#,
            "cannot read missing/file.sed",
        ),
        (
            r#"{"rules":[{"destinations":[{"adopt":"yes"}]}]}"#,
            "rules[0].destinations[0].adopt",
        ),
        (r#"not json"#, "config document:"),
    ];
    for (doc, want) in cases {
        let e = doc_err(doc);
        assert!(e.contains(want), "{doc}\n  got:  {e}\n  want: {want}");
    }
}

#[test]
fn all_errors_of_a_document_are_reported_together() {
    let e = doc_err(
        r#"{"rules":[{"destinations":[{"region":"x"},{"account_role_arn":"y"}]},{"destinations":[]}]}"#,
    );
    assert!(e.contains("rules[0].destinations[0].region"), "{e}");
    assert!(
        e.contains("rules[0].destinations[1].account_role_arn"),
        "{e}"
    );
    assert!(e.contains("rules[1].destinations"), "{e}");
}

#[test]
fn defaults_are_safe() {
    let c = doc_ok(r#"{"rules":[{"destinations":[{}]}]}"#);
    let r = &c.rules[0];
    assert_eq!(r.name, "rule[0]");
    assert!(!r.chain);
    let d = &r.destinations[0];
    assert!(!d.copy_tags && !d.copy_description && !d.delete_with_source && !d.adopt);
    assert!(d.region.is_none() && d.role.is_none() && d.kms_key_id.is_none());
    assert!(d.transforms.is_empty());
    assert_eq!(d.fingerprint, "");
}

#[test]
fn the_fingerprint_follows_transforms_and_variables() {
    let fp = |doc: &str| doc_ok(doc).rules[0].destinations[0].fingerprint.clone();
    let a = fp(r#"{"rules":[{"destinations":[{"transforms":[{"sed":"s/a/b/"}]}]}]}"#);
    let b = fp(r#"{"rules":[{"destinations":[{"transforms":[{"sed":"s/a/c/"}]}]}]}"#);
    let c = fp(
        r#"{"rules":[{"destinations":[{"transforms":[{"sed":"s/a/${X}/"}],"variables":{"X":"1"}}]}]}"#,
    );
    let d = fp(
        r#"{"rules":[{"destinations":[{"transforms":[{"sed":"s/a/${X}/"}],"variables":{"X":"2"}}]}]}"#,
    );
    assert!(!a.is_empty());
    assert_ne!(a, b);
    assert_ne!(c, d);
}

#[test]
fn glob_semantics_follow_the_spec() {
    let c =
        doc_ok(r#"{"rules":[{"match":["app/*","db-?","x/**/y","[ab]c"],"destinations":[{}]}]}"#);
    let m = |n: &str| c.matches_any(n);
    assert!(m("app/one"));
    assert!(!m("app/one/two"), "* stays in one segment");
    assert!(m("db-1") && !m("db-12"));
    assert!(m("x/y") && m("x/a/b/y"));
    assert!(m("ac") && m("bc") && !m("cc"));
    assert!(!m("APP/one"), "case-sensitive");
}

#[test]
fn transform_files_are_read_relative_to_the_working_directory() {
    let c = doc_ok(
        r#"{"rules":[{"destinations":[{"transforms":["sedfiles/us-east-1-to-us-west-2.sed"]}]}]}"#,
    );
    assert_eq!(c.rules[0].destinations[0].transforms.len(), 1);
}

#[test]
fn secret_references_are_fetched_once_at_load() {
    struct Fixed(std::sync::atomic::AtomicUsize);
    impl TextFetcher for Fixed {
        async fn fetch_text(&self, id: &str) -> Result<String, Error> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match id {
                "t/sed" => Ok("s/a/b/g".into()),
                "t/json" => Ok(r#"[{"path":"$.a","set":1}]"#.into()),
                _ => Err(Error::InvalidConfig(format!("no secret {id}"))),
            }
        }
    }
    let f = Fixed(Default::default());
    let c = block_on(load_document(
        r#"{"rules":[{"destinations":[{"transforms":["secret:t/sed","secret:t/json"]}]}]}"#,
        &f,
    ))
    .unwrap();
    assert_eq!(c.rules[0].destinations[0].transforms.len(), 2);
    assert_eq!(f.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    let e = block_on(load_document(
        r#"{"rules":[{"destinations":[{"transforms":["secret:nope"]}]}]}"#,
        &f,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("rules[0].destinations[0].transforms[0]: no secret nope"),
        "{e}"
    );
}

#[test]
fn rule_samples_match_their_rule() {
    let c = doc_ok(r#"{"rules":[{"match":["app/**","db-*","x/[ab]"],"destinations":[{}]}]}"#);
    let samples = c.rules[0].samples();
    assert_eq!(samples.len(), 3, "{samples:?}");
    assert!(samples.iter().all(|s| c.matches_any(s)));
}

#[test]
fn a_shorthand_with_inline_json_compiles_both_transforms() {
    let sh = Shorthand {
        region: "us-west-2".into(),
        transforms: vec![
            "sedfiles/us-east-1-to-us-west-2.sed".into(),
            r#"{"sed": "s/api/api-dr/"}"#.into(),
        ],
        ..Shorthand::default()
    };
    let c = block_on(load_shorthand(&sh, &NoFetcher)).unwrap();
    assert_eq!(c.rules[0].destinations[0].transforms.len(), 2);
}

// Hostile config documents (issue 14): any text loads or is an InvalidConfig; never a panic or
// another kind. Mutations start from tests/fixtures/config/valid.json.
mod hostile {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| serde_json::json!(n)),
            "[a-zA-Z0-9/*_.${}-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-z_]{1,10}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn mutated() -> impl Strategy<Value = String> {
        (any::<proptest::sample::Index>(), json()).prop_map(|(index, replacement)| {
            let mut doc: Value =
                serde_json::from_str(include_str!("../../tests/fixtures/config/valid.json"))
                    .unwrap_or(Value::Null);
            let mut pointers = Vec::new();
            collect(&doc, String::new(), &mut pointers);
            if let Some(node) = pointers
                .get(index.index(pointers.len().max(1)))
                .and_then(|p| doc.pointer_mut(p))
            {
                *node = replacement;
            }
            doc.to_string()
        })
    }

    fn collect(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, c)| {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                collect(c, p, out);
            }),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                collect(c, p, out);
            }),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_document_loads_or_is_a_located_invalid_config(
            text in prop_oneof![mutated(), json().prop_map(|v| v.to_string())]
        ) {
            if let Err(e) = block_on(load_document(&text, &NoFetcher)) {
                let Error::InvalidConfig(m) = &e else {
                    return Err(TestCaseError::fail(format!("not InvalidConfig: {e:?}")));
                };
                prop_assert!(!m.is_empty() && m.len() < 2048, "{m}");
            }
        }
    }

    #[test]
    fn a_deeply_nested_document_is_too_deep_with_the_limit() {
        let text = format!("{{\"rules\":{}{}}}", "[".repeat(300), "]".repeat(300));
        let m = doc_err(&text);
        assert!(m.contains("deeper than the limit of 64"), "{m}");
    }
}
