//! One error type for a rotation, and the one mapping from an error to its [`Outcome`]:
//! the exit code of `rotate`, the metrics' `outcome` label and the webhook's event all
//! come from here.

use serde::Serialize;

use crate::engine::ConnectError;
use crate::secret::SecretError;
use crate::targets::{StepError, TargetError, UndoError};
use crate::validate::Verdict;

/// How a rotation ended as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    /// A target could not be found or cannot be swapped safely, or the engine refused to
    /// create its copy; nothing touched.
    BadTarget,
    /// The engine could not be reached; nothing touched, or a swap it interrupted was
    /// rolled back cleanly.
    EngineUnavailable,
    /// Another rotator holds a target's lock; nothing touched.
    Busy,
    /// A swap failed and was rolled back.
    RolledBack,
    /// A swap failed and its rollback failed too, or a verified swap a crash had
    /// interrupted could not be finished: the next run finishes the recovery.
    RollbackFailed,
    /// The canary (the bot's own client, in its own image) refused the token; nothing touched.
    CanaryFailed,
    /// The daemon was asked to stop between swaps: the targets swapped so far carry the
    /// token, verified; the rest were not attempted and keep theirs (the next start
    /// rotates them). Published: some targets did change.
    Interrupted,
    /// The daemon was asked to stop before any change (while validating); nothing touched.
    /// Never published: the process is exiting.
    Stopped,
}

impl Outcome {
    /// Every outcome, in the README's order.
    pub const ALL: [Outcome; 11] = [
        Outcome::Rotated,
        Outcome::AlreadyCurrent,
        Outcome::Rejected,
        Outcome::Inconclusive,
        Outcome::BadTarget,
        Outcome::EngineUnavailable,
        Outcome::Busy,
        Outcome::RolledBack,
        Outcome::RollbackFailed,
        Outcome::CanaryFailed,
        Outcome::Interrupted,
    ];

    /// Stable label for metrics, JSON and webhooks.
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
            Outcome::CanaryFailed => "canary_failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Stopped => "stopped",
        }
    }

    /// Process exit code of `rotate` (documented in the README).
    pub fn exit_code(self) -> u8 {
        match self {
            // `interrupted` and `stopped` happen only in `run`, which exits 0 on SIGTERM.
            Outcome::Rotated
            | Outcome::AlreadyCurrent
            | Outcome::Interrupted
            | Outcome::Stopped => 0,
            Outcome::Rejected | Outcome::CanaryFailed => 1,
            Outcome::Inconclusive => 3,
            Outcome::BadTarget | Outcome::RolledBack => 4,
            Outcome::EngineUnavailable => 5,
            Outcome::RollbackFailed => 6,
            Outcome::Busy => 7,
        }
    }

    /// Whether the daemon retries it with backoff (nothing says the token is bad).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::Inconclusive
                | Outcome::EngineUnavailable
                | Outcome::Busy
                | Outcome::RollbackFailed
        )
    }
}

/// What undoing a failed step did.
#[derive(Debug)]
pub enum Rollback {
    /// Nothing had been changed yet.
    NothingToUndo,
    /// The old state is back, as it was.
    Restored,
    /// Undoing failed: the next run finishes it.
    Failed(UndoError),
    /// Nothing was undone: the failed step finished a swap a crash had interrupted after
    /// it was verified, and a verified swap is kept; the next run finishes it.
    Unfinished,
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::NothingToUndo => f.write_str("nothing was changed"),
            Rollback::Restored => f.write_str("rolled back: the old container is back as it was"),
            Rollback::Failed(e) => write!(f, "ROLLBACK FAILED: {e}"),
            Rollback::Unfinished => f.write_str(
                "the interrupted swap had been verified, so it is kept and not undone; the next `token-rotator rotate` or `run` finishes it",
            ),
        }
    }
}

