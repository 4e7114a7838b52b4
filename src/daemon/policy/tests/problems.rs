//! Until it is fixed: each problem that needs a person is announced once, reminded every
//! `--remind-every` while it lasts (never with `0`), closed with one `resolved` when it is
//! over, and nothing after; a restart keeps its schedule; `drift` waits `--drift-after`.

use super::*;
use crate::daemon::policy::problems::Schedule;

const DAY: Duration = Duration::from_secs(86_400);
const MIN: Duration = Duration::from_secs(60);

fn with(remind_every: Option<Duration>, drift_after: Duration) -> Config {
    Config {
        remind: Schedule {
            remind_every,
            drift_after,
        },
        ..config()
    }
}

/// The reminders announced: (event of the problem, reminder number).
fn reminders(acts: &[Action]) -> Vec<(&'static str, u32)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Announce(Event::Reminder { problem, .. }) => {
                Some((problem.kind().event(), problem.reminders))
            }
            _ => None,
        })
        .collect()
}

/// The problems closed: (problem, reason, how long it lasted).
fn resolved(acts: &[Action]) -> Vec<(&'static str, &'static str, Duration)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Announce(Event::Resolved {
                problem,
                reason,
                lasted,
                ..
            }) => Some((*problem, *reason, *lasted)),
            _ => None,
        })
        .collect()
}

/// Moves the clock by `d` and fires the reminder timer, checking it was set for then.
fn remind_after(sim: &mut Sim, last: &[Action], d: Duration) -> Vec<Action> {
    let at = scheduled(last, Timer::Remind).flatten();
    sim.advance(d);
    assert_eq!(at, Some(sim.clock.now), "the reminder is due now");
    sim.on(Input::Due(Timer::Remind))
}

/// The state the actions ask to keep, if they ask.
fn kept(sim: &Sim, acts: &[Action]) -> Option<State> {
    acts.iter()
        .any(|a| matches!(a, Action::Persist))
        .then(|| sim.policy.state())
}

/// A new process `after` the one in `sim`, from `state`.
fn restart(sim: &Sim, cfg: Config, state: State, after: Duration) -> (Sim, Vec<Action>) {
    let mut next = Sim::new(cfg);
    next.clock.wall = sim.clock.wall + after;
    let acts = next.on(Input::Restored(state));
    (next, acts)
}

/// A rotation to `plan`'s token that could not swap the bot (`outcome`).
fn failed(sim: &mut Sim, plan: Plan, outcome: Outcome) -> Vec<Action> {
    let mut r = report(&plan.token, outcome, &[]);
    r.targets[0].outcome = TargetOutcome::NotAttempted;
    r.error = Some("the engine is not reachable".into());
    sim.on(Input::Rotated(plan, Box::new(r)))
}

/// The retry after a failed rotation: its plan.
fn retry(sim: &mut Sim, primary: &Token) -> Plan {
    sim.on(Input::Due(Timer::Retry));
    sim.on(Input::Drained);
    plan_of(sim.on(Input::PrimaryRead(Why::Look, read(primary, 1)))).expect("a retry")
}

#[test]
fn standby_needed_is_reminded_every_interval_then_resolved_once_by_a_validated_standby() {
    let mut sim = Sim::new(config());
    let (primary, standby, new) = (token(1), token(2), token(3));
    sim.deploy(&primary, Some(&standby));
    reject_live(&mut sim, &primary, Some(&standby));
    sim.on(Input::Drained);
    let plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&primary, 1))))
        .expect("the standby is promoted");
    let mut last = sim.rotated(plan, Outcome::Rotated, &[&primary]);
    assert_eq!(
        announced(&last),
        ["rotation", "standby_promoted", "standby_needed"]
    );
    for n in 1..=3 {
        last = remind_after(&mut sim, &last, DAY);
        assert_eq!(reminders(&last), [("standby_needed", n)], "day {n}");
    }
    // A new token in the primary file goes live; the standby is read again and is valid.
    sim.advance(Duration::from_secs(3600));
    sim.on(Input::PrimaryRead(Why::Event, read(&new, 5)));
    let plan = plan_of(sim.on(Input::Drained)).unwrap();
    let acts = sim.rotated(plan, Outcome::Rotated, &[&standby]);
    assert!(
        resolved(&acts).is_empty(),
        "not before the standby is proved"
    );
    let acts = sim.standby_read(Some(&standby), true, Then::Nothing);
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Standby(Then::Nothing),
        fingerprint: probe_of(&acts).unwrap(),
        verdict: valid(),
    });
    assert_eq!(
        resolved(&acts),
        [(
            "standby_needed",
            "standby_ready",
            3 * DAY + Duration::from_secs(3600)
        )]
    );
    assert_eq!(scheduled(&acts, Timer::Remind), Some(None), "nothing left");
    sim.advance(2 * DAY);
    let acts = sim.on(Input::Due(Timer::Remind));
    assert!(announced(&acts).is_empty(), "nothing after it is resolved");
}

