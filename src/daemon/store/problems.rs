//! The open problems in `state.json`: one flat object each, named by the event that
//! announces it, with the fields its kind needs (fingerprints only, no token).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::time;
use crate::daemon::policy::problems::{Detail, Kind, Problem};
use crate::error::Outcome;
use crate::secret::Fingerprint;

/// One open problem as kept.
#[derive(Serialize, Deserialize)]
pub struct KeptProblem {
    /// `standby_needed`, `retired_token_alive`, `rotation_failed`, `drift` or `token_expiring`.
    problem: String,
    fingerprint: String,
    since: String,
    /// When it was last announced (`null`: not yet, it waits).
    announced_at: Option<String>,
    reminders: u32,
    /// `standby_needed`: why there is no spare, and the live token after a promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    live_fingerprint: Option<String>,
    /// `retired_token_alive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<String>,
    /// `rotation_failed`: the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// `rotation_failed`, `drift`, `token_expiring`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    targets: Vec<String>,
    /// `token_expiring`: when the token was first deployed, and its estimated end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_deployed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl KeptProblem {
    /// `p` as kept.
    pub fn of(p: &Problem) -> Self {
        let mut k = KeptProblem {
            problem: p.kind().event().to_string(),
            fingerprint: p.fingerprint.to_string(),
            since: time(p.since),
            announced_at: p.announced_at.map(time),
            reminders: p.reminders,
            reason: None,
            live_fingerprint: None,
            retired_at: None,
            outcome: None,
            error: None,
            targets: Vec::new(),
            first_deployed_at: None,
            expires_at: None,
        };
        match &p.detail {
            Detail::StandbyNeeded { reason, live } => {
                k.reason = Some(reason.clone());
                k.live_fingerprint = live.as_ref().map(|f| f.to_string());
            }
            Detail::RetiredTokenAlive { retired_at } => k.retired_at = Some(time(*retired_at)),
            Detail::RotationFailed {
                outcome,
                error,
                targets,
            } => {
                k.outcome = Some(outcome.label().to_string());
                k.error = error.clone();
                k.targets = targets.clone();
            }
            Detail::Drift { targets } => k.targets = targets.clone(),
            Detail::TokenExpiring {
                first_deployed,
                expires_at,
                targets,
            } => {
                k.first_deployed_at = Some(time(*first_deployed));
                k.expires_at = Some(time(*expires_at));
                k.targets = targets.clone();
            }
        }
        k
    }

    /// The problem, or what is wrong with it (never its content).
    pub fn read(self) -> Result<Problem, String> {
        let at = |s: &str| {
            humantime::parse_rfc3339(s).map_err(|_| "a problem's time is not RFC 3339".to_string())
        };
        let fp = |s: &str| {
            Fingerprint::parse(s)
                .ok_or_else(|| "a problem's fingerprint is not 12 hex digits".to_string())
        };
        let kind = Kind::parse(&self.problem).ok_or("a problem's name is not a known one")?;
        let missing = || format!("a {} problem lacks one of its fields", self.problem);
        let detail = match kind {
            Kind::StandbyNeeded => Detail::StandbyNeeded {
                reason: self.reason.clone().ok_or_else(missing)?,
                live: self.live_fingerprint.as_deref().map(fp).transpose()?,
            },
            Kind::RetiredTokenAlive => Detail::RetiredTokenAlive {
                retired_at: at(self.retired_at.as_deref().ok_or_else(missing)?)?,
            },
            Kind::RotationFailed => {
                let label = self.outcome.as_deref().ok_or_else(missing)?;
                let outcome = Outcome::ALL.into_iter().find(|o| o.label() == label);
                Detail::RotationFailed {
                    outcome: outcome.ok_or("a problem's outcome is not a known one")?,
                    error: self.error.clone(),
                    targets: self.targets.clone(),
                }
            }
            Kind::Drift => Detail::Drift {
                targets: self.targets.clone(),
            },
            Kind::TokenExpiring => Detail::TokenExpiring {
                first_deployed: at(self.first_deployed_at.as_deref().ok_or_else(missing)?)?,
                expires_at: at(self.expires_at.as_deref().ok_or_else(missing)?)?,
                targets: self.targets.clone(),
            },
        };
        let announced_at: Option<SystemTime> = self.announced_at.as_deref().map(at).transpose()?;
        Ok(Problem {
            fingerprint: fp(&self.fingerprint)?,
            detail,
            since: at(&self.since)?,
            announced_at,
            reminders: self.reminders,
        })
    }
}
