//! The daemon's decisions, input by input, with no engine, no API and no clock: the
//! README's table "which token is live" row by row, retries and backoff, what is announced
//! and when, the retired-token watch, when a failed token may be tried again.

use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::rotation::{TargetOutcome, TargetReport};

const BOT: &str = "bot";

fn token(n: u32) -> Token {
    Token::new(format!("sk-ant-oat01-{n:0>48}"))
}

fn invalid() -> Verdict {
    Verdict::Invalid {
        status: 403,
        error_type: "permission_error".into(),
        message: "OAuth token has been revoked.".into(),
    }
}

fn valid() -> Verdict {
    Verdict::Valid {
        status: 200,
        note: None,
    }
}

fn inconclusive() -> Verdict {
    Verdict::Inconclusive {
        reason: "HTTP 529".into(),
    }
}

fn config() -> Config {
    Config {
        can_probe: true,
        standby: Some("/run/secrets/standby".into()),
        debounce: Duration::from_millis(300),
        live_probe_interval: Some(Duration::from_secs(6 * 3600)),
        retired: WatchPlan {
            schedule: vec![Duration::from_secs(60), Duration::from_secs(3600)],
            max: Duration::from_secs(14 * 86_400),
            alert_after: Duration::from_secs(3600),
        },
        remind: crate::daemon::policy::problems::Schedule {
            remind_every: Some(Duration::from_secs(86_400)),
            drift_after: Duration::from_secs(900),
        },
        targets: vec![BOT.into()],
        jitter: |d| d,
        age: AgeConfig::default(),
    }
}

/// A policy and a clock that only moves when told.
struct Sim {
    policy: Policy,
    clock: Clock,
    start: Instant,
}

impl Sim {
    fn new(cfg: Config) -> Sim {
        let now = Instant::now();
        Sim {
            policy: Policy::new(cfg),
            clock: Clock {
                now,
                wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            },
            start: now,
        }
    }

    fn on(&mut self, input: Input) -> Vec<Action> {
        self.policy.on(input, self.clock)
    }

    fn advance(&mut self, d: Duration) {
        self.clock.now += d;
        self.clock.wall += d;
    }

    fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    /// Starts with no standby file content and the primary file holding `primary`; returns
    /// the plan of the first rotation.
    fn started(&mut self, primary: &Token, standby: Option<&Token>) -> Vec<Action> {
        let acts = self.on(Input::Started);
        assert!(matches!(acts[0], Action::ReadStandby { .. }));
        let acts = self.standby_read(standby, false, Then::Nothing);
        if let (Some(s), Some(fp)) = (standby, probe_of(&acts)) {
            assert_eq!(
                &fp,
                s.fingerprint(),
                "a new standby is validated before anything else"
            );
            self.on(Input::Probed {
                purpose: Purpose::Standby(Then::Nothing),
                fingerprint: fp,
                verdict: valid(),
            });
        }
        let acts = self.on(Input::Drained);
        assert!(
            matches!(acts[..], [Action::ReadPrimary(Why::Look)]),
            "a look on start"
        );
        self.on(Input::PrimaryRead(Why::Look, read(primary, 1)))
    }

    fn standby_read(&mut self, standby: Option<&Token>, again: bool, then: Then) -> Vec<Action> {
        let token = standby
            .cloned()
            .ok_or_else(|| SecretError::Missing("/run/secrets/standby".into()));
        self.on(Input::StandbyRead { again, then, token })
    }

    /// Rotates with `outcome`, the targets having carried `retired` before.
    fn rotated(&mut self, plan: Plan, outcome: Outcome, retired: &[&Token]) -> Vec<Action> {
        let report = report(&plan.token, outcome, retired);
        self.on(Input::Rotated(plan, Box::new(report)))
    }

    /// A rotation to `primary` that succeeds.
    fn deploy(&mut self, primary: &Token, standby: Option<&Token>) {
        let acts = self.started(primary, standby);
        let plan = plan_of(acts).expect("a rotation");
        self.rotated(plan, Outcome::Rotated, &[]);
    }
}

