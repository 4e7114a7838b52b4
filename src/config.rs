//! Command line and environment: every flag `--foo-bar` also reads `TOKEN_ROTATOR_FOO_BAR`.
//!
//! Parsed and checked once, by clap, into typed values (durations, URLs, a split command);
//! a bad value exits 64 with the flag named. Nothing converts them a second time.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::TokenFormat;
use crate::telemetry::logging::LogFormat;
use crate::telemetry::notify::generic::WebhookUrl;
use crate::telemetry::notify::NotifyUrl;

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
    #[command(after_help = CHECK_EXIT_CODES)]
    Check(CheckArgs),
    /// Rotate the token into the target containers once.
    #[command(after_help = ROTATE_EXIT_CODES)]
    Rotate(Box<RotateArgs>),
    /// Watch the secret file and rotate whenever it changes, until SIGTERM or SIGINT.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Show, for each target, which token it carries and when it was last swapped.
    #[command(after_help = STATUS_EXIT_CODES)]
    Status(StatusArgs),
    /// Exit 0 if the daemon's /healthz answers (for image healthchecks; no shell needed).
    #[command(after_help = "Exit codes: 0 healthy, 1 not, 64 bad usage.")]
    Healthcheck(HealthcheckArgs),
}

const CHECK_EXIT_CODES: &str = "Exit codes: 0 valid, 1 invalid (a rule of the file, or the API \
answered 401/403), 3 inconclusive (5xx, 529, timeout, network), 64 bad usage.";

const ROTATE_EXIT_CODES: &str = "Exit codes (the report's `outcome`):
  0   rotated, or already_current (nothing touched)
  1   rejected: the secret file broke a rule or the API refused the token; canary_failed:
      the bot's own client refused it (--canary); nothing touched
  3   inconclusive: the API gave no verdict; nothing touched
  4   bad_target (nothing touched), or rolled_back: a swap failed and was undone
  5   engine_unavailable: the engine cannot be reached; run again later
  6   rollback_failed: the next rotate or run finishes the recovery
  7   busy: another token-rotator holds a target's lock; nothing touched
  64  bad usage (the flag or variable is named)";

const RUN_EXIT_CODES: &str = "Exit codes: 0 stopped by SIGTERM or SIGINT, 2 the --listen \
address is taken or not allowed, 64 bad usage. The daemon retries everything else.";

const STATUS_EXIT_CODES: &str = "Exit codes: 0 every target carries the secret file's token, \
1 one does not (or the file is unusable), 5 the engine cannot be reached, 64 bad usage.";

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
    #[arg(long, default_value = DEFAULT_API_BASE_URL, env = "TOKEN_ROTATOR_API_BASE_URL", value_parser = http_url)]
    pub api_base_url: reqwest::Url,

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
    #[arg(long, default_value = "15", env = "TOKEN_ROTATOR_VALIDATE_TIMEOUT", value_parser = seconds, value_name = "SECS")]
    pub validate_timeout: Duration,

    /// How long inconclusive answers are retried (with backoff) before giving up, in seconds.
    #[arg(long, default_value = "60", env = "TOKEN_ROTATOR_VALIDATE_DEADLINE", value_parser = seconds, value_name = "SECS")]
    pub validate_deadline: Duration,
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
        value_delimiter = ',',
        env = "TOKEN_ROTATOR_CONTAINER",
        value_parser = container_name
    )]
    pub containers: Vec<String>,

    /// Every container carrying all these labels is a target too, resolved again at every
    /// rotation (repeat, or a comma list in the env var).
    #[arg(
        long = "label",
        value_delimiter = ',',
        env = "TOKEN_ROTATOR_LABEL",
        value_parser = label_pair,
        value_name = "KEY=VALUE"
    )]
    pub labels: Vec<(String, String)>,

    /// A Docker Swarm service that is a target: the token goes into its spec and Swarm
    /// rolls it out (repeat, or a comma list in the env var; services carrying every
    /// --label are targets too).
    #[arg(
        long = "service",
        value_delimiter = ',',
        env = "TOKEN_ROTATOR_SERVICE",
        value_parser = container_name,
        value_name = "NAME"
    )]
    pub services: Vec<String>,

    /// Select by label only the containers labelled `token-rotator.scope=NAME`, so that
    /// several rotators on one engine each see only their own.
    #[arg(long, env = "TOKEN_ROTATOR_SCOPE", value_name = "NAME")]
    pub scope: Option<String>,

    /// Env var that carries the token inside the targets (a target's label
    /// `token-rotator.env-var` names its own).
    #[arg(long, default_value = DEFAULT_ENV_VAR, env = "TOKEN_ROTATOR_ENV_VAR", value_parser = env_var_name)]
    pub env_var: String,
}

