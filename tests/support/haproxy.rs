//! Debian's HAProxy as a deny-by-default filtering socket proxy in front of the engine,
//! like the docker-socket-proxy images: HTTP mode, each allowed call a method plus a path
//! regex from `token_rotator::engine::api` (the README's table), everything else `403`.
//! It runs as a child of the test on a private unix socket in the test's directory, logs
//! every request (status, method, URI) to a file, and is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use token_rotator::engine::api::Endpoint;

/// A running proxy; `DOCKER_HOST=unix://<socket>` points a rotator through it.
pub struct SocketProxy {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

/// One logged request: status, method, path (query removed, version prefix kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The status the client got.
    pub status: u16,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
}

fn config(socket: &Path, engine: &Path, allowed: &[Endpoint]) -> String {
    let mut rules = String::new();
    for e in allowed {
        rules.push_str(&format!(
            "    http-request allow if {{ method {} }} {{ path_reg {} }}\n",
            e.method,
            e.path_regex()
        ));
    }
    format!(
        "global\n    log stdout format raw local0 info\n\
         defaults\n    mode http\n    log global\n    option logasap\n    option dontlognull\n\
         \x20   timeout connect 5s\n    timeout client 10m\n    timeout server 10m\n    timeout tunnel 10m\n\
         frontend api\n    bind unix@{sock} mode 600\n    log-format \"%ST %HM %HU\"\n{rules}\
         \x20   http-request deny deny_status 403\n    default_backend engine\n\
         backend engine\n    server engine unix@{engine}\n",
        sock = socket.display(),
        engine = engine.display(),
    )
}

impl SocketProxy {
    /// Starts HAProxy in `dir` allowing exactly `allowed` in front of `engine`.
    pub fn start(dir: &Path, engine: &Path, allowed: &[Endpoint]) -> SocketProxy {
        let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("haproxy is not installed: run `bash scripts/install.sh haproxy` (scripts/test.sh does)");
        let socket = dir.join("proxy.sock");
        let cfg = dir.join("haproxy.cfg");
        let log = dir.join("haproxy.log");
        std::fs::write(&cfg, config(&socket, engine, allowed)).unwrap();
        let child = Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start haproxy");
        let proxy = SocketProxy { child, socket, log };
        assert!(
            super::wait_until(10.0, || std::os::unix::net::UnixStream::connect(
                &proxy.socket
            )
            .is_ok()),
            "haproxy did not come up; its config is {}",
            cfg.display()
        );
        proxy
    }

    /// The `DOCKER_HOST` value for it.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let status = parts.next()?.parse().ok()?;
                let method = parts.next()?.to_string();
                let uri = parts.next()?;
                let path = uri.split('?').next()?.to_string();
                Some(Logged {
                    status,
                    method,
                    path,
                })
            })
            .collect()
    }

    /// The logged requests that match no endpoint of `allowed`, or were refused.
    pub fn outside(&self, allowed: &[Endpoint]) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 403 || !allowed.iter().any(|e| matches(e, &r.method, &r.path)))
            .collect()
    }
}

/// Whether `method path` is the call `e` (the same rule HAProxy applies, by segments).
pub fn matches(e: &Endpoint, method: &str, path: &str) -> bool {
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        _ => path,
    };
    let (want, got): (Vec<_>, Vec<_>) = (e.path.split('/').collect(), path.split('/').collect());
    method == e.method
        && want.len() == got.len()
        && want
            .iter()
            .zip(&got)
            .all(|(w, g)| w == g || (*w == "{id}" && !g.is_empty()))
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
