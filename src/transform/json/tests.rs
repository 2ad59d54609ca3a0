use super::*;
use crate::transform::{BUILTIN_VARS, LoadVars, Vars};

fn load_vars() -> LoadVars {
    let fixed: Vars = [("ENV", "prod"), ("DEST_REGION", "us-west-2")]
        .into_iter()
        .collect();
    LoadVars::new(BUILTIN_VARS.iter().map(|s| s.to_string()), fixed)
}

fn vars() -> Vars {
    [
        ("ENV", "prod"),
        ("DEST_REGION", "us-west-2"),
        ("SECRET_NAME", "app/db"),
    ]
    .into_iter()
    .collect()
}

fn run(mapping: &str, input: &str) -> Option<String> {
    let m = Mapping::parse("m.json", mapping, &load_vars())
        .unwrap_or_else(|e| panic!("{mapping} failed to load: {e}"));
    m.apply(input, &vars())
        .unwrap_or_else(|e| panic!("{mapping} failed: {e}"))
}

fn load_error(mapping: &str) -> String {
    match Mapping::parse("m.json", mapping, &load_vars()) {
        Ok(_) => panic!("{mapping} loaded but should not"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_operation_does_what_the_spec_says() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            r#"[{"path":"$.host","set":"db.${DEST_REGION}.x"}]"#,
            r#"{"host":"a","port":1}"#,
            Some(r#"{"host":"db.us-west-2.x","port":1}"#),
        ),
        (
            r#"[{"path":"$.host","set":{"n":["${SECRET_NAME}",1.50]}}]"#,
            r#"{"host":"a"}"#,
            Some(r#"{"host":{"n":["app/db",1.50]}}"#),
        ),
        (
            r#"[{"path":"$.p","set":5433}]"#,
            r#"{"p":5432, "q": 1.0e3, "r": 1E-3, "s": -0.10}"#,
            Some(r#"{"p":5433,"q":1.0e+3,"r":1e-3,"s":-0.10}"#),
        ),
        (r#"[{"path":"$.missing","set":1}]"#, r#"{"a":1}"#, None),
        (r#"[{"path":"$.a","set":1}]"#, r#"{ "a" : 1 }"#, None),
        (
            r#"[{"path":"$","set":{"x":"$${y}"}}]"#,
            r#"[1]"#,
            Some(r#"{"x":"${y}"}"#),
        ),
        (
            r#"[{"path":"$.e[*]","sed":"s/east-1/west-2/g"}]"#,
            r#"{"e":["us-east-1",2,null,"x"]}"#,
            Some(r#"{"e":["us-west-2",2,null,"x"]}"#),
        ),
        (
            r#"[{"path":"$..url","replace":{"from":"us-east-1","to":"${DEST_REGION}"}}]"#,
            r#"{"url":"us-east-1/us-east-1","n":{"url":"us-east-1"},"m":{"url":7}}"#,
            Some(r#"{"url":"us-west-2/us-west-2","n":{"url":"us-west-2"},"m":{"url":7}}"#),
        ),
        (
            r#"[{"path":"$.b","delete":true}]"#,
            r#"{"a":1,"b":2,"c":3}"#,
            Some(r#"{"a":1,"c":3}"#),
        ),
        (
            r#"[{"path":"$[0,2,1]","delete":true}]"#,
            r#"[0,1,2,3]"#,
            Some(r#"[3]"#),
        ),
        (
            r#"[{"path":"$[?@ > 1]","delete":true}]"#,
            r#"[0,3,1,2]"#,
            Some(r#"[0,1]"#),
        ),
        (
            r#"[{"path":"$..x","delete":true}]"#,
            r#"{"x":{"x":1},"y":[{"x":2}]}"#,
            Some(r#"{"y":[{}]}"#),
        ),
        (
            r#"[{"path":"$..*","sed":"s/^/>/"}]"#,
            r#"{"a":"1","b":["2",{"c":"3"}]}"#,
            Some(r#"{"a":">1","b":[">2",{"c":">3"}]}"#),
        ),
        (
            r#"[{"path":"$.a","set":2},{"path":"$.a","replace":{"from":"2","to":"3"}}]"#,
            r#"{"a":1}"#,
            Some(r#"{"a":2}"#),
        ),
        (
            r#"[{"path":"$.z","set":"é\u00e9"}]"#,
            r#"{"z":0,"é":"\u00e9"}"#,
            Some(r#"{"z":"éé","é":"é"}"#),
        ),
        (r#"[]"#, r#"{"a":1}"#, None),
    ];
    for (mapping, input, want) in cases {
        assert_eq!(
            run(mapping, input).as_deref(),
            *want,
            "mapping {mapping} on {input}"
        );
    }
}

#[test]
fn apply_errors_never_show_the_value() {
    let m = Mapping::parse(
        "m",
        r#"[{"path":"$.a","set":1,"required":true}]"#,
        &load_vars(),
    )
    .unwrap();
    let not_json = m.apply("hunter2 is not json", &vars()).unwrap_err();
    assert_eq!(not_json, ApplyError::NotJson);
    assert!(!not_json.to_string().contains("hunter2"));
    let required = m.apply(r#"{"b":"hunter2"}"#, &vars()).unwrap_err();
    assert_eq!(required.to_string(), "required path $.a selected nothing");
    assert!(!format!("{required:?}").contains("hunter2"));
}

#[test]
fn every_load_error_points_at_the_operation() {
    let cases: &[(&str, &str)] = &[
        (
            "[\n  {\"path\": \"$.a\", \"sett\": 1}\n]",
            "m.json:2:3: operation 0: unknown key \"sett\"; expected path, set, delete, replace, sed or required in `{\"path\": \"$.a\", \"sett\": 1}`",
        ),
        (
            "[{\"path\":\"$.a\",\"set\":1},\n {\"set\":1}]",
            "m.json:2:2: operation 1: missing \"path\" in `{\"set\":1}]`",
        ),
        (
            r#"[{"path":"$.a"}]"#,
            "m.json:1:2: operation 0: expected exactly one of set, delete, replace or sed; found none in `[{\"path\":\"$.a\"}]`",
        ),
        (
            r#"[{"path":"$.a","set":1,"delete":true}]"#,
            "m.json:1:2: operation 0: expected exactly one of set, delete, replace or sed; found set and delete in `[{\"path\":\"$.a\",\"set\":1,\"delete\":true}]`",
        ),
        (
            r#"[{"path":"$.a","delete":false}]"#,
            "m.json:1:2: operation 0: \"delete\" must be true in `[{\"path\":\"$.a\",\"delete\":false}]`",
        ),
        (
            r#"[{"path":"$","delete":true}]"#,
            "m.json:1:2: operation 0: cannot delete the whole document (\"$\") in `[{\"path\":\"$\",\"delete\":true}]`",
        ),
        (
            r#"[{"path":"$.a","set":1,"required":"yes"}]"#,
            "m.json:1:2: operation 0: \"required\" must be true or false in `[{\"path\":\"$.a\",\"set\":1,\"required\":\"yes\"}]`",
        ),
        (
            r#"[{"path":"$.a","replace":{"from":"","to":"x"}}]"#,
            "m.json:1:2: operation 0: \"replace\" must be {\"from\": \"non-empty text\", \"to\": \"text\"} in `[{\"path\":\"$.a\",\"replace\":{\"from\":\"\",\"to\":\"x\"}}]`",
        ),
        (
            r#"[{"path":"a.b","set":1}]"#,
            "m.json:1:2: operation 0: invalid JSONPath \"a.b\": at position 0, parser error; expected an RFC 9535 query such as \"$.host\" or \"$.items[*].url\" in `[{\"path\":\"a.b\",\"set\":1}]`",
        ),
        (
            r#"[{"path":"$.a","set":"${NOPE}"}]"#,
            "m.json:1:2: undefined variable ${NOPE}; known: DEST_ACCOUNT, DEST_REGION, DEST_SECRET_NAME, ENV, SECRET_NAME, SOURCE_ACCOUNT, SOURCE_REGION in `[{\"path\":\"$.a\",\"set\":\"${NOPE}\"}]`",
        ),
        (
            r#"[{"path":"$.a","sed":"s/a/b/x"}]"#,
            "m.json[0].sed:1:7: unknown flag `x`; expected g, i, I, m, M or a number, then `;`, `#` or end of line in `s/a/b/x`",
        ),
        (
            r#"{"path":"$.a"}"#,
            "m.json:1:1: expected a JSON array of operations, like [{\"path\": \"$.host\", \"set\": \"x\"}] in `{\"path\":\"$.a\"}`",
        ),
        (
            "[\n  {\"path\": \"$.a\",}\n]",
            "m.json:2:18: invalid JSON: trailing comma in `{\"path\": \"$.a\",}`",
        ),
        (
            r#"[1]"#,
            "m.json:1:2: operation 0: expected an object like {\"path\": \"$.host\", \"set\": \"x\"} in `[1]`",
        ),
    ];
    for (mapping, want) in cases {
        assert_eq!(&load_error(mapping), want, "mapping {mapping}");
    }
}

#[test]
fn element_starts_finds_each_top_level_element() {
    let text = "[ {\"a\":\"],[\\\"\"}, [1,[2]] ,\n \"x\", 3 ]";
    let starts = element_starts(text);
    let firsts: Vec<char> = starts
        .iter()
        .map(|&i| text[i..].chars().next().unwrap())
        .collect();
    assert_eq!(firsts, vec!['{', '[', '"', '3']);
}

#[test]
fn canonical_text_shows_the_operations_not_the_layout() {
    let c = |s: &str| Mapping::parse("m", s, &load_vars()).unwrap().canonical();
    assert_eq!(
        c("[ {\"set\": \"${ENV}-${SECRET_NAME}-$${x}\", \"path\": \"$.a\"} ]"),
        "json\n{\"path\":\"$.a\",\"set\":\"prod-${SECRET_NAME}-$${x}\",\"required\":false}\n"
    );
    assert_ne!(
        c(r#"[{"path":"$.a","sed":"s/a/b/"}]"#),
        c(r#"[{"path":"$.a","sed":"s/a/b/g"}]"#)
    );
}
