//! What survives a restart: the retired-token watch (which tokens, since when, the next
//! probe, what was announced), the tokens the API rejected, the open problems (what was
//! announced, since when, when it is repeated), and when the tokens deployed were first
//! deployed. The policy hands it out as
//! [`super::Action::Persist`] whenever it changes and takes it back as
//! [`super::Input::Restored`] at start; where it is kept is the shell's business
//! ([`crate::daemon::store`]). Times are wall-clock times: a monotonic instant means
//! nothing after a restart.

use super::{age, problems, retired};
use crate::secret::Fingerprint;

/// The durable part of the daemon's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The retired tokens being watched, in retirement order.
    pub retired: Vec<retired::Kept>,
    /// The fingerprints of the tokens the API rejected, sorted.
    pub rejected: Vec<Fingerprint>,
    /// The problems that need a person, open, in the order they opened.
    pub problems: Vec<problems::Problem>,
    /// When the tokens deployed were first deployed (least recently deployed first), and
    /// whether `token_expiring` is open for them (derived from `problems`).
    pub deployed: Vec<age::Kept>,
}
