//! token-rotator: rotate a Claude Code OAuth token into running Docker containers,
//! validated before and verified after, with one undo for every failure and every crash.
//!
//! The components, in the order a token flows through them:
//!
//! - [`secret`]: the [`secret::Token`] (never printed, named by its fingerprint), reading
//!   it from a file without blocking, and the redactor for text that comes from containers.
//! - [`validate`]: ask the API whether a token works, before anything is touched.
//! - [`engine`]: the Docker Engine connection, its container operations, the `-tr-` names
//!   and labels token-rotator writes, and the one backoff.
//! - [`targets`]: the [`targets::Target`] trait (key, lock, interrupted, observe, apply,
//!   verify, commit, undo), the per-target lock, and its two kinds: containers (replaced by
//!   a copy, with the containers sharing their namespaces) and Swarm services (updated and
//!   rolled out by Swarm), one rotation driving both through [`targets::any::AnyTarget`].
//! - [`rotation`]: the pipeline that drives targets through a rotation, and its report.
//! - [`error`]: the rotation's error, and the one mapping to an outcome and exit code.
//! - [`daemon`]: `run`: every input (secret and standby files, engine events, bot logs,
//!   timers) goes to one pure state machine, [`daemon::policy::Policy`], whose actions (read,
//!   probe, rotate, announce, publish, schedule) the loop executes.
//! - [`telemetry`]: logs, metrics, notifiers by URL (the webhook among them), status and the
//!   daemon's endpoints; what a person is told is built in [`daemon::notice`].
//! - [`config`] parses the command line once into typed values; [`cli`] runs a command.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod rotation;
pub mod secret;
pub mod targets;
pub mod telemetry;
pub mod validate;
