//! A unix-socket forwarder in front of the real Docker socket, so a test can make the
//! engine vanish for one rotator (connections dropped, socket file gone) and come back,
//! without touching the engine every other test shares.

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
}

fn pump(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

impl EngineProxy {
    /// Listens on a fresh socket under `dir` and forwards to the engine's socket.
    pub fn start(dir: &Path) -> EngineProxy {
        let proxy = EngineProxy {
            path: dir.join("engine.sock"),
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let (path, up, stop, open) = (
            proxy.path.clone(),
            proxy.up.clone(),
            proxy.stop.clone(),
            proxy.open.clone(),
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
                        std::thread::spawn(move || pump(client, engine));
                        std::thread::spawn(move || pump(e2, c2));
                        // A connection accepted while `cut` ran is dropped here.
                        if !up.load(Ordering::SeqCst) {
                            for s in o.drain(..) {
                                let _ = s.shutdown(std::net::Shutdown::Both);
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
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
