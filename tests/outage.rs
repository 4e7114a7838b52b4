//! The engine's socket vanishing in the middle of a swap (connections dropped, socket file
//! gone), through a forwarder in front of the real engine so other tests are unaffected.
//! Either the rotator rides the outage out, or it stops with a clear error and the next
//! run recovers: the target ends up running under its own name, nothing left behind.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::api::StandInApi;
use support::proxy::EngineProxy;
use support::{accepted, env_of, host_bot, inspect, rotator_env, s, Paused, Run, Scope, ENV_VAR};

/// A bot carrying `old`, a secret file holding `new`, and a forwarder to the engine.
struct Outage {
    scope: Scope,
    _api: StandInApi,
    base: String,
    name: String,
    old_id: Value,
    old: String,
    new: String,
    file: std::path::PathBuf,
    proxy: EngineProxy,
}

impl Outage {
    fn new(test: &str) -> Outage {
        let scope = Scope::new(test);
        let api = StandInApi::start();
        let (old, new) = (accepted(&api), accepted(&api));
        let name = host_bot(&scope, "bot", &old, &api.base_url(), &[]);
        let old_id = inspect(&name)["Id"].clone();
        let file = scope.secret_file(&new);
        let proxy = EngineProxy::start(scope.dir.path());
        Outage {
            base: api.base_url(),
            _api: api,
            name,
            old_id,
            old,
            new,
            file,
            proxy,
            scope,
        }
    }

    /// `rotate` riding out outages for `retry` seconds (verification and rollback alike).
    fn args<'a>(&'a self, retry: &'a str) -> Vec<&'a str> {
        let name = self.name.as_str();
        vec![
            "rotate",
            "--json",
            "--secret-file",
            s(&self.file),
            "--api-base-url",
            &self.base,
            "--container",
            name,
            "--settle",
            "0.3",
            "--engine-retry",
            retry,
            "--verify-timeout",
            retry,
        ]
    }

    /// Pauses a rotation at `step`, cuts the engine off, lets the rotation go on, and
    /// brings the engine back after `back_after` (never, if `None`).
    fn cut_at(&self, step: &str, retry: &str, back_after: Option<u64>) -> Run {
        let host = self.proxy.docker_host();
        let paused = Paused::at(step, &self.args(retry), &[("DOCKER_HOST", &host)]);
        self.proxy.cut();
        paused.release();
        if let Some(secs) = back_after {
            std::thread::sleep(Duration::from_secs(secs));
            self.proxy.restore();
        }
        paused.wait()
    }

    /// The target runs under its name carrying `token`, and nothing else is left.
    fn assert_ends_running_with(&self, token: &str) {
        assert_eq!(inspect(&self.name)["State"]["Running"], true);
        assert_eq!(env_of(&self.name, ENV_VAR).as_deref(), Some(token));
        assert_eq!(
            self.scope.containers(),
            vec![self.name.clone()],
            "no leftovers"
        );
    }
}

#[test]
fn an_engine_outage_during_verification_is_ridden_out_when_it_comes_back() {
    let o = Outage::new("outage-back");
    let run = o.cut_at("after-start", "60", Some(3));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("engine unreachable"), "{run:?}");
    assert_eq!(run.json()["targets"][0]["outcome"], "swapped", "{run:?}");
    assert_ne!(inspect(&o.name)["Id"], o.old_id);
    o.assert_ends_running_with(&o.new);
}

#[test]
fn an_engine_gone_for_longer_than_the_retry_window_stops_clearly_and_the_next_run_recovers() {
    let o = Outage::new("outage-gone");
    // The old container has been stopped and set aside; the replacement has its name.
    let run = o.cut_at("after-stop", "2", None);
    assert_eq!(run.code, 6, "{run:?}");
    let report = run.json();
    assert_eq!(report["outcome"], "rollback_failed");
    assert_eq!(report["targets"][0]["outcome"], "rollback_failed");
    let error = report["targets"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("could not start the replacement")
            && error.contains("ROLLBACK FAILED: could not list the leftovers of the swap")
            && error.contains("the next `token-rotator rotate` or `run` finishes the recovery"),
        "names the failed step, the failed undo step, and what comes next: {error}"
    );
    assert!(
        run.stderr
            .contains("could not list leftovers of a swap, retrying: engine unreachable ("),
        "retried with backoff first: {run:?}"
    );
    assert_eq!(
        inspect(&o.name)["State"]["Running"],
        false,
        "the state the outage left: the replacement, not started, has the name"
    );

    o.proxy.restore();
    let host = o.proxy.docker_host();
    let again = rotator_env(&o.args("30"), &[("DOCKER_HOST", &host)]);
    assert_eq!(again.code, 0, "{again:?}");
    let recovered = again.json()["recovered"].to_string();
    assert!(
        recovered.contains("removed unverified replacement")
            && recovered.contains("restored the old container"),
        "{again:?}"
    );
    o.assert_ends_running_with(&o.new);
}

#[test]
fn an_engine_outage_mid_swap_rolls_back_cleanly_and_is_reported_as_retryable() {
    let o = Outage::new("outage-rollback");
    // The forward step fails on the dropped connection; the rollback waits for the engine.
    let run = o.cut_at("after-rename-old", "60", Some(2));
    assert_eq!(
        run.code, 5,
        "exit 5: engine unavailable, worth retrying: {run:?}"
    );
    let report = run.json();
    assert_eq!(report["outcome"], "engine_unavailable");
    assert_eq!(report["targets"][0]["outcome"], "rolled_back");
    assert_eq!(
        inspect(&o.name)["Id"],
        o.old_id,
        "the very same old container"
    );
    o.assert_ends_running_with(&o.old);
}
