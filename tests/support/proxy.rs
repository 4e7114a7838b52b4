//! A unix-socket forwarder in front of the real Docker socket, so a test can make the
//! engine vanish for one rotator (connections dropped, socket file gone) and come back,
//! without touching the engine every other test shares. It also records the request line
//! of every request a rotator makes, so a test can count its engine calls.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The forwarder; `DOCKER_HOST=unix://<path>` points a rotator at it.
pub struct EngineProxy {
    path: PathBuf,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
    requests: Requests,
}

/// Each request line seen, with when it reached the proxy (seconds since the epoch).
type Requests = Arc<Mutex<Vec<(f64, String)>>>;

/// Copies `from` to `to`; with `requests`, records each HTTP request line seen on the way
/// (`GET /v1.41/containers/json`, without the version).
fn pump(mut from: UnixStream, mut to: UnixStream, requests: Option<Requests>) {
    let mut buf = [0u8; 16 * 1024];
    let mut line = Vec::new();
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(r) = &requests {
                    for &b in &buf[..n] {
                        if b != b'\n' {
                            // Only a line's start matters; a body may be long.
                            if line.len() < 512 {
                                line.push(b);
                            }
                            continue;
                        }
                        if let Some(req) = request_line(&line) {
                            let at = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_secs_f64();
                            r.lock().unwrap().push((at, req));
                        }
                        line.clear();
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// `METHOD /path` of an HTTP/1.x request line (the API version dropped), if it is one.
fn request_line(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = text.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let known = ["GET", "POST", "PUT", "DELETE", "HEAD"].contains(&method);
    if !known || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let path = match target.strip_prefix("/v").and_then(|t| t.split_once('/')) {
        Some((v, rest)) if v.chars().all(|c| c.is_ascii_digit() || c == '.') => format!("/{rest}"),
        _ => target.to_string(),
    };
    Some(format!("{method} {path}"))
}

impl EngineProxy {
    /// Listens on a fresh socket under `dir` and forwards to the engine's socket.
    pub fn start(dir: &Path) -> EngineProxy {
        let proxy = EngineProxy {
            path: dir.join("engine.sock"),
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let (path, up, stop, open, requests) = (
            proxy.path.clone(),
            proxy.up.clone(),
            proxy.stop.clone(),
            proxy.open.clone(),
            proxy.requests.clone(),
        );
        let bind = |path: &Path| {
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path).expect("bind the proxy socket");
            l.set_nonblocking(true).unwrap();
            l
        };
        let mut listener = Some(bind(&path));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match (&listener, up.load(Ordering::SeqCst)) {
                    (Some(_), false) => {
                        listener = None;
                        let _ = std::fs::remove_file(&path);
                    }
                    (None, true) => listener = Some(bind(&path)),
                    _ => {}
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(engine) = UnixStream::connect(super::engine_socket()) else {
                            continue;
                        };
                        let mut o = open.lock().unwrap();
                        o.push(client.try_clone().unwrap());
                        o.push(engine.try_clone().unwrap());
                        let (c2, e2) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
                        let seen = Some(requests.clone());
                        std::thread::spawn(move || pump(client, engine, seen));
                        std::thread::spawn(move || pump(e2, c2, None));
                        // A connection accepted while `cut` ran is dropped here.
                        if !up.load(Ordering::SeqCst) {
                            for s in o.drain(..) {
                                let _ = s.shutdown(std::net::Shutdown::Both);
                            }
                        }
                    }
                    // Polled (to see `cut` and drop) often enough that a new connection
                    // waits well under a millisecond: the bench times requests through it.
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
            let _ = std::fs::remove_file(&path);
        });
        proxy
    }

    /// The `DOCKER_HOST` value that reaches the engine through this proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Every request made through the proxy so far, as `METHOD /path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.timed_requests().into_iter().map(|(_, r)| r).collect()
    }

    /// As [`EngineProxy::requests`], each with when it reached the proxy (seconds since
    /// the epoch).
    pub fn timed_requests(&self) -> Vec<(f64, String)> {
        self.requests.lock().unwrap().clone()
    }

    /// The engine vanishes: every open connection is dropped and the socket file removed.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        assert!(
            super::wait_until(5.0, || !self.path.exists()),
            "the proxy socket is still there"
        );
    }

    /// The engine is back: the socket listens again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        assert!(
            super::wait_until(5.0, || self.path.exists()),
            "the proxy socket did not come back"
        );
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}
