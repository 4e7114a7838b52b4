//! token-rotator: rotate a Claude Code OAuth token into running Docker containers,
//! validated before and verified after, with rollback.
//!
//! The data flows through one module per stage:
//!
//! - [`watch`]: notice that the secret file may have changed (directory watch, debounce, poll).
//! - [`secret`]: read the secret file and normalize it into a [`secret::Token`]
//!   (whitespace stripped, shape checked, fingerprinted; never printed).
//! - [`validate`]: ask the API whether the token works before anything is touched.
//! - [`plan`]: resolve the target containers and decide which need the token, after
//!   [`lock`] has locked them and [`recover`] has finished or undone any swap a crash
//!   interrupted.
//! - [`spec`]: derive each replacement's configuration from the old container's.
//! - [`swap`]: create, rename aside, stop, start; roll back on any failure.
//! - [`verify`]: prove the replacement is up and carries the new credential.
//! - [`report`]: what a rotation did, as text, JSON and an exit code; [`metrics`],
//!   [`webhook`] and [`status`] carry it further.
//!
//! [`rotate`] runs those stages once; [`daemon`] runs them on every change, with
//! [`http`] serving health, metrics and status and [`signal`] ending it; [`config`] is the
//! command line, [`docker`] the
//! engine connection and the labels written on containers, [`logging`] the log set-up
//! that keeps dependencies from printing container env.

pub mod config;
pub mod daemon;
pub mod docker;
pub mod http;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod recover;
pub mod report;
pub mod rotate;
pub mod secret;
pub mod signal;
pub mod spec;
pub mod status;
pub mod swap;
pub mod validate;
pub mod verify;
pub mod watch;
pub mod webhook;
