//! Read the secret file and normalize it into a [`Token`].
//!
//! A pasted `claude setup-token` output often carries line breaks or spaces in the
//! middle, so all whitespace is stripped. Everything else that is wrong is rejected
//! with a [`SecretError`] that names the rule; no message ever contains the token.
//!
//! The file is opened without blocking (a FIFO put in its place must not hang the
//! reader) and its type is checked on the opened handle, so a swap between a check and
//! the open cannot slip a device or a pipe past it. Async callers use
//! [`read_token_async`], which reads off the runtime's worker threads.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::token::{Token, TokenFormat};

/// Largest secret file accepted; the reader never reads more than one byte past it.
pub const MAX_SECRET_BYTES: usize = 4096;

/// Prefix of a long-lived Claude Code OAuth token from `claude setup-token`.
pub const OAUTH_PREFIX: &str = "sk-ant-oat01-";
/// Fewest characters that follow [`OAUTH_PREFIX`] in a well-formed token.
pub const OAUTH_MIN_BODY: usize = 40;
const REFRESH_PREFIX: &str = "sk-ant-ort01-";
const API_KEY_PREFIX: &str = "sk-ant-api";
/// Every Anthropic credential starts with this; two of them in one file means two tokens.
const ANTHROPIC_MARK: &str = "sk-ant-";

/// Why a secret file was rejected. Each variant names the rule that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The path does not exist (or a symlink on it dangles).
    #[error("secret file {0} does not exist: write the token there, or point --secret-file at it")]
    Missing(PathBuf),
    /// The path is a directory.
    #[error(
        "secret file {0} is a directory, not a file: point --secret-file at the file inside it"
    )]
    IsDirectory(PathBuf),
    /// The path is a FIFO (named pipe): reading it would wait for a writer.
    #[error("secret file {0} is a FIFO (named pipe), not a file: a pipe's reader waits for a writer forever; write the token into a regular file")]
    Fifo(PathBuf),
    /// The path is a character or block device.
    #[error("secret file {0} is a device, not a file: point --secret-file at a regular file holding the token")]
    Device(PathBuf),
    /// The path is a socket or another kind of special file.
    #[error("secret file {0} is not a regular file")]
    NotRegularFile(PathBuf),
    /// The file exists but cannot be opened or read.
    #[error("cannot read secret file {path}: {reason}")]
    Unreadable {
        /// The secret file.
        path: PathBuf,
        /// The OS error, which never contains file content.
        reason: String,
    },
    /// This process may not read the file.
    #[error("cannot read secret file {path}: permission denied: token-rotator runs as uid {uid}; make the file readable by it (mode 0644, or 0640 with a group the sidecar is in, `group_add`)")]
    PermissionDenied {
        /// The secret file.
        path: PathBuf,
        /// The uid this process runs as.
        uid: u32,
    },
    /// The file holds more than [`MAX_SECRET_BYTES`].
    #[error(
        "secret file {0} is larger than {MAX_SECRET_BYTES} bytes: it does not hold a single token"
    )]
    TooLarge(PathBuf),
    /// Nothing but whitespace.
    #[error("secret file {0} is empty (or whitespace only)")]
    Empty(PathBuf),
    /// A byte outside printable ASCII.
    #[error(
        "secret file {path} contains a {kind} at byte {offset}: a token is printable ASCII only"
    )]
    BadByte {
        /// The secret file.
        path: PathBuf,
        /// "non-ASCII byte" or "control character".
        kind: &'static str,
        /// Offset of the first bad byte in the file.
        offset: usize,
    },
    /// Two or more credentials in one file.
    #[error("secret file {0} holds more than one token: keep exactly one token in it")]
    MultipleTokens(PathBuf),
    /// A refresh token (`sk-ant-ort01-`) was given.
    #[error("secret file {0} holds a refresh token (sk-ant-ort01-), which cannot authenticate: use the token printed by `claude setup-token` (sk-ant-oat01-)")]
    RefreshToken(PathBuf),
    /// An API key (`sk-ant-api..`) was given.
    #[error("secret file {0} holds an API key (sk-ant-api...), not a Claude Code OAuth token (sk-ant-oat01-): an API key is for ANTHROPIC_API_KEY, which Claude Code prefers over an OAuth token and bills per use; for the bot's OAuth variable mint a token with `claude setup-token`. Only if the target's --env-var really takes another kind of secret, use --token-format any")]
    ApiKey(PathBuf),
    /// The token does not start with `sk-ant-oat01-`.
    #[error("secret file {0} does not hold a Claude Code OAuth token: it must start with sk-ant-oat01- (use --token-format any for other secrets)")]
    WrongPrefix(PathBuf),
    /// The part after the prefix is shorter than 40 characters: likely a truncated paste.
    #[error("token in {path} is too short ({body_len} characters after sk-ant-oat01-, at least {OAUTH_MIN_BODY} expected): was it truncated when copied?")]
    TooShort {
        /// The secret file.
        path: PathBuf,
        /// Characters after the prefix.
        body_len: usize,
    },
    /// A character outside `[A-Za-z0-9_-]` after the prefix.
    #[error("token in {path} has a character outside [A-Za-z0-9_-] at position {position} (after whitespace was removed)")]
    BadCharacter {
        /// The secret file.
        path: PathBuf,
        /// 0-based position in the normalized token.
        position: usize,
    },
}

