//! Follow the engine's container events: a target that starts (recreated by compose, re-run
//! by hand, restarted) is reported, so the loop can make sure it carries the live token.
//! The stream reconnects with backoff after an engine outage, and the loop then looks at
//! every target once.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use futures_util::StreamExt;

use super::trigger::{Sender, Trigger};
use crate::engine::{describe, labels, Backoff};
use crate::targets::container::Selector;

/// Starts following `start` events of the containers `targets` selects (by name or label).
pub fn spawn(docker: Docker, targets: Selector, tx: Sender) {
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        // Whether the stream broke: what happened meanwhile must be looked at once it is back.
        let mut broken = false;
        loop {
            if tx.is_closed() {
                return;
            }
            if docker.ping().await.is_err() {
                broken = true;
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            if broken {
                tracing::info!("the engine's event stream is back; looking at every target");
                if tx.send(Trigger::EventsReconnected).is_err() {
                    return;
                }
            }
            backoff.reset();
            let filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["start".to_string()]),
            ]);
            let opts = EventsOptions {
                filters: Some(filters),
                ..Default::default()
            };
            let mut stream = docker.events(Some(opts));
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!("the engine's event stream broke: {}", describe(&e));
                        break;
                    }
                };
                let attrs = event.actor.and_then(|a| a.attributes).unwrap_or_default();
                let Some(name) = attrs.get("name") else {
                    continue;
                };
                if !targets.matches(name, &attrs) {
                    continue;
                }
                let trigger = Trigger::TargetStarted {
                    name: name.clone(),
                    fingerprint: attrs.get(labels::FINGERPRINT).cloned(),
                };
                if tx.send(trigger).is_err() {
                    return;
                }
            }
            broken = true;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    });
}
