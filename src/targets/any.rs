//! Either kind of target in one rotation: [`AnyTarget`] dispatches every [`Target`] call
//! to the container or the Swarm service it holds, so the pipeline stays one generic
//! function for both.

use super::container::{ContainerTarget, Inspected};
use super::service::{ServiceTarget, Spec};
use super::{CanaryError, Change, Ctx, Interrupted, Lock, Locker, Observed, Settled};
use super::{StepError, Target, TargetError, UndoError};
use crate::secret::Token;

/// A container or a Swarm service.
#[derive(Debug, Clone)]
pub enum AnyTarget {
    /// A container, replaced by a copy.
    Container(ContainerTarget),
    /// A Swarm service, updated and rolled out by Swarm.
    Service(ServiceTarget),
}

/// What `observe` kept, for the kind that observed it.
#[derive(Debug, Clone)]
pub enum AnyState {
    /// A container's inspect output.
    Container(Inspected),
    /// A service's spec (boxed: a spec is large).
    Service(Box<Spec>),
}

/// `seen` with its state narrowed to one kind (the state is the only part that differs).
fn narrow<S: Clone>(seen: &Observed<AnyState>, state: S) -> Observed<S> {
    seen.with_state(state)
}

impl Target for AnyTarget {
    type State = AnyState;

    fn key(&self) -> &str {
        match self {
            AnyTarget::Container(t) => t.key(),
            AnyTarget::Service(t) => t.key(),
        }
    }

    async fn lock(&self, locker: &Locker) -> Result<Lock, TargetError> {
        match self {
            AnyTarget::Container(t) => t.lock(locker).await,
            AnyTarget::Service(t) => t.lock(locker).await,
        }
    }

    async fn interrupted(&self) -> Result<Option<Interrupted>, TargetError> {
        match self {
            AnyTarget::Container(t) => t.interrupted().await,
            AnyTarget::Service(t) => t.interrupted().await,
        }
    }

    async fn observe(&self, token: &Token) -> Result<Observed<AnyState>, TargetError> {
        Ok(match self {
            AnyTarget::Container(t) => t.observe(token).await?.map_state(AnyState::Container),
            AnyTarget::Service(t) => t
                .observe(token)
                .await?
                .map_state(|s| AnyState::Service(Box::new(s))),
        })
    }

    fn canary_key(&self, seen: &Observed<AnyState>) -> Option<String> {
        match (self, &seen.state) {
            (AnyTarget::Container(t), AnyState::Container(s)) => {
                t.canary_key(&narrow(seen, s.clone()))
            }
            _ => None,
        }
    }

    async fn canary(
        &self,
        seen: &Observed<AnyState>,
        exec: &[String],
        ctx: Ctx<'_>,
    ) -> Result<(), CanaryError> {
        match (self, &seen.state) {
            (AnyTarget::Container(t), AnyState::Container(s)) => {
                t.canary(&narrow(seen, s.clone()), exec, ctx).await
            }
            _ => Ok(()),
        }
    }

    async fn apply(&self, seen: &Observed<AnyState>, ctx: Ctx<'_>) -> Result<Change, StepError> {
        match (self, &seen.state) {
            (AnyTarget::Container(t), AnyState::Container(s)) => {
                t.apply(&narrow(seen, s.clone()), ctx).await
            }
            (AnyTarget::Service(t), AnyState::Service(s)) => {
                t.apply(&narrow(seen, (**s).clone()), ctx).await
            }
            // A target observes its own kind of state: this cannot happen, and changes nothing.
            _ => Err(StepError {
                target: self.key().to_string(),
                step: "apply",
                unreachable: false,
                cause: "the observation is of another kind of target".into(),
            }),
        }
    }

    async fn verify(&self, change: &Change, ctx: Ctx<'_>) -> Result<(), StepError> {
        match self {
            AnyTarget::Container(t) => t.verify(change, ctx).await,
            AnyTarget::Service(t) => t.verify(change, ctx).await,
        }
    }

    async fn commit(&self, change: &Change) -> Result<Settled, StepError> {
        match self {
            AnyTarget::Container(t) => t.commit(change).await,
            AnyTarget::Service(t) => t.commit(change).await,
        }
    }

    async fn undo(&self) -> Result<Settled, UndoError> {
        match self {
            AnyTarget::Container(t) => t.undo().await,
            AnyTarget::Service(t) => t.undo().await,
        }
    }

    fn swapped(&self, change: &Change, settled: &Settled) -> String {
        match self {
            AnyTarget::Container(t) => t.swapped(change, settled),
            AnyTarget::Service(t) => t.swapped(change, settled),
        }
    }
}
