//! Notifiers by URL, in the shoutrrr style Watchtower's users know: `--notify URL` (and
//! `--notify-webhook`, the generic JSON webhook). A [`Notice`] (built by the daemon from
//! its events, in one place) goes to every notifier whose `?events=` lets it through; each
//! scheme's file turns it into that service's request: [`ntfy`], [`discord`], [`slack`],
//! [`mattermost`], [`telegram`], [`teams`], [`smtp`] (email, through lettre) and
//! [`generic`] (the webhook's JSON body). [`queue`] delivers them in the background, in
//! order per notifier, with a timeout, and drains them at shutdown.
//!
//! A notifier URL is a credential: it is never logged, printed or shown in `Debug`; a
//! notifier is named by its place in the list and its scheme (`notifier 2 (ntfy)`).

pub mod discord;
pub mod generic;
pub mod mattermost;
pub mod ntfy;
pub mod query;
pub mod queue;
pub mod slack;
pub mod smtp;
pub mod teams;
pub mod telegram;

use serde::Serialize;

pub use queue::Notifiers;

/// Every event a notifier can be told, as `?events=` names them.
pub const EVENTS: &[&str] = &[
    "rotation",
    "rotation_failed",
    "token_rejected",
    "canary_failed",
    "live_token_rejected",
    "standby_promoted",
    "standby_needed",
    "retired_token_dead",
    "retired_token_alive",
    "drift",
    "resolved",
    "token_expiring",
];

/// The variable that redirects the services with fixed hosts (Discord, Slack, Telegram,
/// Teams) to a local receiver. Test-only: never set it in a deployment.
pub const TEST_BASE_URL_VAR: &str = "TOKEN_ROTATOR_NOTIFY_TEST_BASE_URL";

/// How urgent a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    Info,
    /// Look at it soon.
    Warning,
    /// The bots are (or may soon be) down, or a person must act now.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One thing a person is told, in every shape a notifier needs.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The event's name (one of [`EVENTS`]).
    pub event: &'static str,
    /// How urgent it is.
    pub severity: Severity,
    /// One line: the subject of an email, the title of a push.
    pub title: String,
    /// For a person: what happened, what to do, which bots; fingerprints only.
    pub text: String,
    /// The JSON body of the generic webhook (it carries `event`, `title`, `severity`, `text`).
    pub body: serde_json::Value,
}

/// Why a notice could not be delivered. Never carries a URL (reqwest's is removed).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request failed (connect, timeout, TLS).
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The service answered with an error status.
    #[error("the service answered HTTP {0}")]
    Refused(u16),
    /// The SMTP server refused the message, or could not be reached.
    #[error("email failed: {0}")]
    Smtp(#[source] smtp::SmtpError),
    /// The email could not be built.
    #[error("email could not be built: {0}")]
    Email(#[source] lettre::error::Error),
}

impl From<reqwest::Error> for DeliveryError {
    fn from(e: reqwest::Error) -> Self {
        DeliveryError::Http(e.without_url())
    }
}

/// One notifier: where, and which events. Its `Debug` hides everything but the scheme.
#[derive(Clone)]
pub struct NotifyUrl {
    target: Target,
    events: Option<Vec<&'static str>>,
}

#[derive(Clone)]
enum Target {
    Ntfy(ntfy::Ntfy),
    Discord(discord::Discord),
    Slack(slack::Slack),
    Mattermost(mattermost::Mattermost),
    Telegram(telegram::Telegram),
    Teams(teams::Teams),
    Smtp(Box<smtp::Smtp>),
    Generic(generic::Generic),
}

/// The schemes `--notify` takes, for messages.
pub const SCHEMES: &str = "ntfy://, discord://, slack://, mattermost://, telegram://, teams://, \
teams+https://, smtp://, generic+https:// or generic+http://";

impl NotifyUrl {
    /// Parses a notifier URL. The error never repeats the URL or a part of it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let scheme = s.split_once("://").map(|(p, _)| p.to_ascii_lowercase());
        let Some(scheme) = scheme else {
            return Err(format!("not a notifier URL: it must start with {SCHEMES}"));
        };
        let url = reqwest::Url::parse(s)
            .map_err(|_| format!("not a valid URL (its scheme is one of {SCHEMES})"))?;
        let mut q = query::Query::of(&url);
        let events = q.events()?;
        let target = match scheme.as_str() {
            "ntfy" => Target::Ntfy(ntfy::Ntfy::parse(&url, &mut q)?),
            "discord" => Target::Discord(discord::Discord::parse(&url)?),
            "slack" => Target::Slack(slack::Slack::parse(&url, &mut q)?),
            "mattermost" => Target::Mattermost(mattermost::Mattermost::parse(&url, &mut q)?),
            "telegram" => Target::Telegram(telegram::Telegram::parse(&url, &mut q)?),
            "teams" | "teams+https" => Target::Teams(teams::Teams::parse(&url, &mut q)?),
            "smtp" => Target::Smtp(Box::new(smtp::Smtp::parse(&url, &mut q)?)),
            "generic+https" | "generic+http" => {
                Target::Generic(generic::Generic::parse(&url, q.rest())?)
            }
            _ => return Err(format!("unknown scheme: use {SCHEMES}")),
        };
        Ok(NotifyUrl { target, events })
    }

    /// The `--notify-webhook` URL: the generic JSON webhook, every event.
    pub fn webhook(url: generic::WebhookUrl) -> Self {
        NotifyUrl {
            target: Target::Generic(generic::Generic::webhook(url)),
            events: None,
        }
    }

    /// The scheme's name, safe to print (`ntfy`, `smtp`, `webhook`, ...).
    pub fn scheme(&self) -> &'static str {
        match &self.target {
            Target::Ntfy(_) => "ntfy",
            Target::Discord(_) => "discord",
            Target::Slack(_) => "slack",
            Target::Mattermost(_) => "mattermost",
            Target::Telegram(_) => "telegram",
            Target::Teams(_) => "teams",
            Target::Smtp(_) => "smtp",
            Target::Generic(g) => g.name(),
        }
    }

    /// Whether this notifier is told about `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events
            .as_ref()
            .map_or(true, |list| list.contains(&event))
    }

    /// Delivers `notice` (`base`: the test-only override of fixed hosts).
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        base: Option<&reqwest::Url>,
        notice: &Notice,
    ) -> Result<(), DeliveryError> {
        let request = match &self.target {
            Target::Ntfy(t) => t.request(http, notice),
            Target::Discord(t) => t.request(http, base, notice),
            Target::Slack(t) => t.request(http, base, notice),
            Target::Mattermost(t) => t.request(http, notice),
            Target::Teams(t) => t.request(http, base, notice),
            Target::Generic(t) => t.request(http, notice),
            Target::Telegram(t) => {
                for request in t.requests(http, base, notice) {
                    send(request).await?;
                }
                return Ok(());
            }
            Target::Smtp(t) => return t.send(notice).await,
        };
        send(request).await
    }
}

impl std::fmt::Debug for NotifyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NotifyUrl({}, <hidden>)", self.scheme())
    }
}

/// Sends one request; a status other than 2xx is a failure.
async fn send(request: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
    let answer = request.send().await?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Refused(answer.status().as_u16()))
    }
}

/// `base` joined with `path` (the test override), else `https://{host}{path}`.
pub fn fixed_host(base: Option<&reqwest::Url>, host: &str, path: &str) -> String {
    match base {
        Some(b) => format!("{}{path}", b.as_str().trim_end_matches('/')),
        None => format!("https://{host}{path}"),
    }
}

/// A percent-decoded part of a URL (user, password, path segment).
pub fn decoded(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests;
