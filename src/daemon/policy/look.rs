//! A look at the targets, top to bottom: asked for (a file event whose token changed, a
//! target started without the live token, a retry, ...), the primary file read (again after
//! the quiet period if it was caught half-written), the token chosen, the rotation, and what
//! follows it (retry or remember the failure, retire the replaced tokens, announce).

use super::problems::Kind;
use super::tokens::{Choice, Probe};
use super::{
    Action, Clock, Content, Event, Out, Phase, Plan, Policy, Purpose, Read, Record, Timer,
};
use crate::daemon::trigger::File;
use crate::error::{Error, Outcome};
use crate::rotation::RotationReport;
use crate::secret::Fingerprint;
use crate::validate::Verdict;

impl Policy {
    /// A look, when one was asked for and nothing is under way.
    pub(super) fn drained(&mut self, clock: Clock, out: &mut Out) {
        if !self.pending || self.phase != Phase::Idle {
            return;
        }
        self.pending = false;
        self.phase = Phase::Reading { second: false };
        match self.fresh.take() {
            // The file event that asked for this look has read the file already.
            Some(read) => self.decide(read, clock, out),
            None => out.push(Action::ReadPrimary(super::Why::Look)),
        }
    }

    /// A file event's read: a look only when the token changed, or when a failed token was
    /// written again (same content, new mtime).
    pub(super) fn file_event(&mut self, read: Read) {
        let same_token = matches!((&read.content, &self.last_read), (Some(a), Some(b)) if a.fingerprint == b.fingerprint);
        let rewritten = self.last_failed.is_some() && read.content != self.last_failed;
        if rewritten {
            self.last_failed = None;
        }
        self.last_read = read.content.clone();
        if same_token && !rewritten {
            tracing::trace!("secret file event, same token: nothing to do");
            return;
        }
        self.pending = true;
        self.fresh = Some(read);
    }

    /// Which token the targets must carry, from what the primary file holds.
    pub(super) fn decide(&mut self, read: Read, clock: Clock, out: &mut Out) {
        if read.token.is_err() && self.phase == (Phase::Reading { second: false }) {
            // An in-place write caught half-way (truncated, not yet written) reads as empty
            // or cut short: look again once the writer has had the quiet period to finish.
            self.phase = Phase::Waiting;
            let at = clock.now + self.cfg.debounce;
            out.push(Action::Schedule(Timer::ReadAgain, Some(at)));
            return;
        }
        self.last_read = read.content.clone();
        let content = read.content;
        self.phase = Phase::Idle;
        match self.tokens.choose(read.token) {
            Choice::Deploy {
                token,
                file,
                replacing,
            } => {
                if file == File::Primary && content.is_some() && content == self.last_failed {
                    tracing::debug!(fingerprint = %token.fingerprint(), "secret file not written again since its token failed; waiting");
                    out.push(Action::Schedule(Timer::Retry, None));
                    return;
                }
                tracing::info!(fingerprint = %token.fingerprint(), from = file.label(), "read token");
                if self.wanted.as_ref().map(|w| &w.0) != Some(token.fingerprint()) {
                    self.wanted = Some((token.fingerprint().clone(), clock.wall));
                }
                self.phase = Phase::Rotating;
                let first_deployed = self.ages.first_deployed(token.fingerprint());
                out.push(Action::Rotate(Plan {
                    token,
                    file,
                    replacing,
                    content,
                    first_deployed,
                }));
            }
            Choice::Unusable(e) => {
                // As before any standby logic: an unusable secret file is a refused token.
                tracing::error!(rule = e.rule(), "secret rejected: {e}");
                let id = crate::engine::names::new_rotation_id();
                let report = RotationReport::failed_before(id, None, &Error::Secret(e));
                self.report(&report, out);
                self.after(&report, content, clock, out);
            }
            Choice::Nothing => {
                // Nothing to deploy until a file changes: no retry either.
                self.backoff.reset();
                out.push(Action::Schedule(Timer::Retry, None));
            }
        }
    }

