//! A Docker Swarm service as a [`Target`]: the token goes into the service spec's
//! `TaskTemplate.ContainerSpec.Env` through a service update, and Swarm rolls it out with
//! the service's own update policy. Everything else in the spec is sent back as it was read.
//!
//! - apply: one `POST /services/{id}/update` at the spec's version (re-read and retried when
//!   another writer got in first), labelled with the rotation;
//! - verify ([`verify`]): Swarm's `UpdateStatus` reaches `completed`, then every running task
//!   carries the token, and each task container on this node passes the container checks
//!   (settle, health, `--verify-exec`);
//! - commit: a label-only update records the rotation as verified (tasks are not
//!   restarted by it);
//! - undo: `rollback=previous`, Swarm's own return to the spec before the update, for an
//!   update of ours that is not recorded as verified: after a failed step and after a
//!   crash alike. A service is never left paused by us.

pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{Service, ServiceSpec, ServiceUpdateStatusStateEnum as UpdateState};
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptionsBuilder};
use bollard::Docker;

use super::container::spec::replace_env;
use super::container::{ContainerConfig, Order};
use super::{CanaryError, Change, Ctx, Interrupted, Lock, Locker, Observed, Settled, SpecVersion};
use super::{StepError, Target, TargetError, UndoError};
use crate::engine::{describe, is_not_found, is_transport, labels, EngineError, Failure};
use crate::secret::Token;

/// Label on the service spec: the rotation whose update was verified.
pub const VERIFIED: &str = "token-rotator.verified";

/// The steps of a service rotation, as named in errors.
pub mod step {
    /// The service update carrying the token.
    pub const UPDATE: &str = "update the service";
    /// Waiting for Swarm's rollout and checking its tasks.
    pub const VERIFY: &str = "verify the service's tasks";
    /// Recording the verified rotation on the service.
    pub const COMMIT: &str = "record the verified update";
}

/// A service's spec as read, with its version. Its `Debug` never shows the spec (the
/// env holds a token).
#[derive(Clone)]
pub struct Spec {
    /// The service ID.
    pub id: String,
    /// The spec's version index, for the next update.
    pub version: u64,
    /// The spec.
    pub spec: ServiceSpec,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Spec({} v{})",
            crate::engine::short(&self.id),
            self.version
        )
    }
}

/// One Swarm service, by name.
#[derive(Debug, Clone)]
pub struct ServiceTarget {
    docker: Docker,
    name: String,
    /// The lock's name: a container of the same name as the service keeps its own.
    lock_key: String,
    cfg: Arc<ContainerConfig>,
}

impl ServiceTarget {
    /// The service `name`, swapped and verified as `cfg` says.
    pub fn new(docker: Docker, name: String, cfg: Arc<ContainerConfig>) -> Self {
        ServiceTarget {
            docker,
            lock_key: format!("{name}.service"),
            name,
            cfg,
        }
    }

    async fn read(&self) -> Result<Option<(Spec, Option<UpdateState>)>, bollard::errors::Error> {
        read(&self.docker, &self.name).await
    }
}

/// Inspects service `name`: its spec and the state of its last update; `None` if absent.
pub async fn read(
    docker: &Docker,
    name: &str,
) -> Result<Option<(Spec, Option<UpdateState>)>, bollard::errors::Error> {
    match docker
        .inspect_service(name, None::<InspectServiceOptions>)
        .await
    {
        Ok(s) => Ok(Some(split(s))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn split(s: Service) -> (Spec, Option<UpdateState>) {
    let state = s.update_status.and_then(|u| u.state);
    (
        Spec {
            id: s.id.unwrap_or_default(),
            version: s.version.and_then(|v| v.index).unwrap_or_default(),
            spec: s.spec.unwrap_or_default(),
        },
        state,
    )
}

/// The token env var's value in a spec, if set.
pub fn env_value<'a>(spec: &'a ServiceSpec, var: &str) -> Option<&'a str> {
    spec.task_template
        .as_ref()?
        .container_spec
        .as_ref()?
        .env
        .as_ref()?
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix(var)?.strip_prefix('='))
}

fn label<'a>(spec: &'a ServiceSpec, key: &str) -> Option<&'a str> {
    spec.labels.as_ref()?.get(key).map(String::as_str)
}

