//! Running `--verify-exec`'s command in the replacement through the exec API, through a
//! filtering socket proxy too.
//!
//! An attached start asks the engine to upgrade the connection (`Upgrade: tcp`); a proxy
//! in HTTP mode (HAProxy, the docker-socket-proxy images) does not pass that, the engine
//! answers `200` with a raw stream, and the client gets no upgrade. That is an answer,
//! not an outage: the command is then run again detached and its exit code polled from
//! `GET /exec/{id}/json` (a detached exec has no output to keep), and the client's later
//! checks start detached at once. A call the proxy refuses (403) is a [`Refused`].

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::engine::api::{EXEC_CREATE, EXEC_INSPECT, EXEC_START};
use crate::engine::refused::refused;
use crate::engine::Refused;

/// How the last output is kept: the tail of at most this many bytes.
const KEEP: usize = 64 * 1024;

/// Why the command could not be run (an answer of the engine or the proxy, or none).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The engine, or the proxy, answered with an error, or could not be reached.
    #[error(transparent)]
    Engine(bollard::errors::Error),
    /// The proxy refused one of the exec calls.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The detached command was still running when the wait ran out.
    #[error("the verification command is still running after {0:.0}s")]
    StillRunning(f64),
}

/// How it ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit code (-1 if the engine gives none).
    pub code: i64,
    /// The tail of its output (empty when it ran detached).
    pub output: Vec<u8>,
}

/// How to start the command: attached until an upgrade was refused once.
#[derive(Debug, Default)]
pub struct Mode {
    /// Whether the attach upgrade was refused (start detached from now on).
    pub detached: bool,
}

/// Runs `cmd` in container `id`, waiting at most `wait` for a detached run to end.
pub async fn run(
    docker: &Docker,
    id: &str,
    cmd: &[String],
    mode: &mut Mode,
    wait: Duration,
) -> Result<Finished, ExecError> {
    if !mode.detached {
        match attached(docker, id, cmd).await {
            Err(ExecError::Engine(e)) if is_missing_upgrade(&e) => {
                tracing::info!(
                    container = id,
                    "the engine's socket does not pass the exec's attach upgrade (a socket proxy?): running --verify-exec detached, without its output"
                );
                mode.detached = true;
            }
            other => return other,
        }
    }
    detached(docker, id, cmd, wait).await
}

async fn create(
    docker: &Docker,
    id: &str,
    cmd: &[String],
    attach: bool,
) -> Result<String, ExecError> {
    let options = CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        ..Default::default()
    };
    let exec = docker
        .create_exec(id, options)
        .await
        .map_err(|e| classify(EXEC_CREATE, e))?;
    Ok(exec.id)
}

async fn attached(docker: &Docker, id: &str, cmd: &[String]) -> Result<Finished, ExecError> {
    let exec = create(docker, id, cmd, true).await?;
    let started = docker
        .start_exec(&exec, None)
        .await
        .map_err(|e| classify(EXEC_START, e))?;
    let mut output = Vec::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = started
    {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            output.extend_from_slice(&chunk.into_bytes());
            if output.len() > KEEP {
                output.drain(..output.len() - KEEP);
            }
        }
    }
    let code = exit_code(docker, &exec).await?.1;
    Ok(Finished { code, output })
}

async fn detached(
    docker: &Docker,
    id: &str,
    cmd: &[String],
    wait: Duration,
) -> Result<Finished, ExecError> {
    let exec = create(docker, id, cmd, false).await?;
    let options = StartExecOptions {
        detach: true,
        ..Default::default()
    };
    docker
        .start_exec(&exec, Some(options))
        .await
        .map_err(|e| classify(EXEC_START, e))?;
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(20);
    loop {
        let (running, code) = exit_code(docker, &exec).await?;
        if !running {
            let output = Vec::new();
            return Ok(Finished { code, output });
        }
        if Instant::now() >= deadline {
            return Err(ExecError::StillRunning(wait.as_secs_f64()));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// Whether the exec is still running, and its exit code.
async fn exit_code(docker: &Docker, exec: &str) -> Result<(bool, i64), ExecError> {
    let inspect = docker
        .inspect_exec(exec)
        .await
        .map_err(|e| classify(EXEC_INSPECT, e))?;
    let running = inspect.running.unwrap_or(false);
    Ok((running, inspect.exit_code.unwrap_or(-1)))
}

fn classify(endpoint: crate::engine::api::Endpoint, e: bollard::errors::Error) -> ExecError {
    match refused(endpoint, e) {
        Ok(r) => ExecError::Refused(r),
        Err(e) => ExecError::Engine(e),
    }
}

/// Whether the engine answered an attached start without upgrading the connection
/// (hyper's "no upgrade available"): a proxy in the way, not an outage.
pub fn is_missing_upgrade(e: &bollard::errors::Error) -> bool {
    let bollard::errors::Error::HyperResponseError { err } = e else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(c) = cause {
        if c.to_string().contains("no upgrade") {
            return true;
        }
        cause = c.source();
    }
    false
}