    /// A target started: it needs the live token unless it carries it already (the
    /// rotator's own replacement, or the old container an undo started again).
    pub(super) fn started_target(&mut self, name: String, label: Option<String>, out: &mut Out) {
        let live = self.tokens.live();
        if label.is_some() && label.as_deref() == live.map(|t| t.fingerprint().as_str()) {
            return;
        }
        match live {
            Some(token) => out.push(Action::CheckTarget {
                name,
                token: token.clone(),
            }),
            None => {
                tracing::info!(container = %name, "a target started without the live token: rotating it");
                self.pending = true;
            }
        }
    }

    /// A probe's answer, to the part that asked.
    pub(super) fn probed(
        &mut self,
        purpose: Purpose,
        fp: Fingerprint,
        verdict: Verdict,
        clock: Clock,
        out: &mut Out,
    ) {
        match purpose {
            Purpose::Live(how) => {
                let next = self
                    .tokens
                    .live_probed(how, &fp, verdict, clock, &self.targets, out);
                self.then(next);
            }
            Purpose::Standby(then) => {
                let next = self.tokens.standby_probed(&fp, verdict, then, out);
                self.then(next);
            }
            Purpose::Retired => {
                self.retired.probed(&fp, verdict, clock, out);
            }
        }
    }

    /// What a standby check decided: a look when the standby is to replace the live token.
    pub(super) fn then(&mut self, promote: bool) {
        if promote {
            self.pending = true;
        }
    }

    /// After a rotation: announce it, follow its targets, retire what it replaced, and
    /// retry or remember.
    pub(super) fn rotated(
        &mut self,
        plan: Plan,
        report: RotationReport,
        clock: Clock,
        out: &mut Out,
    ) {
        self.phase = Phase::Idle;
        self.report(&report, out);
        let deployed = matches!(report.outcome, Outcome::Rotated | Outcome::AlreadyCurrent);
        if plan.file == File::Standby && !worth_retrying(&report) && !deployed {
            // A standby whose swap failed is not deployed again until its file changes.
            let why = format!("its swap ended {}", report.outcome.label());
            self.tokens.standby_failed(&why, out);
        }
        if !report.targets.is_empty() {
            self.targets = report.targets.iter().map(|t| t.name.clone()).collect();
            out.push(Action::Follow(self.targets.clone()));
        }
        if deployed {
            self.landed = true;
            self.wanted = None;
        } else if super::problems::rotation_failed(report.outcome) {
            self.drifting(&report);
        }
        if deployed {
            // What the swaps replaced may still work: watch it until the API rejects it.
            for old in &report.retired_tokens {
                // Not a token the API rejected already, not the standby kept as a spare, and
                // only when it can be probed at all.
                if self.cfg.can_probe
                    && !self.tokens.is_rejected(old)
                    && !self.tokens.is_standby(old)
                {
                    self.retired.retire(old.clone(), clock, out);
                }
            }
            self.retired.unretire(plan.token.fingerprint(), out);
            let reported = report.first_deployed_at.as_deref();
            let reported = reported.and_then(|t| humantime::parse_rfc3339(t).ok());
            let fp = plan.token.fingerprint();
            self.ages
                .deployed(fp, reported.or(plan.first_deployed), clock.wall);
            let told = |fp: &_| self.problems.is_open(Kind::TokenExpiring, fp);
            self.ages.check(Some(fp), told, &self.targets, clock, out);
            let promoted = self.tokens.deployed(&plan, &report, out);
            if let Some(old) = promoted {
                self.announce_promotion(old, &plan, &report, out);
            }
        }
        self.after(
            &report,
            plan.content.filter(|_| plan.file == File::Primary),
            clock,
            out,
        );
    }

