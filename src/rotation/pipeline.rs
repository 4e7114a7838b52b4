//! The pipeline: one rotation of one token into a set of targets, top to bottom.
//!
//! lock → finish or undo an interrupted change → observe → validate once → canary (once
//! per image, with `--canary`) → per target: apply → verify → commit, or undo.
//!
//! Targets are observed before the API is asked, so a rotation with nothing to do costs no
//! probe (probes count against the subscription). Targets change up to `--parallel` at a
//! time; after more than `--max-failures` failures (0 by default: the first) no new change
//! starts, so the rest keep their working token. The undo is the target's one undo, the
//! same the next run uses after a crash.

use std::time::{Instant, SystemTime};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use super::report::{finish, RotationReport, TargetOutcome, TargetReport};
use crate::error::{Error, Outcome, Rollback};
use crate::secret::{Redactor, Token};
use crate::targets::{Change, Ctx, Lock, Locker, Observed, Settled, Target, TargetError};
use crate::validate::{Validator, Verdict};

/// What every rotation shares: the validator and the lock holder's identity.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `None` when validation is off (`--validate none`).
    pub validator: Option<Validator>,
    /// Takes the per-target locks.
    pub locker: Locker,
    /// How many targets change at once (at least 1).
    pub parallel: usize,
    /// How many failed targets are tolerated before no new change starts.
    pub max_failures: usize,
    /// `--canary`: the command a throwaway copy of each distinct image runs with the new
    /// token before any target is touched.
    pub canary: Option<Vec<String>>,
    /// Becomes `true` when the daemon is asked to stop: a rotation that has not changed
    /// anything yet stops at once (validation may otherwise retry for a minute).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Pipeline {
    /// Rotates `token` into `targets` as rotation `rotation`.
    pub async fn rotate<T: Target>(
        &self,
        targets: &[T],
        token: &Token,
        rotation: String,
    ) -> RotationReport {
        self.rotate_since(targets, token, rotation, None).await
    }

    /// Rotates `token` into `targets`; `known` is when it was first deployed, if the caller
    /// knows (the daemon's state). The targets' labels may know an earlier time; the
    /// earliest is written on the replacements (now, when nothing knows).
    pub async fn rotate_since<T: Target>(
        &self,
        targets: &[T],
        token: &Token,
        rotation: String,
        known: Option<SystemTime>,
    ) -> RotationReport {
        // The span carries the count; the names are said once, here.
        let span = tracing::info_span!("rotation", id = %rotation, targets = targets.len());
        async move {
            let keys: Vec<&str> = targets.iter().map(|t| t.key()).collect();
            tracing::info!(fingerprint = %token.fingerprint(), "rotation into {} target(s): {}", keys.len(), keys.join(", "));
            let started = Instant::now();
            let mut report = RotationReport::new(rotation, Some(token.fingerprint()));
            let mut redactor = Redactor::new();
            redactor.add(token.expose());
            let mut locks = Vec::new();
            let result = self
                .locked(targets, (token, known), &mut report, &mut locks, &mut redactor)
                .await
                .map_err(|e| {
                    let text = redactor.redact(&e.to_string());
                    tracing::error!(outcome = e.outcome().label(), "{text}");
                    (e, text)
                });
            for lock in locks {
                lock.release().await;
            }
            finish(report, result, started.elapsed())
        }
        .instrument(span)
        .await
    }

    /// Everything that runs under the targets' locks, in the order of the module doc.
    async fn locked<T: Target>(
        &self,
        targets: &[T],
        (token, known): (&Token, Option<SystemTime>),
        report: &mut RotationReport,
        locks: &mut Vec<Lock>,
        redactor: &mut Redactor,
    ) -> Result<Outcome, Error> {
        self.lock_all(targets, locks).await?;
        self.recover(targets, report).await?;
        let seen = self.observe_all(targets, token, redactor).await?;
        report.targets = seen.iter().map(line).collect();
        let first_deployed = earliest(known, &seen);
        report.first_deployed_at = first_deployed.map(rfc3339);
        if seen.iter().all(|s| s.up_to_date) {
            tracing::info!(fingerprint = %token.fingerprint(), "all targets already carry this token");
            return Ok(Outcome::AlreadyCurrent);
        }
        self.validate(token, report).await?;
        if self.stopping() {
            return Err(Error::Stopped);
        }
        let rotation = report.rotation.clone();
        let first_deployed = first_deployed.unwrap_or_else(SystemTime::now);
        report.first_deployed_at = Some(rfc3339(first_deployed));
        let ctx = Ctx {
            token,
            rotation: &rotation,
            redactor: &*redactor,
            first_deployed,
        };
        self.canary(targets, &seen, ctx).await?;
        self.swap_all(targets, &seen, ctx, report).await
    }

    /// Finishes or undoes the interrupted swaps of `targets` (found before selection: see
    /// [`crate::targets::container::interrupted`]), each under its lock, taken as for a
    /// rotation (a live rotator's swap in progress is waited for, never "recovered"; a
    /// dead one's lock is taken over) and released after. The same recovery as step (2).
    /// Returns what it did, one line per action.
    pub async fn recover_interrupted<T: Target>(
        &self,
        targets: &[T],
    ) -> Result<Vec<String>, Error> {
        let mut report = RotationReport::new(String::new(), None);
        let mut locks = Vec::new();
        let result = match self.lock_all(targets, &mut locks).await {
            Ok(()) => self.recover(targets, &mut report).await,
            Err(e) => Err(e),
        };
        for lock in locks {
            lock.release().await;
        }
        result.map(|()| report.recovered)
    }

    /// (1) Lock, in key order so that two rotators cannot deadlock.
    async fn lock_all<T: Target>(&self, targets: &[T], locks: &mut Vec<Lock>) -> Result<(), Error> {
        let mut order: Vec<&T> = targets.iter().collect();
        order.sort_by_key(|t| t.key());
        for t in &order {
            // Waiting for another rotator's lock changes nothing: a stop ends the wait.
            locks.push(self.unless_stopped(t.lock(&self.locker)).await??);
        }
        Ok(())
    }

    /// (2) Finish or undo whatever change a crash (or a failed undo) left behind, in the
    /// key order the locks were taken in.
    async fn recover<T: Target>(
        &self,
        targets: &[T],
        report: &mut RotationReport,
    ) -> Result<(), Error> {
        let mut order: Vec<&T> = targets.iter().collect();
        order.sort_by_key(|t| t.key());
        for t in order {
            if let Some(found) = t.interrupted().await? {
                let settled = if found.committed {
                    t.commit(&found.change).await.map_err(|step| Error::Step {
                        step,
                        rollback: Rollback::Unfinished,
                    })?
                } else {
                    t.undo().await.map_err(TargetError::Undo)?
                };
                for a in settled.actions {
                    tracing::warn!(container = %t.key(), "recovered an interrupted swap: {a}");
                    report.recovered.push(format!("{}: {a}", t.key()));
                }
            }
        }
        Ok(())
    }

    /// (3) Observe: every target, before any is touched. The values they carry now join
    /// the redactor.
    async fn observe_all<T: Target>(
        &self,
        targets: &[T],
        token: &Token,
        redactor: &mut Redactor,
    ) -> Result<Vec<Observed<T::State>>, Error> {
        let mut seen = Vec::with_capacity(targets.len());
        for t in targets {
            let s = t.observe(token).await?;
            if let Some(v) = s.current_secret() {
                redactor.add(v);
            }
            seen.push(s);
        }
        Ok(seen)
    }

    /// (4) Validate, once for all targets.
    async fn validate(&self, token: &Token, report: &mut RotationReport) -> Result<(), Error> {
        let verdict = match &self.validator {
            Some(v) => self.unless_stopped(v.validate(token)).await?,
            None => {
                tracing::warn!(fingerprint = %token.fingerprint(), "validation skipped (--validate none): the token goes in unchecked");
                Verdict::Skipped
            }
        };
        report.verdict = Some(verdict.to_string());
        report.validation = Some(verdict.label());
        tracing::info!(fingerprint = %token.fingerprint(), verdict = %verdict.label(), "{verdict}");
        let fingerprint = token.fingerprint().to_string();
        match verdict {
            Verdict::Invalid { .. } => Err(Error::Refused {
                fingerprint,
                verdict,
            }),
            Verdict::Inconclusive { .. } => Err(Error::Inconclusive {
                fingerprint,
                verdict,
            }),
            Verdict::Valid { .. } | Verdict::Skipped => Ok(()),
        }
    }

    /// (4b) The canary: the bot's own client tries the token, once per image, before any
    /// target is touched.
    async fn canary<T: Target>(
        &self,
        targets: &[T],
        seen: &[Observed<T::State>],
        ctx: Ctx<'_>,
    ) -> Result<(), Error> {
        let Some(exec) = &self.canary else {
            return Ok(());
        };
        let mut tried: Vec<String> = Vec::new();
        for (t, s) in targets.iter().zip(seen) {
            let Some(key) = t.canary_key(s).filter(|_| !s.up_to_date) else {
                continue;
            };
            if tried.contains(&key) {
                continue;
            }
            tried.push(key);
            if self.stopping() {
                return Err(Error::Stopped);
            }
            t.canary(s, exec, ctx).await?;
        }
        Ok(())
    }

    /// (5) Apply, verify, commit or undo: up to `parallel` targets at once, each with its
    /// own undo; after more than `max_failures` failures no new change starts (the ones
    /// under way finish), so the rest keep their working token.
    async fn swap_all<T: Target>(
        &self,
        targets: &[T],
        seen: &[Observed<T::State>],
        ctx: Ctx<'_>,
        report: &mut RotationReport,
    ) -> Result<Outcome, Error> {
        let todo: Vec<usize> = (0..targets.len())
            .filter(|i| !seen[*i].up_to_date)
            .collect();
        let mut next = 0;
        let mut running = FuturesUnordered::new();
        let mut failures: Vec<Error> = Vec::new();
        loop {
            // A stop (SIGTERM) lets the swaps under way finish and starts no new one.
            while running.len() < self.parallel.max(1)
                && next < todo.len()
                && failures.len() <= self.max_failures
                && !self.stopping()
            {
                let i = todo[next];
                next += 1;
                running.push(start_swap(i, &targets[i], &seen[i], ctx));
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            if let Some(e) = record(report, i, &targets[i], &seen[i], result, ctx) {
                failures.push(e);
            }
        }
        // The worst failure says how the rotation ended; each target's own is in its line.
        match failures.into_iter().max_by_key(|e| severity(e.outcome())) {
            Some(e) => Err(e),
            // Stopped before every target was swapped: the rest carry the old token. Nothing
            // changed only if no swap had started.
            None if next == 0 && !todo.is_empty() => Err(Error::Stopped),
            None if next < todo.len() => Err(Error::StoppedPartway {
                left: todo.len() - next,
            }),
            None => Ok(Outcome::Rotated),
        }
    }
}

