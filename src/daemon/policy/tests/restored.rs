//! What survives a restart: the durable state is handed out when it changes
//! ([`Action::Persist`]) and taken back whole ([`Input::Restored`]): the retired watch
//! goes on from where it was, counted from the real retirement; rejected tokens stay
//! rejected; what was announced is not announced again.

use super::*;

/// The state the actions ask to keep (as it is after them), if they ask.
fn persisted(sim: &Sim, acts: &[Action]) -> Option<State> {
    acts.iter()
        .any(|a| matches!(a, Action::Persist))
        .then(|| sim.policy.state())
}

/// A policy started again `after` the one in `sim`, from `state`, with a clock whose
/// instants have nothing to do with the old one's (a new process, maybe a new boot).
fn restarted(sim: &Sim, state: State, after: Duration) -> (Sim, Vec<Action>) {
    let mut next = Sim::new(config());
    next.clock.wall = sim.clock.wall + after;
    let acts = next.on(Input::Restored(state));
    (next, acts)
}

fn probe_retired(sim: &mut Sim, old: &Token, verdict: Verdict) -> Vec<Action> {
    let acts = sim.on(Input::Due(Timer::Retired));
    assert_eq!(probe_of(&acts).as_ref(), Some(old.fingerprint()));
    sim.on(Input::Probed {
        purpose: Purpose::Retired,
        fingerprint: old.fingerprint().clone(),
        verdict,
    })
}

#[test]
fn a_retired_watch_goes_on_after_a_restart_and_its_death_counts_from_the_real_retirement() {
    let mut sim = Sim::new(config());
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    let acts = sim.rotated(plan, Outcome::Rotated, &[&old]);
    let kept = persisted(&sim, &acts).expect("a retirement is kept");
    assert_eq!(kept.retired[0].token.fingerprint(), old.fingerprint());
    assert_eq!(kept.retired[0].retired_at, sim.clock.wall);
    sim.advance(Duration::from_secs(60));
    let acts = probe_retired(&mut sim, &old, valid());
    let kept = persisted(&sim, &acts).expect("a probe's answer is kept");
    assert_eq!(kept.retired[0].next, 1);
    assert_eq!(
        kept.retired[0].next_at,
        sim.clock.wall + Duration::from_secs(3540),
        "the next probe, by the wall clock"
    );

    // Down for two hours: the next probe (due at 1 h) is overdue, so it runs at once.
    let (mut sim, acts) = restarted(&sim, kept, Duration::from_secs(7200));
    assert_eq!(
        scheduled(&acts, Timer::Retired),
        Some(Some(sim.clock.now)),
        "an overdue probe is due at once"
    );
    assert!(
        persisted(&sim, &acts).is_none(),
        "what was just restored is not written back"
    );
    let view = published(&sim, &acts).expect("restored state is shown");
    assert_eq!(
        view.status.retired[0].fingerprint,
        old.fingerprint().to_string()
    );
    let acts = probe_retired(&mut sim, &old, invalid());
    let alive_for = acts.iter().find_map(|a| match a {
        Action::Announce(Event::RetiredTokenDead { alive_for, .. }) => Some(*alive_for),
        _ => None,
    });
    assert_eq!(alive_for, Some(Duration::from_secs(60 + 7200)));
}

#[test]
fn a_retired_token_announced_alive_before_a_restart_is_not_announced_again() {
    let mut sim = Sim::new(config());
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&old]);
    sim.advance(Duration::from_secs(3600));
    let acts = probe_retired(&mut sim, &old, valid());
    assert_eq!(announced(&acts), ["retired_token_alive"]);
    let kept = persisted(&sim, &acts).unwrap();
    assert!(kept.retired[0].alerted);
    let (mut sim, _) = restarted(&sim, kept, Duration::from_secs(3600));
    let acts = probe_retired(&mut sim, &old, valid());
    assert!(
        announced(&acts).is_empty(),
        "announced once, across restarts too"
    );
}

#[test]
fn a_rejected_token_stays_rejected_after_a_restart() {
    let mut sim = Sim::new(config());
    let live = token(1);
    sim.deploy(&live, None);
    sim.on(Input::RejectedInLogs { name: BOT.into() });
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Live(Probe::Logs),
        fingerprint: live.fingerprint().clone(),
        verdict: invalid(),
    });
    let kept = persisted(&sim, &acts).expect("a rejection is kept");
    assert_eq!(kept.rejected, vec![live.fingerprint().clone()]);

    let (mut sim, acts) = restarted(&sim, kept, Duration::from_secs(60));
    let view = published(&sim, &acts).unwrap();
    assert_eq!(view.status.rejected, vec![live.fingerprint().to_string()]);
    sim.on(Input::Started);
    sim.standby_read(None, false, Then::Nothing);
    sim.on(Input::Drained);
    let acts = sim.on(Input::PrimaryRead(Why::Look, read(&live, 1)));
    assert!(
        plan_of(acts).is_none(),
        "the rejected token in the file is not deployed after a restart"
    );
}

#[test]
fn the_state_is_kept_only_when_it_changes() {
    let mut sim = Sim::new(config());
    let (old, new) = (token(1), token(2));
    let acts = sim.started(&new, None);
    assert!(
        persisted(&sim, &acts).is_none(),
        "nothing durable changed yet"
    );
    let plan = plan_of(acts).unwrap();
    assert!({
        let acts = sim.rotated(plan, Outcome::Rotated, &[&old]);
        persisted(&sim, &acts)
    }
    .is_some());
    let acts = sim.on(Input::Drained);
    assert!(persisted(&sim, &acts).is_none());
}

#[test]
fn a_restored_watch_past_its_maximum_ends() {
    let mut sim = Sim::new(config());
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    let kept = {
        let acts = sim.rotated(plan, Outcome::Rotated, &[&old]);
        persisted(&sim, &acts)
    }
    .unwrap();
    let (mut sim, _) = restarted(&sim, kept, Duration::from_secs(15 * 86_400));
    let acts = sim.on(Input::Due(Timer::Retired));
    assert!(probe_of(&acts).is_none());
    assert!(published(&sim, &acts).unwrap().status.retired.is_empty());
    assert!(
        persisted(&sim, &acts).unwrap().retired.is_empty(),
        "its end is kept too"
    );
}
