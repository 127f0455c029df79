//! A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every request
//! and refuses the first few with 503, as a receiver that is down would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// Epoch milliseconds at arrival.
    pub at_ms: i64,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    refuse_left: AtomicUsize,
}

pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let refuse = shared
        .refuse_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if refuse {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    shared.received.lock().unwrap().push(Received {
        at_ms: erasure::clock::now_ms(),
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

impl Receiver {
    /// Starts a receiver that refuses its first `refuse_first` requests.
    pub async fn start(refuse_first: usize) -> Self {
        let shared = Arc::new(Shared {
            refuse_left: AtomicUsize::new(refuse_first),
            ..Shared::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits up to `seconds` for `accepted` requests answered 200.
    pub async fn wait_for_accepted(&self, accepted: usize, seconds: u64) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let received = self.received();
            if received.iter().filter(|r| r.answered == 200).count() >= accepted
                || std::time::Instant::now() > deadline
            {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
