//! Targets: what a token is rotated into, behind one interface the pipeline drives.
//!
//! A [`Target`] has a key (its lock, metric label and report name) and the steps of a
//! change: find an interrupted one, observe, apply, verify, commit, undo. Commit and undo
//! are driven by what the engine shows, so the same code finishes or undoes a change
//! after a failed step and after a crash. Two kinds implement it: containers
//! ([`container`]) and Swarm services ([`service`]); [`any::AnyTarget`] holds either, so
//! one rotation can take both.

pub mod any;
pub mod container;
pub mod fault;
pub mod lock;
pub mod service;

use std::collections::HashMap;
use std::future::Future;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use crate::engine::{labels, EngineError};
use crate::secret::{Fingerprint, Redactor, Token};

pub use lock::{Lock, LockError, Locker};

/// What one change needs to know besides the target.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The token going in.
    pub token: &'a Token,
    /// The rotation's ID (written into names and labels).
    pub rotation: &'a str,
    /// Removes every known token from text that comes from the target.
    pub redactor: &'a Redactor,
    /// When the token going in was first deployed (written as a label with it).
    pub first_deployed: SystemTime,
}

/// What a target carries now, and what the change needs to know of it (`state`).
pub struct Observed<S> {
    /// The target's own name.
    pub name: String,
    /// Its engine ID.
    pub id: String,
    /// Fingerprint of the token it carries, if any.
    pub current: Option<Fingerprint>,
    /// Whether that is exactly the new token (full SHA-256 comparison).
    pub up_to_date: bool,
    /// Whether it runs (a stopped target stays stopped).
    pub running: bool,
    /// Variables set in it that take precedence over the token in Claude Code.
    pub shadowed_by: Vec<&'static str>,
    /// When the token it carries was first deployed, from its labels (only when they
    /// name that token's fingerprint).
    pub first_deployed: Option<SystemTime>,
    /// Kind-specific state for `apply` (a container's inspect output).
    pub state: S,
    current_value: Option<SecretString>,
}

impl<S> Observed<S> {
    /// The same observation with another kind of state (for [`any::AnyTarget`]).
    pub fn map_state<T>(self, f: impl FnOnce(S) -> T) -> Observed<T> {
        Observed {
            name: self.name,
            id: self.id,
            current: self.current,
            up_to_date: self.up_to_date,
            running: self.running,
            shadowed_by: self.shadowed_by,
            first_deployed: self.first_deployed,
            state: f(self.state),
            current_value: self.current_value,
        }
    }

    /// A copy of the observation carrying `state` instead.
    pub fn with_state<T>(&self, state: T) -> Observed<T> {
        Observed {
            name: self.name.clone(),
            id: self.id.clone(),
            current: self.current.clone(),
            up_to_date: self.up_to_date,
            running: self.running,
            shadowed_by: self.shadowed_by.clone(),
            first_deployed: self.first_deployed,
            state,
            current_value: self.current_value.clone(),
        }
    }

    /// An observation; `current_value` is the secret the target carries now.
    pub fn new(
        name: String,
        id: String,
        running: bool,
        current_value: Option<&str>,
        token: &Token,
        state: S,
    ) -> Self {
        Observed {
            name,
            id,
            current: current_value.map(Fingerprint::of),
            up_to_date: current_value.is_some_and(|v| token.matches(v)),
            running,
            shadowed_by: Vec::new(),
            first_deployed: None,
            state,
            current_value: current_value.map(|v| SecretString::from(v.to_string())),
        }
    }

    /// Reads when its token was first deployed from its labels: only if they name the
    /// fingerprint of the token it carries (labels copied from elsewhere say nothing), and
    /// only a valid RFC 3339 time.
    pub fn deployed_since(mut self, labels: Option<&HashMap<String, String>>) -> Self {
        let get = |key| labels.and_then(|l| l.get(key)).map(String::as_str);
        let ours = matches!((get(labels::FINGERPRINT), &self.current), (Some(l), Some(c)) if l == c.as_str());
        self.first_deployed = get(labels::FIRST_DEPLOYED)
            .filter(|_| ours)
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        self
    }

    /// The secret it carries now (for the redactor only).
    pub fn current_secret(&self) -> Option<&str> {
        self.current_value.as_ref().map(|s| s.expose_secret())
    }
}