fn read(t: &Token, mtime: u64) -> Read {
    Read {
        token: Ok(t.clone()),
        content: Some(content(t, mtime)),
    }
}

fn content(t: &Token, mtime: u64) -> Content {
    Content {
        fingerprint: t.fingerprint().clone(),
        mtime: Some(UNIX_EPOCH + Duration::from_secs(mtime)),
    }
}

fn report(t: &Token, outcome: Outcome, retired: &[&Token]) -> RotationReport {
    let mut r = RotationReport::new("r0".into(), Some(t.fingerprint()));
    r.outcome = outcome;
    // As the pipeline reports them: a refusal, a failed canary, a rollback after the
    // replacement failed its check (the rollback of another step: see
    // `a_rollback_that_was_not_the_tokens_doing_is_retried`).
    r.token_suspect = matches!(
        outcome,
        Outcome::Rejected | Outcome::RolledBack | Outcome::CanaryFailed
    );
    r.validation = Some(Verdict::VALID);
    r.targets = vec![TargetReport {
        name: BOT.into(),
        outcome: TargetOutcome::Swapped,
        old_id: None,
        new_id: None,
        error: None,
        previous: None,
        warning: None,
        order: None,
        order_note: None,
        dependents: Vec::new(),
        spec_version: None,
    }];
    for old in retired {
        r.retire((*old).clone());
    }
    r
}

fn plan_of(acts: Vec<Action>) -> Option<Plan> {
    acts.into_iter().find_map(|a| match a {
        Action::Rotate(p) => Some(p),
        _ => None,
    })
}

fn probe_of(acts: &[Action]) -> Option<Fingerprint> {
    acts.iter().find_map(|a| match a {
        Action::Probe { token, .. } => Some(token.fingerprint().clone()),
        _ => None,
    })
}

/// The events announced, by name.
fn announced(acts: &[Action]) -> Vec<&'static str> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Announce(e) => Some(match e {
                Event::Rotation(_) => "rotation",
                Event::LiveTokenRejected { .. } => "live_token_rejected",
                Event::StandbyPromoted { .. } => "standby_promoted",
                Event::StandbyNeeded { .. } => "standby_needed",
                Event::RetiredTokenDead { .. } => "retired_token_dead",
                Event::RetiredTokenAlive { .. } => "retired_token_alive",
                Event::Drift { .. } => "drift",
                Event::Reminder { .. } => "reminder",
                Event::Resolved { .. } => "resolved",
                Event::TokenExpiring { .. } => "token_expiring",
            }),
            _ => None,
        })
        .collect()
}

fn scheduled(acts: &[Action], timer: Timer) -> Option<Option<Instant>> {
    acts.iter().rev().find_map(|a| match a {
        Action::Schedule(t, at) if *t == timer => Some(*at),
        _ => None,
    })
}

/// The tokens' state, once `acts` publish it.
fn published(sim: &Sim, acts: &[Action]) -> Option<tokens::View> {
    acts.iter()
        .any(|a| matches!(a, Action::Publish))
        .then(|| sim.policy.view(sim.clock))
}

/// The live token is rejected by a probe after a suspicion in the logs; returns what the
/// rejection led to once the standby file was read (holding `standby`) and validated.
fn reject_live(sim: &mut Sim, live: &Token, standby: Option<&Token>) -> Vec<Action> {
    reject_live_then(sim, live, standby, valid())
}

