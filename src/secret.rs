//! The redacting value type. A secret's value lives only here: `Debug` and `Display` print a
//! marker, so a value cannot reach a log line, an error or a panic message by formatting.

use std::fmt;

/// What every formatting of a secret value prints.
pub const REDACTED: &str = "[REDACTED]";

/// A Secrets Manager value: `SecretString` or `SecretBinary`, byte-for-byte.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// `SecretString` (UTF-8 text).
    String(String),
    /// `SecretBinary` (raw bytes, replicated untouched).
    Binary(Vec<u8>),
}

impl SecretValue {
    /// Size as Secrets Manager counts it: UTF-8 bytes of a string, raw bytes of a binary.
    pub fn len(&self) -> usize {
        match self {
            SecretValue::String(s) => s.len(),
            SecretValue::Binary(b) => b.len(),
        }
    }

    /// True for a zero-length value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
            SecretValue::String(canary.to_string()),
            SecretValue::Binary(canary.as_bytes().to_vec()),
        ] {
            assert!(!format!("{v:?}").contains(canary));
            assert!(!format!("{v:#?}").contains(canary));
            assert!(!format!("{v}").contains(canary));
            assert_eq!(v.len(), canary.len());
        }
    }
}
