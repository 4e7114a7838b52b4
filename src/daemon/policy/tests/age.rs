//! The live token's age: when it was first deployed (kept per fingerprint, the earliest time
//! known), and `token_expiring`, announced once per token when its age reaches
//! `--token-lifetime` minus `--expiry-warning`, by the clock the policy is given (its
//! reminders and `resolved`: `problems/expiring.rs`).

use super::*;
use crate::daemon::policy::age as ages;

const DAY: Duration = Duration::from_secs(86_400);

/// 365 days, warned 30 days before: due at 335 days.
fn due_after() -> Duration {
    let cfg = AgeConfig::default();
    cfg.lifetime - cfg.warning
}

/// When the expiry timer is set to, if the actions set or clear it.
fn expiry_timer(acts: &[Action]) -> Option<Option<Instant>> {
    acts.iter().find_map(|a| match a {
        Action::Schedule(Timer::Expiry, at) => Some(*at),
        _ => None,
    })
}

fn expiring(acts: &[Action]) -> Option<&Event> {
    acts.iter().find_map(|a| match a {
        Action::Announce(e @ Event::TokenExpiring { .. }) => Some(e),
        _ => None,
    })
}

/// The plan's rotation ended `outcome`, reporting `first` as the token's first deployment.
fn rotated_reporting(
    sim: &mut Sim,
    plan: Plan,
    outcome: Outcome,
    first: Option<SystemTime>,
) -> Vec<Action> {
    let mut r = report(&plan.token, outcome, &[]);
    r.first_deployed_at = first.map(rfc3339);
    sim.on(Input::Rotated(plan, Box::new(r)))
}

/// The primary file now holds `t`: the plan of the rotation that follows.
fn written(sim: &mut Sim, t: &Token, mtime: u64) -> Plan {
    sim.on(Input::PrimaryRead(Why::Event, read(t, mtime)));
    plan_of(sim.on(Input::Drained)).expect("a rotation")
}

fn live_age(sim: &Sim) -> crate::telemetry::AgeStatus {
    sim.policy
        .view(sim.clock)
        .status
        .live
        .expect("a live token")
        .age
}

#[test]
fn the_decision_is_due_at_lifetime_minus_warning_and_only_once() {
    let cfg = AgeConfig {
        lifetime: Duration::from_secs(20),
        warning: Duration::from_secs(15),
    };
    let first = UNIX_EPOCH + Duration::from_secs(1_000);
    let at = |s| first + Duration::from_secs(s);
    assert_eq!(
        ages::expiry(first, cfg, false, at(0)),
        ages::Expiry::NotYet(Duration::from_secs(5))
    );
    assert_eq!(
        ages::expiry(first, cfg, false, at(4)),
        ages::Expiry::NotYet(Duration::from_secs(1))
    );
    assert_eq!(ages::expiry(first, cfg, false, at(5)), ages::Expiry::Due);
    assert_eq!(ages::expiry(first, cfg, false, at(400)), ages::Expiry::Due);
    assert_eq!(ages::expiry(first, cfg, true, at(400)), ages::Expiry::Told);
    // A wall clock behind the first deployment (set back): not due.
    assert!(matches!(
        ages::expiry(first, cfg, false, first - Duration::from_secs(60)),
        ages::Expiry::NotYet(_)
    ));
}

#[test]
fn token_expiring_comes_when_due_not_before_and_once() {
    let mut sim = Sim::new(config());
    let a = token(1);
    let deployed_at = sim.clock.wall;
    let plan = plan_of(sim.started(&a, None)).unwrap();
    assert_eq!(plan.first_deployed, None, "nothing known of a new token");
    let acts = sim.rotated(plan, Outcome::Rotated, &[]);
    assert!(expiring(&acts).is_none());
    assert_eq!(expiry_timer(&acts), Some(Some(sim.clock.now + due_after())));
    let age = live_age(&sim);
    assert_eq!(age.first_deployed_at, Some(rfc3339(deployed_at)));
    assert_eq!(age.age_seconds, Some(0));
    assert_eq!(
        age.expires_at,
        Some(rfc3339(deployed_at + 365 * DAY)),
        "first deployed + --token-lifetime"
    );

    // A timer that fires early (a clock that jumped) announces nothing and is set again.
    sim.advance(due_after() - Duration::from_secs(1));
    let acts = sim.on(Input::Due(Timer::Expiry));
    assert!(expiring(&acts).is_none());
    assert_eq!(
        expiry_timer(&acts),
        Some(Some(sim.clock.now + Duration::from_secs(1)))
    );

    sim.advance(Duration::from_secs(1));
    let acts = sim.on(Input::Due(Timer::Expiry));
    let Some(Event::TokenExpiring {
        fingerprint,
        first_deployed,
        expires_at,
        age,
        targets,
    }) = expiring(&acts)
    else {
        panic!("token_expiring is due: {:?}", announced(&acts));
    };
    assert_eq!(fingerprint, a.fingerprint());
    assert_eq!(*first_deployed, deployed_at);
    assert_eq!(*expires_at, deployed_at + 365 * DAY);
    assert_eq!(*age, due_after());
    assert_eq!(targets, &[BOT.to_string()]);
    assert!(
        acts.iter().any(|a| matches!(a, Action::Persist)),
        "what was announced is kept"
    );

    // Once per token: neither the timer nor another look at the same token repeats it.
    sim.advance(DAY);
    assert!(expiring(&sim.on(Input::Due(Timer::Expiry))).is_none());
    sim.on(Input::Due(Timer::Retry));
    sim.on(Input::Drained);
    let plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&a, 1)))).unwrap();
    assert_eq!(plan.first_deployed, Some(deployed_at));
    let acts = sim.rotated(plan, Outcome::AlreadyCurrent, &[]);
    assert!(expiring(&acts).is_none(), "{:?}", announced(&acts));
    assert_eq!(expiry_timer(&acts), Some(None));
}

