//! What a person is told about each [`Event`], in one place: its name, severity, title,
//! text and JSON body ([`Notice`]); the notifiers only shape it for their service. To add
//! an event: one arm in [`notice`] (and its name in `telemetry::notify::EVENTS`).
//!
//! The text says what happened, what to do and which bots, and names tokens by their
//! fingerprints only.

use std::path::Path;

use serde_json::json;

use super::policy::{rfc3339, Event};
use crate::error::Outcome;
use crate::rotation::RotationReport;
use crate::telemetry::notify::{Notice, Severity};

/// The notice for `event` (`standby`: the `--standby-file`, named in what to do).
pub fn notice(event: Event, standby: Option<&Path>) -> Notice {
    match event {
        Event::Rotation(report) => rotation(&report),
        Event::LiveTokenRejected {
            fingerprint,
            source,
            answer,
            targets,
        } => live_token_rejected(fingerprint.as_str(), source, &answer, &targets),
        Event::StandbyPromoted { old, new, report } => {
            standby_promoted(old.as_str(), new.as_str(), &report)
        }
        Event::StandbyNeeded {
            fingerprint,
            reason,
            live,
        } => standby_needed(
            fingerprint.as_str(),
            standby,
            &reason,
            live.as_ref().map(|f| f.as_str()),
        ),
        Event::RetiredTokenDead {
            fingerprint,
            retired_at,
            dead_at,
            alive_for,
        } => retired_token_dead(fingerprint.as_str(), retired_at, dead_at, alive_for),
        Event::RetiredTokenAlive {
            fingerprint,
            retired_at,
            alive_for,
        } => retired_token_alive(fingerprint.as_str(), retired_at, alive_for),
        Event::Drift {
            fingerprint,
            targets,
            since,
        } => problems::drift(fingerprint.as_str(), &targets, since, None),
        Event::Reminder { problem, at } => problems::reminder(&problem, at, standby),
        Event::Resolved {
            problem,
            fingerprint,
            since,
            lasted,
            reason,
        } => problems::resolved(problem, fingerprint.as_str(), since, lasted, reason),
        Event::TokenExpiring {
            fingerprint,
            first_deployed,
            expires_at,
            age,
            targets,
        } => token_expiring(
            fingerprint.as_str(),
            (first_deployed, expires_at, age),
            &targets,
            standby,
        ),
    }
}

/// `standby_promoted`: a standby replaced a rejected live token.
fn standby_promoted(old: &str, new: &str, report: &RotationReport) -> Notice {
    let text = format!(
        "token-rotator: standby token {new} replaced the rejected live token {old} in {}; \
         write a new standby token to keep a spare.",
        names(report)
    );
    let body = json!({ "old_fingerprint": old, "new_fingerprint": new, "report": report });
    make(
        "standby_promoted",
        Severity::Warning,
        format!("token-rotator: standby token {new} is live"),
        text,
        body,
    )
}

/// `retired_token_dead`: a replaced token is finally rejected by the API.
fn retired_token_dead(
    fp: &str,
    retired_at: std::time::SystemTime,
    dead_at: std::time::SystemTime,
    alive_for: std::time::Duration,
) -> Notice {
    let (at, alive) = (rfc3339(retired_at), alive_for.as_secs());
    let text = format!(
        "token-rotator: the retired token {fp} is dead: the API rejected it {alive} s \
         after it was retired ({at}). Nothing more to do."
    );
    let body = json!({ "fingerprint": fp, "retired_at": at,
                       "first_rejected_at": rfc3339(dead_at), "alive_for_seconds": alive });
    make(
        "retired_token_dead",
        Severity::Info,
        format!("token-rotator: the retired token {fp} is dead"),
        text,
        body,
    )
}

/// `token_expiring`: the live token nears its estimated end (first deployed + lifetime).
pub(super) fn token_expiring(
    fp: &str,
    (first, end, age): (
        std::time::SystemTime,
        std::time::SystemTime,
        std::time::Duration,
    ),
    targets: &[String],
    standby_file: Option<&Path>,
) -> Notice {
    let (first, end, days) = (rfc3339(first), rfc3339(end), age.as_secs() / 86_400);
    let place = standby_file.map_or_else(
        || "into the secret file".to_string(),
        |p| {
            format!(
                "into the secret file, or into the standby file {}",
                p.display()
            )
        },
    );
    let text = format!(
        "token-rotator: the live token {fp} used by {} was first deployed {first}, {days} days \
         ago; its estimated end is {end} (--token-lifetime, an estimate: the token does not \
         say). Mint a new one now with `claude setup-token` and write it {place}; it is \
         rotated in at once.",
        targets.join(", ")
    );
    let body = json!({ "fingerprint": fp, "first_deployed_at": first, "expires_at": end,
                       "age_seconds": age.as_secs(), "targets": targets,
                       "standby_file": standby_file.map(|p| p.display().to_string()) });
    let title = format!("token-rotator: the live token {fp} ends around {end}: mint a new one");
    make("token_expiring", Severity::Warning, title, text, body)
}

/// `live_token_rejected`: the API rejected the token the targets run on.
fn live_token_rejected(fp: &str, source: &str, answer: &str, targets: &[String]) -> Notice {
    let text = format!(
        "token-rotator: the live token {fp} was rejected by the API ({answer}), noticed \
         from {source}; the bots {} cannot authenticate. A valid standby is deployed if \
         there is one; else write a new token (claude setup-token) into the secret file.",
        targets.join(", ")
    );
    let body = json!({ "fingerprint": fp, "source": source, "answer": answer, "targets": targets });
    let title = format!("token-rotator: the live token {fp} was rejected");
    make("live_token_rejected", Severity::Critical, title, text, body)
}

