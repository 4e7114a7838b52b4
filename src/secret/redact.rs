//! One redactor for all text that comes from a container or the engine (healthcheck and
//! exec output, `State.Error`, engine messages): it removes every token the rotator knows
//! and every 12-character piece of one, so a token cut in half by a buffer limit, or
//! quoted partly, is still removed.

use std::collections::HashSet;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The shortest piece of a secret that is removed on its own.
pub const PIECE: usize = 12;

/// What replaces a removed piece.
pub const MASK: &str = "<redacted>";

/// Removes known secrets, and every [`PIECE`]-character piece of them, from text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<SecretString>,
    pieces: HashSet<Vec<u8>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor that knows no secret yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret (an empty one is ignored).
    pub fn add(&mut self, secret: &str) {
        if secret.is_empty() || self.secrets.iter().any(|s| s.expose_secret() == secret) {
            return;
        }
        let bytes = secret.as_bytes();
        if bytes.len() < PIECE {
            self.pieces.insert(bytes.to_vec());
        }
        for w in bytes.windows(PIECE) {
            self.pieces.insert(w.to_vec());
        }
        self.secrets.push(SecretString::from(secret.to_string()));
    }

    /// The text with every known secret and every piece of one replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        if self.pieces.is_empty() {
            return text.to_string();
        }
        let bytes = text.as_bytes();
        let mut hidden = vec![false; bytes.len()];
        for secret in &self.secrets {
            let s = secret.expose_secret().as_bytes();
            let n = s.len().min(PIECE);
            for start in 0..bytes.len().saturating_sub(n - 1) {
                if self.pieces.contains(&bytes[start..start + n]) {
                    hidden[start..start + n].iter_mut().for_each(|h| *h = true);
                }
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            if hidden[i] {
                out.push_str(MASK);
                while i < bytes.len() && hidden[i] {
                    i += 1;
                }
            } else {
                // Copy up to the next hidden byte, keeping UTF-8 intact.
                let end = (i..bytes.len()).find(|&j| hidden[j]).unwrap_or(bytes.len());
                out.push_str(&String::from_utf8_lossy(&bytes[i..end]));
                i = end;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "sk-ant-oat01-OLDOLDxyz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";
    const NEW: &str = "sk-ant-oat01-NEWnew_-9876543210ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvu";

    fn both() -> Redactor {
        let mut r = Redactor::new();
        r.add(OLD);
        r.add(NEW);
        r
    }

    #[test]
    fn whole_tokens_old_and_new_are_removed() {
        let out = both().redact(&format!("using {OLD} then {NEW}."));
        assert_eq!(out, format!("using {MASK} then {MASK}."));
    }

    #[test]
    fn a_token_cut_in_half_by_a_buffer_limit_is_removed_too() {
        let tail = &NEW[NEW.len() - 20..];
        let head = &OLD[..30];
        let out = both().redact(&format!("...{tail}\nerror: bad token {head}"));
        assert!(!out.contains(&tail[..PIECE]), "{out}");
        assert!(!out.contains(&head[14..26]), "{out}");
        assert!(out.starts_with("..."), "{out}");
        assert!(out.contains("error: bad token"), "{out}");
    }

    #[test]
    fn other_text_and_non_ascii_are_kept() {
        let out = both().redact("état: ok ✓ — nothing secret");
        assert_eq!(out, "état: ok ✓ — nothing secret");
        assert!(!format!("{:?}", both()).contains("OLDOLD"));
    }
}
