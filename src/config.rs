//! Command line and environment: every flag `--foo-bar` also reads `TOKEN_ROTATOR_FOO_BAR`.
//!
//! Parsed and checked once at start ([`Cli::validate`]); a bad config exits 64.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::TokenFormat;

/// Default secret file: where Docker mounts a secret named `claude_oauth_token`.
pub const DEFAULT_SECRET_FILE: &str = "/run/secrets/claude_oauth_token";
/// Default env var carrying the token inside bot-bottle containers.
pub const DEFAULT_ENV_VAR: &str = "BOT_BOTTLE_CLAUDE_OAUTH_TOKEN";
/// Default API base URL.
pub const DEFAULT_API_BASE_URL: &str = "https://api.anthropic.com";

/// token-rotator: validate a rotated Claude Code OAuth token and swap it into running containers.
#[derive(Debug, Parser)]
#[command(name = "token-rotator", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "TOKEN_ROTATOR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    /// Command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, normalize and validate the token; print the verdict and its fingerprint.
    /// Exit 0 valid, 1 invalid, 3 inconclusive, 64 bad usage.
    Check(CheckArgs),
    /// Rotate the token into the target containers once.
    Rotate(RotateArgs),
    /// Watch the secret file and rotate whenever it changes, until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Show, for each target, which token it carries and when it was last swapped.
    Status(StatusArgs),
    /// Exit 0 if the daemon's /healthz answers (for image healthchecks; no shell needed).
    Healthcheck(HealthcheckArgs),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether to ask the API before swapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateMode {
    /// Probe `POST /v1/messages` with the token (the default).
    Api,
    /// Skip validation (a warning is logged).
    None,
}

/// Where the secret is and what shape it must have.
#[derive(Debug, Clone, Args)]
pub struct SecretFileArgs {
    /// File holding the token (whitespace is stripped).
    #[arg(long, default_value = DEFAULT_SECRET_FILE, env = "TOKEN_ROTATOR_SECRET_FILE")]
    pub secret_file: PathBuf,

    /// Accepted token shape: `oauth` (sk-ant-oat01-...) or `any`.
    #[arg(
        long,
        value_enum,
        default_value = "oauth",
        env = "TOKEN_ROTATOR_TOKEN_FORMAT"
    )]
    pub token_format: TokenFormat,
}

/// Flags shared by every command that reads and validates the secret.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// The secret file.
    #[command(flatten)]
    pub file: SecretFileArgs,

    /// Base URL of the Anthropic API.
    #[arg(long, default_value = DEFAULT_API_BASE_URL, env = "TOKEN_ROTATOR_API_BASE_URL")]
    pub api_base_url: String,

    /// Validate against the API (`api`) or skip it (`none`).
    #[arg(
        long,
        value_enum,
        default_value = "api",
        env = "TOKEN_ROTATOR_VALIDATE"
    )]
    pub validate: ValidateMode,

    /// Model used by the one-token validation probe.
    #[arg(
        long,
        default_value = "claude-haiku-4-5",
        env = "TOKEN_ROTATOR_PROBE_MODEL"
    )]
    pub probe_model: String,

    /// Timeout of one validation request, in seconds.
    #[arg(long, default_value = "15", env = "TOKEN_ROTATOR_VALIDATE_TIMEOUT")]
    pub validate_timeout: f64,

    /// How long inconclusive answers are retried (with backoff) before giving up, in seconds.
    #[arg(long, default_value = "60", env = "TOKEN_ROTATOR_VALIDATE_DEADLINE")]
    pub validate_deadline: f64,
}

/// Flags of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Secret and validation flags.
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// Which containers to rotate, and the env var that carries the token.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Target container name or ID (repeat, or a comma list in the env var).
    #[arg(
        long = "container",
        required = true,
        value_delimiter = ',',
        env = "TOKEN_ROTATOR_CONTAINER"
    )]
    pub containers: Vec<String>,

    /// Env var that carries the token inside the targets.
    #[arg(long, default_value = DEFAULT_ENV_VAR, env = "TOKEN_ROTATOR_ENV_VAR")]
    pub env_var: String,
}