#[test]
fn without_a_standby_file_standby_needed_ends_when_a_good_token_is_live_again() {
    let mut sim = Sim::new(Config {
        standby: None,
        ..with(None, 15 * MIN)
    });
    let (primary, new) = (token(1), token(2));
    let plan = plan_of(sim.on(Input::Started))
        .or_else(|| {
            sim.on(Input::Drained);
            plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&primary, 1))))
        })
        .unwrap();
    sim.rotated(plan, Outcome::Rotated, &[]);
    let acts = reject_live(&mut sim, &primary, None);
    assert_eq!(announced(&acts), ["standby_needed"]);
    assert_eq!(
        scheduled(&acts, Timer::Remind),
        Some(None),
        "--remind-every 0: no reminder"
    );
    sim.advance(3 * DAY);
    assert!(announced(&sim.on(Input::Due(Timer::Remind))).is_empty());
    sim.on(Input::PrimaryRead(Why::Event, read(&new, 2)));
    let plan = plan_of(sim.on(Input::Drained)).unwrap();
    let acts = sim.rotated(plan, Outcome::Rotated, &[]);
    assert_eq!(
        resolved(&acts),
        [("standby_needed", "live_token_replaced", 3 * DAY)],
        "resolved is sent even with reminders off"
    );
}

#[test]
fn retired_token_alive_is_reminded_while_it_works_then_resolved_with_its_death() {
    let mut sim = Sim::new(with(Some(DAY), 15 * MIN));
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&old]);
    let probe = |sim: &mut Sim, verdict: Verdict| {
        sim.on(Input::Due(Timer::Retired));
        sim.on(Input::Probed {
            purpose: Purpose::Retired,
            fingerprint: old.fingerprint().clone(),
            verdict,
        })
    };
    sim.advance(3600 * Duration::from_secs(1));
    let mut last = probe(&mut sim, valid());
    assert_eq!(announced(&last), ["retired_token_alive"]);
    for n in 1..=2 {
        last = remind_after(&mut sim, &last, DAY);
        assert_eq!(reminders(&last), [("retired_token_alive", n)]);
    }
    let acts = probe(&mut sim, invalid());
    assert_eq!(announced(&acts), ["retired_token_dead", "resolved"]);
    assert_eq!(
        resolved(&acts),
        [("retired_token_alive", "token_dead", 2 * DAY)]
    );
    sim.advance(DAY);
    assert!(announced(&sim.on(Input::Due(Timer::Remind))).is_empty());
}

#[test]
fn retired_token_alive_is_resolved_when_its_watch_gives_up() {
    let mut sim = Sim::new(Config {
        retired: WatchPlan {
            schedule: vec![Duration::from_secs(3600)],
            max: 2 * DAY,
            alert_after: Duration::from_secs(3600),
        },
        ..config()
    });
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&old]);
    sim.advance(Duration::from_secs(3600));
    sim.on(Input::Due(Timer::Retired));
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Retired,
        fingerprint: old.fingerprint().clone(),
        verdict: valid(),
    });
    assert_eq!(announced(&acts), ["retired_token_alive"]);
    sim.advance(2 * DAY);
    let acts = sim.on(Input::Due(Timer::Retired));
    assert_eq!(
        resolved(&acts),
        [("retired_token_alive", "watch_ended", 2 * DAY)]
    );
}

