//! Which token is live: the primary file's while the API has not rejected it; else a
//! standby that was validated beforehand; never a token the API rejected. Also the probes
//! of the live token (periodic, and to confirm a suspicion from a bot's log) and the
//! standby's state, as `/status`, the metrics and the webhook tell them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::trigger::File;
use crate::rotation::RotationReport;
use crate::secret::{read_token_async, Fingerprint, SecretError, Token, TokenFormat};
use crate::telemetry::webhook::{self, Webhook};
use crate::telemetry::{LiveStatus, Shared, StandbyStatus};
use crate::validate::{Validator, Verdict};

/// At most one confirming probe per token in this time, whatever the logs say.
pub const CONFIRM_EVERY: Duration = Duration::from_secs(30);

/// What probing and reporting need from the daemon.
pub struct Ctx<'a> {
    /// `None` with `--validate none`: nothing can be probed.
    pub validator: Option<&'a Validator>,
    /// Metrics and `/status`.
    pub shared: &'a Shared,
    /// Where events go.
    pub webhook: Option<&'a Webhook>,
    /// The targets' names, for events.
    pub targets: &'a [String],
}

/// Why the live token is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A bot's log line looked like a rejection.
    Logs,
    /// The periodic backstop (`--live-probe-interval`).
    Periodic,
}

impl Probe {
    /// The `source` label of the rejection metric and event.
    pub fn label(self) -> &'static str {
        match self {
            Probe::Logs => "logs",
            Probe::Periodic => "probe",
        }
    }
}

impl File {
    /// `primary` or `standby`.
    pub fn label(self) -> &'static str {
        match self {
            File::Primary => "primary",
            File::Standby => "standby",
        }
    }
}

/// What the targets should carry now.
pub enum Choice {
    /// This token, from this file.
    Deploy(Token, File),
    /// The secret file cannot be used (reported as a refused token; targets untouched).
    Unusable(SecretError),
    /// Nothing may be deployed (the primary's token was rejected and no standby is ready).
    Nothing,
}

#[derive(Debug, Clone, PartialEq)]
enum Standby {
    Missing,
    Invalid(String),
    Ready,
    Promoted,
}

/// The live token, the standby, and every token the API rejected.
pub struct Live {
    standby_path: Option<PathBuf>,
    format: TokenFormat,
    live: Option<(Token, File)>,
    rejected: HashSet<Fingerprint>,
    standby: Option<Token>,
    standby_state: Standby,
    confirmed: HashMap<Fingerprint, std::time::Instant>,
    /// The rejected live token a standby is about to replace.
    promoting: Option<Fingerprint>,
    /// A standby whose swap failed, not tried again until the file holds another token.
    failed_standby: Option<Fingerprint>,
    state: &'static str,
    last_probe: Option<String>,
    last_answer: Option<String>,
    false_alarms: u64,
}

impl Live {
    /// Nothing live yet; the standby (if any) is read from `standby_path`.
    pub fn new(standby_path: Option<PathBuf>, format: TokenFormat) -> Self {
        Live {
            standby_path,
            format,
            live: None,
            rejected: HashSet::new(),
            standby: None,
            standby_state: Standby::Missing,
            confirmed: HashMap::new(),
            promoting: None,
            failed_standby: None,
            state: "unknown",
            last_probe: None,
            last_answer: None,
            false_alarms: 0,
        }
    }

    /// The live token's fingerprint.
    pub fn fingerprint(&self) -> Option<String> {
        self.live.as_ref().map(|(t, _)| t.fingerprint().to_string())
    }

