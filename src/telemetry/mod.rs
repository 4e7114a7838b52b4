//! What the rotator tells the outside: [`logging`] (tracing, with dependencies kept from
//! printing container env), [`metrics`] (Prometheus, in the text format [`exposition`]
//! picks for each scraper), [`status`] (each target as the engine shows it), [`http`] (the
//! daemon's endpoints) and [`notify`] (notifiers by URL, the webhook among them).

pub mod exposition;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod status;

use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;

/// What the daemon shares with its endpoints.
#[derive(Debug, Default)]
pub struct Shared {
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// The last rotation's report.
    pub last_report: RwLock<Option<crate::rotation::RotationReport>>,
    /// The rotator, once the engine answered (the endpoints serve before that).
    pub rotator: OnceLock<Arc<crate::rotation::Rotator>>,
    /// Why the engine cannot be reached yet, while the daemon waits for it at start.
    pub engine_problem: RwLock<Option<String>>,
    /// The live and standby tokens, for `/status`.
    pub tokens: RwLock<TokenStatus>,
    /// The state file, when state survives a restart (`None`: kept in memory only).
    pub state_file: OnceLock<Option<std::path::PathBuf>>,
}

/// Which token is live and which waits, as `/status` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenStatus {
    /// The token the targets were last rotated to (`null` before the first rotation).
    pub live: Option<LiveStatus>,
    /// The standby token.
    pub standby: StandbyStatus,
    /// The retired tokens being watched.
    pub retired: Vec<RetiredStatus>,
    /// The fingerprints of the tokens the API rejected (never deployed again).
    pub rejected: Vec<String>,
}

/// The live token.
#[derive(Debug, Clone, Serialize)]
pub struct LiveStatus {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Which file it came from: `primary` or `standby`.
    pub source: &'static str,
    /// `ok` (the last probe accepted it), `rejected` (401/403) or `unknown`.
    pub state: &'static str,
    /// When it was last probed (RFC 3339).
    pub last_probe: Option<String>,
    /// What that probe answered.
    pub last_answer: Option<String>,
    /// Log lines that looked like a rejection while the probe found the token valid.
    pub false_alarms: u64,
    /// Its age: `first_deployed_at`, `age_seconds`, `expires_at`.
    #[serde(flatten)]
    pub age: AgeStatus,
}

/// The live token's age, an estimate: the token is opaque, what is known is when it was
/// first deployed (the label `token-rotator.first-deployed`); its end is that plus
/// `--token-lifetime`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgeStatus {
    /// When it was first deployed (RFC 3339), if known.
    pub first_deployed_at: Option<String>,
    /// How long ago that was, in seconds (as of the request).
    pub age_seconds: Option<u64>,
    /// Its estimated end: first deployed + `--token-lifetime` (RFC 3339).
    pub expires_at: Option<String>,
    /// `first_deployed_at` as a time, to compute `age_seconds` again.
    #[serde(skip)]
    pub since: Option<std::time::SystemTime>,
}

impl AgeStatus {
    /// A token first deployed at `first`, expected to last `lifetime`, as of `now`.
    pub fn of(
        first: std::time::SystemTime,
        lifetime: std::time::Duration,
        now: std::time::SystemTime,
    ) -> Self {
        let t = |t| humantime::format_rfc3339_seconds(t).to_string();
        let mut a = AgeStatus {
            first_deployed_at: Some(t(first)),
            age_seconds: None,
            expires_at: Some(t(first + lifetime)),
            since: Some(first),
        };
        a.at(now);
        a
    }

    /// `age_seconds` as of `now`.
    pub fn at(&mut self, now: std::time::SystemTime) {
        self.age_seconds = self
            .since
            .map(|s| now.duration_since(s).unwrap_or_default().as_secs());
    }
}

/// The standby token.
#[derive(Debug, Clone, Serialize)]
pub struct StandbyStatus {
    /// Its fingerprint, if the file holds a usable token.
    pub fingerprint: Option<String>,
    /// `ready`, `invalid`, `missing` (no file, or none configured) or `promoted` (it is live).
    pub state: &'static str,
    /// Why it is not ready, when it is not.
    pub reason: Option<String>,
}

impl Default for StandbyStatus {
    fn default() -> Self {
        StandbyStatus {
            fingerprint: None,
            state: "missing",
            reason: None,
        }
    }
}

/// One retired token as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RetiredStatus {
    /// Its fingerprint.
    pub fingerprint: String,
    /// When a swap replaced it (RFC 3339).
    pub retired_at: String,
    /// When it was last probed.
    pub last_probe_at: Option<String>,
    /// What that probe answered.
    pub last_answer: Option<String>,
    /// `alive` (accepted), `dead` (401/403) or `unknown` (not probed yet, or no verdict).
    pub state: &'static str,
    /// How long it has kept working since its retirement (until it was seen rejected).
    pub alive_for_seconds: Option<u64>,
}
