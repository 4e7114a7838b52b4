//! A container as a [`Target`]: replaced by a copy with the new env value, since the
//! engine cannot change a running container's env.
//!
//! - [`observe`]: resolve the name, inspect, refuse what cannot be swapped safely;
//! - [`spec`]: the replacement's configuration, derived from the old container's;
//! - [`volumes`]: its volumes: anonymous ones re-attached, `--volumes-from` ones left to it;
//! - [`order`]: what keeps a swap from running start-first;
//! - [`apply`]: create, rename aside, stop, start, writing progress into names and labels;
//! - [`verify`]: the replacement runs, is healthy, carries the token, passes `--verify-exec`;
//! - [`commit`]: record a verified swap, then finish it;
//! - [`undo`]: finish or undo a swap from what the engine shows (the one undo);
//! - [`dependents`]: the containers sharing a target's namespaces, which follow its swap;
//! - [`step`]: the steps as errors name them, shared by all of the above.

pub mod apply;
pub mod canary;
pub mod commit;
pub mod compat;
pub mod dependents;
pub mod exec;
pub mod interrupted;
pub mod observe;
pub mod order;
pub mod select;
pub mod spec;
pub mod step;
pub mod undo;
pub mod verify;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;

use super::{CanaryError, TargetError, UndoError};
use super::{Change, Ctx, Interrupted, Lock, Locker, Observed, Settled, StepError, Target};
use crate::engine::short;
use crate::secret::Token;

pub use observe::{env_value, Inspected};
pub use select::{select, Selector};

/// How containers are swapped and verified (the same for every container target).
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// Env var carrying the token.
    pub env_var: String,
    /// How long the replacement must stay running.
    pub settle: Duration,
    /// Give up verifying (and roll back) after this long.
    pub verify_timeout: Duration,
    /// Command run inside the replacement, already split into words.
    pub verify_exec: Option<Vec<String>>,
    /// How long to ride out an unreachable engine while finishing or undoing a swap.
    pub engine_retry: Duration,
    /// Which runs first: the replacement, or the stop of the old container.
    pub order: Order,
}

/// The order of a swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Stop the old container, then start the replacement (the default; a short downtime).
    StopFirst,
    /// Start and verify the replacement while the old container still runs; only then stop
    /// the old one (no downtime; needs two copies to be able to run at once).
    StartFirst,
}

impl Order {
    /// `stop-first` or `start-first`.
    pub fn label(self) -> &'static str {
        match self {
            Order::StopFirst => "stop-first",
            Order::StartFirst => "start-first",
        }
    }
}

/// One target container, by its own name.
#[derive(Debug, Clone)]
pub struct ContainerTarget {
    docker: Docker,
    /// The name or ID as the user gave it.
    requested: String,
    /// The container's own name (without `/`), also when given by ID or found mid-swap.
    name: String,
    /// A local image to create the lock marker from.
    anchor_image: String,
    cfg: Arc<ContainerConfig>,
    /// The scan for the containers sharing its namespaces (one for all targets).
    scan: dependents::SharedScan,
    /// What the scan found for it, known once it is locked.
    dependents: std::sync::OnceLock<Vec<dependents::Dependent>>,
}

impl ContainerTarget {
    /// The containers sharing its namespaces (none before it is locked).
    fn dependents(&self) -> &[dependents::Dependent] {
        self.dependents.get().map(Vec::as_slice).unwrap_or_default()
    }
}

impl Target for ContainerTarget {
    type State = Inspected;

    fn key(&self) -> &str {
        &self.name
    }

    async fn lock(&self, locker: &Locker) -> Result<Lock, TargetError> {
        // The scan for dependents reads only: it runs beside the marker's create.
        let acquire = locker.acquire(&self.docker, &self.name, &self.anchor_image);
        let (lock, found) = tokio::join!(acquire, self.scan.of(&self.name));
        let lock = lock?;
        match found {
            Ok(found) => {
                let _ = self.dependents.set(found);
                Ok(lock)
            }
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    async fn interrupted(&self) -> Result<Option<Interrupted>, TargetError> {
        undo::interrupted(&self.docker, &self.name, self.cfg.engine_retry).await
    }

    async fn observe(&self, token: &Token) -> Result<Observed<Inspected>, TargetError> {
        observe::observe(
            &self.docker,
            &self.requested,
            &self.name,
            &self.cfg.env_var,
            self.cfg.order,
            token,
        )
        .await
    }

    fn canary_key(&self, seen: &Observed<Inspected>) -> Option<String> {
        seen.state.0.image.clone()
    }

    async fn canary(
        &self,
        seen: &Observed<Inspected>,
        exec: &[String],
        ctx: Ctx<'_>,
    ) -> Result<(), CanaryError> {
        canary::run(&self.docker, seen, &self.cfg, exec, ctx).await
    }

    async fn apply(&self, seen: &Observed<Inspected>, ctx: Ctx<'_>) -> Result<Change, StepError> {
        let has = !self.dependents().is_empty();
        let mut change = apply::apply(&self.docker, seen, &self.cfg, has, ctx).await?;
        // Those sharing its namespaces follow it onto the replacement; a failure here is
        // undone with the target, by the same undo.
        for dep in self.dependents() {
            let d = dependents::apply(&self.docker, &self.name, dep, &change.new_id, ctx).await?;
            change.dependents.push(d);
        }
        Ok(change)
    }

    async fn verify(&self, change: &Change, ctx: Ctx<'_>) -> Result<(), StepError> {
        verify::verify_change(&self.docker, &self.name, change, &self.cfg, ctx).await?;
        for dep in &change.dependents {
            dependents::verify(&self.docker, &self.name, dep).await?;
        }
        Ok(())
    }

    async fn commit(&self, change: &Change) -> Result<Settled, StepError> {
        commit::commit(&self.docker, &self.name, change, self.cfg.engine_retry).await
    }

    async fn undo(&self) -> Result<Settled, UndoError> {
        undo::settle(&self.docker, &self.name, self.cfg.engine_retry).await
    }

    fn swapped(&self, change: &Change, settled: &Settled) -> String {
        let (new, old) = (short(&change.new_id), short(&change.old_id));
        let mut line = match settled.warning {
            None => format!(
                "swapped {}: replacement {new} verified, old container {old} removed",
                self.name
            ),
            Some(_) => format!(
                "swapped {}: replacement {new} verified, old container {old} not removed yet",
                self.name
            ),
        };
        for d in &change.dependents {
            line.push_str(&format!(
                "; {} (shares its namespaces) recreated onto it",
                d.name
            ));
        }
        line
    }
}