/// Why a rotation did not end with every target carrying the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret file is unusable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The API refused the token.
    #[error("token {fingerprint} is {verdict}; no container was touched")]
    Refused {
        /// The token's fingerprint.
        fingerprint: String,
        /// What the API said.
        verdict: Verdict,
    },
    /// The API gave no verdict in time.
    #[error("token {fingerprint} is {verdict}; no container was touched")]
    Inconclusive {
        /// The token's fingerprint.
        fingerprint: String,
        /// What was seen.
        verdict: Verdict,
    },
    /// The engine cannot be reached at all.
    #[error("{0}; no container was touched")]
    Connect(#[from] ConnectError),
    /// A target cannot be rotated (missing, unsafe, locked), or an interrupted change
    /// could not be finished.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The canary refused the token.
    #[error(transparent)]
    Canary(#[from] crate::targets::CanaryError),
    /// Asked to stop before any change was made.
    #[error("stopped before any change: nothing was touched")]
    Stopped,
    /// Asked to stop between swaps: those done are verified, `left` were not attempted.
    #[error("stopped between swaps: {left} target(s) not attempted keep their token; the next start rotates them")]
    StoppedPartway {
        /// How many targets were not attempted.
        left: usize,
    },
    /// A step of a change failed; `rollback` says what undoing it did.
    #[error("{step}; {rollback}")]
    Step {
        /// The failed step.
        #[source]
        step: StepError,
        /// What the undo did.
        rollback: Rollback,
    },
}

impl Error {
    /// The outcome this error ends a rotation with (and so its exit code and labels).
    pub fn outcome(&self) -> Outcome {
        // A call the socket refused (a proxy's 403) is a configuration error: not an
        // outage to retry, not the token's fault. Whatever was changed was undone (a
        // failed undo stays `rollback_failed`, retried until it is finished).
        let undo_failed = matches!(
            self,
            Error::Step {
                rollback: Rollback::Failed(_),
                ..
            }
        );
        if !undo_failed && crate::engine::refused::in_chain(self) {
            return Outcome::BadTarget;
        }
        match self {
            Error::Secret(_) | Error::Refused { .. } => Outcome::Rejected,
            Error::Inconclusive { .. } => Outcome::Inconclusive,
            Error::Connect(_) => Outcome::EngineUnavailable,
            Error::Stopped => Outcome::Stopped,
            Error::StoppedPartway { .. } => Outcome::Interrupted,
            Error::Canary(crate::targets::CanaryError::Engine {
                unreachable: true, ..
            }) => Outcome::EngineUnavailable,
            Error::Canary(_) => Outcome::CanaryFailed,
            Error::Target(t) => match t {
                TargetError::Locked(crate::targets::LockError::Held { .. }) => Outcome::Busy,
                TargetError::Locked(_) | TargetError::Engine(_) | TargetError::Scan(_) => {
                    Outcome::EngineUnavailable
                }
                TargetError::Undo(u) if u.unreachable => Outcome::EngineUnavailable,
                TargetError::Undo(_) => Outcome::RollbackFailed,
                _ => Outcome::BadTarget,
            },
            Error::Step {
                rollback: Rollback::Failed(_),
                ..
            } => Outcome::RollbackFailed,
            // An engine outage says nothing about the token: retried, not refused.
            Error::Step { step, .. } if step.unreachable => Outcome::EngineUnavailable,
            // Nothing was created, so nothing was undone: the target is what is wrong.
            Error::Step {
                step,
                rollback: Rollback::NothingToUndo,
            } if step.copy_refused() => Outcome::BadTarget,
            // A recovery left unfinished, like a failed undo: retried, the token not blamed.
            Error::Step {
                rollback: Rollback::Unfinished,
                ..
            } => Outcome::RollbackFailed,
            Error::Step { .. } => Outcome::RolledBack,
        }
    }

    /// Whether the token may be to blame: it was refused (by the API, a canary, the secret
    /// file's rules) or a replacement carrying it failed its check. A rollback for any
    /// other reason says nothing about the token, and the daemon tries it again.
    pub fn blames_token(&self) -> bool {
        match self {
            Error::Secret(_) | Error::Refused { .. } | Error::Canary(_) => true,
            Error::Step { step, .. } => step.blames_token(),
            _ => false,
        }
    }

    /// A short stable name of what failed, for logs (`rule` of a secret, else the outcome).
    pub fn rule(&self) -> &'static str {
        match self {
            Error::Secret(e) => e.rule(),
            other => other.outcome().label(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_scan_reaches_every_target_with_its_whole_cause_and_is_retried_as_an_outage() {
        let refused = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "inspect failed".into(),
        };
        let shared = std::sync::Arc::new(crate::engine::EngineError::new(
            "inspect container c1",
            refused,
        ));
        let (a, b) = (TargetError::Scan(shared.clone()), TargetError::Scan(shared));
        for e in [a, b] {
            let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            let mut engine_seen = false;
            while let Some(c) = cause {
                engine_seen |= c.downcast_ref::<bollard::errors::Error>().is_some();
                cause = c.source();
            }
            assert!(engine_seen, "the engine's own error is kept as the source");
            let outcome = Error::Target(e).outcome();
            assert_eq!(outcome, Outcome::EngineUnavailable);
        }
    }

    use super::*;

    #[test]
    fn a_refused_exec_is_a_configuration_error_named_by_method_and_path_never_an_outage() {
        let answer = bollard::errors::Error::DockerResponseServerError {
            status_code: 403,
            message: "Request forbidden by administrative rules.".into(),
        };
        let refused = crate::engine::refused::refused(crate::engine::api::EXEC_CREATE, answer)
            .expect("a 403 is a refusal");
        let verify = crate::targets::container::verify::VerifyError::Refused(Box::new(refused));
        let e = Error::Step {
            step: StepError {
                cause: Box::new(verify),
                ..step(false)
            },
            rollback: Rollback::Restored,
        };
        assert_eq!(e.outcome(), Outcome::BadTarget);
        assert!(!e.outcome().is_retryable(), "not retried as an outage");
        assert!(
            e.to_string()
                .contains("refused POST /containers/{id}/exec (403): allow exec"),
            "{e}"
        );
        // An unwrapped 403 of any other call is one too; a 500 is not.
        let plain = |status_code| {
            Error::Target(TargetError::Engine(crate::engine::EngineError::new(
                "inspect container bot",
                bollard::errors::Error::DockerResponseServerError {
                    status_code,
                    message: "forbidden".into(),
                },
            )))
        };
        assert_eq!(plain(403).outcome(), Outcome::BadTarget);
        assert_eq!(plain(500).outcome(), Outcome::EngineUnavailable);
    }

    #[test]
    fn every_outcome_has_a_distinct_label_and_a_documented_exit_code() {
        let labels: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
        let readme = include_str!("../README.md");
        for o in Outcome::ALL {
            assert!(
                readme.contains(&format!("`{}`", o.label())),
                "README lists {}",
                o.label()
            );
            assert!([0, 1, 3, 4, 5, 6, 7].contains(&o.exit_code()));
        }
    }

    fn step(unreachable: bool) -> StepError {
        StepError {
            target: "bot".into(),
            step: "record the verified swap",
            unreachable,
            cause: "injected".into(),
        }
    }

    #[test]
    fn a_replacement_the_engine_refuses_to_create_is_a_bad_target_not_a_rollback() {
        let refused = |rollback| Error::Step {
            step: StepError {
                cause: Box::new(crate::targets::container::step::CopyRefused::new(
                    "engine answered 400: invalid mount config".into(),
                )),
                ..step(false)
            },
            rollback,
        };
        let e = refused(Rollback::NothingToUndo);
        assert_eq!(e.outcome(), Outcome::BadTarget);
        assert_eq!(e.outcome().exit_code(), Outcome::RolledBack.exit_code());
        assert!(e.to_string().ends_with("; nothing was changed"), "{e}");
        // Had anything been created and undone, it would be a rollback all the same.
        assert_eq!(refused(Rollback::Restored).outcome(), Outcome::RolledBack);
        // Any other failed create is still one.
        let other = Error::Step {
            step: step(false),
            rollback: Rollback::NothingToUndo,
        };
        assert_eq!(other.outcome(), Outcome::RolledBack);
    }

    #[test]
    fn an_unfinished_recovery_is_retried_like_a_failed_rollback_and_never_called_rolled_back() {
        let unfinished = |unreachable| Error::Step {
            step: step(unreachable),
            rollback: Rollback::Unfinished,
        };
        assert_eq!(unfinished(false).outcome(), Outcome::RollbackFailed);
        assert_eq!(unfinished(true).outcome(), Outcome::EngineUnavailable);
        assert!(unfinished(false).outcome().is_retryable());
    }

    #[test]
    fn only_a_replacement_failing_its_check_puts_the_rollback_on_the_token() {
        let at = |step: &'static str| Error::Step {
            step: StepError {
                target: "bot".into(),
                step,
                unreachable: false,
                cause: "failed".into(),
            },
            rollback: Rollback::Restored,
        };
        use crate::targets::{container, service};
        assert!(at(container::step::VERIFY).blames_token());
        assert!(at(service::step::VERIFY).blames_token());
        for step in [
            container::step::CREATE,
            container::step::RENAME_OLD,
            container::step::RENAME_NEW,
            container::step::STOP_OLD,
            container::step::START_NEW,
        ] {
            let e = at(step);
            assert_eq!(e.outcome(), Outcome::RolledBack, "{step}");
            assert!(!e.blames_token(), "{step}");
        }
    }
}
