//! Every event gives a notice with a known name, a severity, one title line and a body
//! that carries them; fingerprints only.

use std::time::{Duration, SystemTime};

use super::*;
use crate::daemon::policy::problems::{Detail, Kind, Problem};
use crate::secret::Fingerprint;
use crate::telemetry::notify::EVENTS;

fn report(outcome: Outcome) -> Box<RotationReport> {
    let mut r = RotationReport::new("r1".into(), Some(&Fingerprint::of("new")));
    r.outcome = outcome;
    r.error = (outcome != Outcome::Rotated).then(|| "it failed".to_string());
    Box::new(r)
}

fn every_event() -> Vec<Event> {
    let fp = || Fingerprint::of("tok");
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut events: Vec<Event> = [
        Outcome::Rotated,
        Outcome::Rejected,
        Outcome::CanaryFailed,
        Outcome::RolledBack,
        Outcome::RollbackFailed,
        Outcome::BadTarget,
        Outcome::EngineUnavailable,
        Outcome::Busy,
        Outcome::Inconclusive,
        Outcome::Interrupted,
    ]
    .into_iter()
    .map(|o| Event::Rotation(report(o)))
    .collect();
    events.extend([
        Event::LiveTokenRejected {
            fingerprint: fp(),
            source: "logs",
            answer: "invalid (HTTP 401)".into(),
            targets: vec!["bot".into()],
        },
        Event::StandbyPromoted {
            old: fp(),
            new: Fingerprint::of("new"),
            report: report(Outcome::Rotated),
        },
        Event::StandbyNeeded {
            fingerprint: fp(),
            reason: "no standby token".into(),
            live: None,
        },
        Event::StandbyNeeded {
            fingerprint: fp(),
            reason: "promoted".into(),
            live: Some(fp()),
        },
        Event::RetiredTokenDead {
            fingerprint: fp(),
            retired_at: at,
            dead_at: at + Duration::from_secs(60),
            alive_for: Duration::from_secs(60),
        },
        Event::RetiredTokenAlive {
            fingerprint: fp(),
            retired_at: at,
            alive_for: Duration::from_secs(3600),
        },
        Event::Drift {
            fingerprint: fp(),
            targets: vec!["bot".into()],
            since: at,
        },
        Event::Resolved {
            problem: "drift",
            fingerprint: fp(),
            since: at,
            lasted: Duration::from_secs(900),
            reason: "rotation_landed",
        },
        expiring(),
    ]);
    events.extend(problems().into_iter().map(|p| Event::Reminder {
        problem: Box::new(p),
        at: at + Duration::from_secs(2 * 86_400),
    }));
    events
}

/// One open problem of each kind, reminded twice.
fn problems() -> Vec<Problem> {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let details = [
        Detail::StandbyNeeded {
            reason: "no standby token".into(),
            live: None,
        },
        Detail::RetiredTokenAlive { retired_at: at },
        Detail::RotationFailed {
            outcome: Outcome::EngineUnavailable,
            error: Some("engine unreachable".into()),
            targets: vec!["bot".into()],
        },
        Detail::Drift {
            targets: vec!["bot".into()],
        },
        Detail::TokenExpiring {
            first_deployed: at - Duration::from_secs(335 * 86_400),
            expires_at: at + Duration::from_secs(30 * 86_400),
            targets: vec!["bot".into()],
        },
    ];
    details
        .into_iter()
        .map(|detail| Problem {
            fingerprint: Fingerprint::of("tok"),
            detail,
            since: at,
            announced_at: Some(at + Duration::from_secs(86_400)),
            reminders: 2,
        })
        .collect()
}

#[test]
fn a_reminder_is_its_problems_event_with_reminder_and_since_and_resolved_names_the_problem() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for p in problems() {
        let kind = p.kind();
        let n = notice(
            Event::Reminder {
                problem: Box::new(p),
                at: at + Duration::from_secs(2 * 86_400),
            },
            None,
        );
        assert_eq!(n.event, kind.event());
        assert_eq!(n.body["reminder"], 2);
        assert_eq!(n.body["since"], rfc3339(at));
        assert_eq!(n.body["fingerprint"], Fingerprint::of("tok").as_str());
        if kind == Kind::RetiredTokenAlive {
            assert_eq!(n.body["alive_for_seconds"], 2 * 86_400, "as of now");
        }
        if kind == Kind::TokenExpiring {
            assert_eq!(n.body["age_seconds"], 337 * 86_400, "as of now");
            assert_eq!(n.body["targets"][0], "bot");
        }
    }
    let n = notice(
        Event::Resolved {
            problem: "standby_needed",
            fingerprint: Fingerprint::of("tok"),
            since: at,
            lasted: Duration::from_secs(3600),
            reason: "standby_ready",
        },
        None,
    );
    assert_eq!((n.event, n.severity), ("resolved", Severity::Info));
    assert_eq!(n.body["problem"], "standby_needed");
    assert_eq!(n.body["lasted_seconds"], 3600);
    assert_eq!(n.body["fingerprint"], Fingerprint::of("tok").as_str());
}