impl TargetArgs {
    /// The target selector.
    pub fn selector(&self) -> crate::targets::container::Selector {
        crate::targets::container::Selector {
            names: self.containers.clone(),
            labels: self.labels.clone(),
            scope: self.scope.clone(),
            services: self.services.clone(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.containers.is_empty() && self.labels.is_empty() && self.services.is_empty() {
            return Err("no target: name containers with --container NAME (TOKEN_ROTATOR_CONTAINER), Swarm services with --service NAME (TOKEN_ROTATOR_SERVICE), or select them with --label KEY=VALUE (TOKEN_ROTATOR_LABEL)".into());
        }
        if self.scope.is_some() && self.labels.is_empty() {
            return Err(
                "--scope confines the --label selection: give --label KEY=VALUE too".into(),
            );
        }
        Ok(())
    }
}

/// `KEY=VALUE`.
fn label_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("must be KEY=VALUE".into()),
    }
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
    #[arg(long, env = "TOKEN_ROTATOR_VERIFY_EXEC", value_parser = exec_command, value_name = "'CMD ARGS'")]
    pub verify_exec: Option<ExecCommand>,

    /// How long verification may retry before rolling back, in seconds.
    #[arg(long, default_value = "30", env = "TOKEN_ROTATOR_VERIFY_TIMEOUT", value_parser = seconds, value_name = "SECS")]
    pub verify_timeout: Duration,

    /// How long the new container must stay running before it counts as up, in seconds.
    #[arg(long, default_value = "2", env = "TOKEN_ROTATOR_SETTLE", value_parser = seconds, value_name = "SECS")]
    pub settle: Duration,

    /// How long another rotator's target lock is honoured before it counts as abandoned, in seconds.
    #[arg(long, default_value = "600", env = "TOKEN_ROTATOR_LOCK_TIMEOUT", value_parser = seconds, value_name = "SECS")]
    pub lock_timeout: Duration,

    /// How long to wait for a target locked by a live rotator, in seconds.
    #[arg(long, default_value = "30", env = "TOKEN_ROTATOR_LOCK_WAIT", value_parser = seconds, value_name = "SECS")]
    pub lock_wait: Duration,

    /// How long to ride out an unreachable engine (a restart) while undoing or finishing
    /// a swap, in seconds.
    #[arg(long, default_value = "30", env = "TOKEN_ROTATOR_ENGINE_RETRY", value_parser = seconds, value_name = "SECS")]
    pub engine_retry: Duration,

    /// Before any target is touched, run a throwaway container of each target image with
    /// the new token and `--canary-exec` (or `--verify-exec`); it must exit 0.
    #[arg(long, env = "TOKEN_ROTATOR_CANARY", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub canary: bool,

    /// The canary's command (split like a shell would; defaults to `--verify-exec`).
    #[arg(long, env = "TOKEN_ROTATOR_CANARY_EXEC", value_parser = exec_command, value_name = "'CMD ARGS'")]
    pub canary_exec: Option<ExecCommand>,

