//! The secret: the [`Token`] (never printed, named by its [`Fingerprint`]), reading it
//! from a file, and the [`Redactor`] that keeps it out of every piece of text that
//! comes from a container.

mod mount;
mod read;
mod redact;
mod token;

pub use mount::single_file_mount_problem;
pub use read::{normalize, read_token, read_token_async, SecretError, MAX_SECRET_BYTES};
pub use read::{OAUTH_MIN_BODY, OAUTH_PREFIX};
pub use redact::Redactor;
pub use token::{Fingerprint, Token, TokenFormat};
