//! Any invocation payload text (events of SPEC §5, manual payloads and `resume` cursors of §6,
//! Lambda failure records and SQS batches of them) is read and parsed without panicking, and
//! every rejection is an InvalidEvent: the path the Lambda handler and `replicate --event` take
//! (a record is unwrapped to its innermost payload, each SQS body read as a record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_replicator::event::{self, Identity, redrive};
use secret_replicator::outcome::Error;
use serde_json::Value;

fn check(payload: &Value, me: &Identity) {
    let inner = match redrive::innermost(payload) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(e, Error::InvalidEvent(_)), "{e:?}");
            return;
        }
    };
    if let Err(e) = event::parse(inner, me) {
        let Error::InvalidEvent(m) = &e else {
            panic!("not InvalidEvent: {e:?}");
        };
        assert!(m.len() <= event::MAX_MESSAGE, "{} bytes", m.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let me = Identity {
        function_name: "secret-replicator".into(),
        role_arn: Some("arn:aws:iam::111111111111:role/secret-replicator/fn".into()),
    };
    let payload = match event::read_payload(text) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(e, Error::InvalidEvent(_)), "{e:?}");
            return;
        }
    };
    if redrive::is_sqs_event(&payload) {
        match redrive::messages(&payload) {
            Ok(messages) => {
                for m in messages {
                    match m.body {
                        Ok(record) => check(&record, &me),
                        Err(e) => assert!(matches!(e, Error::InvalidEvent(_)), "{e:?}"),
                    }
                }
            }
            Err(e) => assert!(matches!(e, Error::InvalidEvent(_)), "{e:?}"),
        }
    } else {
        check(&payload, &me);
    }
});
