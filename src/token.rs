//! Version tokens (SPEC §8): deterministic, UUID-shaped, recognisable, never derived from a value.
//!
//! A token looks like `xxxxxxxx-xxxx-8a5e-Yxxx-xxxxxxxxxxxx`: the third group is always `8a5e`
//! (UUID version 8, "custom", followed by the fixed marker `a5e`) and `Y` is one of `8 9 a b` (the
//! RFC 9562 variant). Secrets Manager's own version ids are UUIDv4 (third group `4xxx`), so a
//! version whose id has this shape was written by a replicator: that is how a replica is
//! recognised from a single GetSecretValue (§5, reason `replica`).

use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped whenever the engine's output for the same input could change, so that a new engine
/// writes a new version instead of colliding with an old token.
pub const TOKEN_FORMAT: u32 = 1;

/// The fixed third group of every replicator token.
const MARKER_GROUP: &str = "8a5e";

/// Everything a token is derived from. No field holds a secret value.
#[derive(Debug, Clone, Copy)]
pub struct TokenInput<'a> {
    pub source_arn: &'a str,
    pub source_version: &'a str,
    pub dest_account: &'a str,
    pub dest_region: &'a str,
    pub dest_name: &'a str,
    /// Fingerprint of the transform chain and its variable values (see `Destination::fingerprint`).
    pub transform_fingerprint: &'a str,
}

/// The deterministic token for one (source version, destination, transform chain).
pub fn derive(input: &TokenInput<'_>) -> String {
    let mut h = Sha256::new();
    h.update(TOKEN_FORMAT.to_be_bytes());
    for field in [
        input.source_arn,
        input.source_version,
        input.dest_account,
        input.dest_region,
        input.dest_name,
        input.transform_fingerprint,
    ] {
        // Length-prefixed, so that ("ab","c") and ("a","bc") hash differently.
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    shape(&h.finalize())
}

/// A fresh token of the same recognisable shape, for the rare collision case (a token already
/// used with a different value). Unique per process and call; unpredictable enough for that use.
pub fn fresh(previous: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(nanos.to_be_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    shape(&h.finalize())
}

/// True when a version id has the replicator token shape.
pub fn is_replicator_token(version_id: &str) -> bool {
    let b = version_id.as_bytes();
    if b.len() != 36 {
        return false;
    }
    let groups: Vec<&str> = version_id.split('-').collect();
    if groups.len() != 5 || groups.iter().map(|g| g.len()).ne([8, 4, 4, 4, 12]) {
        return false;
    }
    let hex = groups
        .iter()
        .all(|g| g.bytes().all(|c| c.is_ascii_hexdigit()));
    hex && groups[2].eq_ignore_ascii_case(MARKER_GROUP)
        && matches!(
            groups[3].as_bytes()[0].to_ascii_lowercase(),
            b'8' | b'9' | b'a' | b'b'
        )
}

/// The marker tag value naming a source: `<account>:<region>:<name>`, or its SHA-256 hex digest
/// when longer than a tag value may be (256 characters).
pub fn marker_value(account: &str, region: &str, name: &str) -> String {
    let full = format!("{account}:{region}:{name}");
    if full.chars().count() <= 256 {
        full
    } else {
        hex(&Sha256::digest(full.as_bytes()))
    }
}

fn shape(digest: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    let h = hex(&b);
    // Group 3 is fixed; the first nibble of group 4 carries the RFC 9562 variant (10xx).
    let variant = ["8", "9", "a", "b"][usize::from(b[8] & 0x03)];
    format!(
        "{}-{}-{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        MARKER_GROUP,
        variant,
        &h[17..20],
        &h[20..32]
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input<'a>(version: &'a str, name: &'a str) -> TokenInput<'a> {
        TokenInput {
            source_arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf",
            source_version: version,
            dest_account: "222233334444",
            dest_region: "us-west-2",
            dest_name: name,
            transform_fingerprint: "",
        }
    }

    #[test]
    fn tokens_are_deterministic_and_differ_per_input() {
        let a = derive(&input("v1", "dr/app/db"));
        assert_eq!(a, derive(&input("v1", "dr/app/db")));
        assert_ne!(a, derive(&input("v2", "dr/app/db")));
        assert_ne!(a, derive(&input("v1", "dr/app/db2")));
        let mut with_chain = input("v1", "dr/app/db");
        with_chain.transform_fingerprint = "s/a/b/";
        assert_ne!(a, derive(&with_chain));
    }

    #[test]
    fn tokens_are_uuid_shaped_and_recognised() {
        let t = derive(&input("v1", "x"));
        assert_eq!(t.len(), 36);
        assert!(is_replicator_token(&t), "{t}");
        assert!(is_replicator_token(&fresh(&t)));
        assert_ne!(fresh(&t), fresh(&t));
    }

    #[test]
    fn aws_version_ids_are_not_recognised() {
        for id in [
            "6c1a8b2e-3d4f-4a5b-9c8d-7e6f5a4b3c2d",
            "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
            "",
            "8a5e",
            "zzzzzzzz-zzzz-8a5e-8zzz-zzzzzzzzzzzz",
            "12345678-1234-8a5e-1234-123456789012",
        ] {
            assert!(!is_replicator_token(id), "{id}");
        }
    }

    #[test]
    fn long_markers_are_hashed() {
        assert_eq!(marker_value("1", "us-east-1", "a/b"), "1:us-east-1:a/b");
        let long = "n".repeat(300);
        let m = marker_value("111122223333", "us-east-1", &long);
        assert_eq!(m.len(), 64);
        assert!(m.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    proptest! {
        #[test]
        fn every_derived_token_is_recognised(v in ".{0,40}", n in ".{1,60}") {
            prop_assert!(is_replicator_token(&derive(&input(&v, &n))));
        }

        #[test]
        fn random_v4_uuids_are_never_recognised(bytes in proptest::array::uniform16(any::<u8>())) {
            let h = hex(&bytes);
            let v4 = format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32]);
            prop_assert!(!is_replicator_token(&v4));
        }
    }
}