    /// `stop-first` (the default): stop the old container, then start the replacement.
    /// `start-first`: start and verify the replacement beside the old one, then stop the
    /// old one (no downtime; falls back to stop-first where two copies cannot run at once).
    #[arg(
        long,
        value_enum,
        default_value = "stop-first",
        env = "TOKEN_ROTATOR_ORDER"
    )]
    pub order: crate::targets::container::Order,

    /// How many targets are swapped at once.
    #[arg(long, default_value = "1", env = "TOKEN_ROTATOR_PARALLEL", value_parser = clap::value_parser!(u16).range(1..=256), value_name = "N")]
    pub parallel: u16,

    /// After more than this many targets failed (and were rolled back), no new swap starts;
    /// the ones under way finish, and the report says which were not attempted.
    #[arg(
        long,
        default_value = "0",
        env = "TOKEN_ROTATOR_MAX_FAILURES",
        value_name = "K"
    )]
    pub max_failures: usize,

    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `run`: those of `rotate`, plus watching and reporting.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The rotation flags.
    #[command(flatten)]
    pub rotate: RotateArgs,

    /// Quiet time after an update still in progress (a truncation, a deletion) before the
    /// file is read, in seconds; a close after writing, or a rename onto it, is read at once.
    #[arg(long, default_value = "0.3", env = "TOKEN_ROTATOR_DEBOUNCE", value_parser = seconds, value_name = "SECS")]
    pub debounce: Duration,

    /// Also re-read the file this often, in seconds (0: only on file events). Use it where
    /// inotify does not see updates (some network and bind mounts).
    #[arg(long, default_value = "0", env = "TOKEN_ROTATOR_POLL_INTERVAL", value_parser = seconds, value_name = "SECS")]
    pub poll_interval: Duration,

    /// Serve /healthz, /readyz, /metrics and /status on this address (e.g. 0.0.0.0:9090).
    #[arg(long, env = "TOKEN_ROTATOR_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,

    /// POST a JSON event here after each rotation and each rejected token. The URL is a
    /// credential: it is never printed.
    #[arg(long, env = "TOKEN_ROTATOR_NOTIFY_WEBHOOK", hide_env_values = true, value_parser = webhook_url, value_name = "URL")]
    pub notify_webhook: Option<WebhookUrl>,

    /// Announce events to a notifier, by URL in the shoutrrr style: ntfy://, discord://,
    /// slack://, mattermost://, telegram://, teams://, smtp://, generic+https://; `?events=`
    /// limits it to some events (repeat, or a space- or comma-separated list in the env var).
    /// The URL is a credential: it is never printed.
    #[arg(long, env = "TOKEN_ROTATOR_NOTIFY", hide_env_values = true, value_parser = notify_list, value_name = "URL")]
    pub notify: Vec<NotifyList>,

    /// On SIGTERM, how long a swap in progress may take to finish or roll back (and webhook
    /// deliveries to drain), in seconds.
    #[arg(long, default_value = "90", env = "TOKEN_ROTATOR_SHUTDOWN_TIMEOUT", value_parser = seconds, value_name = "SECS")]
    pub shutdown_timeout: Duration,

    /// A second secret file holding a standby token (not deployed), validated when it
    /// changes and at each live probe, deployed when the live token is rejected.
    #[arg(long, env = "TOKEN_ROTATOR_STANDBY_FILE", value_name = "PATH")]
    pub standby_file: Option<PathBuf>,

    /// How often the deployed token is probed against the API (`6h`, `30m`, `90s`;
    /// `0` turns it off), jittered by up to 10%.
    #[arg(long, default_value = "6h", env = "TOKEN_ROTATOR_LIVE_PROBE_INTERVAL", value_parser = duration, value_name = "DURATION")]
    pub live_probe_interval: Duration,

    /// Follow the targets' logs for lines that say the token was refused (`on`, `off`).
    #[arg(
        long,
        value_enum,
        default_value = "on",
        env = "TOKEN_ROTATOR_LOG_WATCH"
    )]
    pub log_watch: Switch,

    /// When a retired token (one a swap replaced) is probed, counted from its retirement:
    /// a comma list of durations; after the last, every that long again. Each is
    /// jittered. Probing stops when the API rejects it.
    #[arg(long, default_value = "1m,5m,15m,1h,6h", env = "TOKEN_ROTATOR_RETIRED_PROBE_SCHEDULE", value_parser = schedule, value_name = "DURATIONS")]
    pub retired_probe_schedule: Schedule,

    /// How long a retired token is watched at most (`0` turns the watch off).
    #[arg(long, default_value = "14d", env = "TOKEN_ROTATOR_RETIRED_WATCH_MAX", value_parser = duration, value_name = "DURATION")]
    pub retired_watch_max: Duration,

    /// A retired token still accepted this long after its retirement is announced
    /// (`retired_token_alive`), once.
    #[arg(long, default_value = "1h", env = "TOKEN_ROTATOR_RETIRED_ALERT_AFTER", value_parser = duration, value_name = "DURATION")]
    pub retired_alert_after: Duration,

    /// A problem that needs a person (`standby_needed`, `retired_token_alive`,
    /// `rotation_failed`, `drift`, `token_expiring`) is announced again this often while it
    /// lasts (`0`: once); `resolved` is announced when it is over.
    #[arg(long, default_value = "24h", env = "TOKEN_ROTATOR_REMIND_EVERY", value_parser = duration, value_name = "DURATION")]
    pub remind_every: Duration,

    /// A target that does not carry the secret file's token this long after the daemon
    /// decided to deploy it (rotations failing, retried) is announced (`drift`).
    #[arg(long, default_value = "15m", env = "TOKEN_ROTATOR_DRIFT_AFTER", value_parser = duration, value_name = "DURATION")]
    pub drift_after: Duration,
    /// How long a token is expected to last from its first deployment (`claude
    /// setup-token`: about a year, as reported; Anthropic publishes no figure). Its estimated
    /// end is its first deployment plus this.
    #[arg(long, default_value = "365d", env = "TOKEN_ROTATOR_TOKEN_LIFETIME", value_parser = lifetime, value_name = "DURATION")]
    pub token_lifetime: Duration,

    /// How long before the live token's estimated end `token_expiring` is announced (below
    /// --token-lifetime); it is repeated every --remind-every until a new token is live.
    #[arg(long, default_value = "30d", env = "TOKEN_ROTATOR_EXPIRY_WARNING", value_parser = lifetime, value_name = "DURATION")]
    pub expiry_warning: Duration,

    /// A directory where the state that must survive a restart is kept (the retired-token
    /// watch, the rejected tokens, the open problems, the tokens' first-deployed times), in
    /// `state.json`, mode 0600. Without it the state is kept
    /// in memory and a restart forgets it.
    #[arg(long, env = "TOKEN_ROTATOR_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// A regular expression that marks a bot's log line as an authentication failure,
    /// beside the built-in ones for Claude Code (repeat for several).
    #[arg(long = "reject-pattern", env = "TOKEN_ROTATOR_REJECT_PATTERN", value_parser = regex, value_name = "REGEX")]
    pub reject_patterns: Vec<regex::Regex>,
}

