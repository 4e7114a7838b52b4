//! The steps of a swap as errors name them, and the errors of a failed step or undo: the
//! vocabulary that apply, verify, commit, undo and the dependents' swaps share.

use std::time::Duration;

use crate::engine::{describe, is_transport, retrying, Failure};
use crate::targets::{fault, Ctx, StepError, UndoError};

/// Building the replacement's configuration.
pub const PREPARE: &str = "prepare the replacement";
/// `POST /containers/create`.
pub const CREATE: &str = "create the replacement";
/// Connecting networks beyond the first.
pub const CONNECT: &str = "connect the replacement's networks";
/// Stopping the old container.
pub const STOP_OLD: &str = "stop the old container";
/// Renaming the old container aside.
pub const RENAME_OLD: &str = "rename the old container aside";
/// Giving the replacement the original name.
pub const RENAME_NEW: &str = "give the replacement the original name";
/// Starting the replacement.
pub const START_NEW: &str = "start the replacement";
/// Verifying the replacement.
pub const VERIFY: &str = "verify the replacement";
/// Recording that the replacement was verified.
pub const COMMIT: &str = "record the verified swap";

/// A failed step, its cause kept.
pub(crate) fn failed<E>(target: &str, step: &'static str, unreachable: bool, cause: E) -> StepError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StepError {
        target: target.to_string(),
        step,
        unreachable,
        cause: Box::new(cause),
    }
}

/// An engine error at `step` (its message redacted: the engine may quote what it was given).
pub(super) fn engine_at<'a>(
    target: &'a str,
    step: &'static str,
    ctx: Ctx<'a>,
) -> impl Fn(bollard::errors::Error) -> StepError + 'a {
    move |e| {
        let unreachable = is_transport(&e);
        let text = ctx.redactor.redact(&describe(&e));
        failed(target, step, unreachable, Redacted { text })
    }
}

/// An engine error whose message went through the redactor. The engine's own error is not
/// kept as the source: its text may quote what it was given (the env, with a token), and a
/// later `{:#}` of the chain would print it.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct Redacted {
    text: String,
}

impl Redacted {
    /// Text that has been through the redactor already (or holds nothing secret).
    pub fn new(text: String) -> Self {
        Redacted { text }
    }
}

/// The engine refused to create the replacement (it answered, with an error): the target
/// cannot be copied as it is configured (a bind mount's source is gone, its image or a
/// network no longer exists). Nothing was created.
#[derive(Debug, thiserror::Error)]
#[error("{text}; the container cannot be copied as it is configured")]
pub struct CopyRefused {
    text: String,
}

impl CopyRefused {
    /// The engine's answer, through the redactor already.
    pub fn new(text: String) -> Self {
        CopyRefused { text }
    }
}

/// A fault point at `step` (for tests that crash a swap there).
pub(super) async fn point(
    target: &str,
    step: &'static str,
    at: &'static str,
) -> Result<(), StepError> {
    fault::point(at)
        .await
        .map_err(|e| failed(target, step, false, e))
}

/// An engine error while finishing or undoing a swap, kept as the cause.
pub(super) fn undo_error(target: &str, what: &str, e: bollard::errors::Error) -> UndoError {
    UndoError {
        target: target.to_string(),
        what: what.to_string(),
        unreachable: is_transport(&e),
        cause: Box::new(Failure(e)),
    }
}

/// An engine call while finishing or undoing a swap of `target`: retried while the engine
/// is unreachable (for `window`); a failure is an [`UndoError`] saying `what`.
pub(super) async fn undoing<T, Fut>(
    target: &str,
    window: Duration,
    what: &str,
    op: impl FnMut() -> Fut,
) -> Result<T, UndoError>
where
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    retrying(window, what, op)
        .await
        .map_err(|e| undo_error(target, what, e))
}
