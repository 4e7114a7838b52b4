//! What a rotation did, in one place, without the secret: rendered as text, as the JSON
//! of `rotate --json`, the webhook and `/status`, and mapped to an exit code.

use std::time::Duration;

use serde::Serialize;

use crate::engine::short;
use crate::error::{Error, Outcome};
use crate::secret::{Fingerprint, Token};

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    /// It already carried the token; nothing was touched.
    AlreadyCurrent,
    /// Replaced and verified.
    Swapped,
    /// A step failed and the change was undone: it is as it was.
    RolledBack,
    /// A step failed and undoing it failed too: the next run finishes the recovery.
    RollbackFailed,
    /// Not attempted (an earlier target failed, or the rotation stopped before any change).
    NotAttempted,
}

impl TargetOutcome {
    /// Every value, as listed in the README.
    pub const ALL: [TargetOutcome; 5] = [
        TargetOutcome::AlreadyCurrent,
        TargetOutcome::Swapped,
        TargetOutcome::RolledBack,
        TargetOutcome::RollbackFailed,
        TargetOutcome::NotAttempted,
    ];

    /// Stable label (the JSON value).
    pub fn label(self) -> &'static str {
        match self {
            TargetOutcome::AlreadyCurrent => "already_current",
            TargetOutcome::Swapped => "swapped",
            TargetOutcome::RolledBack => "rolled_back",
            TargetOutcome::RollbackFailed => "rollback_failed",
            TargetOutcome::NotAttempted => "not_attempted",
        }
    }
}

/// One target's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The target's name.
    pub name: String,
    /// What happened.
    pub outcome: TargetOutcome,
    /// The replaced container's ID (the current one if nothing was replaced).
    pub old_id: Option<String>,
    /// The new container's ID, once swapped.
    pub new_id: Option<String>,
    /// Why it failed (`null` when it did not).
    pub error: Option<String>,
    /// Fingerprint of the token it carried before.
    pub previous: Option<String>,
    /// A problem after a successful swap (a leftover the next run removes).
    pub warning: Option<String>,
    /// The order the swap took (`stop-first`, `start-first`), once swapped.
    pub order: Option<&'static str>,
    /// Why it is not the order asked for, if it is not.
    pub order_note: Option<String>,
    /// Containers sharing its namespaces, recreated onto the replacement with it.
    pub dependents: Vec<crate::targets::DependentChange>,
    /// A Swarm service's spec version before and after its update, once swapped (only
    /// services have it: they keep their ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<crate::targets::SpecVersion>,
}

impl TargetReport {
    /// What "swapped and verified" says of it: which container replaced which, or which
    /// spec version of a service replaced which.
    fn swapped(&self) -> String {
        let prev = self.previous.as_deref().unwrap_or("unset");
        let what = match self.spec_version {
            Some(v) => match v.to {
                Some(to) => format!("service spec version {} -> {to}", v.from),
                None => format!("service spec version {} updated", v.from),
            },
            None => format!(
                "container {} -> {}",
                short(self.old_id.as_deref().unwrap_or("")),
                short(self.new_id.as_deref().unwrap_or(""))
            ),
        };
        let mut s = format!("swapped and verified (was {prev}; {what})");
        for d in &self.dependents {
            s.push_str(&format!(
                "; {} (shares its namespaces) recreated onto it ({} -> {})",
                d.name,
                short(&d.old_id),
                short(&d.new_id)
            ));
        }
        if let Some(w) = &self.warning {
            s.push_str(&format!("; warning: {w}"));
        }
        s
    }
}

/// Everything one rotation did. Serialized, this is the JSON of `rotate --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// Short random ID, also written as a label on swapped containers.
    pub rotation: String,
    /// The overall outcome.
    pub outcome: Outcome,
    /// The new token's fingerprint, if the secret could be read.
    pub fingerprint: Option<String>,
    /// Per-target results.
    pub targets: Vec<TargetReport>,
    /// Why, when it did not succeed.
    pub error: Option<String>,
    /// The validation verdict, if validation ran.
    pub verdict: Option<String>,
    /// Its short label (`valid`, `invalid`, `inconclusive`, `skipped`).
    pub validation: Option<&'static str>,
    /// What was done to finish or undo changes a crash had interrupted.
    pub recovered: Vec<String>,
    /// The tokens the swapped targets carried before: retired, but maybe still working (a
    /// revoke can take days); check later with `token-rotator check`. The daemon watches
    /// them. Serialized as `retired`, their fingerprints only (their `Debug` too).
    #[serde(rename = "retired", serialize_with = "fingerprints")]
    pub retired_tokens: Vec<Token>,
    /// When the token was first deployed, as far as is known (RFC 3339): the earliest of
    /// the daemon's state and the labels of targets that carry it already; the time of
    /// this rotation when nothing knew. Written as the label `token-rotator.first-deployed`.
    pub first_deployed_at: Option<String>,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Whether the failure may be the token's ([`crate::error::Error::blames_token`]):
    /// the daemon does not try a token again that may be bad, until the file is written
    /// again; it retries a rollback that was the target's doing.
    #[serde(skip)]
    pub token_suspect: bool,
}

fn fingerprints<S: serde::Serializer>(tokens: &[Token], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(tokens.iter().map(|t| t.fingerprint().as_str()))
}

