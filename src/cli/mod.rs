//! The command bodies: each builds its parts from the parsed config and returns the
//! process exit code.

use std::sync::Arc;

use anyhow::Context;

use crate::config::{CheckArgs, HealthcheckArgs, RotateArgs, RunArgs, SecretArgs, StatusArgs};
use crate::config::{Switch, ValidateMode};
use crate::daemon::store::Store;
use crate::daemon::watch::WatchConfig;
use crate::daemon::DaemonConfig;
use crate::engine::names::new_rotation_id;
use crate::engine::{Backoff, ConnectError};
use crate::error::Error;
use crate::rotation::{Pipeline, RotationReport, Rotator, SecretSource};
use crate::secret::read_token_async;
use crate::targets::container::ContainerConfig;
use crate::targets::Locker;
use crate::telemetry::notify::{Notifiers, NotifyUrl};
use crate::telemetry::Shared;
use crate::validate::{Validator, ValidatorConfig, Verdict};
use std::time::Duration;

/// Exit code when the daemon cannot start serving (its `--listen` address is taken).
pub const EXIT_LISTEN: u8 = 2;

fn validator(args: &SecretArgs) -> anyhow::Result<Option<Validator>> {
    if args.validate == ValidateMode::None {
        return Ok(None);
    }
    let cfg = ValidatorConfig {
        base_url: args.api_base_url.clone(),
        model: args.probe_model.clone(),
        request_timeout: args.validate_timeout,
        deadline: args.validate_deadline,
    };
    Ok(Some(Validator::new(cfg)?))
}

/// `check`: read and validate the token; print its fingerprint and the verdict.
pub async fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let file = &args.secret.file;
    let token = match read_token_async(&file.secret_file, file.token_format).await {
        Ok(t) => t,
        Err(e) => {
            println!("invalid: {e}");
            return Ok(1);
        }
    };
    let verdict = match validator(&args.secret)? {
        Some(v) => v.validate(&token).await,
        None => Verdict::Skipped,
    };
    println!("{} {verdict}", token.fingerprint());
    Ok(match verdict {
        Verdict::Valid { .. } | Verdict::Skipped => 0,
        Verdict::Invalid { .. } => 1,
        Verdict::Inconclusive { .. } => 3,
    })
}

fn rotator(docker: bollard::Docker, args: &RotateArgs) -> anyhow::Result<Rotator> {
    Ok(Rotator {
        docker,
        targets: args.targets.selector(),
        container: Arc::new(ContainerConfig {
            env_var: args.targets.env_var.clone(),
            settle: args.settle,
            verify_timeout: args.verify_timeout,
            verify_exec: args.verify_exec.clone().map(|c| c.0),
            engine_retry: args.engine_retry,
            order: args.order,
        }),
        pipeline: Pipeline {
            validator: validator(&args.secret)?,
            locker: Locker::new(args.lock_timeout, args.lock_wait),
            canary: args.canary_command().map_err(anyhow::Error::msg)?,
            parallel: usize::from(args.parallel),
            max_failures: args.max_failures,
            stop: None,
        },
        secret: SecretSource {
            path: args.secret.file.secret_file.clone(),
            format: args.secret.file.token_format,
        },
    })
}

fn print_report(report: &RotationReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// Connects to the engine, or says why not and returns the exit code.
async fn engine() -> Result<bollard::Docker, u8> {
    crate::engine::connect().await.map_err(|e| {
        let e = Error::Connect(e);
        eprintln!("error: {e}");
        e.outcome().exit_code()
    })
}

/// `rotate`: one rotation of the secret file's token.
pub async fn rotate(args: RotateArgs) -> anyhow::Result<u8> {
    let report = match crate::engine::connect().await {
        Ok(docker) => rotator(docker, &args)?.rotate_file().await,
        Err(e) => {
            let e = Error::Connect(e);
            eprintln!("error: {e}");
            RotationReport::failed_before(new_rotation_id(), None, &e)
        }
    };
    print_report(&report, args.json)?;
    Ok(report.exit_code())
}

/// `run`: the daemon, serving on `listener` (bound by `main` before anything else).
pub async fn run(args: RunArgs, listener: Option<std::net::TcpListener>) -> anyhow::Result<u8> {
    let listener = listener
        .map(tokio::net::TcpListener::from_std)
        .transpose()
        .context("--listen")?;
    let (store, restored) = open_state(args.state_dir.as_deref())?;
    let cfg = DaemonConfig {
        store,
        restored,
        watch: WatchConfig {
            path: args.rotate.secret.file.secret_file.clone(),
            debounce: args.debounce,
            poll_interval: (!args.poll_interval.is_zero()).then_some(args.poll_interval),
        },
        standby: args.standby_file.clone().map(|path| WatchConfig {
            path,
            debounce: args.debounce,
            poll_interval: (!args.poll_interval.is_zero()).then_some(args.poll_interval),
        }),
        live_probe_interval: (!args.live_probe_interval.is_zero())
            .then_some(args.live_probe_interval),
        log_patterns: (args.log_watch == Switch::On)
            .then(|| crate::daemon::logs::patterns(&args.reject_patterns)),
        retired: crate::daemon::WatchPlan {
            schedule: args.retired_probe_schedule.0.clone(),
            max: args.retired_watch_max,
            alert_after: args.retired_alert_after,
        },
        remind: crate::daemon::policy::problems::Schedule {
            remind_every: (!args.remind_every.is_zero()).then_some(args.remind_every),
            drift_after: args.drift_after,
        },
        shutdown_timeout: args.shutdown_timeout,
        age: crate::daemon::AgeConfig {
            lifetime: args.token_lifetime,
            warning: args.expiry_warning,
        },
        notifiers: notifiers(&args)?,
    };
    let shared = Arc::new(Shared::default());
    let _ = shared
        .state_file
        .set(cfg.store.as_ref().map(|s| s.file().to_path_buf()));
    // One signal ends the server, the wait for the engine and the daemon.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::daemon::signal::shutdown().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = listener.map(|l| {
        let serve = crate::telemetry::http::serve(l, shared.clone(), stopped(stop_rx.clone()));
        tokio::spawn(serve)
    });
    if let Some(docker) = wait_for_engine(&shared, stopped(stop_rx.clone())).await? {
        let mut rotator = rotator(docker, &args.rotate)?;
        rotator.pipeline.stop = Some(stop_rx.clone());
        let rotator = Arc::new(rotator);
        let _ = shared.rotator.set(rotator.clone());
        crate::daemon::run((*rotator).clone(), cfg, shared, stopped(stop_rx)).await;
    }
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("serving the endpoints failed: {e}"),
            Err(e) => anyhow::bail!("server task failed: {e}"),
        }
    }
    tracing::info!("stopped");
    Ok(0)
}

