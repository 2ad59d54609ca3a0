//! Any configuration document text (SPEC §2) loads or is rejected without panicking, and every
//! rejection is an InvalidConfig naming where (the path of the field, or the JSON position).
//! `secret:` references cannot be read here (NoFetcher): a configuration error too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::config::{self, NoFetcher};
use secret_replicator::outcome::{Error, ErrorKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match futures::executor::block_on(config::load_document(text, &NoFetcher)) {
        Ok(c) => {
            // A loaded configuration answers its questions without panicking.
            let _ = c.fingerprint.len();
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e:?}");
            let Error::InvalidConfig(message) = &e else {
                unreachable!()
            };
            assert!(!message.is_empty());
        }
    }
});
