//! The `token-rotator` binary: parse the config, set up logging, run one command.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use token_rotator::config::{
    seconds, CheckArgs, Cli, Command, RotateArgs, SecretArgs, ValidateMode,
};
use token_rotator::report::Outcome;
use token_rotator::rotate::Rotator;
use token_rotator::secret::read_token;
use token_rotator::validate::{Validator, ValidatorConfig, Verdict};
use token_rotator::verify::VerifyConfig;

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
    let token = match read_token(&args.secret.secret_file, args.secret.token_format) {
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

async fn rotate(args: RotateArgs) -> anyhow::Result<u8> {
    let docker = match token_rotator::docker::connect().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}; no container was touched");
            return Ok(Outcome::EngineUnavailable.exit_code() as u8);
        }
    };
    let rotator = Rotator {
        docker,
        validator: validator(&args.secret)?,
        secret_file: args.secret.secret_file.clone(),
        token_format: args.secret.token_format,
        containers: args.containers.clone(),
        verify: VerifyConfig {
            env_var: args.env_var.clone(),
            settle: seconds("settle", args.settle)?,
            timeout: seconds("verify-timeout", args.verify_timeout)?,
            exec: args.verify_command().context("--verify-exec")?,
        },
    };
    let report = rotator.rotate_once().await;
    print!("{}", report.render());
    Ok(report.outcome.exit_code() as u8)
}
