use super::*;
use crate::transform::{BUILTIN_VARS, LoadVars, Vars};

fn load_vars() -> LoadVars {
    let fixed: Vars = [("ENV", "prod"), ("DEST_REGION", "us-west-2")]
        .into_iter()
        .collect();
    LoadVars::new(BUILTIN_VARS.iter().map(|s| s.to_string()), fixed)
}

fn apply_vars() -> Vars {
    [
        ("ENV", "prod"),
        ("DEST_REGION", "us-west-2"),
        ("SOURCE_REGION", "us-east-1"),
        ("SECRET_NAME", "app/db.main"),
        ("DEST_SECRET_NAME", "dr/app/db.main"),
        ("SOURCE_ACCOUNT", "111111111111"),
        ("DEST_ACCOUNT", "222222222222"),
    ]
    .into_iter()
    .collect()
}

fn run(script: &str, input: &str) -> String {
    let s = Script::parse("t.sed", script, &load_vars())
        .unwrap_or_else(|e| panic!("{script:?} failed to load: {e}"));
    s.apply(input, &apply_vars())
        .unwrap_or_else(|e| panic!("{script:?} failed: {e}"))
        .unwrap_or_else(|| input.to_string())
}

fn load_error(script: &str) -> String {
    match Script::parse("t.sed", script, &load_vars()) {
        Ok(_) => panic!("{script:?} loaded but should not"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_construct_does_what_the_spec_says() {
    let cases: &[(&str, &str, &str)] = &[
        // (script, input, expected)
        ("s/a/b/", "aaa", "baa"),
        ("s/a/b/g", "aaa", "bbb"),
        ("s/a/b/2", "aaaa", "abaa"),
        ("s/a/b/2g", "aaaa", "abbb"),
        ("s/a/b/g2", "aaaa", "abbb"),
        ("s/a/b/5", "aaaa", "aaaa"),
        ("s/A/b/i", "aA", "bA"),
        ("s/A/b/Ig", "aA", "bb"),
        ("s/^/> /", "a\nb\n", "> a\nb\n"),
        ("s/^/> /Mg", "a\nb\n", "> a\n> b\n"),
        ("s/^/> /mg", "a\nb", "> a\n> b"),
        ("s/$/;/Mg", "a\nb\n", "a;\nb;\n"),
        ("s/$/;/", "a\nb\n", "a\nb\n;"),
        ("s/\\n/ /g", "a\nb\n", "a b "),
        ("s/(\\w+)@(\\w+)/\\2 at \\1/", "me@host", "host at me"),
        ("s/x/[&]/g", "axbx", "a[x]b[x]"),
        ("s/x/[\\0]/", "ax", "a[x]"),
        ("s/x/\\&/", "x", "&"),
        ("s/x/a\\\\b/", "x", "a\\b"),
        ("s/x/a\\nb\\tc/", "x", "a\nb\tc"),
        ("s/x/$1a$/", "x", "$1a$"),
        ("s/(a)/\\1a/", "a", "aa"),
        (
            "s/(\\w+) (\\w+)/\\u\\L\\2 \\U\\1\\E!/",
            "hello WORLD",
            "world HELLO!",
        ),
        ("s/x/\\L\\uFOO/", "x", "Foo"),
        ("s/x/\\u\\Lfoo/", "x", "foo"),
        ("s/(x)?ab/[\\u\\1b]/", "ab", "[B]"),
        ("s/\\w+/\\U&/g", "ab cd", "AB CD"),
        ("s/é/\\U&/", "café", "cafÉ"),
        ("s|/usr|/opt|g", "/usr/bin:/usr/lib", "/opt/bin:/opt/lib"),
        ("s/\\/usr/\\/opt/", "/usr/bin", "/opt/bin"),
        ("s,a\\,b,x\\,y,", "a,b", "x,y"),
        ("s.a\\.b.X.", "a.b axb", "X axb"),
        ("s/[^/]*/X/", "a/b", "X/b"),
        ("s/[]/]/X/g", "]/", "XX"),
        ("s a b ", "a", "b"),
        ("s/b*/-/g", "ab", "-a-"),
        ("s/(a)|(b)/[\\2]/g", "ab", "[][b]"),
        ("y/abc/xyz/", "aabbcc-d", "xxyyzz-d"),
        ("y/a\\/b/x|y/", "a/b", "x|y"),
        ("y/\\n\\t\\\\/NT|/", "\n\t\\", "NT|"),
        ("y/äö/ao/", "bär öl", "bar ol"),
        ("y/aa/xx/", "a", "x"),
        ("s/a/b/; s/b/c/", "a", "c"),
        ("s/a/b/;s/b/c/ # comment", "a", "c"),
        (
            "# whole-line comment\n\n  s/a/b/\r\n\ts/c/d/g ; ; y/e/f/",
            "ace",
            "bdf",
        ),
        ("s/a/b/#comment", "a", "b"),
        ("\u{feff}s/a/b/", "a", "b"),
        ("s/${DEST_REGION}/x/", "us-west-2 us-westX2", "x us-westX2"),
        (
            "s/${SECRET_NAME}/[&]/",
            "app/db.main app/dbXmain",
            "[app/db.main] app/dbXmain",
        ),
        ("s/${SECRET_NAME}+/Z/", "app/db.mainapp/db.main!", "Z!"),
        ("s/x/${SECRET_NAME}/", "x", "app/db.main"),
        ("s/x/${ENV}-\\U${ENV}/", "x", "prod-PROD"),
        (
            "s/:${SOURCE_ACCOUNT}:/:${DEST_ACCOUNT}:/g",
            "arn:aws:iam::111111111111:role/x",
            "arn:aws:iam::222222222222:role/x",
        ),
        ("s/a\\$\\{b}/X/", "a${b}", "X"),
        ("s/a$${b}/X/", "a${b}", "X"),
        ("s/x/$${N}/", "x", "${N}"),
        ("s/x/$$/", "x", "$$"),
        ("s/(?i)ABC/x/", "abc", "x"),
        ("s/(?x) a ${SECRET_NAME} # comment/X/", "aapp/db.main", "X"),
        ("s/(?x) ${SECRET_NAME}/X/", "app/db.main", "X"),
        ("s/(?s)a.b/x/", "a\nb", "x"),
        ("s/a.b/x/", "a\nb", "a\nb"),
    ];
    for (script, input, want) in cases {
        assert_eq!(&run(script, input), want, "script {script:?} on {input:?}");
    }
}

#[test]
fn variable_values_are_data_not_syntax() {
    let lv = LoadVars::with_builtins(Vars::new());
    let script = Script::parse("t", "s/${SECRET_NAME}/<\\0|${SECRET_NAME}>/g", &lv).unwrap();
    let mut vars = Vars::new();
    vars.set("SECRET_NAME", "a.*&\\1$1");
    let out = script.apply("xa.*&\\1$1 ab", &vars).unwrap().unwrap();
    assert_eq!(out, "x<a.*&\\1$1|a.*&\\1$1> ab");
    // Even in extended mode, a value's spaces and `#` are part of the value.
    let script = Script::parse("t", "s/(?x) ${SECRET_NAME} /X/", &lv).unwrap();
    vars.set("SECRET_NAME", "a b#c");
    assert_eq!(
        script.apply("ab a b#c", &vars).unwrap().as_deref(),
        Some("ab X")
    );
}

#[test]
fn a_dynamic_pattern_is_compiled_once_per_value_and_the_cache_stays_bounded() {
    let lv = LoadVars::with_builtins(Vars::new());
    let script = Script::parse("t", "s/${SECRET_NAME}/x/", &lv).unwrap();
    for i in 0..(PATTERN_CACHE_ENTRIES * 2 + 3) {
        let mut vars = Vars::new();
        vars.set("SECRET_NAME", format!("n{i}"));
        assert_eq!(
            script.apply(&format!("n{i}"), &vars).unwrap().as_deref(),
            Some("x")
        );
    }
    let Command::Subst(s) = &script.commands[0] else {
        panic!("not s")
    };
    let Pattern::Dynamic { cache, .. } = &s.pattern else {
        panic!("not dynamic")
    };
    assert!(cache.lock().unwrap().len() <= PATTERN_CACHE_ENTRIES);
}

#[test]
fn unchanged_output_is_reported_as_none() {
    let s = Script::parse("t", "s/a/a/g; s/zzz/y/; y/q/r/", &load_vars()).unwrap();
    assert_eq!(s.apply("aaa", &Vars::new()).unwrap(), None);
    let s = Script::parse("t", "s/a/b/; s/b/a/", &load_vars()).unwrap();
    assert_eq!(s.apply("a", &Vars::new()).unwrap(), None);
}

#[test]
fn runaway_growth_stops_with_too_large() {
    let s = Script::parse(
        "t",
        "s/x*/&&&&&&&&&&&&&&&&/g\n".repeat(20).as_str(),
        &load_vars(),
    )
    .unwrap();
    let err = s.apply(&"x".repeat(1000), &Vars::new()).unwrap_err();
    assert!(matches!(err, ApplyError::TooLarge { .. }), "{err}");
}

#[test]
fn every_load_error_says_where_and_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        (
            "s/a/b",
            "t.sed:1:6: unterminated `s` command; expected `/` to end the replacement in `s/a/b`",
        ),
        (
            "s/a",
            "t.sed:1:4: unterminated `s` command; expected `/` to end the regex in `s/a`",
        ),
        (
            "s/a\\",
            "t.sed:1:5: unterminated `s` command; expected `/` to end the regex in `s/a\\`",
        ),
        (
            "s",
            "t.sed:1:2: expected a delimiter after `s` (as in `s/a/b/`) in `s`",
        ),
        (
            "sxaxbx",
            "t.sed:1:2: invalid delimiter `x`; expected any character except backslash, newline, letters and digits in `sxaxbx`",
        ),
        (
            "s\\a\\b\\",
            "t.sed:1:2: invalid delimiter `\\`; expected any character except backslash, newline, letters and digits in `s\\a\\b\\`",
        ),
        (
            "s/a/b/x",
            "t.sed:1:7: unknown flag `x`; expected g, i, I, m, M or a number, then `;`, `#` or end of line in `s/a/b/x`",
        ),
        (
            "s/a/b/p",
            "t.sed:1:7: unknown flag `p`; expected g, i, I, m, M or a number, then `;`, `#` or end of line in `s/a/b/p`",
        ),
        (
            "s/a/b/0",
            "t.sed:1:7: number flag must be 1 or more in `s/a/b/0`",
        ),
        (
            "s/a/b/2g3",
            "t.sed:1:9: more than one number flag in `s/a/b/2g3`",
        ),
        ("s/a/b/gg", "t.sed:1:8: flag `g` given twice in `s/a/b/gg`"),
        ("s/a/b/iI", "t.sed:1:8: flag `i` given twice in `s/a/b/iI`"),
        (
            "s/a/b/99999999999999999999999",
            "t.sed:1:7: number flag too large in `s/a/b/99999999999999999999999`",
        ),
        (
            "s/a/b/ g",
            "t.sed:1:8: unexpected `g` after the command; expected `;`, `#` or end of line in `s/a/b/ g`",
        ),
        (
            "p",
            "t.sed:1:1: unknown command `p`; expected `s`, `y`, `#` or end of line in `p`",
        ),
        (
            "s/a/b/\n  d",
            "t.sed:2:3: unknown command `d`; expected `s`, `y`, `#` or end of line in `d`",
        ),
        (
            "s//b/",
            "t.sed:1:3: empty regex; expected a pattern (GNU sed's reuse of the previous regex is not supported) in `s//b/`",
        ),
        (
            "s/a/\\q/",
            "t.sed:1:5: unknown escape `\\q` in the replacement; expected \\0-\\9, \\&, \\\\, \\n, \\t, \\U, \\L, \\u, \\l, \\E or \\/ in `s/a/\\q/`",
        ),
        (
            "s/a/\\$/",
            "t.sed:1:5: unknown escape `\\$` in the replacement; expected \\0-\\9, \\&, \\\\, \\n, \\t, \\U, \\L, \\u, \\l, \\E or \\/ in `s/a/\\$/`",
        ),
        (
            "s/(a)/\\2/",
            "t.sed:1:7: invalid reference `\\2`; the regex has 1 group in `s/(a)/\\2/`",
        ),
        (
            "s/a/\\1/",
            "t.sed:1:5: invalid reference `\\1`; the regex has 0 groups in `s/a/\\1/`",
        ),
        (
            "s/a(/b/",
            "t.sed:1:3: invalid regex: unclosed group in `s/a(/b/`",
        ),
        (
            "s/a{99999}{99999}/b/",
            "t.sed:1:3: invalid regex: compiled regex exceeds the size limit of 1048576 bytes in `s/a{99999}{99999}/b/`",
        ),
        (
            "s/${NOPE}/b/",
            "t.sed:1:3: undefined variable ${NOPE}; known: DEST_ACCOUNT, DEST_REGION, DEST_SECRET_NAME, ENV, SECRET_NAME, SOURCE_ACCOUNT, SOURCE_REGION in `s/${NOPE}/b/`",
        ),
        (
            "s/a/${NOPE}/",
            "t.sed:1:5: undefined variable ${NOPE}; known: DEST_ACCOUNT, DEST_REGION, DEST_SECRET_NAME, ENV, SECRET_NAME, SOURCE_ACCOUNT, SOURCE_REGION in `s/a/${NOPE}/`",
        ),
        (
            "s/a/${ENV/",
            "t.sed:1:5: unterminated variable reference; expected `}` after the name (write `$${` for a literal `${`) in `s/a/${ENV/`",
        ),
        (
            "s/[${ENV}]/b/",
            "t.sed:1:4: a variable cannot be used inside a `[...]` class; expected it outside the brackets in `s/[${ENV}]/b/`",
        ),
        (
            "y/abc/xy/",
            "t.sed:1:1: `y` strings have different lengths (3 and 2 characters); expected equal lengths in `y/abc/xy/`",
        ),
        (
            "y/aa/xy/",
            "t.sed:1:1: `y` maps `a` to both `x` and `y`; expected each source character once in `y/aa/xy/`",
        ),
        (
            "y/a/b",
            "t.sed:1:6: unterminated `y` command; expected `/` to end the target characters in `y/a/b`",
        ),
        (
            "y/\\d/x/",
            "t.sed:1:3: unknown escape `\\d` in `y`; expected \\\\, \\n, \\t or \\/ in `y/\\d/x/`",
        ),
        (
            "y/a/b/g",
            "t.sed:1:7: unexpected `g` after the command; expected `;`, `#` or end of line in `y/a/b/g`",
        ),
    ];
    for (script, want) in cases {
        assert_eq!(&load_error(script), want, "script {script:?}");
    }
}

#[test]
fn limits_are_enforced_at_load() {
    let many = "s/a/b/\n".repeat(MAX_COMMANDS + 1);
    assert_eq!(
        load_error(&many),
        "t.sed:1001:1: number of commands exceeds the limit of 1000 in `s/a/b/`"
    );
    let long = format!("s/{}/b/", "a".repeat(MAX_PATTERN_CHARS + 1));
    let err = load_error(&long);
    assert!(
        err.starts_with("t.sed:1:3: regex length in characters exceeds the limit of 4096 in `"),
        "{err}"
    );
    let huge = "#".repeat(MAX_SCRIPT_BYTES + 1);
    assert!(
        load_error(&huge)
            .starts_with("t.sed:1:1: script size in bytes exceeds the limit of 262144")
    );
}

#[test]
fn canonical_text_ignores_layout_but_not_behaviour() {
    let c = |s: &str| Script::parse("t", s, &load_vars()).unwrap().canonical();
    assert_eq!(c("s/a/b/g # x\n\ny/a/b/"), c("s|a|b|g;y,a,b,"));
    assert_eq!(c("s/a/b/gi"), c("s/a/b/Ig"));
    assert_ne!(c("s/a/b/"), c("s/a/b/g"));
    assert_ne!(c("s/a/&/"), c("s/a/\\&/"));
    assert_ne!(c("s/a/$${X}/"), c("s/a/${ENV}/"));
    assert_ne!(c("s/a/${SECRET_NAME}/"), c("s/a/$${SECRET_NAME}/"));
    assert_eq!(c("s/${ENV}/x/"), "sed\ns \"(?-x:prod)\" \"x\" \n");
    assert_eq!(
        c("s/(${SECRET_NAME})/\\U\\1&/2g"),
        r#"sed
s "(${SECRET_NAME})" "\\U\\1\\0" g2
"#
    );
}

/// Every match and group as `CaptureMatches` yields them.
fn our_matches(re: &Regex, input: &str) -> Vec<Vec<Option<(usize, usize)>>> {
    let mut locs = re.capture_locations();
    let mut it = CaptureMatches::new(input);
    let mut out = Vec::new();
    while let Some(m) = it.next(re, &mut locs) {
        assert_eq!(locs.get(0), Some((m.start(), m.end())));
        out.push((0..locs.len()).map(|i| locs.get(i)).collect());
    }
    out
}

/// The same, as the regex crate's `captures_iter` yields them.
fn regex_matches(re: &Regex, input: &str) -> Vec<Vec<Option<(usize, usize)>>> {
    re.captures_iter(input)
        .map(|c| c.iter().map(|g| g.map(|m| (m.start(), m.end()))).collect())
        .collect()
}

#[test]
fn capture_matches_follow_the_regex_crates_iteration_on_empty_and_unicode_matches() {
    let cases = [
        (r"x*", "axxbx"),
        (r"(b*)", "abbcb"),
        (r"\b", "ab cd"),
        (r"(?m)^", "a\nb\n"),
        (r"(?m)$", "a\nb\n"),
        (r"(é?)", "aéé日b"),
        (r"(\w+)|()", "日本 x"),
        (r"(a|)(b?)", "abab ba"),
        (r"", ""),
        (r"(user|role)=(\w+)", "user=admin role=app user="),
    ];
    for (pattern, input) in cases {
        let re = Regex::new(pattern).unwrap();
        assert_eq!(
            our_matches(&re, input),
            regex_matches(&re, input),
            "{pattern:?} on {input:?}"
        );
    }
}

proptest::proptest! {
    #[test]
    fn capture_matches_equal_captures_iter(
        pattern in r"(\(?[abé.]?[*+?]?\)?\|?){0,4}(\\b|\$|\^)?",
        input in r"[abé日 \n]{0,12}",
    ) {
        if let Ok(re) = Regex::new(&pattern) {
            proptest::prop_assert_eq!(our_matches(&re, &input), regex_matches(&re, &input));
        }
    }
}