#[test]
fn rotation_failed_is_announced_once_reminded_while_retries_fail_then_resolved_when_one_lands() {
    let mut sim = Sim::new(with(Some(DAY), 30 * DAY));
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let first = failed(&mut sim, plan, Outcome::EngineUnavailable);
    assert_eq!(announced(&first), ["rotation"]);
    // Retries keep failing: announced once, not at every retry.
    for _ in 0..3 {
        sim.advance(MIN);
        let plan = retry(&mut sim, &t);
        let acts = failed(&mut sim, plan, Outcome::EngineUnavailable);
        assert!(announced(&acts).is_empty());
    }
    let acts = remind_after(&mut sim, &first, DAY - 3 * MIN);
    assert_eq!(reminders(&acts), [("rotation_failed", 1)]);
    let plan = retry(&mut sim, &t);
    let acts = sim.rotated(plan, Outcome::Rotated, &[]);
    assert_eq!(
        resolved(&acts),
        [("rotation_failed", "rotation_landed", DAY)]
    );
    assert_eq!(announced(&acts), ["rotation", "resolved"]);
    sim.advance(DAY);
    assert!(announced(&sim.on(Input::Due(Timer::Remind))).is_empty());
}

#[test]
fn drift_is_announced_only_after_drift_after_then_reminded_then_resolved() {
    let mut sim = Sim::new(with(Some(DAY), 15 * MIN));
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let acts = failed(&mut sim, plan, Outcome::Busy);
    assert_eq!(announced(&acts), ["rotation"], "no drift yet");
    assert_eq!(
        scheduled(&acts, Timer::Remind),
        Some(Some(sim.at(15 * MIN))),
        "drift is due --drift-after after the token was decided"
    );
    sim.advance(10 * MIN);
    let plan = retry(&mut sim, &t);
    assert!(announced(&failed(&mut sim, plan, Outcome::Busy)).is_empty());
    sim.advance(5 * MIN);
    let acts = sim.on(Input::Due(Timer::Remind));
    let drift = acts.iter().find_map(|a| match a {
        Action::Announce(Event::Drift {
            fingerprint,
            targets,
            since,
        }) => Some((fingerprint.clone(), targets.clone(), *since)),
        _ => None,
    });
    let start = sim.clock.wall - 15 * MIN;
    assert_eq!(
        drift,
        Some((t.fingerprint().clone(), vec![BOT.into()], start))
    );
    // rotation_failed was announced at 0, drift at 15 min: each is reminded a day later.
    let acts = remind_after(&mut sim, &acts, DAY - 15 * MIN);
    assert_eq!(reminders(&acts), [("rotation_failed", 1)]);
    let acts = remind_after(&mut sim, &acts, 15 * MIN);
    assert_eq!(reminders(&acts), [("drift", 1)]);
    sim.advance(MIN);
    let plan = retry(&mut sim, &t);
    let acts = sim.rotated(plan, Outcome::Rotated, &[]);
    let mut got = resolved(&acts);
    got.sort();
    assert_eq!(
        got,
        [
            ("drift", "rotation_landed", DAY + 16 * MIN),
            ("rotation_failed", "rotation_landed", DAY + 16 * MIN)
        ]
    );
}

#[test]
fn a_failure_fixed_before_drift_after_is_never_announced_as_drift() {
    let mut sim = Sim::new(with(Some(DAY), 15 * MIN));
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    failed(&mut sim, plan, Outcome::Busy);
    sim.advance(14 * MIN);
    let plan = retry(&mut sim, &t);
    let acts = sim.rotated(plan, Outcome::Rotated, &[]);
    assert_eq!(
        resolved(&acts),
        [("rotation_failed", "rotation_landed", 14 * MIN)],
        "drift, never announced, goes silently"
    );
    assert_eq!(scheduled(&acts, Timer::Remind), Some(None));
    sim.advance(DAY);
    assert!(announced(&sim.on(Input::Due(Timer::Remind))).is_empty());
}

#[test]
fn after_a_restart_an_open_problem_is_not_announced_again_and_its_reminder_keeps_its_schedule() {
    let cfg = || with(Some(DAY), 30 * DAY);
    let mut sim = Sim::new(cfg());
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let first = failed(&mut sim, plan, Outcome::EngineUnavailable);
    let acts = remind_after(&mut sim, &first, DAY);
    assert_eq!(reminders(&acts), [("rotation_failed", 1)]);
    let state = kept(&sim, &acts).expect("a reminder is kept");
    let kinds: Vec<_> = state.problems.iter().map(|p| p.kind().event()).collect();
    assert_eq!(kinds, ["drift", "rotation_failed"], "drift still waiting");
    assert_eq!(state.problems[0].announced_at, None);
    assert_eq!(state.problems[1].reminders, 1);
    assert_eq!(state.problems[1].announced_at, Some(sim.clock.wall));

    // Down for 6 hours; the same failure again after the restart.
    let (mut sim, acts) = restart(&sim, cfg(), state, 6 * 3600 * Duration::from_secs(1));
    assert_eq!(
        scheduled(&acts, Timer::Remind),
        Some(Some(sim.clock.now + 18 * 3600 * Duration::from_secs(1))),
        "the next reminder, a day after the last one"
    );
    assert!(kept(&sim, &acts).is_none(), "not written back as it was");
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let acts = failed(&mut sim, plan, Outcome::EngineUnavailable);
    assert!(
        announced(&acts).is_empty(),
        "an open problem is not announced again as new"
    );
    sim.advance(18 * 3600 * Duration::from_secs(1));
    let acts = sim.on(Input::Due(Timer::Remind));
    assert_eq!(reminders(&acts), [("rotation_failed", 2)]);
    let plan = retry(&mut sim, &t);
    let acts = sim.rotated(plan, Outcome::Rotated, &[]);
    assert_eq!(
        resolved(&acts),
        [("rotation_failed", "rotation_landed", 2 * DAY)],
        "lasted counts from the real start, across the restart"
    );
}

