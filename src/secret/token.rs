//! The token itself: its accepted shapes, its fingerprint, and a wrapper that never prints it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Which token shapes are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenFormat {
    /// `sk-ant-oat01-` followed by 40 or more of `[A-Za-z0-9_-]`.
    Oauth,
    /// Any printable ASCII secret (the shape check is off).
    Any,
}

/// The first 12 hex digits of a token's SHA-256: how logs, labels and metrics name a token.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprint of an exact secret value; an empty value (`VAR=`) is no token and is
    /// named `empty`, not by the digest of nothing.
    pub fn of(secret: &str) -> Self {
        if secret.is_empty() {
            return Fingerprint(Self::EMPTY.to_string());
        }
        let digest = Sha256::digest(secret.as_bytes());
        Fingerprint(hex::encode(&digest[..6]))
    }

    /// A fingerprint as written (12 lowercase hex digits, or `empty`); `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.len() == 12
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (hex || s == Self::EMPTY).then(|| Fingerprint(s.to_string()))
    }

    /// What an empty value is called where a fingerprint would stand.
    pub const EMPTY: &'static str = "empty";

    /// The 12 hex digits (or `empty`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// A normalized secret. Its `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
    fingerprint: Fingerprint,
}

impl Token {
    /// Wraps an already-normalized value; prefer [`super::read_token`] or [`super::normalize`].
    pub(crate) fn new(value: String) -> Self {
        let fingerprint = Fingerprint::of(&value);
        Token {
            secret: SecretString::from(value),
            fingerprint,
        }
    }

    /// The token's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The secret itself; only for the HTTP header and the container env.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Whether `value` is exactly this token (compared by full SHA-256, not the short fingerprint).
    pub fn matches(&self, value: &str) -> bool {
        Sha256::digest(value.as_bytes()) == Sha256::digest(self.expose().as_bytes())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(fingerprint={})", self.fingerprint)
    }
}