/// [`reject_live`], the standby's validation (if it needs one) answering `verdict`.
fn reject_live_then(
    sim: &mut Sim,
    live: &Token,
    standby: Option<&Token>,
    verdict: Verdict,
) -> Vec<Action> {
    let acts = sim.on(Input::RejectedInLogs { name: BOT.into() });
    assert_eq!(probe_of(&acts).as_ref(), Some(live.fingerprint()));
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Live(Probe::Logs),
        fingerprint: live.fingerprint().clone(),
        verdict: invalid(),
    });
    assert_eq!(announced(&acts), ["live_token_rejected"]);
    let then = Then::AfterRejection(live.fingerprint().clone());
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::ReadStandby { again: false, then: t } if *t == then)));
    let acts = sim.standby_read(standby, false, then.clone());
    match probe_of(&acts) {
        Some(fingerprint) => sim.on(Input::Probed {
            purpose: Purpose::Standby(then),
            fingerprint,
            verdict,
        }),
        None => acts,
    }
}

// --- The README's table "which token is live", row by row ----------------------------------

#[test]
fn row_1_a_good_primary_token_is_deployed_whatever_the_standby() {
    for standby in [None, Some(token(9))] {
        let mut sim = Sim::new(config());
        let primary = token(1);
        let plan = plan_of(sim.started(&primary, standby.as_ref())).expect("a rotation");
        assert_eq!(plan.token.fingerprint(), primary.fingerprint());
        assert_eq!(plan.file, File::Primary);
        assert_eq!(plan.replacing, None);
    }
}

#[test]
fn row_2_a_rejected_primary_with_a_ready_standby_promotes_it_at_once_then_asks_for_a_spare() {
    let mut sim = Sim::new(config());
    let (primary, standby) = (token(1), token(2));
    sim.deploy(&primary, Some(&standby));
    let acts = reject_live(&mut sim, &primary, Some(&standby));
    assert!(
        announced(&acts).is_empty(),
        "a ready standby needs no person"
    );
    let acts = sim.on(Input::Drained);
    assert!(
        matches!(acts[..], [Action::ReadPrimary(Why::Look)]),
        "the promotion is a look"
    );
    let plan =
        plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&primary, 1)))).expect("a rotation");
    assert_eq!(plan.token.fingerprint(), standby.fingerprint());
    assert_eq!(plan.file, File::Standby);
    assert_eq!(plan.replacing.as_ref(), Some(primary.fingerprint()));
    let acts = sim.rotated(plan, Outcome::Rotated, &[&primary]);
    assert_eq!(
        announced(&acts),
        ["rotation", "standby_promoted", "standby_needed"]
    );
    let v = published(&sim, &acts).expect("published");
    assert_eq!(v.status.standby.state, "promoted");
    let live = v.status.live.as_ref().expect("live");
    assert_eq!(
        (live.fingerprint.as_str(), live.source),
        (standby.fingerprint().as_str(), "standby")
    );
    assert!(
        v.status.retired.is_empty(),
        "a token the API rejected is not watched as retired"
    );
}

#[test]
fn row_3_a_rejected_primary_without_a_usable_standby_leaves_the_targets_and_asks_a_person() {
    for case in ["missing", "invalid", "rejected"] {
        let mut sim = Sim::new(config());
        let (primary, standby) = (token(1), token(2));
        sim.deploy(&primary, (case != "missing").then_some(&standby));
        let acts = match case {
            "missing" => reject_live(&mut sim, &primary, None),
            _ => {
                // The standby changed to one the API refuses (or that a probe cannot prove).
                let acts = sim.standby_read(Some(&token(3)), false, Then::PromoteIfLiveRejected);
                let verdict = if case == "rejected" {
                    invalid()
                } else {
                    inconclusive()
                };
                sim.on(Input::Probed {
                    purpose: Purpose::Standby(Then::PromoteIfLiveRejected),
                    fingerprint: probe_of(&acts).expect("validated"),
                    verdict: verdict.clone(),
                });
                reject_live_then(&mut sim, &primary, Some(&token(3)), verdict)
            }
        };
        assert_eq!(announced(&acts), ["standby_needed"], "case {case}");
        assert!(
            sim.on(Input::Drained).is_empty(),
            "case {case}: no look, the targets are left"
        );
        // A later look (a target started, say) deploys nothing either.
        sim.on(Input::EventsReconnected);
        let acts = sim.on(Input::Drained);
        assert!(matches!(acts[..], [Action::ReadPrimary(Why::Look)]));
        let acts = sim.on(Input::PrimaryRead(Why::Look, read(&primary, 1)));
        assert!(
            plan_of(acts).is_none(),
            "case {case}: a rejected token is never deployed again"
        );
    }
}

