//! The sed parser must reject or accept any text without panicking, and a loaded script must
//! apply to any value without panicking. Input: `script` or `script\0value`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::transform::{LoadVars, Transform, Vars};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (script, value) = text
        .split_once('\0')
        .unwrap_or((text, "postgres://db.us-east-1.example/app?x=1\nsecond line\n"));
    let load = LoadVars::with_builtins(Vars::new());
    let vars: Vars = [
        ("SECRET_NAME", "app/db.main"),
        ("DEST_SECRET_NAME", "dr/app/db.main"),
        ("SOURCE_REGION", "us-east-1"),
        ("DEST_REGION", "us-west-2"),
        ("SOURCE_ACCOUNT", "111111111111"),
        ("DEST_ACCOUNT", "222222222222"),
    ]
    .into_iter()
    .collect();
    if let Ok(t) = Transform::sed("fuzz", script, &load) {
        let _ = t.canonical();
        let _ = t.apply(value, &vars);
    }
});