/// The state kept before a restart, from `--state-dir`; without it, says once that a
/// restart forgets the state.
fn open_state(
    dir: Option<&std::path::Path>,
) -> anyhow::Result<(Option<Store>, Option<crate::daemon::policy::State>)> {
    let Some(dir) = dir else {
        tracing::warn!("no --state-dir: the retired-token watch and the rejected tokens are kept in memory, and a restart forgets them");
        return Ok((None, None));
    };
    let (store, state) = Store::open(dir)?;
    match &state {
        Some(s) => {
            tracing::info!(file = %store.file().display(), retired = s.retired.len(), rejected = s.rejected.len(), "state restored")
        }
        None => {
            tracing::info!(file = %store.file().display(), "no state kept yet: starting afresh")
        }
    }
    Ok((Some(store), state))
}

/// The notifiers of `--notify-webhook` and `--notify` (and the test-only override of the
/// fixed hosts, checked like a flag).
fn notifiers(args: &RunArgs) -> anyhow::Result<Notifiers> {
    let webhook = args.notify_webhook.clone().map(NotifyUrl::webhook);
    let urls = args
        .notify
        .iter()
        .flat_map(|l| l.0.iter().cloned())
        .collect();
    let var = crate::telemetry::notify::TEST_BASE_URL_VAR;
    let base = match std::env::var(var) {
        Ok(v) => Some(crate::config::http_url(&v).map_err(|e| anyhow::anyhow!("{var}: {e}"))?),
        Err(_) => None,
    };
    Notifiers::new(webhook, urls, base).context("notifier client")
}

/// Connects to the engine, retrying with backoff while it cannot be reached (a sidecar
/// that starts a moment before dockerd must not die of it). `None` if stopped first.
async fn wait_for_engine(
    shared: &Shared,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<bollard::Docker>> {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    tokio::pin!(stop);
    loop {
        let e = match crate::engine::connect().await {
            Ok(docker) => {
                *shared
                    .engine_problem
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                return Ok(Some(docker));
            }
            Err(e @ ConnectError::TooOld(_)) => return Err(e.into()),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        tracing::warn!(
            retry_in_secs = delay.as_secs(),
            "{e}; waiting for the engine"
        );
        *shared
            .engine_problem
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut stop => return Ok(None),
        }
    }
}

/// `status`: what each target carries now.
pub async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let docker = match engine().await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let selector = args.targets.selector();
    let names = crate::targets::container::select::names_with_env_vars(
        &docker,
        &selector,
        &args.targets.env_var,
    )
    .await?;
    let services = selector.service_names(&docker).await?;
    let snap = crate::telemetry::status::collect(
        &docker,
        &names,
        &services,
        &args.targets.env_var,
        &args.file.secret_file,
        args.file.token_format,
    )
    .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
    } else {
        print!("{}", snap.render());
    }
    let all_current = snap.targets.iter().all(|t| t.matches_secret == Some(true));
    Ok(if all_current { 0 } else { 1 })
}

/// `healthcheck`: exit 0 if the daemon's `/healthz` answers.
pub async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<u8> {
    // The daemon may listen on 0.0.0.0; ask it on loopback.
    let mut addr = args.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/healthz");
    let answer = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Ok(0),
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            Ok(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {}", e.without_url());
            Ok(1)
        }
    }
}
