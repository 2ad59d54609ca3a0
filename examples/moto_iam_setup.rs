//! Writes the identities of the suites' emulator (the `MOTO_IAM_SETUP` file of
//! `tests/moto/server.py`, from `tests/common/iam_setup.rs`) and prints their credentials as
//! shell assignments, so that `scripts/demo.sh` runs on the same IAM-enforcing moto as the
//! tests: seeding as the admin, the function as its role's session.
//!
//!     eval "$(cargo run -q --example moto_iam_setup -- target/demo/iam-setup.json)"

// At the crate root, as their `super::` paths expect.
#[path = "../tests/common/cfn.rs"]
mod cfn;
#[path = "../tests/common/iam_setup.rs"]
mod iam_setup;
#[path = "../tests/common/policies.rs"]
mod policies;

use iam_setup::IamSetup;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: moto_iam_setup FILE");
        std::process::exit(2);
    };
    let setup = serde_json::to_string_pretty(&IamSetup::default().to_json()).expect("JSON");
    std::fs::write(&path, setup).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (name, value) in [
        ("ADMIN_ACCESS_KEY_ID", policies::ADMIN_ACCESS_KEY_ID),
        ("ADMIN_SECRET_ACCESS_KEY", policies::ADMIN_SECRET_ACCESS_KEY),
        ("FUNCTION_ACCESS_KEY_ID", policies::FUNCTION_ACCESS_KEY_ID),
        (
            "FUNCTION_SECRET_ACCESS_KEY",
            policies::FUNCTION_SECRET_ACCESS_KEY,
        ),
        ("FUNCTION_SESSION_TOKEN", policies::FUNCTION_SESSION_TOKEN),
        ("FUNCTION_ROLE_ARN", policies::FUNCTION_ROLE_ARN),
        ("FUNCTION_SESSION_ARN", policies::FUNCTION_SESSION_ARN),
    ] {
        println!("{name}='{value}'");
    }
}
