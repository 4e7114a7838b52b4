//! The pipeline without an engine: fake targets that record every call the pipeline makes
//! (no Docker, no network, no validator: `--validate none`), to prove the order of the
//! steps, `--parallel`, `--max-failures`, a stop, and the outcome a rotation ends with.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::pipeline::Pipeline;
use super::report::{RotationReport, TargetOutcome};
use crate::error::Outcome;
use crate::secret::Token;
use crate::targets::container::step::CopyRefused;
use crate::targets::{CanaryError, Change, Ctx, Interrupted, Lock, Locker, Observed, Settled};
use crate::targets::{SpecVersion, StepError, Target, TargetError, UndoError};

/// A call the pipeline made to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Lock,
    Interrupted,
    Observe,
    Apply,
    Verify,
    Commit,
    Undo,
}

/// The fake world all targets of a test share: every call in order, and how many changes
/// were under way at once.
#[derive(Default)]
struct World {
    calls: Mutex<Vec<(Call, String)>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl World {
    fn record(&self, call: Call, key: &str) {
        self.calls.lock().unwrap().push((call, key.to_string()));
    }

    fn calls(&self) -> Vec<(Call, String)> {
        self.calls.lock().unwrap().clone()
    }

    /// The targets `call` was made to, in order.
    fn keys(&self, call: Call) -> Vec<String> {
        let calls = self.calls();
        calls
            .into_iter()
            .filter(|(c, _)| *c == call)
            .map(|(_, k)| k)
            .collect()
    }

    /// Where the first and the last call of this kind are in the log.
    fn span(&self, call: Call) -> (usize, usize) {
        let calls = self.calls();
        let at: Vec<usize> = (0..calls.len()).filter(|i| calls[*i].0 == call).collect();
        (at[0], at[at.len() - 1])
    }
}

/// Which step fails, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// `apply` fails before changing anything.
    Apply,
    /// `verify` fails (after a change: the undo restores it).
    Verify,
    /// `verify` fails because the engine cannot be reached.
    Unreachable,
    /// The engine refuses to create the copy (e.g. a bind mount's source is gone).
    Refused,
}

/// What a fake target does.
#[derive(Clone, Default)]
struct Plan {
    /// It already carries the new token.
    current: bool,
    /// A crash left a change: `Some(committed)`.
    interrupted: Option<bool>,
    /// The step that fails, if any.
    fail: Option<Fail>,
    /// Its commit fails.
    commit_fails: bool,
    /// Its undo fails.
    undo_fails: bool,
    /// Its lock is held by another rotator that never lets go.
    lock_held: bool,
    /// It is a Swarm service: its change says which spec version replaced which.
    service: bool,
    /// Its apply asks the pipeline to stop (a SIGTERM during this swap).
    stop_on_apply: Option<Arc<watch::Sender<bool>>>,
}

struct Fake {
    key: String,
    plan: Plan,
    world: Arc<World>,
    /// Whether a change of ours is in the fake engine (the undo has something to do).
    changed: Mutex<bool>,
}

fn fakes(world: &Arc<World>, plans: Vec<(&str, Plan)>) -> Vec<Fake> {
    plans
        .into_iter()
        .map(|(key, plan)| Fake {
            key: key.to_string(),
            changed: Mutex::new(plan.interrupted.is_some()),
            plan,
            world: world.clone(),
        })
        .collect()
}

fn step_error(target: &str, step: &'static str, unreachable: bool) -> StepError {
    StepError {
        target: target.to_string(),
        step,
        unreachable,
        cause: "injected".into(),
    }
}

fn change_of(key: &str, rotation: &str) -> Change {
    Change {
        rotation: rotation.to_string(),
        old_id: format!("old-{key}"),
        new_id: format!("new-{key}"),
        old_running: true,
        order: "stop-first",
        order_note: None,
        note: None,
        dependents: Vec::new(),
        mark: None,
        spec_version: None,
    }
}