    /// Whether the API rejected the live token.
    pub fn live_rejected(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|(t, _)| self.rejected.contains(t.fingerprint()))
    }

    /// The live token.
    pub fn token(&self) -> Option<&Token> {
        self.live.as_ref().map(|(t, _)| t)
    }

    /// Whether the API rejected `token`.
    pub fn is_rejected(&self, token: &Token) -> bool {
        self.rejected.contains(token.fingerprint())
    }

    /// Whether `token` is the standby file's (the spare is never a retired token).
    pub fn is_standby(&self, token: &Token) -> bool {
        self.standby
            .as_ref()
            .is_some_and(|s| s.fingerprint() == token.fingerprint())
    }

    /// The standby's swap failed: it is not deployed again until its file changes.
    pub fn standby_failed(&mut self, why: &str) {
        if let Some(s) = &self.standby {
            tracing::error!(fingerprint = %s.fingerprint(), "the standby token's swap failed ({why}): not tried again until the standby file changes");
        }
        self.standby_state = Standby::Invalid(why.to_string());
        self.failed_standby = self.standby.as_ref().map(|s| s.fingerprint().clone());
    }

    /// Whether a validated standby is waiting.
    pub fn standby_ready(&self) -> bool {
        self.standby_state == Standby::Ready
    }

    /// What the targets should carry, given what the primary file holds now.
    pub fn choose(&self, primary: Result<Token, SecretError>) -> Choice {
        match primary {
            Ok(t) if !self.rejected.contains(t.fingerprint()) => Choice::Deploy(t, File::Primary),
            Ok(t) => match &self.standby {
                Some(s)
                    if matches!(self.standby_state, Standby::Ready | Standby::Promoted)
                        && !self.rejected.contains(s.fingerprint()) =>
                {
                    Choice::Deploy(s.clone(), File::Standby)
                }
                _ => {
                    tracing::warn!(fingerprint = %t.fingerprint(), "the secret file holds a token the API rejected, and no standby is ready: the targets are left as they are; write a new token");
                    Choice::Nothing
                }
            },
            Err(e) => Choice::Unusable(e),
        }
    }

    /// Reads the standby file and validates a token not proved yet (or every time with
    /// `again`, at each periodic probe).
    pub async fn check_standby(&mut self, ctx: &Ctx<'_>, again: bool) {
        let Some(path) = self.standby_path.clone() else {
            self.publish(ctx);
            return;
        };
        let token = match read_token_async(&path, self.format).await {
            Ok(t) => t,
            Err(SecretError::Missing(_)) => {
                (self.standby, self.standby_state) = (None, Standby::Missing);
                self.publish(ctx);
                return;
            }
            Err(e) => {
                (self.standby, self.standby_state) = (None, Standby::Invalid(e.to_string()));
                self.publish(ctx);
                return;
            }
        };
        let fp = token.fingerprint().clone();
        let same = self
            .standby
            .as_ref()
            .is_some_and(|s| *s.fingerprint() == fp);
        let is_live = self
            .live
            .as_ref()
            .is_some_and(|(t, f)| *f == File::Standby && *t.fingerprint() == fp);
        self.standby = Some(token.clone());
        self.standby_state = if self.rejected.contains(&fp) {
            Standby::Invalid("the API rejected this token".into())
        } else if self.failed_standby.as_ref() == Some(&fp) {
            Standby::Invalid("its swap failed; write another token to the standby file".into())
        } else if is_live {
            Standby::Promoted
        } else if same && self.standby_state == Standby::Ready && !again {
            Standby::Ready
        } else {
            match ctx.validator {
                None => Standby::Ready, // --validate none: taken as it is
                Some(v) => match v.validate(&token).await {
                    Verdict::Valid { .. } | Verdict::Skipped => Standby::Ready,
                    verdict @ Verdict::Invalid { .. } => {
                        self.rejected.insert(fp.clone());
                        Standby::Invalid(verdict.to_string())
                    }
                    verdict => Standby::Invalid(format!("not proved: {verdict}")),
                },
            }
        };
        tracing::info!(fingerprint = %fp, state = ?self.standby_state, "standby token");
        self.publish(ctx);
    }

    /// Probes the live token. Returns whether a standby is to be deployed now.
    pub async fn probe(&mut self, ctx: &Ctx<'_>, how: Probe) -> bool {
        let (Some((token, _)), Some(validator)) = (self.live.clone(), ctx.validator) else {
            return false;
        };
        let fp = token.fingerprint().clone();
        if self.rejected.contains(&fp) {
            // Already known dead: the periodic probe still looks for a standby that became
            // valid (one that failed on an inconclusive answer, say).
            if how == Probe::Periodic {
                self.check_standby(ctx, true).await;
                if self.standby_ready() {
                    self.promoting = Some(fp);
                    return true;
                }
            }
            return false;
        }
        if how == Probe::Logs {
            let recent = self
                .confirmed
                .get(&fp)
                .is_some_and(|at| at.elapsed() < CONFIRM_EVERY);
            if recent {
                tracing::debug!(fingerprint = %fp, "confirmed less than 30 s ago; not probing again");
                return false;
            }
            self.confirmed.insert(fp.clone(), std::time::Instant::now());
        }
        let verdict = validator.validate(&token).await;
        ctx.shared.metrics.live_probed();
        self.last_probe =
            Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
        self.last_answer = Some(verdict.to_string());
        let deploy_standby = match &verdict {
            Verdict::Invalid { .. } => {
                self.rejected.insert(fp.clone());
                self.state = "rejected";
                ctx.shared.metrics.live_rejected(how.label());
                tracing::error!(fingerprint = %fp, source = how.label(), "the live token was rejected by the API: {verdict}");
                let answer = verdict.to_string();
                if let Some(hook) = ctx.webhook {
                    hook.send_json(webhook::live_token_rejected(
                        fp.as_str(),
                        how.label(),
                        &answer,
                        ctx.targets,
                    ));
                }
                self.check_standby(ctx, false).await;
                if self.standby_ready() {
                    self.promoting = Some(fp.clone());
                    true
                } else {
                    let why = match &self.standby_state {
                        Standby::Invalid(r) => r.clone(),
                        _ => "no standby token".into(),
                    };
                    tracing::error!(fingerprint = %fp, "no valid standby: the targets are left as they are; {why}");
                    if let Some(hook) = ctx.webhook {
                        hook.send_json(webhook::standby_needed(
                            fp.as_str(),
                            self.standby_path.as_deref(),
                            &why,
                            None,
                        ));
                    }
                    false
                }
            }
            Verdict::Valid { .. } | Verdict::Skipped => {
                self.state = "ok";
                if how == Probe::Logs {
                    self.false_alarms += 1;
                    tracing::info!(fingerprint = %fp, "a log line looked like a rejection, but the API accepts the token: false alarm");
                }
                false
            }
            Verdict::Inconclusive { .. } => {
                self.state = "unknown";
                tracing::warn!(fingerprint = %fp, "the live token could not be probed: {verdict}");
                false
            }
        };
        if how == Probe::Periodic && !deploy_standby {
            self.check_standby(ctx, true).await;
        }
        self.publish(ctx);
        deploy_standby
    }

    /// Records that the targets now carry `token` from `file`; returns the
    /// `standby_promoted` event when this replaced a rejected live token, followed by
    /// `standby_needed` (the standby is spent: no spare is left).
    pub async fn deployed(
        &mut self,
        ctx: &Ctx<'_>,
        token: Token,
        file: File,
        report: &RotationReport,
    ) -> Vec<serde_json::Value> {
        let changed = self.fingerprint().as_deref() != Some(token.fingerprint().as_str());
        if changed {
            // Only a validation that said so makes it `ok`; else it is not known yet.
            self.state = if report.validation == Some("valid") {
                "ok"
            } else {
                "unknown"
            };
            self.last_answer = report.verdict.clone();
        }
        let new = token.fingerprint().to_string();
        let was_promoted = self.standby_state == Standby::Promoted;
        self.live = Some((token, file));
        let events = match (file, self.promoting.take()) {
            (File::Standby, Some(old)) => {
                self.standby_state = Standby::Promoted;
                tracing::warn!(old = %old, new = %new, "the standby token replaced the rejected live token");
                tracing::error!(fingerprint = %new, "no spare standby is left: write a new token into the secret file or the standby file");
                vec![
                    webhook::standby_promoted(old.as_str(), &new, report),
                    webhook::standby_needed(
                        old.as_str(),
                        self.standby_path.as_deref(),
                        "the standby was promoted and is live now",
                        Some(&new),
                    ),
                ]
            }
            (File::Standby, None) => {
                self.standby_state = Standby::Promoted;
                Vec::new()
            }
            (File::Primary, _) => Vec::new(),
        };
        if file == File::Primary && was_promoted {
            // The standby is no longer live: it waits again, if still valid.
            self.standby_state = Standby::Missing;
            self.check_standby(ctx, true).await;
        }
        self.publish(ctx);
        events
    }

    /// Writes the state into `/status` and the metrics.
    fn publish(&self, ctx: &Ctx<'_>) {
        ctx.shared.metrics.set_standby_ready(self.standby_ready());
        let live = self.live.as_ref().map(|(t, f)| LiveStatus {
            fingerprint: t.fingerprint().to_string(),
            source: f.label(),
            state: if self.rejected.contains(t.fingerprint()) {
                "rejected"
            } else {
                self.state
            },
            last_probe: self.last_probe.clone(),
            last_answer: self.last_answer.clone(),
            false_alarms: self.false_alarms,
        });
        let standby = StandbyStatus {
            fingerprint: self.standby.as_ref().map(|t| t.fingerprint().to_string()),
            state: match self.standby_state {
                Standby::Missing => "missing",
                Standby::Invalid(_) => "invalid",
                Standby::Ready => "ready",
                Standby::Promoted => "promoted",
            },
            reason: match &self.standby_state {
                Standby::Invalid(r) => Some(r.clone()),
                _ => None,
            },
        };
        let mut status = ctx.shared.tokens.write().unwrap_or_else(|e| e.into_inner());
        status.live = live;
        status.standby = standby;
    }
}

/// `every`, shortened by up to 10% so that many sidecars do not probe in step.
pub fn jittered(every: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = f64::from(nanos % 1000) / 1000.0;
    every.mul_f64(1.0 - 0.1 * fraction)
}