/// The swap of target `i` (`t`, as `s` saw it), in its own span; it says which target it
/// was when it ends.
fn start_swap<'a, T: Target>(
    i: usize,
    t: &'a T,
    s: &'a Observed<T::State>,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = (usize, Result<(Change, Settled), Error>)> + 'a {
    for var in &s.shadowed_by {
        tracing::warn!(container = %s.name, var, "{var} is set in the container and takes precedence over an OAuth token in Claude Code: the bot may not use the rotated token");
    }
    let span = tracing::info_span!("swap", container = %s.name);
    async move { (i, change(t, s, ctx).instrument(span).await) }
}

/// Writes how the swap of target `i` (`t`, as `s` saw it) ended into its line of the
/// report, and says in one line what a successful one did; returns the error a failed one
/// failed with.
fn record<T: Target>(
    report: &mut RotationReport,
    i: usize,
    t: &T,
    s: &Observed<T::State>,
    result: Result<(Change, Settled), Error>,
    ctx: Ctx<'_>,
) -> Option<Error> {
    match result {
        Ok((c, settled)) => {
            let done = t.swapped(&c, &settled);
            tracing::info!(container = %s.name, fingerprint = %ctx.token.fingerprint(), "{done}");
            if let Some(w) = &settled.warning {
                tracing::warn!(container = %s.name, "{w}");
            }
            let r = &mut report.targets[i];
            r.outcome = TargetOutcome::Swapped;
            r.new_id = Some(c.new_id);
            r.warning = match (c.note, settled.warning) {
                (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                (a, b) => a.or(b),
            };
            r.order = Some(c.order);
            r.order_note = c.order_note;
            r.dependents = c.dependents;
            r.spec_version = c.spec_version;
            if let Some(old) = s.current_secret().filter(|v| !v.is_empty()) {
                report.retire(Token::new(old.to_string()));
            }
            None
        }
        Err(e) => {
            let r = &mut report.targets[i];
            r.outcome = match &e {
                Error::Step {
                    rollback: Rollback::Failed(_),
                    ..
                } => TargetOutcome::RollbackFailed,
                _ => TargetOutcome::RolledBack,
            };
            r.error = Some(ctx.redactor.redact(&e.to_string()));
            Some(e)
        }
    }
}

/// How bad an outcome is, to pick the one a rotation with several failures ends with.
fn severity(o: Outcome) -> u8 {
    match o {
        Outcome::RollbackFailed => 3,
        Outcome::EngineUnavailable => 2,
        _ => 1,
    }
}

impl Pipeline {
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Runs `work` (which must change nothing), unless a stop comes first.
    async fn unless_stopped<F: std::future::Future>(&self, work: F) -> Result<F::Output, Error> {
        let Some(mut stop) = self.stop.clone() else {
            return Ok(work.await);
        };
        tokio::select! {
            out = work => Ok(out),
            // A closed channel is no stop: only a `true` is.
            _ = async {
                if stop.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => Err(Error::Stopped),
        }
    }
}

/// Apply, verify, commit; after a failure at any of them, the target's one undo.
async fn change<T: Target>(
    t: &T,
    seen: &Observed<T::State>,
    ctx: Ctx<'_>,
) -> Result<(Change, Settled), Error> {
    let attempt = async {
        let c = t.apply(seen, ctx).await?;
        t.verify(&c, ctx).await?;
        let settled = t.commit(&c).await?;
        Ok((c, settled))
    };
    match attempt.await {
        Ok(done) => Ok(done),
        Err(step) => {
            let rollback = match t.undo().await {
                Ok(s) if s.actions.is_empty() => Rollback::NothingToUndo,
                Ok(s) => {
                    let did = s.actions.join("; ");
                    tracing::warn!(container = %t.key(), "rolled back {}: {did}", t.key());
                    Rollback::Restored
                }
                Err(u) => Rollback::Failed(u),
            };
            Err(Error::Step { step, rollback })
        }
    }
}

/// When the token going in was first deployed, as far as anything knows: the earliest of
/// `known` and the labels of the targets that carry it already (`None`: nothing knows).
fn earliest<S>(known: Option<SystemTime>, seen: &[Observed<S>]) -> Option<SystemTime> {
    seen.iter()
        .filter(|s| s.up_to_date)
        .filter_map(|s| s.first_deployed)
        .chain(known)
        .min()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn line<S>(s: &Observed<S>) -> TargetReport {
    TargetReport {
        name: s.name.clone(),
        outcome: if s.up_to_date {
            TargetOutcome::AlreadyCurrent
        } else {
            TargetOutcome::NotAttempted
        },
        old_id: Some(s.id.clone()),
        new_id: None,
        error: None,
        previous: s.current.as_ref().map(|f| f.to_string()),
        warning: None,
        order: None,
        order_note: None,
        dependents: Vec::new(),
        spec_version: None,
    }
}
