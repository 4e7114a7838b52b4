//! The retired-token watch: after a swap, the token it replaced may keep working for days
//! (a revoke does not propagate at once). Each retired token is probed on a schedule until
//! the API rejects it, or until the watch ends. The tokens are live credentials: they stay
//! in this process's memory only, so a restart of the daemon ends the watch of the ones it
//! held (nothing on disk could hold them safely).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::live::jittered;
use crate::secret::Token;
use crate::telemetry::webhook::{self, Webhook};
use crate::telemetry::{RetiredStatus, Shared};
use crate::validate::{Validator, Verdict};

/// How retired tokens are watched.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// Offsets from the retirement at which to probe; after the last, every that long.
    pub schedule: Vec<Duration>,
    /// How long a token is watched at most.
    pub max: Duration,
    /// A token still accepted this long after its retirement is announced, once.
    pub alert_after: Duration,
}

struct Retired {
    token: Token,
    retired_at: SystemTime,
    retired_instant: Instant,
    next: usize,
    next_at: Instant,
    state: &'static str,
    last_probe_at: Option<SystemTime>,
    last_answer: Option<String>,
    dead_at: Option<SystemTime>,
    alerted: bool,
}

/// Every token being watched.
pub struct Watch {
    plan: WatchPlan,
    tokens: Vec<Retired>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Watch {
    /// An empty watch.
    pub fn new(plan: WatchPlan) -> Self {
        Watch {
            plan,
            tokens: Vec::new(),
        }
    }

    /// The offset of the `n`th probe from the retirement.
    fn offset(&self, n: usize) -> Duration {
        let s = &self.plan.schedule;
        match s.get(n) {
            Some(d) => *d,
            None => {
                let last = *s.last().unwrap_or(&Duration::from_secs(6 * 3600));
                last + last * (n + 1 - s.len()) as u32
            }
        }
    }

    /// Starts watching `token`, just replaced by a swap (not if it is watched already, or
    /// if the watch is off).
    pub fn retire(&mut self, token: Token, shared: &Shared) {
        if self.plan.max.is_zero()
            || self
                .tokens
                .iter()
                .any(|r| r.token.fingerprint() == token.fingerprint())
        {
            return;
        }
        let now = Instant::now();
        let first = jittered(self.offset(0));
        tracing::info!(fingerprint = %token.fingerprint(), first_probe_in_secs = first.as_secs(), "watching the retired token until the API rejects it");
        self.tokens.push(Retired {
            token,
            retired_at: SystemTime::now(),
            retired_instant: now,
            next: 0,
            next_at: now + first,
            state: "unknown",
            last_probe_at: None,
            last_answer: None,
            dead_at: None,
            alerted: false,
        });
        self.publish(shared);
    }

    /// Stops watching a token that is live again.
    pub fn unretire(&mut self, token: &Token, shared: &Shared) {
        self.tokens
            .retain(|r| r.token.fingerprint() != token.fingerprint());
        self.publish(shared);
    }

    /// When the next probe is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.tokens
            .iter()
            .filter(|r| r.state != "dead")
            .map(|r| r.next_at)
            .min()
    }

    /// Probes every token that is due; announces deaths and long lives.
    pub async fn probe_due(
        &mut self,
        validator: Option<&Validator>,
        shared: &Shared,
        hook: Option<&Webhook>,
    ) {
        let Some(validator) = validator else { return };
        let now = Instant::now();
        let max = self.plan.max;
        // The watch of a token ends after `max`, dead or not.
        self.tokens.retain(|r| {
            let keep = r.retired_instant.elapsed() < max;
            if !keep {
                tracing::info!(fingerprint = %r.token.fingerprint(), state = r.state, "the watch of this retired token ended (--retired-watch-max)");
            }
            keep
        });
        let alert_after = self.plan.alert_after;
        for i in 0..self.tokens.len() {
            if self.tokens[i].state == "dead" || self.tokens[i].next_at > now {
                continue;
            }
            let verdict = validator.validate(&self.tokens[i].token).await;
            let offset = self.offset(self.tokens[i].next + 1);
            let r = &mut self.tokens[i];
            r.last_probe_at = Some(SystemTime::now());
            r.last_answer = Some(verdict.to_string());
            r.next += 1;
            let since = r.retired_instant.elapsed();
            // Jittered by up to 10% of the gap to the next probe (not of the whole time since
            // retirement), and never sooner than a second from now.
            let gap = offset.saturating_sub(since);
            r.next_at = now.max(Instant::now()) + jittered(gap).max(Duration::from_secs(1));
            let fp = r.token.fingerprint().to_string();
            match verdict {
                Verdict::Invalid { .. } => {
                    r.state = "dead";
                    r.dead_at = Some(SystemTime::now());
                    shared.metrics.retired_dead(since);
                    tracing::info!(fingerprint = %fp, alive_for_secs = since.as_secs(), "the retired token is dead: the API rejects it");
                    if let Some(h) = hook {
                        h.send_json(webhook::retired_token_dead(
                            &fp,
                            &rfc3339(r.retired_at),
                            &rfc3339(SystemTime::now()),
                            since.as_secs(),
                        ));
                    }
                }
                Verdict::Valid { .. } | Verdict::Skipped => {
                    r.state = "alive";
                    if since >= alert_after && !r.alerted {
                        r.alerted = true;
                        tracing::warn!(fingerprint = %fp, alive_for_secs = since.as_secs(), "the retired token still works: revoke it at claude.ai (settings, Claude Code)");
                        if let Some(h) = hook {
                            h.send_json(webhook::retired_token_alive(
                                &fp,
                                &rfc3339(r.retired_at),
                                since.as_secs(),
                            ));
                        }
                    }
                }
                Verdict::Inconclusive { .. } => r.state = "unknown",
            }
        }
        self.publish(shared);
    }

    fn publish(&self, shared: &Shared) {
        let alive = self.tokens.iter().filter(|r| r.state == "alive").count();
        let dead = self.tokens.iter().filter(|r| r.state == "dead").count();
        shared.metrics.set_retired(alive as i64, dead as i64);
        shared.metrics.set_oldest_alive_retired(
            self.tokens
                .iter()
                .filter(|r| r.state == "alive")
                .map(|r| r.retired_at)
                .min(),
        );
        let list = self
            .tokens
            .iter()
            .map(|r| RetiredStatus {
                fingerprint: r.token.fingerprint().to_string(),
                retired_at: rfc3339(r.retired_at),
                last_probe_at: r.last_probe_at.map(rfc3339),
                last_answer: r.last_answer.clone(),
                state: r.state,
                alive_for_seconds: match (r.state, r.dead_at) {
                    (_, Some(dead)) => dead.duration_since(r.retired_at).ok().map(|d| d.as_secs()),
                    ("alive", None) => Some(r.retired_instant.elapsed().as_secs()),
                    _ => None,
                },
            })
            .collect();
        shared
            .tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retired = list;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_schedule_it_probes_every_last_duration() {
        let w = Watch::new(WatchPlan {
            schedule: vec![
                Duration::from_secs(60),
                Duration::from_secs(300),
                Duration::from_secs(3600),
            ],
            max: Duration::from_secs(14 * 86_400),
            alert_after: Duration::from_secs(3600),
        });
        let secs: Vec<u64> = (0..5).map(|n| w.offset(n).as_secs()).collect();
        assert_eq!(secs, [60, 300, 3600, 7200, 10800]);
    }
}
