//! The `token-rotator` binary: parse the config, bind the daemon's listener, set up
//! logging, run one command.

use std::process::ExitCode;

use clap::Parser;

use token_rotator::cli;
use token_rotator::config::{Cli, Command};

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
    // Bound before anything else: a taken address ends the daemon at once, not later.
    let listener = match &cli.command {
        Command::Run(args) => match args.listen.map(bind).transpose() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(cli::EXIT_LISTEN);
            }
        },
        _ => None,
    };
    token_rotator::telemetry::logging::init(cli.log_format);
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
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Check(args) => cli::check(args).await,
            Command::Rotate(args) => cli::rotate(args).await,
            Command::Run(args) => cli::run(args, listener).await,
            Command::Status(args) => cli::status(args).await,
            Command::Healthcheck(args) => cli::healthcheck(args).await,
        }
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bind(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context;
    let l = std::net::TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} (--listen): is another process using it?")
    })?;
    l.set_nonblocking(true)
        .with_context(|| format!("cannot listen on {addr} (--listen)"))?;
    Ok(l)
}
