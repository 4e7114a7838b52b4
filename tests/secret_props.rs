//! Property tests of the secret reader: no input panics, every rejection names its rule
//! and never quotes the input, and whatever is accepted is the input minus whitespace.

use std::path::Path;

use proptest::prelude::*;
use token_rotator::secret::{normalize, Fingerprint, TokenFormat, MAX_SECRET_BYTES};

const RULES: &[&str] = &[
    "too_large",
    "empty",
    "bad_byte",
    "multiple_tokens",
    "refresh_token",
    "api_key",
    "wrong_prefix",
    "too_short",
    "bad_character",
];

/// Raw contents biased towards the interesting: tokens, pieces of them, whitespace, junk.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"sk-ant-oat01-".to_vec()),
        Just(b"sk-ant-ort01-".to_vec()),
        Just(b"sk-ant-api03-".to_vec()),
        "[A-Za-z0-9_-]{1,120}".prop_map(String::into_bytes),
        "[ \t\r\n]{1,4}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..16),
    ];
    prop_oneof![
        proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        proptest::collection::vec(any::<u8>(), 0..(MAX_SECRET_BYTES + 64)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_input_is_accepted_or_rejected_by_a_named_rule(raw in contents(), any_format in any::<bool>()) {
        let format = if any_format { TokenFormat::Any } else { TokenFormat::Oauth };
        match normalize(Path::new("/run/secrets/t"), &raw, format) {
            Ok(token) => {
                let stripped: Vec<u8> = raw.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
                prop_assert_eq!(token.expose().as_bytes(), &stripped[..]);
                prop_assert_eq!(token.fingerprint(), &Fingerprint::of(token.expose()));
                let debug = format!("{:?}", token);
                // A secret of a few characters may occur in any text (the hex fingerprint).
                if token.expose().len() >= 12 {
                    prop_assert!(!debug.contains(token.expose()));
                }
                if format == TokenFormat::Oauth {
                    prop_assert!(token.expose().starts_with("sk-ant-oat01-"));
                    prop_assert!(token.expose().len() >= 13 + 40);
                }
            }
            Err(e) => {
                prop_assert!(RULES.contains(&e.rule()), "unknown rule {}", e.rule());
                let msg = e.to_string();
                prop_assert!(msg.contains("/run/secrets/t"), "message names the file: {msg}");
                // The message never quotes the content: no 12-byte run of it appears.
                let text = String::from_utf8_lossy(&raw);
                let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
                for w in chars.windows(12) {
                    let piece: String = w.iter().collect();
                    let public = ["sk-ant-oat01-", "sk-ant-ort01-", "sk-ant-api03-"];
                    if public.iter().any(|p| p.contains(&piece)) {
                        continue; // the public prefixes are named in messages on purpose
                    }
                    prop_assert!(!msg.contains(&piece), "message quotes input {piece:?}: {msg}");
                }
            }
        }
    }

    #[test]
    fn a_token_broken_anywhere_by_whitespace_reads_back_whole(
        body in "[A-Za-z0-9_-]{40,120}",
        cuts in proptest::collection::vec((0usize..200, "[ \t\r\n]{1,3}"), 0..6),
    ) {
        let token = format!("sk-ant-oat01-{body}");
        let mut raw = token.clone();
        for (at, ws) in cuts {
            let at = at % (raw.len() + 1);
            if raw.is_char_boundary(at) {
                raw.insert_str(at, &ws);
            }
        }
        let read = normalize(Path::new("/s"), raw.as_bytes(), TokenFormat::Oauth).unwrap();
        prop_assert_eq!(read.expose(), token.as_str());
    }
}