#[test]
fn a_new_token_starts_its_own_age_and_its_own_warning() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    sim.deploy(&a, None);
    sim.advance(due_after());
    assert!(expiring(&sim.on(Input::Due(Timer::Expiry))).is_some());
    let b_at = sim.clock.wall;
    let plan = written(&mut sim, &b, 2);
    assert_eq!(plan.first_deployed, None);
    let acts = sim.rotated(plan, Outcome::Rotated, &[&a]);
    assert!(expiring(&acts).is_none(), "a new token is not near its end");
    assert_eq!(expiry_timer(&acts), Some(Some(sim.clock.now + due_after())));
    assert_eq!(live_age(&sim).first_deployed_at, Some(rfc3339(b_at)));
    assert_eq!(live_age(&sim).age_seconds, Some(0));
    sim.advance(due_after());
    let acts = sim.on(Input::Due(Timer::Expiry));
    assert!(
        matches!(expiring(&acts), Some(Event::TokenExpiring { fingerprint, .. }) if fingerprint == b.fingerprint())
    );
}

#[test]
fn a_token_deployed_again_keeps_its_first_deployment() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    let a_at = sim.clock.wall;
    sim.deploy(&a, None);
    sim.advance(10 * DAY);
    let plan = written(&mut sim, &b, 2);
    sim.rotated(plan, Outcome::Rotated, &[&a]);
    sim.advance(10 * DAY);
    let plan = written(&mut sim, &a, 3);
    assert_eq!(
        plan.first_deployed,
        Some(a_at),
        "the rotation is told the time known"
    );
    // The rotation reports what it wrote on the targets: that time, not now.
    rotated_reporting(&mut sim, plan, Outcome::Rotated, Some(a_at));
    let age = live_age(&sim);
    assert_eq!(age.first_deployed_at, Some(rfc3339(a_at)));
    assert_eq!(age.age_seconds, Some(20 * DAY.as_secs()));
}

#[test]
fn an_earlier_first_deployment_on_the_targets_labels_wins_and_may_be_due_at_once() {
    let mut sim = Sim::new(config());
    let a = token(1);
    let on_labels = sim.clock.wall - 340 * DAY;
    let plan = plan_of(sim.started(&a, None)).unwrap();
    // On start the targets carry the token already, labelled by an earlier rotation.
    let acts = rotated_reporting(&mut sim, plan, Outcome::AlreadyCurrent, Some(on_labels));
    assert!(
        matches!(expiring(&acts), Some(Event::TokenExpiring { first_deployed, .. }) if *first_deployed == on_labels),
        "{:?}",
        announced(&acts)
    );
    assert_eq!(live_age(&sim).age_seconds, Some(340 * DAY.as_secs()));
}

#[test]
fn after_a_restart_the_age_goes_on_and_a_warning_given_is_not_given_again() {
    let mut sim = Sim::new(config());
    let a = token(1);
    let a_at = sim.clock.wall;
    sim.deploy(&a, None);
    let kept = sim.policy.state();
    assert_eq!(kept.deployed.len(), 1);
    assert_eq!(kept.deployed[0].first_deployed, a_at);

    // Restarted (a new process, another monotonic clock) before the warning: its time
    // is still counted from the first deployment, not from the restart.
    let mut next = Sim::new(config());
    next.clock.wall = a_at + 300 * DAY;
    next.on(Input::Restored(kept));
    let plan = plan_of(next.started(&a, None)).unwrap();
    assert_eq!(plan.first_deployed, Some(a_at));
    let acts = next.rotated(plan, Outcome::AlreadyCurrent, &[]);
    assert!(expiring(&acts).is_none());
    assert_eq!(expiry_timer(&acts), Some(Some(next.clock.now + 35 * DAY)));
    next.advance(35 * DAY);
    let acts = next.on(Input::Due(Timer::Expiry));
    assert!(expiring(&acts).is_some());
    let kept = next.policy.state();
    assert!(kept.deployed[0].expiry_announced);

    // Restarted again after the warning: it is not repeated.
    let mut again = Sim::new(config());
    again.clock.wall = next.clock.wall + DAY;
    again.on(Input::Restored(kept));
    let plan = plan_of(again.started(&a, None)).unwrap();
    let acts = again.rotated(plan, Outcome::AlreadyCurrent, &[]);
    assert!(expiring(&acts).is_none(), "{:?}", announced(&acts));
    assert_eq!(live_age(&again).first_deployed_at, Some(rfc3339(a_at)));
}

#[test]
fn only_the_latest_tokens_are_kept() {
    let mut sim = Sim::new(config());
    sim.deploy(&token(0), None);
    for n in 1..=(ages::KEEP as u32 + 5) {
        let plan = written(&mut sim, &token(n), u64::from(n) + 1);
        sim.rotated(plan, Outcome::Rotated, &[]);
    }
    let kept = sim.policy.state().deployed;
    assert_eq!(kept.len(), ages::KEEP);
    let last = kept.last().unwrap();
    assert_eq!(
        &last.fingerprint,
        token(ages::KEEP as u32 + 5).fingerprint()
    );
}