#[test]
fn row_4_a_new_primary_after_a_promotion_goes_live_and_the_standby_waits_again() {
    let mut sim = Sim::new(config());
    let (primary, standby, fresh) = (token(1), token(2), token(3));
    sim.deploy(&primary, Some(&standby));
    reject_live(&mut sim, &primary, Some(&standby));
    sim.on(Input::Drained);
    let plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&primary, 1)))).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&primary]);
    // A person writes a fresh token into the secret file.
    sim.on(Input::FileChanged(File::Primary));
    sim.on(Input::PrimaryRead(Why::Event, read(&fresh, 2)));
    let plan = plan_of(sim.on(Input::Drained))
        .expect("the file event's read is the look's: no second read");
    assert_eq!(
        (plan.token.fingerprint(), plan.file),
        (fresh.fingerprint(), File::Primary)
    );
    let acts = sim.rotated(plan, Outcome::Rotated, &[&standby]);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::ReadStandby { again: true, .. })),
        "the standby is proved again"
    );
    assert_eq!(
        published(&sim, &acts).unwrap().status.standby.state,
        "missing"
    );
    let acts = sim.standby_read(Some(&standby), true, Then::Nothing);
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Standby(Then::Nothing),
        fingerprint: probe_of(&acts).expect("validated again"),
        verdict: valid(),
    });
    assert_eq!(
        published(&sim, &acts).unwrap().status.standby.state,
        "ready"
    );
    assert!(
        published(&sim, &acts).unwrap().status.retired.is_empty(),
        "the spare that was live is not a retired token"
    );
}

// --- Looks, retries, failures ----------------------------------------------------------------

#[test]
fn a_file_event_that_leaves_the_token_as_it_was_costs_nothing() {
    let mut sim = Sim::new(config());
    let t = token(1);
    sim.deploy(&t, None);
    assert!(matches!(
        sim.on(Input::FileChanged(File::Primary))[..],
        [Action::ReadPrimary(Why::Event)]
    ));
    assert!(sim
        .on(Input::PrimaryRead(Why::Event, read(&t, 5)))
        .is_empty());
    assert!(sim.on(Input::Drained).is_empty(), "no look, no engine call");
}

#[test]
fn inconclusive_validations_are_retried_with_doubling_backoff_and_a_success_resets_it() {
    let mut sim = Sim::new(config());
    let t = token(1);
    let mut plan = plan_of(sim.started(&t, None)).unwrap();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let acts = sim.rotated(plan.clone(), Outcome::Inconclusive, &[]);
        let at = scheduled(&acts, Timer::Retry).flatten().expect("a retry");
        delays.push(at.duration_since(sim.clock.now).as_secs());
        sim.clock.now = at;
        sim.on(Input::Due(Timer::Retry));
        assert!(matches!(
            sim.on(Input::Drained)[..],
            [Action::ReadPrimary(Why::Look)]
        ));
        plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).unwrap();
    }
    assert_eq!(delays, [5, 10, 20, 40]);
    let acts = sim.rotated(plan.clone(), Outcome::Rotated, &[]);
    assert_eq!(
        scheduled(&acts, Timer::Retry),
        Some(None),
        "no retry after a success"
    );
    let acts = sim.rotated(plan, Outcome::Busy, &[]);
    let at = scheduled(&acts, Timer::Retry).flatten().unwrap();
    assert_eq!(
        at.duration_since(sim.clock.now),
        RETRY_FIRST,
        "the backoff starts again"
    );
}