impl Fake {
    /// The change is over (committed or undone): it no longer counts as running.
    fn settle(&self) {
        let mut changed = self.changed.lock().unwrap();
        if std::mem::take(&mut *changed) {
            self.world.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Target for Fake {
    type State = ();

    fn key(&self) -> &str {
        &self.key
    }

    async fn lock(&self, _: &Locker) -> Result<Lock, TargetError> {
        self.world.record(Call::Lock, &self.key);
        if self.plan.lock_held {
            std::future::pending::<()>().await;
        }
        Ok(Lock::in_memory(&self.key))
    }

    async fn interrupted(&self) -> Result<Option<Interrupted>, TargetError> {
        self.world.record(Call::Interrupted, &self.key);
        if self.plan.interrupted.is_some() {
            // Recovery counts as a change under way until it is settled.
            self.world.running.fetch_add(1, Ordering::SeqCst);
        }
        Ok(self.plan.interrupted.map(|committed| Interrupted {
            committed,
            change: change_of(&self.key, "crashed"),
        }))
    }

    async fn observe(&self, token: &Token) -> Result<Observed<()>, TargetError> {
        self.world.record(Call::Observe, &self.key);
        let old = format!("old-token-of-{}", self.key);
        let value = if self.plan.current {
            token.expose()
        } else {
            &old
        };
        let id = format!("old-{}", self.key);
        Ok(Observed::new(
            self.key.clone(),
            id,
            true,
            Some(value),
            token,
            (),
        ))
    }

    fn canary_key(&self, _: &Observed<()>) -> Option<String> {
        None
    }

    async fn canary(&self, _: &Observed<()>, _: &[String], _: Ctx<'_>) -> Result<(), CanaryError> {
        Ok(())
    }

    async fn apply(&self, _: &Observed<()>, ctx: Ctx<'_>) -> Result<Change, StepError> {
        self.world.record(Call::Apply, &self.key);
        if let Some(stop) = &self.plan.stop_on_apply {
            stop.send_replace(true);
        }
        let now = self.world.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.world.peak.fetch_max(now, Ordering::SeqCst);
        // Let every other change the pipeline has started run meanwhile.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        if let Some(f @ (Fail::Apply | Fail::Refused)) = self.plan.fail {
            self.world.running.fetch_sub(1, Ordering::SeqCst);
            let mut e = step_error(&self.key, "apply", false);
            if f == Fail::Refused {
                e.cause = Box::new(CopyRefused::new("engine answered 400".into()));
            }
            return Err(e);
        }
        *self.changed.lock().unwrap() = true;
        let mut c = change_of(&self.key, ctx.rotation);
        if self.plan.service {
            c.new_id = c.old_id.clone();
            c.spec_version = Some(SpecVersion {
                from: 41,
                to: Some(42),
            });
        }
        Ok(c)
    }

    async fn verify(&self, _: &Change, _: Ctx<'_>) -> Result<(), StepError> {
        self.world.record(Call::Verify, &self.key);
        match self.plan.fail {
            Some(Fail::Verify) => Err(step_error(&self.key, "verify", false)),
            Some(Fail::Unreachable) => Err(step_error(&self.key, "verify", true)),
            _ => Ok(()),
        }
    }

    async fn commit(&self, _: &Change) -> Result<Settled, StepError> {
        self.world.record(Call::Commit, &self.key);
        if self.plan.commit_fails {
            return Err(step_error(&self.key, "commit", false));
        }
        self.settle();
        Ok(Settled {
            actions: vec![format!("committed {}", self.key)],
            warning: None,
        })
    }

    async fn undo(&self) -> Result<Settled, UndoError> {
        self.world.record(Call::Undo, &self.key);
        if self.plan.undo_fails {
            return Err(UndoError {
                target: self.key.clone(),
                what: "undo".into(),
                unreachable: false,
                cause: "injected".into(),
            });
        }
        let had = *self.changed.lock().unwrap();
        self.settle();
        Ok(Settled {
            actions: had
                .then(|| format!("restored {}", self.key))
                .into_iter()
                .collect(),
            warning: None,
        })
    }
}

fn pipeline(parallel: usize, max_failures: usize) -> Pipeline {
    Pipeline {
        validator: None,
        locker: Locker::new(Duration::from_secs(600), Duration::from_secs(0)),
        parallel,
        max_failures,
        canary: None,
        stop: None,
    }
}

fn token() -> Token {
    Token::new(format!("sk-ant-oat01-{}", "n".repeat(40)))
}

async fn rotate(p: &Pipeline, targets: &[Fake]) -> RotationReport {
    p.rotate(targets, &token(), "rot1".into()).await
}

fn outcome_of(report: &RotationReport, key: &str) -> TargetOutcome {
    report
        .targets
        .iter()
        .find(|t| t.name == key)
        .unwrap()
        .outcome
}

fn plain(keys: &[&'static str]) -> Vec<(&'static str, Plan)> {
    keys.iter().map(|k| (*k, Plan::default())).collect()
}

fn failing(fail: Fail) -> Plan {
    Plan {
        fail: Some(fail),
        ..Plan::default()
    }
}

#[tokio::test]
async fn parallel_n_runs_n_swaps_at_once_and_never_more() {
    for n in [1, 2, 3, 7] {
        let world = Arc::new(World::default());
        let targets = fakes(&world, plain(&["a", "b", "c", "d", "e", "f", "g"]));
        let report = rotate(&pipeline(n, 0), &targets).await;
        assert_eq!(report.outcome, Outcome::Rotated, "--parallel {n}");
        assert_eq!(world.peak.load(Ordering::SeqCst), n, "--parallel {n}");
        assert_eq!(world.keys(Call::Commit).len(), 7, "--parallel {n}");
        assert!(report
            .targets
            .iter()
            .all(|t| t.outcome == TargetOutcome::Swapped));
    }
}

#[tokio::test]
async fn after_more_than_max_failures_no_new_swap_starts() {
    let world = Arc::new(World::default());
    let mut plans = plain(&["a", "b", "c", "d"]);
    plans[0].1 = failing(Fail::Verify);
    plans[1].1 = failing(Fail::Verify);
    let targets = fakes(&world, plans);
    let report = rotate(&pipeline(1, 1), &targets).await;

    assert_eq!(report.outcome, Outcome::RolledBack);
    // One failure is tolerated: b is tried; after two, nothing new starts.
    assert_eq!(world.keys(Call::Apply), ["a", "b"]);
    assert_eq!(outcome_of(&report, "a"), TargetOutcome::RolledBack);
    assert_eq!(outcome_of(&report, "b"), TargetOutcome::RolledBack);
    assert_eq!(outcome_of(&report, "c"), TargetOutcome::NotAttempted);
    assert_eq!(outcome_of(&report, "d"), TargetOutcome::NotAttempted);
    // The rest keep their token: never touched, not even undone.
    for call in [Call::Apply, Call::Verify, Call::Commit, Call::Undo] {
        assert!(!world.keys(call).iter().any(|k| k == "c" || k == "d"));
    }
    assert!(report.retired_tokens.is_empty());
}

#[tokio::test]
async fn a_failure_lets_the_swaps_under_way_finish() {
    let world = Arc::new(World::default());
    let mut plans = plain(&["a", "b", "c", "d"]);
    plans[0].1 = failing(Fail::Apply);
    let targets = fakes(&world, plans);
    let report = rotate(&pipeline(2, 0), &targets).await;

    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(world.keys(Call::Apply), ["a", "b"]);
    assert_eq!(outcome_of(&report, "a"), TargetOutcome::RolledBack);
    assert_eq!(
        outcome_of(&report, "b"),
        TargetOutcome::Swapped,
        "under way: finished"
    );
    assert_eq!(outcome_of(&report, "c"), TargetOutcome::NotAttempted);
    assert_eq!(outcome_of(&report, "d"), TargetOutcome::NotAttempted);
    assert_eq!(world.keys(Call::Commit), ["b"]);
    let retired: Vec<bool> = report
        .retired_tokens
        .iter()
        .map(|t| t.matches("old-token-of-b"))
        .collect();
    assert_eq!(
        retired,
        [true],
        "only the swapped target's old token is retired"
    );
}

fn stoppable(parallel: usize) -> (Pipeline, Arc<watch::Sender<bool>>) {
    let (tx, rx) = watch::channel(false);
    let mut p = pipeline(parallel, 0);
    p.stop = Some(rx);
    (p, Arc::new(tx))
}

#[tokio::test]
async fn a_stop_between_swaps_starts_no_new_swap_and_says_interrupted() {
    let world = Arc::new(World::default());
    let (p, stop) = stoppable(1);
    let mut plans = plain(&["a", "b", "c"]);
    plans[0].1.stop_on_apply = Some(stop.clone());
    let targets = fakes(&world, plans);
    let report = rotate(&p, &targets).await;

    assert_eq!(report.outcome, Outcome::Interrupted);
    assert_eq!(world.keys(Call::Apply), ["a"]);
    assert_eq!(
        outcome_of(&report, "a"),
        TargetOutcome::Swapped,
        "the swap under way finishes"
    );
    assert_eq!(outcome_of(&report, "b"), TargetOutcome::NotAttempted);
    assert_eq!(outcome_of(&report, "c"), TargetOutcome::NotAttempted);
    assert!(report.error.is_some());
}

#[tokio::test]
async fn a_stop_before_any_swap_changes_nothing_and_says_stopped() {
    let world = Arc::new(World::default());
    let (p, stop) = stoppable(2);
    stop.send_replace(true);
    let targets = fakes(&world, plain(&["a", "b"]));
    let report = rotate(&p, &targets).await;

    assert_eq!(report.outcome, Outcome::Stopped);
    assert!(world.keys(Call::Apply).is_empty());
    assert!(report
        .targets
        .iter()
        .all(|t| t.outcome == TargetOutcome::NotAttempted));
}

#[tokio::test]
async fn a_stop_ends_the_wait_for_another_rotators_lock() {
    let world = Arc::new(World::default());
    let (p, stop) = stoppable(1);
    let mut plans = plain(&["a", "b"]);
    plans[1].1.lock_held = true;
    let targets = fakes(&world, plans);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.send_replace(true);
    });
    let report = rotate(&p, &targets).await;
    stopper.await.unwrap();

    assert_eq!(report.outcome, Outcome::Stopped);
    assert_eq!(world.keys(Call::Lock), ["a", "b"]);
    assert!(
        world.keys(Call::Observe).is_empty(),
        "nothing past the lock"
    );
}

/// Runs targets `a`, `b`, `c` failing as given, all at once, and returns the outcome.
async fn worst_of(plans: Vec<(&'static str, Plan)>) -> (Outcome, RotationReport) {
    let world = Arc::new(World::default());
    let targets = fakes(&world, plans);
    let report = rotate(&pipeline(3, 9), &targets).await;
    (report.outcome, report)
}

#[tokio::test]
async fn the_rotation_ends_with_its_worst_failure() {
    let rolled_back = || failing(Fail::Verify);
    let unreachable = || failing(Fail::Unreachable);
    let undo_failed = || Plan {
        undo_fails: true,
        ..failing(Fail::Verify)
    };
    let (worst, report) = worst_of(vec![
        ("a", rolled_back()),
        ("b", undo_failed()),
        ("c", unreachable()),
    ])
    .await;
    assert_eq!(worst, Outcome::RollbackFailed);
    assert_eq!(outcome_of(&report, "a"), TargetOutcome::RolledBack);
    assert_eq!(outcome_of(&report, "b"), TargetOutcome::RollbackFailed);
    assert_eq!(outcome_of(&report, "c"), TargetOutcome::RolledBack);

    let (worst, _) = worst_of(vec![("a", unreachable()), ("b", rolled_back())]).await;
    assert_eq!(worst, Outcome::EngineUnavailable);
    let (worst, _) = worst_of(vec![("a", rolled_back()), ("b", unreachable())]).await;
    assert_eq!(worst, Outcome::EngineUnavailable);
    let (worst, _) = worst_of(vec![("a", rolled_back()), ("b", Plan::default())]).await;
    assert_eq!(worst, Outcome::RolledBack);
}

#[tokio::test]
async fn interrupted_swaps_are_settled_in_key_order_before_anything_is_observed() {
    let world = Arc::new(World::default());
    let committed = Plan {
        interrupted: Some(true),
        ..Plan::default()
    };
    let unverified = Plan {
        interrupted: Some(false),
        ..Plan::default()
    };
    let plans = vec![("c", unverified), ("a", committed), ("b", Plan::default())];
    let targets = fakes(&world, plans);
    let report = rotate(&pipeline(1, 0), &targets).await;

    assert_eq!(report.outcome, Outcome::Rotated);
    assert_eq!(
        world.keys(Call::Lock),
        ["a", "b", "c"],
        "locked in key order"
    );
    let (_, last_lock) = world.span(Call::Lock);
    let (first_look, _) = world.span(Call::Interrupted);
    let (first_observe, _) = world.span(Call::Observe);
    assert!(last_lock < first_look, "every lock is taken first");
    // The committed one is finished, the other undone, both before any observe.
    let recovery: Vec<(Call, String)> = world.calls()[first_look..first_observe]
        .iter()
        .filter(|(c, _)| *c != Call::Interrupted)
        .cloned()
        .collect();
    assert_eq!(
        recovery,
        [
            (Call::Commit, "a".to_string()),
            (Call::Undo, "c".to_string())
        ]
    );
    assert_eq!(
        world.keys(Call::Interrupted),
        ["a", "b", "c"],
        "in key order"
    );
    assert_eq!(report.recovered, ["a: committed a", "c: restored c"]);
}

#[tokio::test]
async fn a_failed_finish_of_a_verified_interrupted_swap_is_left_to_the_next_run() {
    let world = Arc::new(World::default());
    let stuck = Plan {
        interrupted: Some(true),
        commit_fails: true,
        ..Plan::default()
    };
    let targets = fakes(&world, vec![("a", stuck), ("b", Plan::default())]);
    let report = rotate(&pipeline(1, 0), &targets).await;

    assert_eq!(
        report.outcome,
        Outcome::RollbackFailed,
        "retried, the token not blamed"
    );
    assert_eq!(world.keys(Call::Commit), ["a"]);
    assert!(
        world.keys(Call::Undo).is_empty(),
        "a verified swap is never undone"
    );
    assert!(
        world.keys(Call::Observe).is_empty(),
        "nothing else is touched"
    );
}

#[tokio::test]
async fn a_copy_the_engine_refuses_to_create_ends_as_a_bad_target() {
    let world = Arc::new(World::default());
    let targets = fakes(
        &world,
        vec![("a", failing(Fail::Refused)), ("b", Plan::default())],
    );
    let report = rotate(&pipeline(1, 0), &targets).await;

    assert_eq!(report.outcome, Outcome::BadTarget);
    assert_eq!(report.exit_code(), 4);
    assert_eq!(world.keys(Call::Apply), ["a"], "no new swap after it");
    assert_eq!(outcome_of(&report, "b"), TargetOutcome::NotAttempted);
    // Worse failures still win over it.
    let (worst, _) = worst_of(vec![
        ("a", failing(Fail::Refused)),
        ("b", failing(Fail::Unreachable)),
    ])
    .await;
    assert_eq!(worst, Outcome::EngineUnavailable);
}

#[tokio::test]
async fn a_swapped_service_reports_its_spec_versions() {
    let world = Arc::new(World::default());
    let service = Plan {
        service: true,
        ..Plan::default()
    };
    let targets = fakes(
        &world,
        vec![("bot", Plan::default()), ("bots_bot", service)],
    );
    let report = rotate(&pipeline(1, 0), &targets).await;

    assert_eq!(report.outcome, Outcome::Rotated);
    let versions: Vec<Option<SpecVersion>> =
        report.targets.iter().map(|t| t.spec_version).collect();
    let v = SpecVersion {
        from: 41,
        to: Some(42),
    };
    assert_eq!(versions, [None, Some(v)]);
}
