//! Any invocation payload text (events of SPEC §5, manual payloads and `resume` cursors of §6)
//! is read and parsed without panicking, and every rejection is an InvalidEvent: the same path
//! the Lambda handler and `replicate --event` take.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::event::{self, Identity};
use secret_replicator::outcome::Error;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let me = Identity {
        function_name: "secret-replicator".into(),
        role_arn: Some("arn:aws:iam::111111111111:role/secret-replicator/fn".into()),
    };
    let result = event::read_payload(text).and_then(|payload| event::parse(&payload, &me));
    if let Err(e) = result {
        assert!(matches!(e, Error::InvalidEvent(_)), "{e:?}");
    }
});