impl SecretError {
    /// A short stable name of the rule that failed, for metrics and webhooks.
    pub fn rule(&self) -> &'static str {
        match self {
            SecretError::Missing(_) => "missing",
            SecretError::IsDirectory(_) => "directory",
            SecretError::Fifo(_) => "fifo",
            SecretError::Device(_) => "device",
            SecretError::NotRegularFile(_) => "not_regular_file",
            SecretError::Unreadable { .. } => "unreadable",
            SecretError::PermissionDenied { .. } => "permission_denied",
            SecretError::TooLarge(_) => "too_large",
            SecretError::Empty(_) => "empty",
            SecretError::BadByte { .. } => "bad_byte",
            SecretError::MultipleTokens(_) => "multiple_tokens",
            SecretError::RefreshToken(_) => "refresh_token",
            SecretError::ApiKey(_) => "api_key",
            SecretError::WrongPrefix(_) => "wrong_prefix",
            SecretError::TooShort { .. } => "too_short",
            SecretError::BadCharacter { .. } => "bad_character",
        }
    }
}

/// Reads, bounds and normalizes the token in `path`. Blocking: async code calls
/// [`read_token_async`].
pub fn read_token(path: &Path, format: TokenFormat) -> Result<Token, SecretError> {
    let bytes = read_bounded(path)?;
    normalize(path, &bytes, format)
}

/// [`read_token`] on a blocking thread, so a slow file system never stalls the runtime.
pub async fn read_token_async(path: &Path, format: TokenFormat) -> Result<Token, SecretError> {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || read_token(&owned, format)).await {
        Ok(result) => result,
        Err(e) => Err(SecretError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("the reading thread failed: {e}"),
        }),
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, SecretError> {
    let p = || path.to_path_buf();
    let io_err = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => SecretError::Missing(p()),
        std::io::ErrorKind::PermissionDenied => SecretError::PermissionDenied {
            path: p(),
            // SAFETY: geteuid has no preconditions and cannot fail.
            uid: unsafe { libc::geteuid() },
        },
        _ => SecretError::Unreadable {
            path: p(),
            reason: e.to_string(),
        },
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err)?;
    // The type of what was opened, not of what the path named a moment before.
    let kind = file.metadata().map_err(io_err)?.file_type();
    if kind.is_dir() {
        return Err(SecretError::IsDirectory(p()));
    }
    if kind.is_fifo() {
        return Err(SecretError::Fifo(p()));
    }
    if kind.is_char_device() || kind.is_block_device() {
        return Err(SecretError::Device(p()));
    }
    if !kind.is_file() {
        return Err(SecretError::NotRegularFile(p()));
    }
    let mut bytes = Vec::with_capacity(512);
    file.take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge(p()));
    }
    Ok(bytes)
}

/// Normalizes raw file content: strips all whitespace and applies the rules of `format`.
/// `path` is used only in error messages.
pub fn normalize(path: &Path, raw: &[u8], format: TokenFormat) -> Result<Token, SecretError> {
    let p = || path.to_path_buf();
    if raw.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge(p()));
    }
    if let Some(offset) = raw.iter().position(|b| !b.is_ascii()) {
        return Err(SecretError::BadByte {
            path: p(),
            kind: "non-ASCII byte",
            offset,
        });
    }
    if let Some(offset) = raw
        .iter()
        .position(|b| b.is_ascii_control() && !b.is_ascii_whitespace())
    {
        return Err(SecretError::BadByte {
            path: p(),
            kind: "control character",
            offset,
        });
    }
    let value: String = raw
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|&b| b as char)
        .collect();
    if value.is_empty() {
        return Err(SecretError::Empty(p()));
    }
    if value.matches(ANTHROPIC_MARK).count() > 1 {
        return Err(SecretError::MultipleTokens(p()));
    }
    if format == TokenFormat::Oauth {
        check_oauth_shape(path, &value)?;
    }
    Ok(Token::new(value))
}

