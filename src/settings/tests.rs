use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

fn settings_err(pairs: &[(&str, &str)]) -> String {
    Settings::from_env(&env(pairs)).unwrap_err().to_string()
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
        (
            "REPLICATOR_LINK_SOURCES",
            "0",
            "REPLICATOR_LINK_SOURCES: expected",
        ),
        (
            "REPLICATOR_LINK_SOURCES",
            "many",
            "REPLICATOR_LINK_SOURCES: expected",
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
        }
    );
    // The TTL the config cache uses.
    assert_eq!(s.config_ttl, Duration::from_secs(60));
    assert_eq!(s.function_name, "my-fn");
    assert_eq!(s.write_tps, DEFAULT_WRITE_TPS);
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        s.link_sources, None,
        "links are cut by their deadline alone"
    );
    let s = Settings::from_env(&env(&[
        ("REPLICATOR_CONFIG", "{}"),
        ("REPLICATOR_LINK_SOURCES", "200"),
    ]))
    .unwrap();
    assert_eq!(s.link_sources, Some(200));

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
    // TRANSFORMS as the environment gives it: the inline item stays one transform.
    let s = Settings::from_env(&env(&[
        (
            "TRANSFORMS",
            r#"sedfiles/us-east-1-to-us-west-2.sed,{"sed": "s/api/api-dr/"}"#,
        ),
        ("DEST_REGION", "us-west-2"),
    ]))
    .unwrap();
    let ConfigSource::Shorthand(sh) = s.source else {
        panic!("shorthand expected")
    };
    assert_eq!(
        sh.transforms,
        [
            "sedfiles/us-east-1-to-us-west-2.sed",
            r#"{"sed": "s/api/api-dr/"}"#
        ]
    );
}
