//! `token_expiring` is a problem like the others: announced once when the live token's age
//! reaches `--token-lifetime` minus `--expiry-warning`, reminded every `--remind-every`
//! while that token is live, `resolved` (`live_token_replaced`) once another token is, and
//! neither announced again nor off its schedule after a restart (also from a `state.json`
//! that kept it only as `deployed[].expiry_announced`).

use super::*;
use crate::daemon::policy::age::Kept as Deployed;
use crate::daemon::policy::problems::{Detail, Kind};

/// 365 days, warned 30 days before: due at 335 days.
fn due_after() -> Duration {
    let cfg = AgeConfig::default();
    cfg.lifetime - cfg.warning
}

/// `t` deployed, then its warning fallen due: the actions of that announcement.
fn expiring(sim: &mut Sim, t: &Token) -> Vec<Action> {
    sim.deploy(t, None);
    sim.advance(due_after());
    let acts = sim.on(Input::Due(Timer::Expiry));
    assert_eq!(announced(&acts), ["token_expiring"]);
    acts
}

/// The primary file now holds `t`: the plan of the rotation that follows.
fn written(sim: &mut Sim, t: &Token, mtime: u64) -> Plan {
    sim.on(Input::PrimaryRead(Why::Event, read(t, mtime)));
    plan_of(sim.on(Input::Drained)).expect("a rotation")
}

/// The open `token_expiring` problems: (fingerprint, reminders).
fn open(state: &State) -> Vec<(Fingerprint, u32)> {
    (state.problems.iter())
        .filter(|p| p.kind() == Kind::TokenExpiring)
        .map(|p| (p.fingerprint.clone(), p.reminders))
        .collect()
}

#[test]
fn token_expiring_is_reminded_at_each_interval_while_the_old_token_is_live() {
    let mut sim = Sim::new(config());
    let a = token(1);
    let first = expiring(&mut sim, &a);
    let state = kept(&sim, &first).expect("the open problem is kept");
    assert_eq!(open(&state), [(a.fingerprint().clone(), 0)]);
    let mut last = first;
    for n in 1..=3 {
        let acts = remind_after(&mut sim, &last, DAY);
        assert_eq!(reminders(&acts), [("token_expiring", n)]);
        let Some(Action::Announce(Event::Reminder { problem, at })) = acts
            .iter()
            .find(|a| matches!(a, Action::Announce(Event::Reminder { .. })))
        else {
            unreachable!()
        };
        assert_eq!(problem.since, sim.clock.wall - n * DAY);
        assert!(matches!(
            problem.detail,
            Detail::TokenExpiring { first_deployed, expires_at, .. }
                if *at - due_after() - n * DAY == first_deployed
                    && expires_at == first_deployed + AgeConfig::default().lifetime
        ));
        // Its own timer does not announce it anew meanwhile.
        assert!(announced(&sim.on(Input::Due(Timer::Expiry))).is_empty());
        last = acts;
    }
}

#[test]
fn token_expiring_is_resolved_when_a_new_token_lands_and_not_before() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    expiring(&mut sim, &a);
    let since = sim.clock.wall;
    sim.advance(3600 * Duration::from_secs(1));
    let plan = written(&mut sim, &b, 2);
    // The rotation to it fails: `a` is still live, the problem stays open.
    let acts = failed(&mut sim, plan, Outcome::EngineUnavailable);
    assert!(resolved(&acts).is_empty(), "{:?}", announced(&acts));
    assert_eq!(open(&sim.policy.state()).len(), 1);
    let plan = retry(&mut sim, &b);
    let acts = sim.rotated(plan, Outcome::Rotated, &[&a]);
    let closed: Vec<_> = (resolved(&acts).into_iter())
        .filter(|r| r.0 == "token_expiring")
        .collect();
    let lasted = sim.clock.wall.duration_since(since).unwrap();
    assert_eq!(closed, [("token_expiring", "live_token_replaced", lasted)]);
    assert!(open(&sim.policy.state()).is_empty());
    // Nothing more about `a`: no reminder the next day, nor a second `resolved`.
    sim.advance(DAY);
    let acts = sim.on(Input::Due(Timer::Remind));
    assert!(reminders(&acts).is_empty() && resolved(&acts).is_empty());
}

#[test]
fn after_a_restart_token_expiring_is_not_announced_again_and_keeps_its_reminders() {
    let mut sim = Sim::new(config());
    let a = token(1);
    let first = expiring(&mut sim, &a);
    let announced_at = sim.clock.wall;
    let state = kept(&sim, &first).expect("kept");
    assert!(
        state.deployed[0].expiry_announced,
        "written for older builds"
    );

    // Down for 6 hours, then the same token found live again.
    let six_hours = 6 * 3600 * Duration::from_secs(1);
    let (mut sim, acts) = restart(&sim, config(), state, six_hours);
    assert_eq!(
        scheduled(&acts, Timer::Remind),
        Some(Some(sim.clock.now + DAY - six_hours)),
        "the next reminder, a day after the announcement"
    );
    let plan = plan_of(sim.started(&a, None)).unwrap();
    let acts = sim.rotated(plan, Outcome::AlreadyCurrent, &[]);
    assert!(announced(&acts).is_empty(), "{:?}", announced(&acts));
    sim.advance(DAY - six_hours);
    let acts = sim.on(Input::Due(Timer::Remind));
    assert_eq!(reminders(&acts), [("token_expiring", 1)]);
    assert_eq!(sim.clock.wall, announced_at + DAY);
}

#[test]
fn a_state_that_kept_it_as_expiry_announced_opens_the_problem_without_announcing_it() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    let first_deployed = sim.clock.wall - due_after() - 2 * 3600 * Duration::from_secs(1);
    // As a build before problems wrote it: no problem, the flag on the token.
    let state = State {
        deployed: vec![Deployed {
            fingerprint: a.fingerprint().clone(),
            first_deployed,
            expiry_announced: true,
        }],
        ..State::default()
    };
    let acts = sim.on(Input::Restored(state));
    assert_eq!(
        scheduled(&acts, Timer::Remind),
        Some(Some(
            sim.clock.now + DAY - 2 * 3600 * Duration::from_secs(1)
        )),
        "reminded a day after it fell due"
    );
    let plan = plan_of(sim.started(&a, None)).unwrap();
    assert_eq!(plan.first_deployed, Some(first_deployed));
    let acts = sim.rotated(plan, Outcome::AlreadyCurrent, &[]);
    assert!(announced(&acts).is_empty(), "{:?}", announced(&acts));
    let state = sim.policy.state();
    assert_eq!(open(&state), [(a.fingerprint().clone(), 0)]);
    let plan = written(&mut sim, &b, 2);
    let acts = sim.rotated(plan, Outcome::Rotated, &[&a]);
    let closed: Vec<_> = (resolved(&acts).into_iter()).map(|r| (r.0, r.1)).collect();
    assert_eq!(closed, [("token_expiring", "live_token_replaced")]);
    assert!(!sim
        .policy
        .state()
        .deployed
        .iter()
        .any(|d| d.expiry_announced));
}