#[test]
fn a_rotation_that_found_a_target_missing_is_tried_again_with_backoff() {
    // Found by the soak: a bot removed and run again by hand (on the live token) during a
    // rotation made it end `bad_target`; the newcomer's start asked for nothing, and the
    // file's token was never deployed until the file was written again.
    let mut sim = Sim::new(config());
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let acts = sim.rotated(plan, Outcome::BadTarget, &[]);
    let at = scheduled(&acts, Timer::Retry).flatten().expect("a retry");
    assert_eq!(at.duration_since(sim.clock.now), RETRY_FIRST);
    sim.clock.now = at;
    sim.on(Input::Due(Timer::Retry));
    assert!(matches!(
        sim.on(Input::Drained)[..],
        [Action::ReadPrimary(Why::Look)]
    ));
    assert!(
        plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).is_some(),
        "the same content is tried again"
    );
}

#[test]
fn a_rollback_that_was_not_the_tokens_doing_is_retried() {
    // A container run by hand under the target's name mid-swap: the swap is undone, but
    // nothing says the token is bad. Tried again with backoff, the same content too.
    let mut sim = Sim::new(config());
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let mut r = report(&t, Outcome::RolledBack, &[]);
    r.token_suspect = false;
    let acts = sim.on(Input::Rotated(plan, Box::new(r)));
    let at = scheduled(&acts, Timer::Retry).flatten().expect("a retry");
    assert_eq!(at.duration_since(sim.clock.now), RETRY_FIRST);
    sim.clock.now = at;
    sim.on(Input::Due(Timer::Retry));
    sim.on(Input::Drained);
    assert!(
        plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).is_some(),
        "the same content is tried again"
    );
}

#[test]
fn a_refused_token_is_not_tried_again_until_its_file_is_written_again() {
    for outcome in [
        Outcome::Rejected,
        Outcome::RolledBack,
        Outcome::CanaryFailed,
    ] {
        let mut sim = Sim::new(config());
        let t = token(1);
        let plan = plan_of(sim.started(&t, None)).unwrap();
        let acts = sim.rotated(plan, outcome, &[]);
        assert_eq!(
            scheduled(&acts, Timer::Retry),
            Some(None),
            "{outcome:?}: no retry"
        );
        // An unrelated look (a target started) finds the same content: it waits.
        sim.on(Input::EventsReconnected);
        sim.on(Input::Drained);
        assert!(
            plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).is_none(),
            "{outcome:?}"
        );
        // The same token written again (new mtime) is tried again.
        sim.on(Input::PrimaryRead(Why::Event, read(&t, 2)));
        assert!(
            plan_of(sim.on(Input::Drained)).is_some(),
            "{outcome:?}: written again"
        );
    }
}

#[test]
fn a_broken_target_says_nothing_about_the_token() {
    let mut sim = Sim::new(config());
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    sim.rotated(plan, Outcome::BadTarget, &[]);
    sim.on(Input::EventsReconnected);
    sim.on(Input::Drained);
    assert!(plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).is_some());
}

#[test]
fn a_half_written_file_is_read_again_after_the_quiet_period() {
    let mut sim = Sim::new(config());
    sim.on(Input::Started);
    sim.standby_read(None, false, Then::Nothing);
    sim.on(Input::Drained);
    let half = Read {
        token: Err(SecretError::Empty("/run/secrets/token".into())),
        content: None,
    };
    let acts = sim.on(Input::PrimaryRead(Why::Look, half));
    assert_eq!(
        scheduled(&acts, Timer::ReadAgain),
        Some(Some(sim.at(Duration::from_millis(300))))
    );
    assert!(
        sim.on(Input::Drained).is_empty(),
        "nothing else starts while it waits"
    );
    let acts = sim.on(Input::Due(Timer::ReadAgain));
    assert!(matches!(acts[..], [Action::ReadPrimary(Why::Look)]));
    let t = token(1);
    assert!(plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).is_some());
}