#[test]
fn an_overdue_reminder_after_a_long_restart_is_sent_once_at_start() {
    let mut sim = Sim::new(config());
    let live = token(1);
    sim.deploy(&live, None);
    let acts = reject_live(&mut sim, &live, None);
    assert_eq!(announced(&acts), ["standby_needed"]);
    let state = kept(&sim, &acts).unwrap();
    let (mut sim, acts) = restart(&sim, config(), state, 3 * DAY);
    assert_eq!(scheduled(&acts, Timer::Remind), Some(Some(sim.clock.now)));
    sim.on(Input::Started);
    let acts = sim.standby_read(None, false, Then::Nothing);
    assert!(announced(&acts).is_empty());
    let acts = sim.on(Input::Due(Timer::Remind));
    assert_eq!(reminders(&acts), [("standby_needed", 1)], "one, not three");
    assert_eq!(
        scheduled(&acts, Timer::Remind),
        Some(Some(sim.clock.now + DAY))
    );
}

#[test]
fn after_a_restart_a_valid_standby_resolves_standby_needed_and_replaces_the_rejected_token() {
    let mut sim = Sim::new(config());
    let (live, spare) = (token(1), token(2));
    sim.deploy(&live, None);
    let acts = reject_live(&mut sim, &live, None);
    let state = kept(&sim, &acts).unwrap();
    let (mut sim, _) = restart(&sim, config(), state, Duration::from_secs(60));
    sim.on(Input::Started);
    sim.standby_read(None, false, Then::Nothing);
    sim.on(Input::Drained);
    let acts = sim.on(Input::PrimaryRead(Why::Look, read(&live, 1)));
    assert!(plan_of(acts).is_none(), "nothing to deploy yet");
    // The standby is written and validated: over, and it goes live.
    let acts = sim.standby_read(Some(&spare), false, Then::PromoteIfLiveRejected);
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Standby(Then::PromoteIfLiveRejected),
        fingerprint: probe_of(&acts).unwrap(),
        verdict: valid(),
    });
    assert_eq!(
        resolved(&acts),
        [("standby_needed", "standby_ready", Duration::from_secs(60))]
    );
    assert!(matches!(
        sim.on(Input::Drained)[..],
        [Action::ReadPrimary(Why::Look)]
    ));
    let plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&live, 1))))
        .expect("the standby replaces the rejected token, also after a restart");
    assert_eq!(plan.token.fingerprint(), spare.fingerprint());
    let acts = sim.rotated(plan, Outcome::Rotated, &[&live]);
    assert_eq!(
        announced(&acts),
        ["rotation", "standby_promoted", "standby_needed"],
        "and a new spare is asked for"
    );
}

#[test]
fn retired_token_alive_deployed_again_is_resolved_as_live_again() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    let plan = plan_of(sim.started(&b, None)).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&a]);
    sim.advance(Duration::from_secs(3600));
    sim.on(Input::Due(Timer::Retired));
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Retired,
        fingerprint: a.fingerprint().clone(),
        verdict: valid(),
    });
    assert_eq!(announced(&acts), ["retired_token_alive"]);
    sim.on(Input::PrimaryRead(Why::Event, read(&a, 3)));
    let plan = plan_of(sim.on(Input::Drained)).unwrap();
    let acts = sim.rotated(plan, Outcome::Rotated, &[&b]);
    assert_eq!(
        resolved(&acts),
        [("retired_token_alive", "live_again", Duration::ZERO)]
    );
}
mod expiring;
