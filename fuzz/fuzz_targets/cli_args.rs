//! Any argument vector (NUL-separated in the input) parses into a command or is a usage error
//! of bounded size; never a panic. Parsing is pure: nothing is read, run or written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::cli::{self, Usage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\0').map(str::to_string).collect()
    };
    if let Err(Usage(message)) = cli::parse(&args) {
        assert!(!message.is_empty());
        // A usage error quotes at most one argument.
        let longest = args.iter().map(String::len).max().unwrap_or(0);
        assert!(message.len() <= 64 + 6 * longest, "{} bytes", message.len());
    }
});
