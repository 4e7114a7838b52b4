//! Follow every target's log (stdout and stderr, from now on) for lines that say its token
//! was refused. A match is only a suspicion: the loop confirms it with a probe. Log lines
//! are never copied anywhere (a bot's log may hold anything, a token too): only the
//! target's name goes on. Each stream reconnects by name after a swap, a restart or an
//! engine outage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::StreamExt;
use regex::Regex;

use super::trigger::{Sender, Trigger};
use crate::engine::Backoff;
use crate::telemetry::Shared;

/// What the real Claude Code CLI prints when its token is refused, in text, json and
/// stream-json output (see CONTEXT.md).
pub const BUILT_IN_PATTERNS: [&str; 5] = [
    r"Failed to authenticate",
    r#""error"\s*:\s*"authentication_failed""#,
    r"OAuth token (?:has been )?revoked",
    r"OAuth token has expired",
    r"Invalid bearer token",
];

/// The built-in patterns and `extra` ones.
pub fn patterns(extra: &[Regex]) -> Vec<Regex> {
    BUILT_IN_PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("built-in pattern"))
        .chain(extra.iter().cloned())
        .collect()
}

/// The followers: which targets are wanted now, and which have a follower running.
#[derive(Debug, Default)]
pub struct Followers {
    wanted: std::sync::Mutex<HashSet<String>>,
    running: std::sync::Mutex<HashSet<String>>,
}

impl Followers {
    /// Makes `targets` the followed set: starts a follower for each that has none; a
    /// follower whose target is no longer wanted ends once its container is gone.
    pub fn follow(
        self: &Arc<Self>,
        docker: &Docker,
        targets: &[String],
        patterns: &Arc<Vec<Regex>>,
        tx: &Sender,
        shared: &Arc<Shared>,
    ) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = targets.iter().cloned().collect();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for name in targets {
            if running.insert(name.clone()) {
                let follower = follow(
                    docker.clone(),
                    name.clone(),
                    patterns.clone(),
                    tx.clone(),
                    shared.clone(),
                    self.clone(),
                );
                tokio::spawn(follower);
            }
        }
    }

    fn wanted(&self, name: &str) -> bool {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    fn ended(&self, name: &str) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

async fn follow(
    docker: Docker,
    name: String,
    patterns: Arc<Vec<Regex>>,
    tx: Sender,
    shared: Arc<Shared>,
    followers: Arc<Followers>,
) {
    let metrics = &shared.metrics;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    while !tx.is_closed() {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i32)
            .unwrap_or(0);
        let opts = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since,
            ..Default::default()
        };
        // Followed only while it runs: a stopped container's stream ends at once.
        let found = crate::engine::inspect(&docker, &name).await;
        if matches!(found, Ok(None)) && !followers.wanted(&name) {
            break; // gone, and no longer a target
        }
        let running = matches!(
            found,
            Ok(Some(c)) if c.state.as_ref().and_then(|st| st.running) == Some(true)
        );
        if !running {
            tokio::time::sleep(backoff.next_delay()).await;
            continue;
        }
        metrics.log_stream_opened();
        let mut stream = docker.logs(&name, Some(opts));
        let mut partial: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            backoff.reset();
            partial.extend_from_slice(&chunk.into_bytes());
            let mut suspicious = false;
            while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                suspicious |= patterns.iter().any(|p| p.is_match(&line));
            }
            // A line longer than this is no CLI message: keep the tail only.
            if partial.len() > 64 * 1024 {
                partial.drain(..partial.len() - 1024);
            }
            if suspicious {
                tracing::info!(container = %name, "a log line says the token was refused; confirming with a probe");
                if tx
                    .send(Trigger::RejectedInLogs { name: name.clone() })
                    .is_err()
                {
                    break;
                }
            }
        }
        metrics.log_stream_closed();
        // The container stopped, was swapped or the engine went away: follow it by name again.
        tokio::time::sleep(backoff.next_delay()).await;
    }
    followers.ended(&name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_patterns_match_what_the_real_cli_prints_and_nothing_ordinary() {
        let p = patterns(&[]);
        let hit = |line: &str| p.iter().any(|r| r.is_match(line));
        assert!(hit("Failed to authenticate: OAuth token revoked. Please log in again or contact your administrator."));
        assert!(hit("Failed to authenticate. API Error: 401 OAuth token has expired. Please obtain a new token or refresh your existing token."));
        assert!(hit(
            "Failed to authenticate. API Error: 401 Invalid bearer token"
        ));
        assert!(hit(
            r#"{"type":"result","is_error":true,"result":"Failed to authenticate: OAuth token revoked.","terminal_reason":"api_error"}"#
        ));
        assert!(hit(
            r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"error_status":403,"error":"authentication_failed"}"#
        ));
        assert!(!hit("fake-bot: authenticated with token 0123456789ab"));
        assert!(!hit(
            r#"{"type":"result","is_error":false,"result":"pong"}"#
        ));
    }
}
