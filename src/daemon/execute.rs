//! Runs what the policy decides: reads the secret files, probes tokens, inspects a target,
//! rotates, and tells (notifiers, metrics, `/status`, log followers, timers). Each result goes
//! back to the policy as an [`Input`]; nothing here decides.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::policy::Content;
use super::policy::{tokens::View, Action, Event, Input, Plan, Read, Record, Timer};
use super::{logs, trigger, DaemonConfig, Shutdown};
use crate::error::Outcome;
use crate::rotation::{RotationReport, Rotator};
use crate::secret::{read_token_async, Token, TokenFormat};
use crate::telemetry::Shared;
use crate::validate::Verdict;

/// What running one action led to.
pub enum Step {
    /// Nothing to feed back.
    Done,
    /// Its result.
    Fed(Input),
    /// The daemon must stop; the rotation that finished meanwhile, if any, is to be told.
    Stop(Option<Input>),
}

/// The timers the policy set, one deadline each.
#[derive(Default)]
pub struct Timers(HashMap<Timer, Instant>);

impl Timers {
    /// Waits for the earliest deadline and returns its timer (forever if none is set).
    pub async fn next(&mut self) -> Timer {
        let Some((&timer, &at)) = self.0.iter().min_by_key(|(_, at)| **at) else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(at.into()).await;
        self.0.remove(&timer);
        timer
    }
}

/// The daemon's I/O.
pub struct Shell {
    rotator: Rotator,
    cfg: DaemonConfig,
    shared: Arc<Shared>,
    /// The timers the policy set.
    pub timers: Timers,
    followers: Arc<logs::Followers>,
    patterns: Option<Arc<Vec<regex::Regex>>>,
    tx: trigger::Sender,
}

impl Shell {
    /// Ready to run actions.
    pub fn new(
        rotator: Rotator,
        cfg: DaemonConfig,
        shared: Arc<Shared>,
        tx: trigger::Sender,
    ) -> Self {
        let patterns = cfg.log_patterns.clone().map(Arc::new);
        Shell {
            rotator,
            cfg,
            shared,
            timers: Timers::default(),
            followers: Default::default(),
            patterns,
            tx,
        }
    }

    /// Keeps `state` across a restart, if there is somewhere to keep it (an error is
    /// logged: the daemon goes on, and the next change tries again).
    pub fn persist(&self, state: &super::policy::State) {
        if let Some(store) = &self.cfg.store {
            if let Err(e) = store.save(state) {
                tracing::error!("the state was not kept, a restart would forget it: {e}");
            }
        }
    }