    fn announce_promotion(
        &self,
        old: Fingerprint,
        plan: &Plan,
        report: &RotationReport,
        out: &mut Out,
    ) {
        let new = plan.token.fingerprint().clone();
        tracing::warn!(old = %old, new = %new, "the standby token replaced the rejected live token");
        tracing::error!(fingerprint = %new, "no spare standby is left: write a new token into the secret file or the standby file");
        out.push(Action::Announce(Event::StandbyPromoted {
            old: old.clone(),
            new: new.clone(),
            report: Box::new(report.clone()),
        }));
        out.push(Action::Announce(Event::StandbyNeeded {
            fingerprint: old,
            reason: "the standby was promoted and is live now".into(),
            live: Some(new),
        }));
    }

    /// Records a report and announces it, once per token and outcome.
    pub(super) fn report(&mut self, report: &RotationReport, out: &mut Out) {
        out.push(Action::Record(Record::Rotation(Box::new(report.clone()))));
        // The same outcome for the same token (a retry, a reconcile) is announced once.
        let key = (report.fingerprint.clone(), report.outcome);
        if report.outcome != Outcome::AlreadyCurrent && self.last_event.as_ref() != Some(&key) {
            out.push(Action::Announce(Event::Rotation(Box::new(report.clone()))));
        }
        self.last_event = Some(key);
    }

    /// Retry with backoff, or remember a failure of the primary file's `content`.
    pub(super) fn after(
        &mut self,
        report: &RotationReport,
        content: Option<Content>,
        clock: Clock,
        out: &mut Out,
    ) {
        if worth_retrying(report) {
            let delay = self.backoff.next_delay();
            tracing::info!(retry_in_secs = delay.as_secs(), "will retry");
            out.push(Action::Schedule(Timer::Retry, Some(clock.now + delay)));
            return;
        }
        out.push(Action::Schedule(Timer::Retry, None));
        self.backoff.reset();
        // Not `bad_target`: a broken target says nothing about the token.
        let failed = matches!(
            report.outcome,
            Outcome::Rejected | Outcome::RolledBack | Outcome::CanaryFailed
        );
        self.last_failed = if failed { content } else { None };
    }

    /// A timer fell due.
    pub(super) fn due(&mut self, timer: Timer, clock: Clock, out: &mut Out) {
        match timer {
            Timer::Retry => self.pending = true,
            Timer::ReadAgain => {
                self.phase = super::Phase::Reading { second: true };
                out.push(Action::ReadPrimary(super::Why::Look));
            }
            Timer::LiveProbe => {
                self.tokens.probe_live(Probe::Periodic, clock, out);
                if let Some(every) = self.probe_every() {
                    let at = clock.now + (self.cfg.jitter)(every);
                    out.push(Action::Schedule(Timer::LiveProbe, Some(at)));
                }
            }
            Timer::Retired => self.retired.probe_due(clock, out),
            Timer::Remind => self.problems.due(clock, out),
            Timer::Expiry => {
                let live = self.tokens.live().map(|t| t.fingerprint());
                let told = |fp: &_| self.problems.is_open(Kind::TokenExpiring, fp);
                self.ages.check(live, told, &self.targets, clock, out);
            }
        }
    }
}

/// Whether a rotation that did not land is tried again on its own (with backoff), rather
/// than its token left aside until the file is written again. An outage, a failed
/// rollback (the next run starts by recovering) and an interrupted run are retried. So is
/// a target found missing: it is often gone for a moment only (compose recreating it, an
/// operator running it again), and its newcomer may carry the live token, so its start
/// would ask for nothing while the file's token is not deployed. And so is a rollback that
/// was not the token's doing ([`RotationReport::token_suspect`]): a container run by hand
/// under the target's name mid-swap, the old one removed meanwhile.
pub(super) fn worth_retrying(report: &RotationReport) -> bool {
    let outcome = report.outcome;
    outcome.is_retryable()
        || outcome == Outcome::BadTarget
        || (outcome == Outcome::RolledBack && !report.token_suspect)
}
