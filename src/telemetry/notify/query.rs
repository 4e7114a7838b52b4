//! A notifier URL's query: the parameters that are ours (`events`, `scheme`) and the
//! service's (shoutrrr's names, matched without regard to case) are taken out; what is
//! left is the generic webhook's to forward.

use super::EVENTS;

/// The query parameters of one URL, in order.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// The parameters of `url`.
    pub fn of(url: &reqwest::Url) -> Self {
        Query(
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// No parameters.
    pub fn empty() -> Self {
        Query(Vec::new())
    }

    /// Takes the value of the first of `names` present (any case), removing every one.
    pub fn take(&mut self, names: &[&str]) -> Option<String> {
        let mut found = None;
        self.0.retain(|(k, v)| {
            let hit = names.iter().any(|n| k.eq_ignore_ascii_case(n));
            if hit && found.is_none() {
                found = Some(v.clone());
            }
            !hit
        });
        found
    }

    /// `?events=a,b`: the events this notifier is limited to (`None`: all of them).
    pub fn events(&mut self) -> Result<Option<Vec<&'static str>>, String> {
        let Some(list) = self.take(&["events"]) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match EVENTS.iter().find(|e| **e == name) {
                Some(e) => out.push(*e),
                None => {
                    return Err(format!(
                        "?events= names an unknown event; the events are {}",
                        EVENTS.join(", ")
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err(format!(
                "?events= is empty; name some of {}",
                EVENTS.join(", ")
            ));
        }
        Ok(Some(out))
    }

    /// `?scheme=http|https` (ours, for self-hosted servers without TLS): whether it is http.
    pub fn plain_http(&mut self) -> Result<bool, String> {
        match self.take(&["scheme"]).as_deref() {
            None | Some("https") => Ok(false),
            Some("http") => Ok(true),
            Some(_) => Err("?scheme= must be http or https".into()),
        }
    }

    /// What is left, in order.
    pub fn rest(self) -> Vec<(String, String)> {
        self.0
    }
}
