//! Stage 6: say what a rotation did, in one place, without the secret.
//!
//! A [`RotationReport`] is what every caller gets back; it renders as a short text
//! summary, maps to the process exit code, and serializes to JSON.

use std::time::Duration;

use serde::Serialize;

use crate::secret::Fingerprint;

/// What happened to one target.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TargetOutcome {
    /// It already carried the token; nothing was touched.
    AlreadyCurrent,
    /// Replaced and verified.
    Swapped {
        /// Old container ID.
        old_id: String,
        /// New container ID.
        new_id: String,
        /// A non-fatal problem after the swap (e.g. the old container could not be removed).
        warning: Option<String>,
    },
    /// The swap failed and was rolled back (or the rollback failed: see `rollback_ok`).
    Failed {
        /// Why, with the step and the rollback result.
        reason: String,
        /// Whether the old container is back as it was.
        rollback_ok: bool,
    },
    /// Not attempted because an earlier target failed.
    Skipped,
}

/// One target's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// Container name.
    pub name: String,
    /// Fingerprint its env carried before.
    pub previous: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub outcome: TargetOutcome,
}

/// How the rotation ended as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every target carries the token now and was verified.
    Rotated,
    /// Every target already carried it.
    AlreadyCurrent,
    /// The secret file was unusable or the API refused the token; nothing touched.
    Rejected,
    /// The API gave no verdict before the deadline; nothing touched.
    Inconclusive,
    /// A target could not be found or cannot be swapped safely; nothing touched.
    BadTarget,
    /// The engine could not be reached; nothing touched.
    EngineUnavailable,
    /// Another rotator holds a target's lock; nothing touched.
    Busy,
    /// A swap failed and was rolled back.
    RolledBack,
    /// A swap failed and its rollback failed too: needs an operator.
    RollbackFailed,
}

impl Outcome {
    /// Stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Rotated => "rotated",
            Outcome::AlreadyCurrent => "already_current",
            Outcome::Rejected => "rejected",
            Outcome::Inconclusive => "inconclusive",
            Outcome::BadTarget => "bad_target",
            Outcome::EngineUnavailable => "engine_unavailable",
            Outcome::Busy => "busy",
            Outcome::RolledBack => "rolled_back",
            Outcome::RollbackFailed => "rollback_failed",
        }
    }

    /// Process exit code of `rotate` (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Rotated | Outcome::AlreadyCurrent => 0,
            Outcome::Rejected => 1,
            Outcome::Inconclusive => 3,
            Outcome::BadTarget | Outcome::RolledBack => 4,
            Outcome::EngineUnavailable => 5,
            Outcome::RollbackFailed => 6,
            Outcome::Busy => 7,
        }
    }
}

/// Everything one rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// Short random ID, also written as a label on swapped containers.
    pub rotation_id: String,
    /// The new token's fingerprint, if the file could be read.
    pub fingerprint: Option<String>,
    /// The validation verdict, if validation ran.
    pub verdict: Option<String>,
    /// Its short label (`valid`, `invalid`, `inconclusive`, `skipped`).
    pub validation: Option<&'static str>,
    /// The overall outcome.
    pub outcome: Outcome,
    /// Why, when it did not succeed.
    pub error: Option<String>,
    /// What was done to finish or undo swaps a crash had interrupted.
    pub recovered: Vec<String>,
    /// Per-target results.
    pub targets: Vec<TargetReport>,
    /// Wall time in seconds.
    pub duration_secs: f64,
}

impl RotationReport {
    /// A report with no targets touched.
    pub fn new(rotation_id: String) -> Self {
        RotationReport {
            rotation_id,
            fingerprint: None,
            verdict: None,
            validation: None,
            outcome: Outcome::AlreadyCurrent,
            error: None,
            recovered: Vec::new(),
            targets: Vec::new(),
            duration_secs: 0.0,
        }
    }

    /// Records the new token's fingerprint.
    pub fn with_fingerprint(mut self, fp: &Fingerprint) -> Self {
        self.fingerprint = Some(fp.to_string());
        self
    }

    /// Ends the report with an outcome and error text.
    pub fn finish(mut self, outcome: Outcome, error: Option<String>, took: Duration) -> Self {
        self.outcome = outcome;
        self.error = error;
        self.duration_secs = took.as_secs_f64();
        self
    }

    /// Human-readable summary, one line per target.
    pub fn render(&self) -> String {
        let mut out = format!("rotation {}", self.rotation_id);
        if let Some(fp) = &self.fingerprint {
            out.push_str(&format!(": token {fp}"));
        }
        if let Some(v) = &self.verdict {
            out.push_str(&format!(" {v}"));
        }
        out.push('\n');
        for r in &self.recovered {
            out.push_str(&format!("  recovered {r}\n"));
        }
        for t in &self.targets {
            let prev = t.previous.as_deref().unwrap_or("unset");
            let line = match &t.outcome {
                TargetOutcome::AlreadyCurrent => "already current, not touched".to_string(),
                TargetOutcome::Swapped {
                    old_id,
                    new_id,
                    warning,
                } => {
                    let mut s = format!(
                        "swapped and verified (was {prev}; container {} -> {})",
                        crate::swap::short(old_id),
                        crate::swap::short(new_id)
                    );
                    if let Some(w) = warning {
                        s.push_str(&format!("; warning: {w}"));
                    }
                    s
                }
                TargetOutcome::Failed { reason, .. } => format!("FAILED: {reason}"),
                TargetOutcome::Skipped => "skipped after an earlier failure, not touched".into(),
            };
            out.push_str(&format!("  {}: {line}\n", t.name));
        }
        out.push_str(&format!(
            "result: {} in {:.1}s",
            self.outcome.label(),
            self.duration_secs
        ));
        if let Some(e) = &self.error {
            out.push_str(&format!(": {e}"));
        }
        out.push('\n');
        out
    }
}
