use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

fn settings_err(pairs: &[(&str, &str)]) -> String {
    Settings::from_env(&env(pairs)).unwrap_err().to_string()
}

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
fn exactly_one_config_source_is_required() {
    assert!(settings_err(&[]).contains("none given"));
    let two = settings_err(&[
        ("REPLICATOR_CONFIG", "{}"),
        ("REPLICATOR_CONFIG_FILE", "x.json"),
    ]);
    assert!(two.contains("exactly one source"), "{two}");
    assert!(
        two.contains("REPLICATOR_CONFIG and REPLICATOR_CONFIG_FILE"),
        "{two}"
    );
    let with_shorthand = settings_err(&[("REPLICATOR_CONFIG", "{}"), ("DEST_REGION", "us-west-2")]);
    assert!(with_shorthand.contains("DEST_REGION"), "{with_shorthand}");
}

#[test]
fn the_shorthand_needs_dest_region() {
    let e = settings_err(&[("DEST_SECRET_NAME", "dr/${SECRET_NAME}")]);
    assert!(e.starts_with("DEST_REGION: required"), "{e}");
}

#[test]
fn settings_name_the_variable_in_errors() {
    let cases = [
        (
            "REPLICATOR_WRITE_TPS",
            "0",
            "REPLICATOR_WRITE_TPS: expected",
        ),
        (
            "REPLICATOR_WRITE_TPS",
            "fast",
            "REPLICATOR_WRITE_TPS: expected",
        ),
        (
            "REPLICATOR_CONFIG_TTL_SECONDS",
            "-1",
            "REPLICATOR_CONFIG_TTL_SECONDS: expected",
        ),
        (
            "REPLICATOR_ROLE_ARN",
            "role/x",
            "REPLICATOR_ROLE_ARN: expected",
        ),
    ];
    for (k, v, want) in cases {
        let e = settings_err(&[("REPLICATOR_CONFIG", "{\"rules\":[]}"), (k, v)]);
        assert!(e.contains(want), "{k}={v}: {e}");
    }
}

#[test]
fn settings_read_every_source_and_the_defaults() {
    let s = Settings::from_env(&env(&[
        ("REPLICATOR_CONFIG_SECRET", "replicator/config"),
        ("REPLICATOR_CONFIG_TTL_SECONDS", "60"),
        ("AWS_LAMBDA_FUNCTION_NAME", "my-fn"),
        ("AWS_REGION", "eu-west-1"),
    ]))
    .unwrap();
    assert_eq!(
        s.source,
        ConfigSource::Secret {
            id: "replicator/config".into(),
            ttl: Duration::from_secs(60)
        }
    );
    assert_eq!(s.function_name, "my-fn");
    assert_eq!(s.write_tps, DEFAULT_WRITE_TPS);
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));

    let s = Settings::from_env(&env(&[
        ("DEST_REGION", "us-west-2"),
        (
            "TRANSFORMS",
            "a.sed, {\"sed\":\"s/a/b/\"}".split_once(',').unwrap().0,
        ),
        ("SOURCE_MATCH", "app/**, shared/*"),
    ]))
    .unwrap();
    match s.source {
        ConfigSource::Shorthand(sh) => {
            assert_eq!(sh.region, "us-west-2");
            assert_eq!(sh.transforms, ["a.sed"]);
            assert_eq!(sh.matches, ["app/**", "shared/*"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Settings::from_env(&env(&[("REPLICATOR_CONFIG", "{}")]))
            .unwrap()
            .function_name,
        DEFAULT_FUNCTION_NAME
    );
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
fn role_arns_are_parsed_strictly() {
    assert_eq!(
        role_account("arn:aws:iam::222233334444:role/a/b").as_deref(),
        Some("222233334444")
    );
    assert_eq!(
        role_account("arn:aws-us-gov:iam::222233334444:role/x").as_deref(),
        Some("222233334444")
    );
    for bad in [
        "",
        "arn:aws:iam::222233334444:user/x",
        "arn:aws:sts::222233334444:role/x",
        "arn:aws:iam::2222:role/x",
        "arn:aws:iam::222233334444:role/",
    ] {
        assert_eq!(role_account(bad), None, "{bad}");
    }
}

#[test]
fn rule_samples_match_their_rule() {
    let c = doc_ok(r#"{"rules":[{"match":["app/**","db-*","x/[ab]"],"destinations":[{}]}]}"#);
    let samples = c.rules[0].samples();
    assert_eq!(samples.len(), 3, "{samples:?}");
    assert!(samples.iter().all(|s| c.matches_any(s)));
}

#[test]
fn transforms_lists_keep_inline_json_whole() {
    assert_eq!(
        split_list(Some(
            r#"a.sed, {"sed": "s/a,b/c/g"} ,secret:x,{"json":[{"path":"$.a","set":[1,2]}]}"#
        )),
        [
            "a.sed",
            r#"{"sed": "s/a,b/c/g"}"#,
            "secret:x",
            r#"{"json":[{"path":"$.a","set":[1,2]}]}"#
        ]
    );
    assert!(split_list(Some(" , ")).is_empty());
    let sh = Shorthand {
        region: "us-west-2".into(),
        transforms: split_list(Some(
            r#"sedfiles/us-east-1-to-us-west-2.sed,{"sed": "s/api/api-dr/"}"#,
        )),
        ..Shorthand::default()
    };
    let c = block_on(load_shorthand(&sh, &NoFetcher)).unwrap();
    assert_eq!(c.rules[0].destinations[0].transforms.len(), 2);
}