/// Flags of `rotate`.
#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// Secret and validation flags.
    #[command(flatten)]
    pub secret: SecretArgs,

    /// Target flags.
    #[command(flatten)]
    pub targets: TargetArgs,

    /// Command run inside the new container (split like a shell would); must exit 0.
    #[arg(long, env = "TOKEN_ROTATOR_VERIFY_EXEC")]
    pub verify_exec: Option<String>,

    /// How long verification may retry before rolling back, in seconds.
    #[arg(long, default_value = "30", env = "TOKEN_ROTATOR_VERIFY_TIMEOUT")]
    pub verify_timeout: f64,

    /// How long the new container must stay running before it counts as up, in seconds.
    #[arg(long, default_value = "2", env = "TOKEN_ROTATOR_SETTLE")]
    pub settle: f64,

    /// How long another rotator's target lock is honoured before it counts as abandoned, in seconds.
    #[arg(long, default_value = "600", env = "TOKEN_ROTATOR_LOCK_TIMEOUT")]
    pub lock_timeout: f64,

    /// How long to wait for a target locked by a live rotator, in seconds.
    #[arg(long, default_value = "30", env = "TOKEN_ROTATOR_LOCK_WAIT")]
    pub lock_wait: f64,

    /// How long to ride out an unreachable engine (a restart) while undoing or finishing
    /// a swap, in seconds.
    #[arg(long, default_value = "30", env = "TOKEN_ROTATOR_ENGINE_RETRY")]
    pub engine_retry: f64,
}

/// Flags of `run`: those of `rotate`, plus watching and reporting.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The rotation flags.
    #[command(flatten)]
    pub rotate: RotateArgs,

    /// Quiet time after the last file event before the file is read, in seconds.
    #[arg(long, default_value = "0.3", env = "TOKEN_ROTATOR_DEBOUNCE")]
    pub debounce: f64,

    /// Also re-read the file this often, in seconds (0: only on file events). Use it where
    /// inotify does not see updates (some network and bind mounts).
    #[arg(long, default_value = "0", env = "TOKEN_ROTATOR_POLL_INTERVAL")]
    pub poll_interval: f64,

    /// Serve /healthz, /readyz, /metrics and /status on this address (e.g. 0.0.0.0:9090).
    #[arg(long, env = "TOKEN_ROTATOR_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,

    /// POST a JSON event here after each rotation and each rejected token.
    #[arg(long, env = "TOKEN_ROTATOR_NOTIFY_WEBHOOK")]
    pub notify_webhook: Option<String>,

    /// On SIGTERM, how long a swap in progress may take to finish or roll back, in seconds.
    #[arg(long, default_value = "90", env = "TOKEN_ROTATOR_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: f64,
}

/// Flags of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The secret file, to say whether each target carries its token.
    #[command(flatten)]
    pub file: SecretFileArgs,

    /// Target flags.
    #[command(flatten)]
    pub targets: TargetArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The daemon's --listen address.
    #[arg(long, default_value = "127.0.0.1:9090", env = "TOKEN_ROTATOR_LISTEN")]
    pub listen: std::net::SocketAddr,
}

/// A config that parsed but makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration flag is negative, NaN or huge.
    #[error("--{flag} must be a number of seconds between 0 and 86400, got {value}")]
    BadDuration {
        /// The flag name.
        flag: &'static str,
        /// What was given.
        value: f64,
    },
    /// The API base URL does not parse or is not http(s).
    #[error("--api-base-url {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The env var name is not a valid name.
    #[error("--env-var {0:?} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")]
    BadEnvVar(String),
    /// `--verify-exec` cannot be split into words.
    #[error("--verify-exec cannot be split into words: {0}")]
    BadVerifyExec(String),
    /// `--verify-exec` is empty.
    #[error("--verify-exec is empty")]
    EmptyVerifyExec,
    /// An empty container name.
    #[error("--container must not be empty")]
    EmptyContainer,
    /// The webhook URL does not parse or is not http(s).
    #[error("--notify-webhook {0:?} is not an http:// or https:// URL")]
    BadWebhook(String),
}