/// Offsets from a token's retirement at which it is probed, in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

/// `1m,5m,15m`: durations, each later than the one before.
pub fn schedule(s: &str) -> Result<Schedule, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let d = duration(part)?;
        if d.is_zero() || out.last().is_some_and(|prev| *prev >= d) {
            return Err("must be increasing durations above zero, like 1m,5m,15m,1h,6h".into());
        }
        out.push(d);
    }
    Ok(Schedule(out))
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
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

impl RunArgs {
    /// The warning must come before the end.
    pub fn check_expiry(&self) -> Result<(), String> {
        if self.expiry_warning >= self.token_lifetime {
            return Err(format!(
                "--expiry-warning (TOKEN_ROTATOR_EXPIRY_WARNING) {} must be shorter than --token-lifetime (TOKEN_ROTATOR_TOKEN_LIFETIME) {}",
                humantime::format_duration(self.expiry_warning),
                humantime::format_duration(self.token_lifetime)
            ));
        }
        Ok(())
    }
}

impl RotateArgs {
    /// The canary's command, if `--canary` is on: `--canary-exec`, else `--verify-exec`.
    pub fn canary_command(&self) -> Result<Option<Vec<String>>, String> {
        if !self.canary {
            return Ok(None);
        }
        match self.canary_exec.as_ref().or(self.verify_exec.as_ref()) {
            Some(c) => Ok(Some(c.0.clone())),
            None => Err("--canary (TOKEN_ROTATOR_CANARY) needs a command: give --canary-exec 'CMD ARGS' or --verify-exec 'CMD ARGS'".into()),
        }
    }
}

