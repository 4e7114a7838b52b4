//! A private Docker Engine 26.1 of one test's own (scripts/engine26.sh): killed and
//! restarted for real without touching the machine's engine or any other test, purged on
//! drop.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running private engine.
pub struct PrivateEngine {
    /// Its name in scripts/engine26.sh.
    pub name: String,
    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
}

fn script(args: &[&str]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/engine26.sh"))
        .args(args)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/engine26.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl PrivateEngine {
    /// Starts a new engine and loads `images` into it from the machine's engine.
    pub fn start(images: &[&str]) -> PrivateEngine {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let out = script(&["start", &name]);
        let host = out
            .lines()
            .find_map(|l| l.strip_prefix("DOCKER_HOST="))
            .expect("DOCKER_HOST from engine26.sh")
            .to_string();
        let e = PrivateEngine { name, host };
        for image in images {
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "docker save {image} | DOCKER_HOST={} docker load -q",
                    e.host
                ))
                .status()
                .expect("sh");
            assert!(status.success(), "loading {image} into {}", e.name);
        }
        e
    }

    /// `docker ARGS` against this engine, panicking on failure; trimmed stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {} on {}: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `docker inspect` of a container on this engine, or `None` if it has none by that name.
    pub fn inspect(&self, name: &str) -> Option<serde_json::Value> {
        let out = Command::new("docker")
            .args(["inspect", "--type", "container", name])
            .env("DOCKER_HOST", &self.host)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(v[0].take())
    }

    /// Every container's name on this engine.
    pub fn containers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .docker(&["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// SIGKILLs the engine (and its containerd), as a crash of the host's daemon would.
    pub fn kill(&self) {
        script(&["kill", &self.name]);
    }

    /// Starts it again after [`PrivateEngine::kill`], on the same data root.
    pub fn restart(&self) {
        script(&["start", &self.name]);
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/engine26.sh"))
            .args(["purge", &self.name])
            .output();
    }
}
