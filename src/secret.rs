//! Secret values. A value lives only in `secrecy`'s types: zeroized when dropped, and redacted in
//! `Debug` and `Display` (so it cannot reach a log line, an error or a panic message by
//! formatting). Reading it takes an explicit `expose_secret()`.
//!
//! What this cannot reach: the AWS SDK copies a value into its own request and response
//! buffers (plain `String`s and `Vec`s it owns) and the HTTP stack into its socket buffers; the
//! function takes ownership of response values without copying and drops its own copies
//! zeroized, but the SDK's are freed as the SDK frees them.

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::fmt;

/// What every formatting of a secret value prints.
pub const REDACTED: &str = "[REDACTED]";

/// A Secrets Manager value: `SecretString` or `SecretBinary`, byte-for-byte.
#[derive(Clone)]
pub enum SecretValue {
    /// `SecretString` (UTF-8 text).
    String(SecretString),
    /// `SecretBinary` (raw bytes, replicated untouched).
    Binary(SecretSlice<u8>),
}

impl SecretValue {
    /// A text value, taking ownership of the string (no copy is left behind).
    pub fn text(s: String) -> Self {
        SecretValue::String(SecretString::from(s))
    }

    /// A binary value, taking ownership of the bytes.
    pub fn bytes(b: Vec<u8>) -> Self {
        SecretValue::Binary(SecretSlice::from(b))
    }

    /// The value's bytes (UTF-8 of a string). Exposes the secret: compare, measure or write it,
    /// never format it.
    pub fn expose_bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.expose_secret().as_bytes(),
            SecretValue::Binary(b) => b.expose_secret(),
        }
    }

    /// Size as Secrets Manager counts it: UTF-8 bytes of a string, raw bytes of a binary.
    pub fn len(&self) -> usize {
        self.expose_bytes().len()
    }

    /// True for a zero-length value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        let same_kind = matches!(
            (self, other),
            (SecretValue::String(_), SecretValue::String(_))
                | (SecretValue::Binary(_), SecretValue::Binary(_))
        );
        same_kind && self.expose_bytes() == other.expose_bytes()
    }
}

impl Eq for SecretValue {}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::String(_) => write!(f, "SecretValue::String({REDACTED})"),
            SecretValue::Binary(_) => write!(f, "SecretValue::Binary({REDACTED})"),
        }
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let canary = "canary-3f9a1c";
        for v in [
            SecretValue::text(canary.to_string()),
            SecretValue::bytes(canary.as_bytes().to_vec()),
        ] {
            assert!(!format!("{v:?}").contains(canary));
            assert!(!format!("{v:#?}").contains(canary));
            assert!(!format!("{v}").contains(canary));
            assert_eq!(v.len(), canary.len());
        }
    }

    #[test]
    fn equality_is_of_kind_and_bytes() {
        assert_eq!(SecretValue::text("a".into()), SecretValue::text("a".into()));
        assert_ne!(SecretValue::text("a".into()), SecretValue::text("b".into()));
        assert_ne!(
            SecretValue::text("a".into()),
            SecretValue::bytes(b"a".to_vec())
        );
        assert_eq!(
            SecretValue::bytes(vec![0, 1]),
            SecretValue::bytes(vec![0, 1])
        );
    }
}