impl Cli {
    /// What parsing alone cannot check: flags that need each other.
    pub fn check(&self) -> Result<(), String> {
        match &self.command {
            Command::Rotate(a) => {
                a.targets.check()?;
                a.canary_command().map(|_| ())
            }
            Command::Run(a) => {
                a.rotate.targets.check()?;
                a.check_expiry()?;
                a.rotate.canary_command().map(|_| ())
            }
            Command::Status(a) => a.targets.check(),
            _ => Ok(()),
        }
    }
}

/// A command for the exec API, split into words like a shell would (no shell needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand(pub Vec<String>);

/// Seconds between 0 and 86400 (fractions allowed).
pub fn seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=86_400.0).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err("must be a number of seconds between 0 and 86400".into()),
    }
}

/// A duration like `6h`, `30m`, `90s`, `1h30m`, or a plain number of seconds; `0` is zero.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return seconds_in(secs, 30.0 * 86_400.0);
    }
    let d = humantime::parse_duration(s)
        .map_err(|_| "must be a duration like 6h, 30m, 90s or 0 (off)".to_string())?;
    seconds_in(d.as_secs_f64(), 30.0 * 86_400.0)
}

/// A token's lifetime, or a warning before its end: a duration like `365d`, `30d`, `20s`
/// (above zero, at most ten years).
pub fn lifetime(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<f64>() {
        Ok(secs) => seconds_in(secs, 3650.0 * 86_400.0)?,
        Err(_) => humantime::parse_duration(s)
            .map_err(|_| "must be a duration like 365d, 30d or 12h".to_string())?,
    };
    if d.is_zero() || d > Duration::from_secs(3650 * 86_400) {
        return Err("must be above zero and at most 3650 days".into());
    }
    Ok(d)
}

fn seconds_in(v: f64, max: f64) -> Result<Duration, String> {
    if (0.0..=max).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("must be between 0 and {} days", max / 86_400.0))
    }
}

/// A regular expression.
pub fn regex(s: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(s).map_err(|e| format!("not a valid regular expression: {e}"))
}

/// An http:// or https:// URL with a host.
pub fn http_url(s: &str) -> Result<reqwest::Url, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err("not an http:// or https:// URL with a host".into()),
    }
}

/// One `--notify` value, or the whole `TOKEN_ROTATOR_NOTIFY`: URLs separated by white space,
/// or by commas before a scheme (a comma inside a URL, as in `?to=a,b`, stays).
#[derive(Debug, Clone)]
pub struct NotifyList(pub Vec<NotifyUrl>);

/// Parses a list of notifier URLs; the error names the URL's place, never the URL.
pub fn notify_list(s: &str) -> Result<NotifyList, String> {
    let parts = split_notify_list(s);
    if parts.is_empty() {
        return Err("is empty: give a notifier URL".into());
    }
    let many = parts.len() > 1;
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match NotifyUrl::parse(part) {
            Ok(u) => out.push(u),
            Err(e) if many => return Err(format!("URL {} of the list: {e}", i + 1)),
            Err(e) => return Err(e),
        }
    }
    Ok(NotifyList(out))
}

/// Splits at white space, and at a comma followed by `scheme://`.
pub fn split_notify_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut start = 0;
        for (i, _) in word.match_indices(',') {
            let rest = &word[i + 1..];
            let scheme = rest.split_once("://").map(|(p, _)| p);
            let is_scheme = scheme.is_some_and(|p| {
                !p.is_empty()
                    && p.starts_with(|c: char| c.is_ascii_alphabetic())
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            });
            if is_scheme {
                out.push(word[start..i].to_string());
                start = i + 1;
            }
        }
        out.push(word[start..].to_string());
    }
    out.retain(|p| !p.is_empty());
    out
}

fn webhook_url(s: &str) -> Result<WebhookUrl, String> {
    WebhookUrl::parse(s)
}

