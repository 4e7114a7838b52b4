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
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("{}", usage_error(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = cli.check() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
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
            Command::Rotate(args) => cli::rotate(*args).await,
            Command::Run(args) => cli::run(*args, listener).await,
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

/// clap's message, with the environment variable named when the bad value came from one,
/// and a secret value (a notifier or webhook URL) hidden.
fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut text = e.render().to_string();
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return text;
    };
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    let secret = matches!(flag, "--notify-webhook" | "--notify");
    if secret && !value.is_empty() {
        text = text.replace(value.as_str(), "<hidden>");
    }
    let var = format!(
        "TOKEN_ROTATOR_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    );
    let on_command_line = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    let from_env =
        std::env::var(&var).is_ok_and(|v| v.split(',').any(|part| part == value) || v == *value);
    if !on_command_line && from_env {
        let shown = if secret { "<hidden>" } else { value.as_str() };
        let note = format!("  (the value comes from the environment: {var}={shown})");
        text = match text.split_once('\n') {
            Some((first, rest)) => format!("{first}\n{note}\n{rest}"),
            None => format!("{text}\n{note}\n"),
        };
    }
    text
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