    /// Runs `action`. Work that changes nothing is cut short by a stop; a rotation is not.
    pub async fn execute(&mut self, action: Action, shutdown: &mut Shutdown<'_>) -> Step {
        let work: WorkFuture<'_> = match action {
            Action::Rotate(plan) => return self.rotate(plan, shutdown).await,
            Action::ReadPrimary(why) => {
                let path = self.cfg.watch.path.clone();
                let format = self.rotator.secret.format;
                Box::pin(async move { Input::PrimaryRead(why, read_primary(&path, format).await) })
            }
            Action::ReadStandby { again, then } => Box::pin(async move {
                let token = match &self.cfg.standby {
                    Some(w) => read_token_async(&w.path, self.rotator.secret.format).await,
                    None => Err(crate::secret::SecretError::Missing(Default::default())),
                };
                Input::StandbyRead { again, then, token }
            }),
            Action::CheckTarget { name, token } => Box::pin(async move {
                let carries_live = self.carries(&name, &token).await;
                Input::TargetChecked { name, carries_live }
            }),
            Action::Probe { token, purpose } => Box::pin(async move {
                let verdict = match &self.rotator.pipeline.validator {
                    Some(v) => v.validate(&token).await,
                    None => Verdict::Skipped,
                };
                let fingerprint = token.fingerprint().clone();
                Input::Probed {
                    purpose,
                    fingerprint,
                    verdict,
                }
            }),
            other => {
                self.tell(other);
                return Step::Done;
            }
        };
        tokio::select! {
            input = work => Step::Fed(input),
            _ = shutdown.as_mut() => Step::Stop(None),
        }
    }

    /// Runs the pipeline; on a stop, lets it finish or roll back within the bound.
    async fn rotate(&mut self, plan: Plan, shutdown: &mut Shutdown<'_>) -> Step {
        let token = plan.token.clone();
        let rotation = self.rotator.rotate_token_since(&token, plan.first_deployed);
        tokio::pin!(rotation);
        tokio::select! {
            report = &mut rotation => Step::Fed(Input::Rotated(plan, Box::new(report))),
            _ = shutdown.as_mut() => {
                let bound = self.cfg.shutdown_timeout;
                tracing::info!(timeout_secs = bound.as_secs_f64(), "letting the rotation in progress finish before exiting");
                match tokio::time::timeout(bound, rotation).await {
                    Ok(r) if r.outcome == Outcome::Stopped => {
                        tracing::info!("stopped before the rotation changed anything");
                        Step::Stop(None)
                    }
                    Ok(r) => Step::Stop(Some(Input::Rotated(plan, Box::new(r)))),
                    Err(_) => {
                        tracing::error!("the rotation in progress did not finish in time; the next start will find where it stopped");
                        Step::Stop(None)
                    }
                }
            }
        }
    }

    /// The exit on a stop: what the last rotation brought is told (nothing new starts), and
    /// notifications in flight get the shutdown timeout.
    pub async fn stop(&mut self, last: Option<Vec<Action>>, view: View) {
        tracing::info!("stopping");
        for action in last.into_iter().flatten() {
            if matches!(action, Action::Announce(_) | Action::Record(_)) {
                self.tell(action);
            }
        }
        self.publish(view);
        self.cfg.notifiers.drain(self.cfg.shutdown_timeout).await;
    }

    /// Runs an action that only tells (no result to feed back).
    fn tell(&mut self, action: Action) {
        match action {
            Action::Announce(event) => self.announce(event),
            Action::Record(record) => self.record(record),
            Action::Follow(names) => {
                if let Some(patterns) = &self.patterns {
                    let docker = &self.rotator.docker;
                    self.followers
                        .follow(docker, &names, patterns, &self.tx, &self.shared);
                }
            }
            Action::Schedule(timer, Some(at)) => {
                self.timers.0.insert(timer, at);
            }
            Action::Schedule(timer, None) => {
                self.timers.0.remove(&timer);
            }
            other => tracing::error!("not an action that only tells: {}", name_of(&other)),
        }
    }

    fn announce(&self, event: Event) {
        if self.cfg.notifiers.is_empty() {
            return;
        }
        let standby = self.cfg.standby.as_ref().map(|w| w.path.as_path());
        self.cfg
            .notifiers
            .announce(super::notice::notice(event, standby));
    }

    fn record(&self, record: Record) {
        let metrics = &self.shared.metrics;
        match record {
            Record::Rotation(report) => self.finished(*report),
            Record::LiveProbed => metrics.live_probed(),
            Record::LiveRejected(source) => metrics.live_rejected(source),
            Record::RetiredDead(alive_for) => metrics.retired_dead(alive_for),
        }
    }

    /// A rotation's report: metrics, the log, `/status`'s last report.
    fn finished(&self, report: RotationReport) {
        self.shared.metrics.observe(&report);
        tracing::info!(
            outcome = report.outcome.label(),
            duration_secs = report.duration_secs,
            "rotation finished"
        );
        *self
            .shared
            .last_report
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// Shows the tokens' state: `/status` and the gauges.
    pub fn publish(&self, view: View) {
        let metrics = &self.shared.metrics;
        metrics.set_standby_ready(view.standby_ready);
        metrics.set_retired(view.retired_alive, view.retired_dead);
        metrics.set_oldest_alive_retired(view.oldest_alive);
        let live = view.status.live.as_ref();
        metrics.set_live_first_deployed(live.and_then(|l| l.age.since));
        *self
            .shared
            .tokens
            .write()
            .unwrap_or_else(|e| e.into_inner()) = view.status;
    }

    /// Whether the container `name` carries `token` (in its own env var).
    async fn carries(&self, name: &str, token: &Token) -> bool {
        let Ok(Some(info)) = crate::engine::inspect(&self.rotator.docker, name).await else {
            return false;
        };
        let default = &self.rotator.container.env_var;
        let var = crate::targets::container::select::env_var_of(&info, default);
        crate::targets::container::env_value(&info, &var).is_some_and(|v| token.matches(v))
    }
}

type WorkFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Input> + Send + 'a>>;

/// An action's name, for a log line.
fn name_of(a: &Action) -> &'static str {
    match a {
        Action::ReadPrimary(_) => "read primary",
        Action::ReadStandby { .. } => "read standby",
        Action::CheckTarget { .. } => "check target",
        Action::Probe { .. } => "probe",
        Action::Rotate(_) => "rotate",
        Action::Announce(_) => "announce",
        Action::Record(_) => "record",
        Action::Publish => "publish",
        Action::Follow(_) => "follow",
        Action::Schedule(..) => "schedule",
        Action::Persist => "persist",
    }
}

/// The primary file's token in `format`, and what it holds whatever its shape (read once
/// when the token has the right shape).
async fn read_primary(path: &Path, format: TokenFormat) -> Read {
    let token = read_token_async(path, format).await;
    let content = match &token {
        Ok(t) => Some(content_of(path, t).await),
        Err(_) => match read_token_async(path, TokenFormat::Any).await {
            Ok(t) => Some(content_of(path, &t).await),
            Err(_) => None,
        },
    };
    Read { token, content }
}

async fn content_of(path: &Path, token: &Token) -> Content {
    let mtime = tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .ok();
    Content {
        fingerprint: token.fingerprint().clone(),
        mtime,
    }
}
