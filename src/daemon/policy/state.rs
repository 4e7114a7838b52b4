//! What survives a restart: the retired-token watch (which tokens, since when, the next
//! probe, what was announced) and the tokens the API rejected. The policy hands it out as
//! [`super::Action::Persist`] whenever it changes and takes it back as
//! [`super::Input::Restored`] at start; where it is kept is the shell's business
//! ([`crate::daemon::store`]). Times are wall-clock times: a monotonic instant means
//! nothing after a restart.

use std::time::{Duration, SystemTime};

use super::retired;
use crate::secret::{Fingerprint, Token};

/// The durable part of the daemon's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The retired tokens being watched, in retirement order.
    pub retired: Vec<Retired>,
    /// The fingerprints of the tokens the API rejected, sorted.
    pub rejected: Vec<Fingerprint>,
}

/// One retired token's watch.
#[derive(Debug, Clone)]
pub struct Retired {
    /// The token itself: it is probed.
    pub token: Token,
    /// When a swap replaced it.
    pub retired_at: SystemTime,
    /// The number of the next probe in the schedule.
    pub next: usize,
    /// When the next probe is due.
    pub next_at: SystemTime,
    /// What the API last said of it.
    pub state: retired::State,
    /// When it was last probed.
    pub last_probe_at: Option<SystemTime>,
    /// What that probe answered.
    pub last_answer: Option<String>,
    /// Whether `retired_token_alive` was announced for it.
    pub alerted: bool,
}

impl PartialEq for Retired {
    fn eq(&self, o: &Self) -> bool {
        self.token.fingerprint() == o.token.fingerprint()
            && self.retired_at == o.retired_at
            && self.next == o.next
            && self.next_at == o.next_at
            && self.state == o.state
            && self.last_probe_at == o.last_probe_at
            && self.last_answer == o.last_answer
            && self.alerted == o.alerted
    }
}

/// How long ago `then` was, by the wall clock (zero if it is in the future).
pub fn since(wall: SystemTime, then: SystemTime) -> Duration {
    wall.duration_since(then).unwrap_or_default()
}
