//! The `all` chain (SPEC §6): a link that reaches its cutoff with work left invokes its own
//! function asynchronously with a `resume` cursor, then answers. The cursor is opaque to callers:
//! the first unprocessed name, the region, the configuration's fingerprint, the link number and
//! the failures so far, with an integrity tag bound to the function's name and the region, at
//! most 4 KB. Pure: no AWS call.

use crate::outcome::Error;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Lambda's recursive loop detection stops a chain after about 16 invocations; the chain caps
/// itself well before.
pub const MAX_LINKS: u32 = 12;

/// The longest cursor accepted (and written).
pub const MAX_CURSOR: usize = 4096;

/// Where the next link starts, and what the chain did so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The first source name not processed.
    #[serde(rename = "n")]
    pub next: String,
    /// The source region of the run.
    #[serde(rename = "r")]
    pub region: String,
    /// The fingerprint of the configuration the chain started under.
    #[serde(rename = "c")]
    pub config: String,
    /// The number of the link that will run with this cursor (the first link is 1).
    #[serde(rename = "l")]
    pub link: u32,
    /// Failed results in the links so far.
    #[serde(rename = "f")]
    pub failures: u64,
    /// The kind of the first of them.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub first_kind: Option<String>,
}

const VERSION: &str = "v1";

fn tag(body: &str, function: &str) -> String {
    let mut h = Sha256::new();
    for part in ["secret-replicator resume", VERSION, function, body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Cursor {
    /// The cursor as `v1.<base64url JSON>.<tag>`, bound to the function's name.
    pub fn encode(&self, function: &str) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let body = base64url(json.as_bytes());
        format!("{VERSION}.{body}.{}", tag(&body, function))
    }

    /// Reads a cursor a link of this function wrote for this region; anything else (garbage,
    /// another function's, another region's, over 4 KB) is InvalidEvent.
    pub fn decode(s: &str, function: &str, region: &str) -> Result<Cursor, Error> {
        let bad = |why: &str| Error::InvalidEvent(format!("resume: {why}"));
        if s.len() > MAX_CURSOR {
            return Err(bad(&format!("longer than {MAX_CURSOR} bytes")));
        }
        let mut parts = s.split('.');
        let (Some(version), Some(body), Some(t), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a cursor of this function"));
        };
        if version != VERSION {
            return Err(bad("not a cursor of this function"));
        }
        if tag(body, function) != t {
            return Err(bad(
                "the integrity check failed (not written by this function, or altered)",
            ));
        }
        let json = unbase64url(body).ok_or_else(|| bad("not a cursor of this function"))?;
        let cursor: Cursor =
            serde_json::from_slice(&json).map_err(|_| bad("not a cursor of this function"))?;
        if cursor.region != region {
            return Err(bad(&format!(
                "written for region {}, not {region}",
                cursor.region
            )));
        }
        if cursor.link == 0 || cursor.link > MAX_LINKS {
            return Err(bad("its link number is out of range"));
        }
        Ok(cursor)
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cursor() -> Cursor {
        Cursor {
            next: "app/db-0042".into(),
            region: "us-east-1".into(),
            config: "abc".into(),
            link: 3,
            failures: 2,
            first_kind: Some("Throttled".into()),
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_function_and_region_only() {
        let c = cursor();
        let s = c.encode("replicator");
        assert_eq!(Cursor::decode(&s, "replicator", "us-east-1").unwrap(), c);
        for (text, function, region) in [
            (s.clone(), "other-function", "us-east-1"),
            (s.clone(), "replicator", "eu-west-1"),
            ("garbage".to_string(), "replicator", "us-east-1"),
            (s.replace("v1.", "v2."), "replicator", "us-east-1"),
            (format!("{s}x"), "replicator", "us-east-1"),
            ("x".repeat(5000), "replicator", "us-east-1"),
        ] {
            let e = Cursor::decode(&text, function, region).unwrap_err();
            assert_eq!(
                e.kind(),
                crate::outcome::ErrorKind::InvalidEvent,
                "{text:.40}"
            );
        }
        // A body altered but re-tagged by a stranger who does not know the function's name
        // still fails; a link number out of range fails even when tagged right.
        let mut far = cursor();
        far.link = MAX_LINKS + 1;
        assert!(Cursor::decode(&far.encode("replicator"), "replicator", "us-east-1").is_err());
    }

    proptest! {
        #[test]
        fn base64url_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(unbase64url(&base64url(&bytes)), Some(bytes));
        }

        #[test]
        fn decoding_anything_never_panics(s in ".{0,200}") {
            let _ = Cursor::decode(&s, "f", "us-east-1");
        }
    }
}