#[test]
fn a_file_still_unusable_after_the_quiet_period_is_a_refused_token_announced_once() {
    let mut sim = Sim::new(config());
    sim.on(Input::Started);
    sim.standby_read(None, false, Then::Nothing);
    let empty = || Read {
        token: Err(SecretError::Empty("/run/secrets/token".into())),
        content: None,
    };
    let mut events = Vec::new();
    for _ in 0..2 {
        sim.on(Input::EventsReconnected);
        sim.on(Input::Drained);
        sim.on(Input::PrimaryRead(Why::Look, empty()));
        sim.on(Input::Due(Timer::ReadAgain));
        let acts = sim.on(Input::PrimaryRead(Why::Look, empty()));
        assert!(
            !acts.iter().any(|a| matches!(a, Action::Rotate(_))),
            "targets untouched"
        );
        events.extend(announced(&acts));
    }
    assert_eq!(events, ["rotation"], "the same outcome is announced once");
}

#[test]
fn a_target_started_with_the_live_token_needs_nothing_and_one_without_it_is_rotated() {
    let mut sim = Sim::new(config());
    let t = token(1);
    sim.deploy(&t, None);
    let ours = Some(t.fingerprint().to_string());
    assert!(sim
        .on(Input::TargetStarted {
            name: BOT.into(),
            fingerprint: ours
        })
        .is_empty());
    let acts = sim.on(Input::TargetStarted {
        name: BOT.into(),
        fingerprint: None,
    });
    assert!(
        matches!(&acts[..], [Action::CheckTarget { name, token }] if name == BOT && token.fingerprint() == t.fingerprint())
    );
    sim.on(Input::TargetChecked {
        name: BOT.into(),
        carries_live: true,
    });
    assert!(
        sim.on(Input::Drained).is_empty(),
        "it carries the live token: nothing to do"
    );
    sim.on(Input::TargetChecked {
        name: BOT.into(),
        carries_live: false,
    });
    assert!(matches!(
        sim.on(Input::Drained)[..],
        [Action::ReadPrimary(Why::Look)]
    ));
}

#[test]
fn the_same_outcome_for_the_same_token_is_announced_once() {
    let mut sim = Sim::new(config());
    let t = token(1);
    let plan = plan_of(sim.started(&t, None)).unwrap();
    let first = sim.rotated(plan.clone(), Outcome::EngineUnavailable, &[]);
    let again = sim.rotated(plan.clone(), Outcome::EngineUnavailable, &[]);
    let done = sim.rotated(plan.clone(), Outcome::Rotated, &[]);
    let current = sim.rotated(plan, Outcome::AlreadyCurrent, &[]);
    assert_eq!(announced(&first), ["rotation"]);
    assert!(announced(&again).is_empty());
    assert_eq!(
        announced(&done),
        ["rotation", "resolved"],
        "the failure is over: resolved"
    );
    assert!(
        announced(&current).is_empty(),
        "already_current is never announced"
    );
}

#[test]
fn a_change_during_a_rotation_is_looked_at_right_after_it() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    let plan = plan_of(sim.started(&a, None)).unwrap();
    // While it rotates, the file changes: the event is read, but no second look starts.
    sim.on(Input::PrimaryRead(Why::Event, read(&b, 2)));
    assert!(sim.on(Input::Drained).is_empty());
    sim.rotated(plan, Outcome::Rotated, &[]);
    let plan = plan_of(sim.on(Input::Drained)).expect("the new token, right after");
    assert_eq!(plan.token.fingerprint(), b.fingerprint());
}

// --- The live token's probes -----------------------------------------------------------------