impl<S> std::fmt::Debug for Observed<S> {
    // Never the state: a container's inspect output holds its env, and with it a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("current", &self.current)
            .field("up_to_date", &self.up_to_date)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// A change applied and not yet committed.
#[derive(Debug, Clone)]
pub struct Change {
    /// The rotation that made it.
    pub rotation: String,
    /// What is being replaced (a container ID).
    pub old_id: String,
    /// Its replacement (empty when recovered from a crash and not needed).
    pub new_id: String,
    /// Whether the target ran before the change (a stopped one is only checked, not started).
    pub old_running: bool,
    /// The order used (`stop-first`, `start-first`), and why, when it is not the one asked.
    pub order: &'static str,
    /// Why the order asked for could not be used, if so.
    pub order_note: Option<String>,
    /// Something the report should say about the replacement (e.g. that it names its
    /// image by ID because the target's tag moved).
    pub note: Option<String>,
    /// Containers sharing the target's namespaces, recreated onto its replacement.
    pub dependents: Vec<DependentChange>,
    /// What a later step compares against, for kinds that need it (a service: when the
    /// update status before ours started, so that a stale status is not taken for ours).
    pub mark: Option<String>,
    /// What changed, for a Swarm service (it keeps its ID): its spec version.
    pub spec_version: Option<SpecVersion>,
}

/// A Swarm service's spec version before and after the update that carried the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SpecVersion {
    /// The version the update was made against.
    pub from: u64,
    /// The version after it (`None`: it could not be read after the update).
    pub to: Option<u64>,
}

/// A container that shares a target's namespaces, recreated onto the target's replacement
/// as part of the same swap (and undone with it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DependentChange {
    /// Its name.
    pub name: String,
    /// The container it was.
    pub old_id: String,
    /// Its copy, pointed at the replacement.
    pub new_id: String,
    /// Whether it ran (a stopped one gets a stopped copy).
    #[serde(skip)]
    pub running: bool,
}

/// An unfinished change the engine shows.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// Whether it had been verified and committed (finish it) or not (undo it).
    pub committed: bool,
    /// The change as far as the engine tells.
    pub change: Change,
}

/// What finishing or undoing a change did.
#[derive(Debug, Default, Clone)]
pub struct Settled {
    /// One line per action, for the report.
    pub actions: Vec<String>,
    /// A problem that did not undo the outcome (a leftover the next run removes).
    pub warning: Option<String>,
}

