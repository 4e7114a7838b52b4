//! A local webhook receiver that records the JSON bodies posted to it, and can be taken
//! down (its port then refuses connections, as a crashed receiver's does) and brought back
//! on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::Router;

type Bodies = Arc<Mutex<Vec<serde_json::Value>>>;
/// What ends a serving thread, and the thread.
type Serving = (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
);

/// A running receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Recorder {
    /// Its URL.
    pub url: String,
    addr: SocketAddr,
    bodies: Bodies,
    /// Ends the serving thread (see [`Recorder::down`]); `None` while down.
    stop: Arc<Mutex<Option<Serving>>>,
}

/// Serves `bodies` on `addr` (port 0: any) on a thread of its own until the sender it
/// returns fires; dropping the runtime then closes the listener and every connection.
fn serve(
    addr: SocketAddr,
    bodies: Bodies,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .route("/hook", post(record))
                .with_state(bodies);
            tokio::select! {
                r = axum::serve(listener, app) => r.unwrap(),
                _ = stop_rx => {}
            }
        });
    });
    (rx.recv().unwrap(), stop_tx, thread)
}

impl Recorder {
    /// Starts a receiver answering 200 to every POST on `/hook`.
    pub fn start() -> Recorder {
        let bodies = Bodies::default();
        let (addr, stop, thread) = serve("127.0.0.1:0".parse().unwrap(), bodies.clone());
        Recorder {
            url: format!("http://{addr}/hook"),
            addr,
            bodies,
            stop: Arc::new(Mutex::new(Some((stop, thread)))),
        }
    }

    /// Takes it down: once this returns, its port refuses connections.
    pub fn down(&self) {
        if let Some((stop, thread)) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
            thread.join().unwrap();
        }
    }

    /// Brings it back on the same port after [`Recorder::down`] (no-op while up).
    pub fn up(&self) {
        let mut stop = self.stop.lock().unwrap();
        if stop.is_none() {
            let (_, tx, thread) = serve(self.addr, self.bodies.clone());
            *stop = Some((tx, thread));
        }
    }

    /// Everything received so far; every body goes through the leak check first.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        let bodies = self.bodies.lock().unwrap().clone();
        for b in &bodies {
            super::assert_no_secret(&b.to_string());
        }
        bodies
    }

    /// The `event` field of every body received so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.bodies()
            .iter()
            .filter_map(|b| b["event"].as_str().map(str::to_string))
            .collect()
    }
}

async fn record(State(bodies): State<Bodies>, body: axum::body::Bytes) -> &'static str {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    dump(&v);
    bodies.lock().unwrap().push(v);
    "ok"
}

/// With `TR_NOTICES_DUMP=FILE` set, every body received is also appended to FILE, one JSON
/// line each: the messages a person gets, as the tests produce them, to read or quote
/// (`TR_NOTICES_DUMP=/tmp/notices.jsonl cargo test --test retired`).
pub fn dump(v: &serde_json::Value) {
    use std::io::Write;
    let Some(path) = std::env::var_os("TR_NOTICES_DUMP") else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut f) = file {
        let _ = f.write_all(format!("{v}\n").as_bytes());
    }
}
