//! The notices of problems that last ([`crate::daemon::policy::problems`]): `drift`, a
//! reminder (the problem's own event, with `reminder` and `since` in its body) and
//! `resolved`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::{make, retired_token_alive, standby_needed, to_do, token_expiring};
use crate::daemon::policy::problems::{Detail, Problem};
use crate::daemon::policy::rfc3339;
use crate::error::Outcome;
use crate::telemetry::notify::{Notice, Severity};

/// `drift`: targets do not carry the token they should, for a while now.
pub fn drift(fp: &str, targets: &[String], since: SystemTime, now: Option<SystemTime>) -> Notice {
    let bots = targets.join(", ");
    let for_how_long = now
        .and_then(|n| n.duration_since(since).ok())
        .map(|d| format!(" for {}", human(d)))
        .unwrap_or_default();
    let text = format!(
        "token-rotator: the bots {bots} do not carry token {fp}, the one they should run \
         on, since {}{for_how_long}: the rotations to it keep failing, and they run on an \
         older token, which may be revoked or expire. What to do: read the daemon's log \
         and /status for the failing step (engine down, a lock held by another \
         token-rotator, a target that cannot be copied) and fix it; the daemon retries.",
        rfc3339(since)
    );
    let body = json!({ "fingerprint": fp, "targets": targets, "since": rfc3339(since) });
    let title = format!("token-rotator: {bots} out of sync with the secret (token {fp})");
    make("drift", Severity::Warning, title, text, body)
}

/// An open problem, again: its own notice, marked as reminder `n` of a problem open since.
pub fn reminder(p: &Problem, at: SystemTime, standby: Option<&Path>) -> Notice {
    let fp = p.fingerprint.as_str();
    let mut n = match &p.detail {
        Detail::StandbyNeeded { reason, live } => {
            standby_needed(fp, standby, reason, live.as_ref().map(|f| f.as_str()))
        }
        Detail::RetiredTokenAlive { retired_at } => {
            let alive_for = at.duration_since(*retired_at).unwrap_or_default();
            retired_token_alive(fp, *retired_at, alive_for)
        }
        Detail::RotationFailed {
            outcome,
            error,
            targets,
        } => rotation_failed(fp, *outcome, error.as_deref(), targets),
        Detail::Drift { targets } => drift(fp, targets, p.since, Some(at)),
        Detail::TokenExpiring {
            first_deployed,
            expires_at,
            targets,
        } => {
            let age = at.duration_since(*first_deployed).unwrap_or_default();
            token_expiring(fp, (*first_deployed, *expires_at, age), targets, standby)
        }
    };
    let open_for = human(at.duration_since(p.since).unwrap_or_default());
    let since = rfc3339(p.since);
    let rest = n.title.trim_start_matches("token-rotator: ").to_string();
    n.title = format!("token-rotator: reminder {}: {rest}", p.reminders);
    n.text = format!(
        "Reminder {} (open since {since}, {open_for}): {}",
        p.reminders, n.text
    );
    n.body["reminder"] = p.reminders.into();
    n.body["since"] = since.into();
    n.body["title"] = n.title.as_str().into();
    n.body["text"] = n.text.as_str().into();
    n
}

/// A reminder of `rotation_failed`: the last failure's outcome, error and targets.
fn rotation_failed(fp: &str, outcome: Outcome, error: Option<&str>, targets: &[String]) -> Notice {
    let severity = if outcome == Outcome::RollbackFailed {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let label = outcome.label();
    let bots = targets.join(", ");
    let text = format!(
        "token-rotator: the rotations to token {fp} still fail, the last one {}: {}{}",
        label.replace('_', " "),
        error.unwrap_or(""),
        to_do(outcome, &bots)
    );
    let body = json!({ "outcome": label, "fingerprint": fp, "targets": targets, "error": error });
    let title = format!("token-rotator: rotation to token {fp} still fails");
    make("rotation_failed", severity, title, text, body)
}

/// `resolved`: a problem announced before is over.
pub fn resolved(
    problem: &str,
    fp: &str,
    since: SystemTime,
    lasted: Duration,
    reason: &str,
) -> Notice {
    let what = match reason {
        "standby_ready" => "a valid standby token is ready (it replaces a rejected live \
                            token at once). Nothing more to do"
            .to_string(),
        "live_token_replaced" => {
            "a new token is live and the API accepts it. Nothing more to do".to_string()
        }
        "token_dead" => format!("the API rejects token {fp} now. Nothing more to do"),
        "watch_ended" => format!(
            "token {fp} is no longer watched (--retired-watch-max): if it was never \
             revoked, revoke it at claude.ai (settings, Claude Code)"
        ),
        "live_again" => format!("token {fp} is live again, not retired. Nothing more to do"),
        "rotation_landed" => {
            "a rotation landed: every target carries the token. Nothing more to do".to_string()
        }
        other => other.replace('_', " "),
    };
    let text = format!(
        "token-rotator: resolved: {problem} (token {fp}, open since {}, {}) is over: {what}.",
        rfc3339(since),
        human(lasted)
    );
    let body = json!({ "problem": problem, "fingerprint": fp, "since": rfc3339(since),
                       "lasted_seconds": lasted.as_secs(), "reason": reason });
    let title = format!("token-rotator: resolved: {problem} (token {fp})");
    make("resolved", Severity::Info, title, text, body)
}

/// A duration for a person, to the second (`1day 2h 3m`).
fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
