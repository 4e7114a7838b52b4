//! A local webhook receiver that records the JSON bodies posted to it.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::Router;

/// A running receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Recorder {
    /// Its URL.
    pub url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Recorder {
    /// Starts a receiver answering 200 to every POST on `/hook`.
    pub fn start() -> Recorder {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let state = bodies.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().route("/hook", post(record)).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Recorder {
            url: format!("http://{addr}/hook"),
            bodies,
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

async fn record(
    State(bodies): State<Arc<Mutex<Vec<serde_json::Value>>>>,
    body: axum::body::Bytes,
) -> &'static str {
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    bodies.lock().unwrap().push(v);
    "ok"
}
