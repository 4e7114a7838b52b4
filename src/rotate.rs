//! One rotation, end to end: read → plan → validate → swap and verify each target → report.
//!
//! Targets are planned before the API is asked, so a rotation with nothing to do costs
//! no probe (probes count against the subscription). Targets are swapped one at a time;
//! the first failure stops the rotation so the rest keep their working token.

use std::path::PathBuf;
use std::time::Instant;

use bollard::Docker;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::lock::{LockError, Locker};
use crate::plan::{plan, PlanError, Target};
use crate::recover::RecoverError;
use crate::report::{Outcome, RotationReport, TargetOutcome, TargetReport};
use crate::secret::{read_token, Token, TokenFormat};
use crate::swap::{swap, Rollback, SwapContext};
use crate::validate::{Validator, Verdict};
use crate::verify::VerifyConfig;

/// Env vars that take precedence over an OAuth token in Claude Code.
const SHADOWING_VARS: [&str; 2] = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"];

/// Everything a rotation needs, built once from the config.
#[derive(Debug, Clone)]
pub struct Rotator {
    /// Engine connection.
    pub docker: Docker,
    /// `None` when validation is off (`--validate none`).
    pub validator: Option<Validator>,
    /// The secret file.
    pub secret_file: PathBuf,
    /// Accepted token shape.
    pub token_format: TokenFormat,
    /// Target names or IDs.
    pub containers: Vec<String>,
    /// Verification settings (also holds the env var name).
    pub verify: VerifyConfig,
    /// Takes the per-target locks.
    pub locker: Locker,
    /// How long to ride out an unreachable engine while undoing or finishing a swap.
    pub engine_retry: std::time::Duration,
}

impl Rotator {
    /// Runs one rotation with the token currently in the secret file.
    pub async fn rotate_once(&self) -> RotationReport {
        let id = new_rotation_id();
        let span = tracing::info_span!("rotation", id = %id, targets = ?self.containers);
        self.rotate(id).instrument(span).await
    }

