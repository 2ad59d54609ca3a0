//! The JSON mapping loader must reject or accept any text without panicking, and a loaded
//! mapping must apply to any document without panicking. Input: `mapping` or `mapping\0doc`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::transform::{LoadVars, Transform, Vars};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mapping, doc) = text.split_once('\0').unwrap_or((
        text,
        r#"{"host":"db.us-east-1","port":5432,"a":[1,"x",{"b":null}],"n":{"host":"y"}}"#,
    ));
    let load = LoadVars::with_builtins(Vars::new());
    let vars: Vars = [
        ("SECRET_NAME", "app/db"),
        ("DEST_SECRET_NAME", "dr/app/db"),
        ("SOURCE_REGION", "us-east-1"),
        ("DEST_REGION", "us-west-2"),
        ("SOURCE_ACCOUNT", "111111111111"),
        ("DEST_ACCOUNT", "222222222222"),
    ]
    .into_iter()
    .collect();
    if let Ok(t) = Transform::json("fuzz", mapping, &load) {
        let _ = t.canonical();
        let _ = t.apply(doc, &vars);
    }
});