/// A target cannot be rotated; nothing has been touched.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No such target.
    #[error("target container {0:?} does not exist: check the name with `docker ps -a`")]
    NotFound(String),
    /// An ID prefix that matches several containers.
    #[error("target container {0:?} matches more than one container (an ID prefix?): use its full name or ID")]
    Ambiguous(String),
    /// The target is the rotator's own container.
    #[error(
        "target container {0:?} is the container token-rotator runs in: it cannot replace itself"
    )]
    IsSelf(String),
    /// The target is removed by the engine as soon as it stops, and this swap would stop it
    /// before its replacement is verified.
    #[error("target container {name:?} has AutoRemove (--rm) set: stopping it deletes it; {why}")]
    AutoRemove {
        /// The target.
        name: String,
        /// Why it cannot be swapped safely, and what would do it.
        why: String,
    },
    /// The name given is one of the rotator's temporary containers.
    #[error("target container {0:?} is a temporary container of an unfinished token-rotator swap; name the original container instead")]
    SwapLeftover(String),
    /// No Swarm service of that name (or this engine is no Swarm manager).
    #[error("target service {0:?} does not exist: check the name with `docker service ls` on a Swarm manager (token-rotator must talk to a manager's engine)")]
    ServiceNotFound(String),
    /// The target is paused: a replacement would have to run (to be verified) while the
    /// operator wants it frozen.
    #[error("target container {0:?} is paused: its replacement would have to run to be verified; `docker unpause` it to rotate it (and pause it again after), nothing was touched")]
    Paused(String),
    /// A label on the target that token-rotator reads is malformed.
    #[error("target container {name:?} has a malformed label {label}: {why}")]
    BadLabel {
        /// The target.
        name: String,
        /// The label.
        label: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The target's configuration cannot be copied.
    #[error("target container {name:?} cannot be copied: {reason}")]
    Uncopyable {
        /// The target.
        name: String,
        /// What is missing.
        reason: String,
    },
    /// Another rotator holds the target's lock, or the lock could not be taken.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The one scan for containers sharing the targets' namespaces failed (shared by every
    /// target of the rotation, so each keeps the same error with its whole cause).
    #[error(transparent)]
    Scan(std::sync::Arc<EngineError>),
    /// An interrupted change could not be finished or undone.
    #[error(transparent)]
    Undo(#[from] UndoError),
}

/// A step of a change failed. The pipeline undoes the change after this.
#[derive(Debug, thiserror::Error)]
#[error("could not {step} of {target}: {cause}")]
pub struct StepError {
    /// The target.
    pub target: String,
    /// The step, as a phrase ("start the replacement").
    pub step: &'static str,
    /// Whether the engine could not be reached (the token is not to blame: retry later).
    pub unreachable: bool,
    /// Why.
    #[source]
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

impl StepError {
    /// Whether the engine refused to create the target's copy: the target cannot be
    /// swapped as it is (see [`container::step::CopyRefused`]).
    pub fn copy_refused(&self) -> bool {
        self.cause.is::<container::step::CopyRefused>()
    }

    /// Whether the token may be what failed: only the check of the replacement with it
    /// (its start, its authentication, its health) can say so. Any other step failing
    /// (a name taken by a container run by hand, the old container gone) is the target's
    /// or the engine's doing.
    pub fn blames_token(&self) -> bool {
        self.step == container::step::VERIFY || self.step == service::step::VERIFY
    }
}

/// The canary refused the token: the bot's own client, in the bot's own image, could not
/// use it. Nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// It exited non-zero.
    #[error("the canary of {target} (image {image}) exited {code}: the bot's own client does not work with this token{output}; no container was touched")]
    Failed {
        /// The target whose image it ran.
        target: String,
        /// Short image ID.
        image: String,
        /// Its exit code.
        code: i64,
        /// Its last output lines (redacted), prefixed with ": ".
        output: String,
    },
    /// It did not exit within the verify timeout (it was killed).
    #[error("the canary of {target} (image {image}) did not exit within {secs}s{output}; no container was touched")]
    TimedOut {
        /// The target whose image it ran.
        target: String,
        /// Short image ID.
        image: String,
        /// The timeout.
        secs: u64,
        /// Its last output lines (redacted), prefixed with ": ".
        output: String,
    },
    /// The engine could not run it.
    #[error("could not run the canary of {target}: {reason}; no container was touched")]
    Engine {
        /// The target.
        target: String,
        /// Whether the engine could not be reached.
        unreachable: bool,
        /// Why (redacted).
        reason: String,
    },
}

/// Finishing or undoing a change failed; the next run picks it up from the engine.
#[derive(Debug, thiserror::Error)]
#[error("could not {what} of {target}: {cause}; the next `token-rotator rotate` or `run` finishes the recovery from the names and labels in the engine (or check the container by hand)")]
pub struct UndoError {
    /// The target.
    pub target: String,
    /// The action that failed.
    pub what: String,
    /// Whether the engine could not be reached.
    pub unreachable: bool,
    /// Why.
    #[source]
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

/// Something a token can be rotated into: a container or a Swarm service.
///
/// The pipeline calls, per target: [`lock`](Target::lock), [`interrupted`](Target::interrupted)
/// (then `commit` or `undo` it), [`observe`](Target::observe), and, once the token is
/// validated, [`apply`](Target::apply), [`verify`](Target::verify), then
/// [`commit`](Target::commit) or [`undo`](Target::undo).
pub trait Target: Send + Sync {
    /// What `observe` keeps for `apply`.
    type State: Send + Sync;

    /// The target's name: its lock, its metric label, its line in the report.
    fn key(&self) -> &str;

    /// Takes the target's lock (waits for a live holder, takes over a dead one's).
    fn lock(&self, locker: &Locker) -> impl Future<Output = Result<Lock, TargetError>> + Send;

    /// An unfinished change the engine shows, if any.
    fn interrupted(&self) -> impl Future<Output = Result<Option<Interrupted>, TargetError>> + Send;

    /// What the target carries now. Refuses a target that cannot be changed safely.
    fn observe(
        &self,
        token: &Token,
    ) -> impl Future<Output = Result<Observed<Self::State>, TargetError>> + Send;

    /// The image (or other key) whose canary proves the token for this target; targets
    /// with the same key share one canary. `None`: this kind has no canary.
    fn canary_key(&self, seen: &Observed<Self::State>) -> Option<String>;

    /// Runs `exec` with the new token in a throwaway copy of the target (its image, env,
    /// user and network, nothing else), before anything is touched; removed on every path.
    fn canary(
        &self,
        seen: &Observed<Self::State>,
        exec: &[String],
        ctx: Ctx<'_>,
    ) -> impl Future<Output = Result<(), CanaryError>> + Send;

    /// Puts the token in. On error the pipeline calls [`undo`](Target::undo).
    fn apply(
        &self,
        seen: &Observed<Self::State>,
        ctx: Ctx<'_>,
    ) -> impl Future<Output = Result<Change, StepError>> + Send;

    /// Proves the change works. On error the pipeline calls [`undo`](Target::undo).
    fn verify(
        &self,
        change: &Change,
        ctx: Ctx<'_>,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Records the change as verified, then finishes it. An error means nothing was
    /// recorded: the pipeline undoes the change.
    fn commit(&self, change: &Change) -> impl Future<Output = Result<Settled, StepError>> + Send;

    /// Undoes whatever unverified change the engine shows.
    fn undo(&self) -> impl Future<Output = Result<Settled, UndoError>> + Send;

    /// What a swap that was verified and committed did, in words, for the one log line
    /// that says so (no token: the pipeline adds the fingerprint as a field).
    fn swapped(&self, change: &Change, settled: &Settled) -> String {
        let _ = (change, settled);
        format!(
            "swapped {}: the change was verified and committed",
            self.key()
        )
    }
}