    async fn rotate(&self, rotation_id: String) -> RotationReport {
        let started = Instant::now();
        let report = RotationReport::new(rotation_id);

        let token = match read_token(&self.secret_file, self.token_format) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(rule = e.rule(), "secret rejected: {e}");
                return report.finish(Outcome::Rejected, Some(e.to_string()), started.elapsed());
            }
        };
        let mut report = report.with_fingerprint(token.fingerprint());
        tracing::info!(fingerprint = %token.fingerprint(), "read token");

        let planned = match plan(
            &self.docker,
            &self.containers,
            &self.verify.env_var,
            &token,
            &self.locker,
            self.engine_retry,
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e}");
                let outcome = match e {
                    PlanError::Inspect { .. }
                    | PlanError::Recover(RecoverError::Engine { .. })
                    | PlanError::Locked(LockError::Engine { .. }) => Outcome::EngineUnavailable,
                    PlanError::Locked(LockError::Held { .. }) => Outcome::Busy,
                    _ => Outcome::BadTarget,
                };
                return report.finish(outcome, Some(e.to_string()), started.elapsed());
            }
        };
        report.recovered = planned.recovered;
        let report = self
            .validate_and_swap(report, &planned.targets, &token, started)
            .await;
        for lock in planned.locks {
            lock.release(&self.docker).await;
        }
        report
    }

    /// The part of a rotation that runs under the targets' locks.
    async fn validate_and_swap(
        &self,
        mut report: RotationReport,
        targets: &[Target],
        token: &Token,
        started: Instant,
    ) -> RotationReport {
        if targets.iter().all(|t| t.up_to_date) {
            report.targets = targets
                .iter()
                .map(|t| line(t, TargetOutcome::AlreadyCurrent))
                .collect();
            tracing::info!(fingerprint = %token.fingerprint(), "all targets already carry this token");
            return report.finish(Outcome::AlreadyCurrent, None, started.elapsed());
        }

        let verdict = match &self.validator {
            Some(v) => v.validate(token).await,
            None => {
                tracing::warn!(fingerprint = %token.fingerprint(), "validation skipped (--validate none): the token goes in unchecked");
                Verdict::Skipped
            }
        };
        report.verdict = Some(verdict.to_string());
        report.validation = Some(verdict.label());
        tracing::info!(fingerprint = %token.fingerprint(), verdict = verdict.label(), "{verdict}");
        if !verdict.allows_swap() {
            let outcome = match verdict {
                Verdict::Invalid { .. } => Outcome::Rejected,
                _ => Outcome::Inconclusive,
            };
            let msg = format!(
                "token {} is {verdict}; no container was touched",
                token.fingerprint()
            );
            return report.finish(outcome, Some(msg), started.elapsed());
        }

        let (lines, outcome, error) = self.swap_all(targets, token, &report.rotation_id).await;
        report.targets = lines;
        report.finish(outcome, error, started.elapsed())
    }

    async fn swap_all(
        &self,
        targets: &[Target],
        token: &Token,
        rotation_id: &str,
    ) -> (Vec<TargetReport>, Outcome, Option<String>) {
        let ctx = SwapContext {
            rotation_id: rotation_id.to_string(),
            env_var: self.verify.env_var.clone(),
            verify: self.verify.clone(),
            engine_retry: self.engine_retry,
        };
        let mut lines = Vec::with_capacity(targets.len());
        let mut failure: Option<(Outcome, String)> = None;
        for target in targets {
            if failure.is_some() {
                lines.push(line(target, TargetOutcome::Skipped));
                continue;
            }
            if target.up_to_date {
                lines.push(line(target, TargetOutcome::AlreadyCurrent));
                continue;
            }
            warn_if_shadowed(target);
            let span = tracing::info_span!("swap", container = %target.name);
            match swap(&self.docker, target, token, &ctx)
                .instrument(span)
                .await
            {
                Ok(done) => {
                    tracing::info!(old = crate::swap::short(&done.old_id), new = crate::swap::short(&done.new_id), fingerprint = %token.fingerprint(), "swapped and verified");
                    if let Some(w) = &done.cleanup_warning {
                        tracing::warn!("{w}");
                    }
                    lines.push(line(
                        target,
                        TargetOutcome::Swapped {
                            old_id: done.old_id,
                            new_id: done.new_id,
                            warning: done.cleanup_warning,
                        },
                    ));
                }
                Err(e) => {
                    let rollback_ok = !matches!(e.rollback, Rollback::Failed(_));
                    tracing::error!(rollback_ok, "{e}");
                    // An engine outage says nothing about the token: retried, not refused.
                    let outcome = match (rollback_ok, e.engine_unreachable) {
                        (false, _) => Outcome::RollbackFailed,
                        (true, true) => Outcome::EngineUnavailable,
                        (true, false) => Outcome::RolledBack,
                    };
                    failure = Some((outcome, e.to_string()));
                    lines.push(line(
                        target,
                        TargetOutcome::Failed {
                            reason: e.to_string(),
                            rollback_ok,
                        },
                    ));
                }
            }
        }
        match failure {
            Some((outcome, msg)) => (lines, outcome, Some(msg)),
            None => (lines, Outcome::Rotated, None),
        }
    }
}

fn line(target: &Target, outcome: TargetOutcome) -> TargetReport {
    TargetReport {
        name: target.name.clone(),
        previous: target.current.as_ref().map(|f| f.to_string()),
        outcome,
    }
}

fn warn_if_shadowed(target: &Target) {
    for var in SHADOWING_VARS {
        if crate::plan::env_value(&target.inspect, var).is_some_and(|v| !v.is_empty()) {
            tracing::warn!(container = %target.name, var, "{var} is set in the container and takes precedence over an OAuth token in Claude Code: the bot may not use the rotated token");
        }
    }
}

/// A short ID for one rotation: 8 hex digits from the clock and the process ID.
pub fn new_rotation_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{nanos}-{}", std::process::id()).as_bytes());
    hex::encode(&digest[..4])
}