/// `retired_token_alive`: a retired token still works long after its retirement.
fn retired_token_alive(
    fp: &str,
    retired_at: std::time::SystemTime,
    alive_for: std::time::Duration,
) -> Notice {
    let (at, alive) = (rfc3339(retired_at), alive_for.as_secs());
    let text = format!(
        "token-rotator: the retired token {fp} still works {alive} s after it was \
         retired ({at}): whoever holds it can still use the subscription. Revoke it at \
         claude.ai (settings, Claude Code); it is watched until the API rejects it."
    );
    let body = json!({ "fingerprint": fp, "retired_at": at, "alive_for_seconds": alive });
    let title = format!("token-rotator: the retired token {fp} still works: revoke it");
    make("retired_token_alive", Severity::Warning, title, text, body)
}

/// A notice whose body is `fields` with `event`, `severity`, `title` and `text` added.
fn make(
    event: &'static str,
    severity: Severity,
    title: String,
    text: String,
    mut fields: serde_json::Value,
) -> Notice {
    fields["event"] = event.into();
    fields["severity"] = severity.label().into();
    fields["title"] = title.as_str().into();
    fields["text"] = text.as_str().into();
    Notice {
        event,
        severity,
        title,
        text,
        body: fields,
    }
}

/// A rotation's outcome: `rotation` when it went in, `token_rejected` or `canary_failed`
/// when the token was refused, `rotation_failed` when the targets could not be swapped.
fn rotation(report: &RotationReport) -> Notice {
    let fp = report.fingerprint.as_deref().unwrap_or("unreadable");
    let outcome = report.outcome.label();
    let (event, severity) = match report.outcome {
        Outcome::Rejected => ("token_rejected", Severity::Warning),
        Outcome::CanaryFailed => ("canary_failed", Severity::Warning),
        Outcome::RollbackFailed => ("rotation_failed", Severity::Critical),
        o if crate::daemon::policy::problems::rotation_failed(o) => {
            ("rotation_failed", Severity::Warning)
        }
        _ => ("rotation", Severity::Info),
    };
    let (title, text) = match report.outcome {
        Outcome::Rotated => (
            format!("token-rotator: token {fp} rotated into {}", names(report)),
            format!(
                "token-rotator: rotated token {fp} into {} in {:.1}s",
                names(report),
                report.duration_secs
            ),
        ),
        Outcome::AlreadyCurrent => (
            format!("token-rotator: {} already carry token {fp}", names(report)),
            format!("token-rotator: {} already carry token {fp}", names(report)),
        ),
        _ => (
            format!(
                "token-rotator: rotation to token {fp} {}",
                outcome.replace('_', " ")
            ),
            format!(
                "token-rotator: rotation to token {fp} {}: {}{}",
                outcome.replace('_', " "),
                report.error.as_deref().unwrap_or(""),
                to_do(report.outcome, &names(report)),
            ),
        ),
    };
    let body = json!({ "outcome": outcome, "report": report });
    make(event, severity, title, text, body)
}

/// What a person does about a failed rotation.
fn to_do(outcome: Outcome, bots: &str) -> String {
    let what = match outcome {
        Outcome::Rejected => "the bots keep their working token; write a fresh token (claude setup-token) into the secret file",
        Outcome::CanaryFailed => "the bots keep their working token; check the bot's own client (its env, proxy, ANTHROPIC_API_KEY) or write a fresh token",
        Outcome::RolledBack => "the old containers are back as they were; read the failed check in the log, fix it, then write the file again",
        Outcome::RollbackFailed => "look at the containers now (docker ps -a); the daemon keeps recovering, a restart finishes it",
        Outcome::BadTarget => "nothing was touched; fix the target (its name, or what the log says its copy lacks)",
        Outcome::EngineUnavailable => "nothing changed; check dockerd, the socket mount or the socket proxy; the daemon retries",
        Outcome::Busy => "another token-rotator holds a target's lock; the daemon retries",
        Outcome::Inconclusive => "the API gave no verdict; nothing touched, the daemon retries",
        _ => return String::new(),
    };
    let bots = if bots.is_empty() {
        String::new()
    } else {
        format!(" (bots: {bots})")
    };
    format!(". What to do: {what}{bots}.")
}

/// `standby_needed`: no valid standby is left.
fn standby_needed(
    live: &str,
    standby_file: Option<&Path>,
    why: &str,
    promoted: Option<&str>,
) -> Notice {
    let place = standby_file.map_or_else(
        || "set --standby-file and write a spare token there, or write a new token into the secret file".to_string(),
        |p| format!("write a new token (claude setup-token) into {} or into the secret file", p.display()),
    );
    let (severity, text) = match promoted {
        None => (Severity::Critical, format!(
            "token-rotator: the live token {live} was rejected and there is no valid standby ({why}); \
             the bots were left as they are. A human must act: {place}."
        )),
        Some(now) => (Severity::Warning, format!(
            "token-rotator: the standby token {now} replaced the rejected token {live} and is live now; \
             no spare is left for the next failure ({why}). A human must act: {place}."
        )),
    };
    let body = json!({ "fingerprint": live, "reason": why, "live_fingerprint": promoted.unwrap_or(live),
                       "standby_file": standby_file.map(|p| p.display().to_string()) });
    make(
        "standby_needed",
        severity,
        "token-rotator: write a new token: no valid standby is left".into(),
        text,
        body,
    )
}

fn names(report: &RotationReport) -> String {
    report
        .targets
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

mod problems;

#[cfg(test)]
mod tests;
