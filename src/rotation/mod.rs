//! A rotation: the [`pipeline`] that takes one token into a set of targets, and the
//! [`report`] of what it did. [`Rotator`] is the caller's side for containers chosen on
//! the command line (by name or label): it reads the secret file and selects the targets.

pub mod pipeline;
pub mod report;

use std::path::PathBuf;
use std::sync::Arc;

use bollard::Docker;

pub use pipeline::Pipeline;
pub use report::{RotationReport, TargetOutcome, TargetReport};

use crate::engine::names::new_rotation_id;
use crate::error::Error;
use crate::secret::{read_token_async, Token, TokenFormat};
use crate::targets::any::AnyTarget;
use crate::targets::container::select::names_with_env_vars;
use crate::targets::container::{interrupted, select, ContainerConfig, Selector};
use crate::targets::service::ServiceTarget;
use crate::targets::TargetError;

/// Where the secret is and what shape it must have.
#[derive(Debug, Clone)]
pub struct SecretSource {
    /// The secret file.
    pub path: PathBuf,
    /// Accepted token shape.
    pub format: TokenFormat,
}

/// Rotates into the containers named in the config.
#[derive(Debug, Clone)]
pub struct Rotator {
    /// Engine connection.
    pub docker: Docker,
    /// Which containers are targets.
    pub targets: Selector,
    /// How containers are swapped and verified.
    pub container: Arc<ContainerConfig>,
    /// Validation and locks.
    pub pipeline: Pipeline,
    /// The secret file.
    pub secret: SecretSource,
}

impl Rotator {
    /// Reads the secret file and rotates its token.
    pub async fn rotate_file(&self) -> RotationReport {
        match read_token_async(&self.secret.path, self.secret.format).await {
            Ok(token) => {
                tracing::info!(fingerprint = %token.fingerprint(), "read token");
                self.rotate_token(&token).await
            }
            Err(e) => {
                tracing::error!(rule = e.rule(), "secret rejected: {e}");
                RotationReport::failed_before(new_rotation_id(), None, &Error::Secret(e))
            }
        }
    }

    /// The targets' names now, each with the env var that carries its token.
    pub async fn target_names(&self) -> Result<Vec<(String, String)>, TargetError> {
        names_with_env_vars(&self.docker, &self.targets, &self.container.env_var).await
    }

    /// The containers and Swarm services the selector names now, as targets.
    pub async fn select(&self) -> Result<Vec<AnyTarget>, TargetError> {
        let containers = select(&self.docker, &self.targets, self.container.clone()).await?;
        let services = self.targets.service_names(&self.docker).await?;
        let mut all: Vec<AnyTarget> = containers.into_iter().map(AnyTarget::Container).collect();
        all.extend(services.into_iter().map(|name| {
            AnyTarget::Service(ServiceTarget::new(
                self.docker.clone(),
                name,
                self.container.clone(),
            ))
        }));
        Ok(all)
    }

    /// Rotates `token` into the configured containers and services: first the swaps a
    /// crash interrupted among the label-selected ones are finished or undone (their
    /// targets have no container under their names meanwhile), then the targets are
    /// selected and rotated.
    pub async fn rotate_token(&self, token: &Token) -> RotationReport {
        self.rotate_token_since(token, None).await
    }

    /// [`Rotator::rotate_token`], knowing that the token was first deployed at `known`
    /// (the daemon's state): the replacements are labelled with the earliest time known.
    pub async fn rotate_token_since(
        &self,
        token: &Token,
        known: Option<std::time::SystemTime>,
    ) -> RotationReport {
        let rotation = new_rotation_id();
        let (recovered, failed) = self.recover_interrupted().await;
        let mut report = match failed {
            Some(e) => {
                tracing::error!(outcome = e.outcome().label(), "{e}");
                RotationReport::failed_before(rotation, Some(token.fingerprint()), &e)
            }
            None => match self.select().await {
                Ok(targets) => {
                    let pipeline = &self.pipeline;
                    pipeline
                        .rotate_since(&targets, token, rotation, known)
                        .await
                }
                Err(e) => {
                    let e = Error::Target(e);
                    tracing::error!(outcome = e.outcome().label(), "{e}");
                    RotationReport::failed_before(rotation, Some(token.fingerprint()), &e)
                }
            },
        };
        report.recovered.splice(0..0, recovered);
        self.sweep_locks().await;
        report
    }

    /// Removes the lock markers nobody holds any more (a dead rotator's whose target was
    /// removed by hand since, which no rotation would take over; ours whose release
    /// failed). A failure only costs a log line: the next rotation tries again.
    async fn sweep_locks(&self) {
        if let Err(e) = self.pipeline.locker.sweep(&self.docker).await {
            tracing::warn!(
                "cannot look for lock markers left behind: {}",
                crate::engine::describe(&e)
            );
        }
    }

    /// Finishes or undoes every interrupted swap of a label-selected target, before
    /// selection: each under its own lock, those that others' copies follow first, with
    /// the pipeline's one recovery. Returns what it did, and the first error (the others
    /// are still tried: one busy target does not keep the rest from being recovered).
    pub async fn recover_interrupted(&self) -> (Vec<String>, Option<Error>) {
        let required = self.targets.required();
        let names = match interrupted::by_label(&self.docker, &required).await {
            Ok(names) => names,
            Err(e) => return (Vec::new(), Some(Error::Target(e))),
        };
        let (mut recovered, mut failed) = (Vec::new(), None);
        for name in names {
            let one = Selector {
                names: vec![name],
                ..Selector::default()
            };
            let result = match select(&self.docker, &one, self.container.clone()).await {
                Ok(targets) => self.pipeline.recover_interrupted(&targets).await,
                Err(e) => Err(Error::Target(e)),
            };
            match result {
                Ok(lines) => recovered.extend(lines),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        (recovered, failed)
    }
}

#[cfg(test)]
mod pipeline_tests;
