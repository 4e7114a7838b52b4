//! The generic JSON webhook: `generic+https://…` and `generic+http://…` (shoutrrr's
//! shortcut: the target URL with `generic+` in front; query parameters that are not ours
//! are forwarded), and `--notify-webhook URL`. The body is the notice's JSON.

use super::Notice;

/// A webhook URL: http(s) with a host. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// Parses an http:// or https:// URL with a host.
    pub fn parse(s: &str) -> Result<Self, String> {
        match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Ok(WebhookUrl(u))
            }
            // Not the value: it may be a credential with a typo.
            _ => Err("not an http:// or https:// URL with a host".into()),
        }
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookUrl(<hidden>)")
    }
}

/// One JSON webhook.
#[derive(Clone)]
pub struct Generic {
    url: reqwest::Url,
    /// `webhook` for `--notify-webhook`, `generic` for `--notify generic+…`.
    name: &'static str,
}

impl Generic {
    /// From a parsed `generic+http(s)://` URL and the query parameters left to forward.
    pub fn parse(url: &reqwest::Url, forward: Vec<(String, String)>) -> Result<Self, String> {
        let text = url.as_str().split_once('+').map_or("", |x| x.1);
        let mut real = WebhookUrl::parse(text)
            .map_err(|_| "generic+https:// must be an http(s) URL with generic+ in front")?
            .0;
        real.set_query(None);
        if !forward.is_empty() {
            real.query_pairs_mut().extend_pairs(forward);
        }
        Ok(Generic {
            url: real,
            name: "generic",
        })
    }

    /// The `--notify-webhook` URL.
    pub fn webhook(url: WebhookUrl) -> Self {
        Generic {
            url: url.0,
            name: "webhook",
        }
    }

    /// `webhook` or `generic`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The POST of the notice's JSON body. `--notify-webhook` keeps the body it always had:
    /// a failed rotation is `"event": "rotation"` there (its `outcome` says how it failed).
    pub fn request(&self, http: &reqwest::Client, n: &Notice) -> reqwest::RequestBuilder {
        if self.name == "webhook" && n.event == "rotation_failed" {
            let mut body = n.body.clone();
            body["event"] = "rotation".into();
            return http.post(self.url.clone()).json(&body);
        }
        http.post(self.url.clone()).json(&n.body)
    }
}