/// A valid environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn env_var_name(s: &str) -> Result<String, String> {
    crate::targets::container::select::env_var_name(s)
}

fn container_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("a container name must not be empty".into());
    }
    Ok(s.to_string())
}

/// `--verify-exec`: split like a shell, not empty.
pub fn exec_command(s: &str) -> Result<ExecCommand, String> {
    let words = shell_words::split(s).map_err(|e| format!("cannot be split into words: {e}"))?;
    if words.is_empty() {
        return Err("is empty".into());
    }
    Ok(ExecCommand(words))
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
            args.verify_exec.unwrap().0,
            ["claude", "-p", "say ping", "--max-turns", "1"]
        );
        assert_eq!(args.settle, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let parse = |cmd: &str, extra: &[&str]| {
            let mut argv = vec!["token-rotator", cmd, "--container", "a"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).unwrap_err().to_string()
        };
        assert!(parse("rotate", &["--env-var", "1BAD"]).contains("--env-var"));
        assert!(parse("rotate", &["--settle=-1"]).contains("--settle"));
        assert!(parse("rotate", &["--api-base-url", "ftp://x"]).contains("--api-base-url"));
        assert!(parse("rotate", &["--verify-exec", "'unclosed"]).contains("--verify-exec"));
        assert!(parse("rotate", &["--container", " "]).contains("--container"));
        let hook = parse("run", &["--notify-webhook", "mailto:secret@example.com"]);
        assert!(hook.contains("--notify-webhook"), "{hook}");
        assert!(parse("run", &["--debounce=-2"]).contains("--debounce"));
    }

    #[test]
    fn a_notify_list_splits_at_spaces_and_at_commas_before_a_scheme() {
        let got = split_notify_list(
            "ntfy://h/t,smtp://m:25/?from=a@b.c&to=d@e.f,g@h.i  discord://T@1\ngeneric+https://x/y",
        );
        assert_eq!(
            got,
            [
                "ntfy://h/t",
                "smtp://m:25/?from=a@b.c&to=d@e.f,g@h.i",
                "discord://T@1",
                "generic+https://x/y"
            ]
        );
        let list = notify_list("ntfy://h/t telegram://1:A@telegram?chats=1,2").unwrap();
        assert_eq!(list.0.len(), 2);
        let e = notify_list("ntfy://h/t bogus://SECRETPART").unwrap_err();
        assert!(
            e.starts_with("URL 2 of the list") && !e.contains("SECRETPART"),
            "{e}"
        );
    }

    #[test]
    fn notify_urls_are_secrets_in_debug_and_help() {
        let url = "ntfy://user:SECRETPART@ntfy.example.com/alerts";
        let cli = Cli::try_parse_from([
            "token-rotator",
            "run",
            "--container",
            "a",
            "--notify",
            url,
            "--notify",
            "discord://SECRETPART@1",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("SECRETPART"));
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.notify.len(), 2);
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let run = cmd.find_subcommand_mut("run").unwrap();
        std::env::set_var("TOKEN_ROTATOR_NOTIFY", url);
        let help = run.render_long_help().to_string();
        std::env::remove_var("TOKEN_ROTATOR_NOTIFY");
        assert!(!help.contains("SECRETPART"), "{help}");
        assert!(help.contains("--notify <URL>"));
    }

    #[test]
    fn the_webhook_url_is_a_secret() {
        let url = "https://hooks.example.com/services/T000/B000/SECRETPART";
        let cli = Cli::try_parse_from([
            "token-rotator",
            "run",
            "--container",
            "a",
            "--notify-webhook",
            url,
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("SECRETPART"));
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let run = cmd.find_subcommand_mut("run").unwrap();
        std::env::set_var("TOKEN_ROTATOR_NOTIFY_WEBHOOK", url);
        let help = run.render_long_help().to_string();
        std::env::remove_var("TOKEN_ROTATOR_NOTIFY_WEBHOOK");
        assert!(!help.contains("SECRETPART"), "{help}");
        assert!(help.contains("--notify-webhook"));
    }
}