/// Converts a flag's seconds into a [`Duration`], refusing nonsense.
pub fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if !(0.0..=86_400.0).contains(&value) {
        return Err(ConfigError::BadDuration { flag, value });
    }
    Ok(Duration::from_secs_f64(value))
}

impl SecretArgs {
    /// Checks the flags that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.api_base_url)
            .map_err(|_| ConfigError::BadUrl(self.api_base_url.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::BadUrl(self.api_base_url.clone()));
        }
        seconds("validate-timeout", self.validate_timeout)?;
        seconds("validate-deadline", self.validate_deadline)?;
        Ok(())
    }
}

impl TargetArgs {
    /// Checks the flags that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut chars = self.env_var.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::BadEnvVar(self.env_var.clone()));
        }
        if self.containers.iter().any(|c| c.trim().is_empty()) {
            return Err(ConfigError::EmptyContainer);
        }
        Ok(())
    }
}

impl RotateArgs {
    /// Checks the flags that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        self.targets.validate()?;
        self.verify_command()?;
        seconds("verify-timeout", self.verify_timeout)?;
        seconds("settle", self.settle)?;
        seconds("lock-timeout", self.lock_timeout)?;
        seconds("lock-wait", self.lock_wait)?;
        seconds("engine-retry", self.engine_retry)?;
        Ok(())
    }

    /// `--verify-exec` split into words, if given.
    pub fn verify_command(&self) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(raw) = &self.verify_exec else {
            return Ok(None);
        };
        let words =
            shell_words::split(raw).map_err(|e| ConfigError::BadVerifyExec(e.to_string()))?;
        if words.is_empty() {
            return Err(ConfigError::EmptyVerifyExec);
        }
        Ok(Some(words))
    }
}

impl RunArgs {
    /// Checks the flags that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.rotate.validate()?;
        seconds("debounce", self.debounce)?;
        seconds("poll-interval", self.poll_interval)?;
        seconds("shutdown-timeout", self.shutdown_timeout)?;
        if let Some(hook) = &self.notify_webhook {
            let ok = reqwest::Url::parse(hook)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(ConfigError::BadWebhook(hook.clone()));
            }
        }
        Ok(())
    }
}

impl Cli {
    /// Checks the whole config once at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.command {
            Command::Check(a) => a.secret.validate(),
            Command::Rotate(a) => a.validate(),
            Command::Run(a) => a.validate(),
            Command::Status(a) => a.targets.validate(),
            Command::Healthcheck(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn verify_exec_is_split_like_a_shell() {
        let cli = Cli::try_parse_from([
            "token-rotator",
            "rotate",
            "--container",
            "a,b",
            "--verify-exec",
            "claude -p 'say ping' --max-turns 1",
        ])
        .unwrap();
        let Command::Rotate(args) = cli.command else {
            panic!("not rotate")
        };
        assert_eq!(args.targets.containers, ["a", "b"]);
        assert_eq!(
            args.verify_command().unwrap().unwrap(),
            ["claude", "-p", "say ping", "--max-turns", "1"]
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["token-rotator", "rotate", "--container", "a"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(parse(&["--env-var", "1BAD"]).contains("--env-var"));
        assert!(parse(&["--settle=-1"]).contains("--settle"));
        assert!(parse(&["--api-base-url", "ftp://x"]).contains("--api-base-url"));
        assert!(parse(&["--verify-exec", "'unclosed"]).contains("--verify-exec"));
        let run = |extra: &[&str]| {
            let mut argv = vec!["token-rotator", "run", "--container", "a"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(run(&["--notify-webhook", "mailto:x@y"]).contains("--notify-webhook"));
        assert!(run(&["--debounce=-2"]).contains("--debounce"));
    }
}