#[test]
fn every_notice_is_a_known_event_with_its_fields_in_the_body() {
    let mut seen = std::collections::BTreeSet::new();
    for event in every_event() {
        let n = notice(event, None);
        assert!(EVENTS.contains(&n.event), "{} is not in EVENTS", n.event);
        assert_eq!(n.body["event"], n.event);
        assert_eq!(n.body["severity"], n.severity.label());
        assert_eq!(n.body["title"], n.title.as_str());
        assert_eq!(n.body["text"], n.text.as_str());
        assert!(
            !n.title.contains('\n') && n.title.starts_with("token-rotator: "),
            "{}",
            n.title
        );
        seen.insert(n.event);
    }
    let all: std::collections::BTreeSet<_> = EVENTS.iter().copied().collect();
    assert_eq!(seen, all, "every event name has a notice");
}

#[test]
fn failed_rotations_are_rotation_failed_with_what_to_do() {
    for (outcome, severity) in [
        (Outcome::RolledBack, Severity::Warning),
        (Outcome::RollbackFailed, Severity::Critical),
        (Outcome::BadTarget, Severity::Warning),
        (Outcome::EngineUnavailable, Severity::Warning),
    ] {
        let n = notice(Event::Rotation(report(outcome)), None);
        assert_eq!((n.event, n.severity), ("rotation_failed", severity));
        assert_eq!(n.body["outcome"], outcome.label());
        assert!(n.text.contains("What to do:"), "{}", n.text);
    }
    let n = notice(Event::Rotation(report(Outcome::Rotated)), None);
    assert_eq!((n.event, n.severity), ("rotation", Severity::Info));
}

#[test]
fn standby_needed_is_critical_only_while_the_bots_are_down() {
    let fp = Fingerprint::of("tok");
    let down = Event::StandbyNeeded {
        fingerprint: fp.clone(),
        reason: "none".into(),
        live: None,
    };
    let n = notice(down, Some(Path::new("/run/secrets/standby")));
    assert_eq!(n.severity, Severity::Critical);
    assert!(n.text.contains("/run/secrets/standby"));
    let up = Event::StandbyNeeded {
        fingerprint: fp.clone(),
        reason: "promoted".into(),
        live: Some(fp),
    };
    assert_eq!(notice(up, None).severity, Severity::Warning);
}

fn expiring() -> Event {
    let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    Event::TokenExpiring {
        fingerprint: Fingerprint::of("tok"),
        first_deployed: first,
        expires_at: first + Duration::from_secs(365 * 86_400),
        age: Duration::from_secs(340 * 86_400),
        targets: vec!["bot-1".into(), "bot-2".into()],
    }
}

#[test]
fn token_expiring_names_the_token_its_age_its_estimated_end_and_the_bots() {
    let n = notice(expiring(), Some(Path::new("/run/secrets/standby")));
    assert_eq!((n.event, n.severity), ("token_expiring", Severity::Warning));
    let fp = Fingerprint::of("tok").to_string();
    assert_eq!(n.body["fingerprint"], fp.as_str());
    assert_eq!(n.body["first_deployed_at"], "2027-01-15T08:00:00Z");
    assert_eq!(n.body["expires_at"], "2028-01-15T08:00:00Z");
    assert_eq!(n.body["age_seconds"], 340 * 86_400);
    assert_eq!(n.body["targets"], serde_json::json!(["bot-1", "bot-2"]));
    assert_eq!(n.body["standby_file"], "/run/secrets/standby");
    for what in [
        fp.as_str(),
        "claude setup-token",
        "/run/secrets/standby",
        "bot-1, bot-2",
    ] {
        assert!(n.text.contains(what), "no {what:?} in {}", n.text);
    }
}