/// An update of ours that is not recorded as verified.
fn unverified(spec: &ServiceSpec) -> Option<&str> {
    let rotation = label(spec, labels::ROTATION)?;
    (label(spec, VERIFIED) != Some(rotation)).then_some(rotation)
}

fn engine_failed(target: &str, step: &'static str, e: bollard::errors::Error) -> StepError {
    StepError {
        target: target.to_string(),
        step,
        unreachable: is_transport(&e),
        cause: Box::new(EngineError::new(step, e)),
    }
}

/// Sends `edit` of the current spec as an update, at its version; another writer in
/// between (the engine refuses a stale version) makes it read and try again.
/// Returns the spec as it was, and when the update status before this update started.
async fn update(
    docker: &Docker,
    name: &str,
    rollback: bool,
    edit: impl Fn(&mut ServiceSpec),
) -> Result<(Spec, Option<String>), bollard::errors::Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        let service = match docker
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
        {
            Err(e) if is_not_found(&e) => {
                return Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message: format!("service {name} is gone"),
                })
            }
            other => other?,
        };
        let before = service
            .update_status
            .as_ref()
            .and_then(|u| u.started_at.clone());
        let (mut cur, _) = split(service);
        edit(&mut cur.spec);
        let mut opts = UpdateServiceOptionsBuilder::default().version(cur.version as i32);
        if rollback {
            opts = opts.rollback("previous");
        }
        match docker
            .update_service(&cur.id, cur.spec.clone(), opts.build(), None)
            .await
        {
            Ok(_) => return Ok((cur, before)),
            // A stale version ("update out of sequence") is an error answer, not a lost
            // connection: read the spec again, a few times.
            Err(e) if !is_transport(&e) && tries < 5 && !is_not_found(&e) => {
                tracing::debug!(
                    service = name,
                    "service update refused ({}); reading it again",
                    describe(&e)
                );
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Target for ServiceTarget {
    type State = Spec;

    fn key(&self) -> &str {
        &self.name
    }

    async fn lock(&self, locker: &Locker) -> Result<Lock, TargetError> {
        let image = verify::anchor_image(&self.docker, &self.name).await;
        Ok(locker.acquire(&self.docker, &self.lock_key, &image).await?)
    }

    async fn interrupted(&self) -> Result<Option<Interrupted>, TargetError> {
        let found = self
            .read()
            .await
            .map_err(|e| EngineError::new(format!("inspect service {:?}", self.name), e))?;
        let Some((spec, _)) = found else {
            return Ok(None);
        };
        // Ours and never verified: a crash during the rollout or its checks. Undone (Swarm
        // may have paused it meanwhile: a rollback ends that too).
        Ok(unverified(&spec.spec).map(|rotation| Interrupted {
            committed: false,
            change: change(&spec, rotation.to_string(), self.cfg.order),
        }))
    }

    async fn observe(&self, token: &Token) -> Result<Observed<Spec>, TargetError> {
        let found = self
            .read()
            .await
            .map_err(|e| EngineError::new(format!("inspect service {:?}", self.name), e))?;
        let Some((spec, _)) = found else {
            return Err(TargetError::ServiceNotFound(self.name.clone()));
        };
        let current = env_value(&spec.spec, &self.cfg.env_var).map(str::to_string);
        let id = spec.id.clone();
        let spec_labels = spec.spec.labels.clone();
        Ok(
            Observed::new(self.name.clone(), id, true, current.as_deref(), token, spec)
                .deployed_since(spec_labels.as_ref()),
        )
    }

    fn canary_key(&self, _seen: &Observed<Spec>) -> Option<String> {
        None // a canary runs a container of the target's image: containers only, for now
    }

    async fn canary(
        &self,
        _: &Observed<Spec>,
        _: &[String],
        _: Ctx<'_>,
    ) -> Result<(), CanaryError> {
        Ok(())
    }

    async fn apply(&self, _seen: &Observed<Spec>, ctx: Ctx<'_>) -> Result<Change, StepError> {
        let var = self.cfg.env_var.clone();
        let value = ctx.token.expose().to_string();
        let fingerprint = ctx.token.fingerprint().to_string();
        let rotation = ctx.rotation.to_string();
        let first_deployed = humantime::format_rfc3339_seconds(ctx.first_deployed).to_string();
        let start_first = self.cfg.order == Order::StartFirst;
        let (before, status_before) = update(&self.docker, &self.name, false, |spec| {
            let env = spec
                .task_template
                .get_or_insert_with(Default::default)
                .container_spec
                .get_or_insert_with(Default::default)
                .env
                .get_or_insert_with(Vec::new);
            replace_env(env, &var, &value);
            let l = spec.labels.get_or_insert_with(Default::default);
            l.insert(labels::ROTATION.into(), rotation.clone());
            l.insert(labels::FINGERPRINT.into(), fingerprint.clone());
            l.insert(labels::FIRST_DEPLOYED.into(), first_deployed.clone());
            if start_first {
                spec.update_config
                    .get_or_insert_with(Default::default)
                    .order = Some(bollard::models::ServiceSpecUpdateConfigOrderEnum::START_FIRST);
            }
        })
        .await
        .map_err(|e| engine_failed(&self.name, step::UPDATE, e))?;
        super::fault::point("service-updated")
            .await
            .map_err(|e| StepError {
                target: self.name.clone(),
                step: step::UPDATE,
                unreachable: false,
                cause: Box::new(e),
            })?;
        tracing::debug!(service = %self.name, version = before.version, "service updated; Swarm rolls it out");
        let mut c = change(&before, ctx.rotation.to_string(), self.cfg.order);
        c.mark = Some(status_before.unwrap_or_default());
        // For the report only: what the update made of the spec (a failed read is no
        // reason to undo it).
        let after = self.read().await.ok().flatten().map(|(s, _)| s.version);
        c.spec_version = Some(SpecVersion {
            from: before.version,
            to: after,
        });
        Ok(c)
    }

    async fn verify(&self, change: &Change, ctx: Ctx<'_>) -> Result<(), StepError> {
        verify::rollout(
            &self.docker,
            &self.name,
            change.mark.as_deref(),
            &self.cfg,
            ctx,
        )
        .await
        .map_err(|e| StepError {
            target: self.name.clone(),
            step: step::VERIFY,
            unreachable: e.is_engine_unreachable(),
            cause: Box::new(e),
        })
    }

    async fn commit(&self, change: &Change) -> Result<Settled, StepError> {
        let rotation = change.rotation.clone();
        update(&self.docker, &self.name, false, |spec| {
            spec.labels
                .get_or_insert_with(Default::default)
                .insert(VERIFIED.into(), rotation.clone());
        })
        .await
        .map_err(|e| engine_failed(&self.name, step::COMMIT, e))?;
        Ok(Settled {
            actions: Vec::new(),
            warning: None,
        })
    }

    async fn undo(&self) -> Result<Settled, UndoError> {
        let fail = |what: &str, e: bollard::errors::Error| UndoError {
            target: self.name.clone(),
            what: what.to_string(),
            unreachable: is_transport(&e),
            cause: Box::new(Failure(e)),
        };
        let found = self
            .read()
            .await
            .map_err(|e| fail("inspect the service", e))?;
        let Some((spec, _)) = found else {
            return Ok(Settled::default());
        };
        let Some(rotation) = unverified(&spec.spec).map(str::to_string) else {
            return Ok(Settled::default()); // nothing of ours to undo
        };
        update(&self.docker, &self.name, true, |_| {})
            .await
            .map_err(|e| fail("roll the service back (rollback=previous)", e))?;
        let window = self.cfg.verify_timeout.max(Duration::from_secs(60));
        verify::rolled_back(&self.docker, &self.name, window)
            .await
            .map_err(|e| UndoError {
                target: self.name.clone(),
                what: "wait for Swarm's rollback".into(),
                unreachable: e.is_engine_unreachable(),
                cause: Box::new(e),
            })?;
        let action = format!(
            "rolled the service back to its spec before rotation {rotation} (rollback=previous)"
        );
        Ok(Settled {
            actions: vec![action],
            warning: None,
        })
    }

    fn swapped(&self, _change: &Change, _settled: &Settled) -> String {
        format!(
            "updated service {}: Swarm rolled it out and every running task carries the new token",
            self.name
        )
    }
}

fn change(spec: &Spec, rotation: String, order: Order) -> Change {
    Change {
        rotation,
        old_id: spec.id.clone(),
        new_id: spec.id.clone(),
        old_running: true,
        order: order.label(),
        order_note: None,
        note: None,
        dependents: Vec::new(),
        mark: None,
        spec_version: None,
    }
}