#[test]
fn a_suspicion_is_confirmed_at_most_once_per_30_seconds_and_an_accepted_token_is_a_false_alarm() {
    let mut sim = Sim::new(config());
    let t = token(1);
    sim.deploy(&t, None);
    let acts = sim.on(Input::RejectedInLogs { name: BOT.into() });
    assert!(probe_of(&acts).is_some());
    let rate_limited = Verdict::Valid {
        status: 429,
        note: Some("rate-limited".into()),
    };
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Live(Probe::Logs),
        fingerprint: t.fingerprint().clone(),
        verdict: rate_limited,
    });
    let live = published(&sim, &acts).unwrap().status.live.clone().unwrap();
    assert_eq!(
        (live.state, live.false_alarms),
        ("ok", 1),
        "a 429 leaves the token live and ok"
    );
    sim.advance(Duration::from_secs(29));
    assert!(probe_of(&sim.on(Input::RejectedInLogs { name: BOT.into() })).is_none());
    sim.advance(Duration::from_secs(2));
    assert!(probe_of(&sim.on(Input::RejectedInLogs { name: BOT.into() })).is_some());
}

#[test]
fn the_periodic_probe_reschedules_itself_and_proves_the_standby_again() {
    let mut sim = Sim::new(config());
    let t = token(1);
    let acts = sim.on(Input::Started);
    let every = Duration::from_secs(6 * 3600);
    assert_eq!(
        scheduled(&acts, Timer::LiveProbe),
        Some(Some(sim.at(every)))
    );
    sim.standby_read(None, false, Then::Nothing);
    sim.on(Input::Drained);
    let plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&t, 1)))).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[]);
    sim.clock.now = sim.at(every);
    let acts = sim.on(Input::Due(Timer::LiveProbe));
    assert_eq!(probe_of(&acts).as_ref(), Some(t.fingerprint()));
    assert_eq!(
        scheduled(&acts, Timer::LiveProbe),
        Some(Some(sim.at(every * 2)))
    );
    let acts = sim.on(Input::Probed {
        purpose: Purpose::Live(Probe::Periodic),
        fingerprint: t.fingerprint().clone(),
        verdict: inconclusive(),
    });
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::ReadStandby { again: true, .. })));
    assert_eq!(
        published(&sim, &acts)
            .unwrap()
            .status
            .live
            .as_ref()
            .unwrap()
            .state,
        "unknown"
    );
}

#[test]
fn with_validation_off_nothing_is_probed_and_the_standby_is_taken_as_it_is() {
    let mut sim = Sim::new(Config {
        can_probe: false,
        ..config()
    });
    let t = token(1);
    sim.deploy(&t, Some(&token(2)));
    assert!(sim
        .on(Input::RejectedInLogs { name: BOT.into() })
        .is_empty());
    let acts = sim.standby_read(Some(&token(3)), false, Then::Nothing);
    assert!(probe_of(&acts).is_none());
    assert_eq!(
        published(&sim, &acts).unwrap().status.standby.state,
        "ready"
    );
}

#[test]
fn a_standby_whose_swap_failed_is_not_deployed_again_until_its_file_changes() {
    let mut sim = Sim::new(config());
    let (primary, standby) = (token(1), token(2));
    sim.deploy(&primary, Some(&standby));
    reject_live(&mut sim, &primary, Some(&standby));
    sim.on(Input::Drained);
    let plan = plan_of(sim.on(Input::PrimaryRead(Why::Look, read(&primary, 1)))).unwrap();
    let acts = sim.rotated(plan, Outcome::RolledBack, &[]);
    assert_eq!(
        published(&sim, &acts).unwrap().status.standby.state,
        "invalid"
    );
    sim.standby_read(Some(&standby), false, Then::PromoteIfLiveRejected);
    assert!(
        sim.on(Input::Drained).is_empty(),
        "the same standby is not tried again"
    );
    let other = token(3);
    let acts = sim.standby_read(Some(&other), false, Then::PromoteIfLiveRejected);
    sim.on(Input::Probed {
        purpose: Purpose::Standby(Then::PromoteIfLiveRejected),
        fingerprint: probe_of(&acts).unwrap(),
        verdict: valid(),
    });
    let acts = sim.on(Input::Drained);
    assert!(
        matches!(acts[..], [Action::ReadPrimary(Why::Look)]),
        "a new standby is deployed"
    );
}

// --- The retired-token watch -----------------------------------------------------------------

