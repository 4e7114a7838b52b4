//! ntfy: `ntfy://[USER:PASS@]HOST[:PORT]/TOPIC[?scheme=http]` (shoutrrr's form; an empty
//! host is ntfy.sh, `ntfy://:TOKEN@HOST/TOPIC` is an access token). Sent with ntfy's JSON
//! publish API (`POST /` with `topic`, `title`, `message`, `priority`, `tags`), priority and
//! tags by the notice's severity and event.

use super::query::Query;
use super::{decoded, Notice, Severity};

/// One ntfy topic.
#[derive(Clone)]
pub struct Ntfy {
    /// `scheme://host[:port]`.
    base: String,
    topic: String,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Ntfy {
    /// From a parsed `ntfy://` URL.
    pub fn parse(url: &reqwest::Url, q: &mut Query) -> Result<Self, String> {
        let scheme = if q.plain_http()? { "http" } else { "https" };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => "ntfy.sh".to_string(),
        };
        let base = match url.port() {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        let topic = decoded(url.path().trim_matches('/'));
        if topic.is_empty() || topic.contains('/') {
            return Err("ntfy:// needs one topic: ntfy://[USER:PASS@]HOST[:PORT]/TOPIC".into());
        }
        let (user, pass) = (decoded(url.username()), url.password().map(decoded));
        let auth = match (user.is_empty(), pass) {
            (true, Some(token)) => Auth::Bearer(token),
            (false, pass) => Auth::Basic(user, pass.unwrap_or_default()),
            (true, None) => Auth::None,
        };
        Ok(Ntfy { base, topic, auth })
    }

    /// The publish request.
    pub fn request(&self, http: &reqwest::Client, n: &Notice) -> reqwest::RequestBuilder {
        let body = serde_json::json!({
            "topic": self.topic,
            "title": n.title,
            "message": n.text,
            "priority": priority(n.severity),
            "tags": tags(n),
        });
        let request = http.post(format!("{}/", self.base)).json(&body);
        match &self.auth {
            Auth::None => request,
            Auth::Basic(user, pass) => request.basic_auth(user, Some(pass)),
            Auth::Bearer(token) => request.bearer_auth(token),
        }
    }
}

/// ntfy's priority: 3 (default) for info, 4 (high) for a warning, 5 (max) when critical.
pub fn priority(s: Severity) -> u8 {
    match s {
        Severity::Info => 3,
        Severity::Warning => 4,
        Severity::Critical => 5,
    }
}

/// An emoji tag for the severity (ntfy shows it before the title), then the event's name.
pub fn tags(n: &Notice) -> Vec<&'static str> {
    let emoji = match (n.severity, n.event) {
        (Severity::Info, "retired_token_dead") => "skull",
        (Severity::Info, _) => "white_check_mark",
        (Severity::Warning, _) => "warning",
        (Severity::Critical, _) => "rotating_light",
    };
    vec![emoji, n.event]
}