fn check_oauth_shape(path: &Path, value: &str) -> Result<(), SecretError> {
    let p = || path.to_path_buf();
    if value.starts_with(REFRESH_PREFIX) {
        return Err(SecretError::RefreshToken(p()));
    }
    if value.starts_with(API_KEY_PREFIX) {
        return Err(SecretError::ApiKey(p()));
    }
    let Some(body) = value.strip_prefix(OAUTH_PREFIX) else {
        return Err(SecretError::WrongPrefix(p()));
    };
    if let Some(i) = body
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Err(SecretError::BadCharacter {
            path: p(),
            position: OAUTH_PREFIX.len() + i,
        });
    }
    if body.len() < OAUTH_MIN_BODY {
        return Err(SecretError::TooShort {
            path: p(),
            body_len: body.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Fingerprint;
    use super::*;

    const GOOD: &str = "sk-ant-oat01-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01";

    fn norm(raw: &str) -> Result<Token, SecretError> {
        normalize(Path::new("/s"), raw.as_bytes(), TokenFormat::Oauth)
    }

    #[test]
    fn strips_line_breaks_and_spaces_inside_a_pasted_token() {
        let broken = format!(
            "  {}\r\n {}\n\t{}\n",
            &GOOD[..30],
            &GOOD[30..70],
            &GOOD[70..]
        );
        let t = norm(&broken).unwrap();
        assert_eq!(t.expose(), GOOD);
        assert_eq!(t.fingerprint(), &Fingerprint::of(GOOD));
    }

    #[test]
    fn fingerprint_is_first_12_hex_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(Fingerprint::of("abc").as_str(), "ba7816bf8f01");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = norm(GOOD).unwrap();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&GOOD[13..25]), "{dbg}");
        assert!(dbg.contains(t.fingerprint().as_str()));
    }

    #[test]
    fn each_bad_shape_names_its_rule() {
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty"),
            (" \n\t \r\n".into(), "empty"),
            (format!("{GOOD}\n{GOOD}"), "multiple_tokens"),
            (GOOD.replace("oat01", "ort01"), "refresh_token"),
            (GOOD.replace("oat01", "api03"), "api_key"),
            (GOOD.replace("sk-ant-oat01-", "ghp_"), "wrong_prefix"),
            (GOOD[..50].to_string(), "too_short"),
            (GOOD.replace('Q', "."), "bad_character"),
            (format!("{GOOD}\u{7f}"), "bad_byte"),
            (format!("{GOOD}é"), "bad_byte"),
        ];
        for (raw, rule) in cases {
            let err = norm(&raw).unwrap_err();
            assert_eq!(err.rule(), rule, "{err}");
            let msg = err.to_string();
            assert!(!msg.contains(&GOOD[13..25]), "message leaks token: {msg}");
        }
    }

    #[test]
    fn format_any_accepts_other_secrets_but_still_refuses_two() {
        let any = |raw: &str| normalize(Path::new("/s"), raw.as_bytes(), TokenFormat::Any);
        assert_eq!(any("hunter2\n").unwrap().expose(), "hunter2");
        assert_eq!(
            any(&format!("{GOOD} {GOOD}")).unwrap_err().rule(),
            "multiple_tokens"
        );
    }

    #[test]
    fn file_rules_missing_directory_and_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(
            read_token(&missing, TokenFormat::Oauth).unwrap_err().rule(),
            "missing"
        );
        assert_eq!(
            read_token(dir.path(), TokenFormat::Oauth)
                .unwrap_err()
                .rule(),
            "directory"
        );
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_BYTES + 1]).unwrap();
        assert_eq!(
            read_token(&big, TokenFormat::Oauth).unwrap_err().rule(),
            "too_large"
        );
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            read_token(&fifo, TokenFormat::Oauth).unwrap_err().rule(),
            "fifo"
        );
        assert_eq!(
            read_token(Path::new("/dev/zero"), TokenFormat::Oauth)
                .unwrap_err()
                .rule(),
            "device"
        );
        let ok = dir.path().join("ok");
        std::fs::write(&ok, format!("{GOOD}\n")).unwrap();
        assert_eq!(read_token(&ok, TokenFormat::Oauth).unwrap().expose(), GOOD);
    }
}