#[test]
fn a_retired_token_is_probed_on_its_schedule_announced_alive_once_then_dead_with_how_long_it_lived()
{
    let mut sim = Sim::new(config());
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    let acts = sim.rotated(plan, Outcome::Rotated, &[&old]);
    assert_eq!(
        scheduled(&acts, Timer::Retired),
        Some(Some(sim.at(Duration::from_secs(60))))
    );
    let probe = |sim: &mut Sim, at: u64, verdict: Verdict| {
        sim.clock.now = sim.at(Duration::from_secs(at));
        let acts = sim.on(Input::Due(Timer::Retired));
        assert_eq!(
            probe_of(&acts).as_ref(),
            Some(old.fingerprint()),
            "probed at {at} s"
        );
        let next = scheduled(&acts, Timer::Retired).flatten();
        let acts = sim.on(Input::Probed {
            purpose: Purpose::Retired,
            fingerprint: old.fingerprint().clone(),
            verdict,
        });
        (next, acts)
    };
    let (next, acts) = probe(&mut sim, 60, valid());
    assert_eq!(next, Some(sim.at(Duration::from_secs(3600))));
    assert!(announced(&acts).is_empty(), "alive, but not for long yet");
    let (next, acts) = probe(&mut sim, 3600, valid());
    assert_eq!(
        next,
        Some(sim.at(Duration::from_secs(7200))),
        "then every last step"
    );
    assert_eq!(announced(&acts), ["retired_token_alive"]);
    let (_, acts) = probe(&mut sim, 7200, valid());
    assert!(announced(&acts).is_empty(), "alive is announced once");
    let (_, acts) = probe(&mut sim, 10_800, invalid());
    // `resolved` closes the `retired_token_alive` problem (every problem is closed so).
    assert_eq!(announced(&acts), ["retired_token_dead", "resolved"]);
    let dead = &published(&sim, &acts).unwrap().status.retired[0];
    assert_eq!((dead.state, dead.alive_for_seconds), ("dead", Some(10_800)));
    assert_eq!(
        scheduled(&acts, Timer::Retired),
        Some(None),
        "a dead token is not probed again"
    );
    let alive_for = acts.iter().find_map(|a| match a {
        Action::Announce(Event::RetiredTokenDead { alive_for, .. }) => Some(*alive_for),
        _ => None,
    });
    assert_eq!(alive_for, Some(Duration::from_secs(10_800)));
}

#[test]
fn a_token_live_again_is_no_longer_watched_as_retired() {
    let mut sim = Sim::new(config());
    let (a, b) = (token(1), token(2));
    let plan = plan_of(sim.started(&b, None)).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&a]);
    sim.on(Input::PrimaryRead(Why::Event, read(&a, 3)));
    let plan = plan_of(sim.on(Input::Drained)).unwrap();
    let acts = sim.rotated(plan, Outcome::Rotated, &[&b]);
    let retired: Vec<String> = published(&sim, &acts)
        .unwrap()
        .status
        .retired
        .iter()
        .map(|r| r.fingerprint.clone())
        .collect();
    assert_eq!(retired, [b.fingerprint().to_string()]);
}

#[test]
fn the_watch_of_a_retired_token_ends_after_its_maximum() {
    let mut sim = Sim::new(Config {
        retired: WatchPlan {
            schedule: vec![Duration::from_secs(60)],
            max: Duration::from_secs(100),
            alert_after: Duration::from_secs(3600),
        },
        ..config()
    });
    let (old, new) = (token(1), token(2));
    let plan = plan_of(sim.started(&new, None)).unwrap();
    sim.rotated(plan, Outcome::Rotated, &[&old]);
    sim.clock.now = sim.at(Duration::from_secs(120));
    let acts = sim.on(Input::Due(Timer::Retired));
    assert!(probe_of(&acts).is_none());
    assert!(published(&sim, &acts).unwrap().status.retired.is_empty());
}

mod age;
mod problems;
mod restored;