impl RotationReport {
    /// An empty report of rotation `rotation`.
    pub fn new(rotation: String, fingerprint: Option<&Fingerprint>) -> Self {
        RotationReport {
            rotation,
            outcome: Outcome::AlreadyCurrent,
            fingerprint: fingerprint.map(|f| f.to_string()),
            targets: Vec::new(),
            error: None,
            verdict: None,
            validation: None,
            recovered: Vec::new(),
            retired_tokens: Vec::new(),
            first_deployed_at: None,
            duration_secs: 0.0,
            token_suspect: false,
        }
    }

    /// A rotation that ended before any target was looked at (an unusable secret file,
    /// an unreachable engine, a target that does not exist).
    pub fn failed_before(rotation: String, fingerprint: Option<&Fingerprint>, e: &Error) -> Self {
        let mut r = RotationReport::new(rotation, fingerprint);
        r.outcome = e.outcome();
        r.error = Some(e.to_string());
        r.token_suspect = e.blames_token();
        r
    }

    /// Records that a swapped target carried `old` before (once per token).
    pub fn retire(&mut self, old: Token) {
        if !self.retired_tokens.iter().any(|t| t.matches(old.expose())) {
            self.retired_tokens.push(old);
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.outcome.exit_code()
    }

    /// Human-readable summary, one line per target.
    pub fn render(&self) -> String {
        let mut out = format!("rotation {}", self.rotation);
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
        for fp in self.retired_tokens.iter().map(Token::fingerprint) {
            out.push_str(&format!(
                "  retired token {fp}: it may keep working for days after a revoke; check it later with `token-rotator check --secret-file FILE` (a file holding it)\n"
            ));
        }
        for t in &self.targets {
            let line = match t.outcome {
                TargetOutcome::AlreadyCurrent => "already current, not touched".to_string(),
                TargetOutcome::Swapped => t.swapped(),
                TargetOutcome::RolledBack | TargetOutcome::RollbackFailed => {
                    format!("FAILED: {}", t.error.as_deref().unwrap_or(""))
                }
                TargetOutcome::NotAttempted => "not attempted, not touched".into(),
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

/// Ends `report` with the result of the pipeline.
pub(crate) fn finish(
    mut report: RotationReport,
    result: Result<Outcome, (Error, String)>,
    took: Duration,
) -> RotationReport {
    match result {
        Ok(outcome) => report.outcome = outcome,
        Err((e, text)) => {
            report.outcome = e.outcome();
            report.error = Some(text);
            report.token_suspect = e.blames_token();
        }
    }
    report.duration_secs = took.as_secs_f64();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swapped(name: &str, spec_version: Option<crate::targets::SpecVersion>) -> TargetReport {
        TargetReport {
            name: name.into(),
            outcome: TargetOutcome::Swapped,
            old_id: Some("r0ohrx33ipbs0000".into()),
            new_id: Some("r0ohrx33ipbs0000".into()),
            error: None,
            previous: Some("0f9e8d7c6b5a".into()),
            warning: None,
            order: Some("stop-first"),
            order_note: None,
            dependents: Vec::new(),
            spec_version,
        }
    }

    #[test]
    fn a_swapped_service_says_which_spec_version_replaced_which() {
        let v = crate::targets::SpecVersion {
            from: 41,
            to: Some(42),
        };
        let mut report = RotationReport::new("rot1".into(), None);
        report.targets = vec![swapped("bots_bot", Some(v))];
        let text = report.render();
        assert!(
            text.contains(
                "bots_bot: swapped and verified (was 0f9e8d7c6b5a; service spec version 41 -> 42)"
            ),
            "{text}"
        );
        assert!(!text.contains("container"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["targets"][0]["spec_version"],
            serde_json::json!({"from": 41, "to": 42})
        );
    }

    #[test]
    fn a_swapped_container_says_which_container_replaced_which() {
        let mut report = RotationReport::new("rot1".into(), None);
        let mut t = swapped("bot", None);
        t.new_id = Some("9a8b7c6d5e4f0000".into());
        report.targets = vec![t];
        let text = report.render();
        assert!(
            text.contains("(was 0f9e8d7c6b5a; container r0ohrx33ipbs -> 9a8b7c6d5e4f)"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["targets"][0].get("spec_version").is_none(), "{json}");
    }

    #[test]
    fn retired_tokens_are_listed_once_as_retired_by_fingerprint_only() {
        let old = Token::new(format!("sk-ant-oat01-{}", "o".repeat(40)));
        let mut report = RotationReport::new("rot1".into(), None);
        report.retire(Token::new(old.expose().to_string()));
        report.retire(Token::new(old.expose().to_string()));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["retired"],
            serde_json::json!([old.fingerprint().as_str()])
        );
        assert!(json.get("retired_tokens").is_none(), "{json}");
        assert!(!json.to_string().contains(old.expose()));
        assert_eq!(report.retired_tokens.len(), 1);
        assert!(report.retired_tokens[0].matches(old.expose()));
    }

    #[test]
    fn every_target_outcome_is_listed_in_the_readme() {
        let readme = include_str!("../../README.md");
        for o in TargetOutcome::ALL {
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json, o.label());
            assert!(
                readme.contains(&format!("`{}`", o.label())),
                "README lists {}",
                o.label()
            );
        }
    }
}
