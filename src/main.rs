//! The `token-rotator` binary: parse the config, set up logging, run one command.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;

use token_rotator::config::{
    seconds, CheckArgs, Cli, Command, HealthcheckArgs, RotateArgs, RunArgs, SecretArgs, StatusArgs,
    ValidateMode,
};
use token_rotator::daemon::{DaemonConfig, Shared};
use token_rotator::lock::Locker;
use token_rotator::report::Outcome;
use token_rotator::rotate::Rotator;
use token_rotator::secret::read_token;
use token_rotator::validate::{Validator, ValidatorConfig, Verdict};
use token_rotator::verify::VerifyConfig;
use token_rotator::watch::WatchConfig;
use token_rotator::webhook::Webhook;

/// EX_USAGE from sysexits.h: the config is wrong.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return if usage_error {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    if let Err(e) = cli.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    token_rotator::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Check(args) => check(args).await,
        Command::Rotate(args) => rotate(args).await,
        Command::Run(args) => run_daemon(args).await,
        Command::Status(args) => status(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
    }
}

fn validator(args: &SecretArgs) -> anyhow::Result<Option<Validator>> {
    if args.validate == ValidateMode::None {
        return Ok(None);
    }
    let cfg = ValidatorConfig {
        base_url: args.api_base_url.clone(),
        model: args.probe_model.clone(),
        request_timeout: seconds("validate-timeout", args.validate_timeout)?,
        deadline: seconds("validate-deadline", args.validate_deadline)?,
    };
    Ok(Some(Validator::new(cfg)?))
}

async fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let token = match read_token(&args.secret.file.secret_file, args.secret.file.token_format) {
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

/// Connects to the engine, or says so and returns the exit code.
async fn engine() -> Result<bollard::Docker, u8> {
    token_rotator::docker::connect().await.map_err(|e| {
        eprintln!("error: {e}; no container was touched");
        Outcome::EngineUnavailable.exit_code() as u8
    })
}

fn rotator(docker: bollard::Docker, args: &RotateArgs) -> anyhow::Result<Rotator> {
    Ok(Rotator {
        docker,
        validator: validator(&args.secret)?,
        secret_file: args.secret.file.secret_file.clone(),
        token_format: args.secret.file.token_format,
        containers: args.targets.containers.clone(),
        verify: VerifyConfig {
            env_var: args.targets.env_var.clone(),
            settle: seconds("settle", args.settle)?,
            timeout: seconds("verify-timeout", args.verify_timeout)?,
            exec: args.verify_command().context("--verify-exec")?,
        },
        engine_retry: seconds("engine-retry", args.engine_retry)?,
        locker: Locker::new(
            seconds("lock-timeout", args.lock_timeout)?,
            seconds("lock-wait", args.lock_wait)?,
        ),
    })
}

async fn rotate(args: RotateArgs) -> anyhow::Result<u8> {
    let docker = match engine().await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let report = rotator(docker, &args)?.rotate_once().await;
    print!("{}", report.render());
    Ok(report.outcome.exit_code() as u8)
}

async fn run_daemon(args: RunArgs) -> anyhow::Result<u8> {
    let docker = match engine().await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let rotator = Arc::new(rotator(docker, &args.rotate)?);
    let poll = seconds("poll-interval", args.poll_interval)?;
    let cfg = DaemonConfig {
        watch: WatchConfig {
            path: args.rotate.secret.file.secret_file.clone(),
            debounce: seconds("debounce", args.debounce)?,
            poll_interval: (!poll.is_zero()).then_some(poll),
        },
        shutdown_timeout: seconds("shutdown-timeout", args.shutdown_timeout)?,
        webhook: args
            .notify_webhook
            .clone()
            .map(Webhook::new)
            .transpose()
            .context("webhook client")?,
    };
    let shared = Arc::new(Shared::default());
    // One signal ends both the server and the daemon.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        token_rotator::signal::shutdown().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = match args.listen {
        Some(addr) => {
            let listener = token_rotator::http::serve(
                addr,
                shared.clone(),
                rotator.clone(),
                stopped(stop_rx.clone()),
            );
            Some(tokio::spawn(listener))
        }
        None => None,
    };
    token_rotator::daemon::run((*rotator).clone(), cfg, shared, stopped(stop_rx)).await;
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!(
                "cannot serve on {}: {e}",
                args.listen.unwrap_or(([0, 0, 0, 0], 0).into())
            ),
            Err(e) => anyhow::bail!("server task failed: {e}"),
        }
    }
    tracing::info!("stopped");
    Ok(0)
}

async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let docker = match engine().await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let snap = token_rotator::status::collect(
        &docker,
        &args.targets.containers,
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

async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<u8> {
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
