//! `resume` cursors (SPEC §6): any text is decoded or rejected as InvalidEvent without
//! panicking; a cursor this function writes decodes to itself, and only for its own function
//! and region. Input: `text`, or `name\0region\0config\0link\0failures` to build a cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::continuation::{Cursor, MAX_CURSOR, MAX_LINKS};
use secret_replicator::outcome::Error;

const FUNCTION: &str = "secret-replicator";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Cursor::decode(text, FUNCTION, "us-east-1") {
        Ok(_) => assert!(text.len() <= MAX_CURSOR),
        Err(e) => assert!(matches!(e, Error::InvalidEvent(_)), "{e:?}"),
    }
    let parts: Vec<&str> = text.split('\0').collect();
    if let [name, region, config, link, failures] = parts[..] {
        let cursor = Cursor {
            next: name.to_string(),
            region: region.to_string(),
            config: config.to_string(),
            // A link writes cursors for links 2..=12 (the first link has none).
            link: (link.len() as u32 % MAX_LINKS) + 1,
            failures: failures.len() as u64,
            first_kind: (!failures.is_empty()).then(|| "Throttled".to_string()),
        };
        let encoded = cursor.encode(FUNCTION);
        let decoded = Cursor::decode(&encoded, FUNCTION, region);
        if encoded.len() <= MAX_CURSOR {
            assert_eq!(decoded.as_ref().ok(), Some(&cursor), "{encoded}");
            assert!(Cursor::decode(&encoded, "another-function", region).is_err());
        } else {
            assert!(decoded.is_err());
        }
    }
});
