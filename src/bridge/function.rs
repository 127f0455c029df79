//! A local Lambda for one function: serves the Lambda Runtime API to a process of the
//! function's binary, gives each invocation the deadline the function's timeout sets, kills the
//! process when an invocation outlives it (as Lambda does), and starts a new process whenever the
//! last one died — so a crashed or killed worker never hangs the local stack.
//!
//! `cargo lambda watch` does none of this: it sends every invocation a deadline in 1970, has no
//! timeout, and does not replace a function process that died mid-invocation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{oneshot, Notify};

const RUNTIME_API: &str = "/2018-06-01/runtime";
/// A process that dies this soon after starting is restarted only after a pause, so a binary
/// that cannot start does not spin.
const QUICK_EXIT: Duration = Duration::from_secs(2);

/// The function to run: its binary, environment and Lambda settings.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub binary: PathBuf,
    /// Set on the process besides the bridge's own environment (e.g. an env file's lines).
    pub env: Vec<(String, String)>,
    /// The function's timeout, as the template sets it.
    pub timeout: Duration,
    pub memory_mb: u32,
}

/// Why an invocation gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function did not answer within its timeout of {0:?}; its process was killed")]
    Timeout(Duration),
    #[error("the function's process died during the invocation")]
    Crashed,
    #[error("the function reported an error: {0}")]
    Function(String),
    #[error("the runtime API could not start")]
    Serve(#[source] std::io::Error),
}

/// One invocation on its way to the function.
struct Invocation {
    id: String,
    deadline_ms: u64,
    event: Bytes,
}

/// What the Runtime API and the invoker share. One invocation at a time, as one Lambda
/// instance: `waiting` until the process asks for it, then `in_flight` until it answers.
#[derive(Default)]
struct Slot {
    waiting: Option<Invocation>,
    in_flight: Option<String>,
    reply: Option<oneshot::Sender<Result<Bytes, InvokeError>>>,
}

struct Shared {
    slot: Mutex<Slot>,
    /// Wakes the process's pending `next` request.
    ready: Notify,
    /// Asks the supervisor to kill the current process.
    kill: Notify,
    /// The current process's id (0 while none runs), for tests that kill it.
    pid: AtomicU32,
    /// Invocations ended by their process's death.
    crashes: AtomicU32,
}

impl Shared {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // A poisoned lock only means a handler panicked mid-update; the slot is still whole.
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the invocation in flight with `result`, if `id` is the one in flight.
    fn answer(&self, id: &str, result: Result<Bytes, InvokeError>) -> bool {
        let mut slot = self.slot();
        if slot.in_flight.as_deref() != Some(id) {
            return false;
        }
        slot.in_flight = None;
        if let Some(reply) = slot.reply.take() {
            let _ = reply.send(result);
        }
        true
    }
}

/// A running local function: invoke it; it keeps a process alive behind the Runtime API.
pub struct LocalFunction {
    config: FunctionConfig,
    shared: Arc<Shared>,
    /// One invocation at a time.
    serial: tokio::sync::Mutex<()>,
    _server: tokio::task::JoinHandle<()>,
    _supervisor: tokio::task::JoinHandle<()>,
}

impl LocalFunction {
    /// Serves the Runtime API on a free loopback port and starts the function's process.
    pub async fn start(config: FunctionConfig) -> Result<Self, InvokeError> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            ready: Notify::new(),
            kill: Notify::new(),
            pid: AtomicU32::new(0),
            crashes: AtomicU32::new(0),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(InvokeError::Serve)?;
        let address = listener.local_addr().map_err(InvokeError::Serve)?;
        let routes = Router::new()
            .route(&format!("{RUNTIME_API}/invocation/next"), get(next))
            .route(
                &format!("{RUNTIME_API}/invocation/{{id}}/response"),
                post(response),
            )
            .route(
                &format!("{RUNTIME_API}/invocation/{{id}}/error"),
                post(error),
            )
            .route(&format!("{RUNTIME_API}/init/error"), post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, routes).await {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "runtime API stopped"
                );
            }
        });
        let supervisor = tokio::spawn(supervise(config.clone(), address, shared.clone()));
        Ok(Self {
            config,
            shared,
            serial: tokio::sync::Mutex::new(()),
            _server: server,
            _supervisor: supervisor,
        })
    }

    /// The id of the function's current process, if one runs.
    pub fn pid(&self) -> Option<u32> {
        Some(self.shared.pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }

    /// Whether an invocation is in flight in the function's process.
    pub fn busy(&self) -> bool {
        self.shared.slot().in_flight.is_some()
    }

    /// How many invocations ended because the function's process died under them.
    pub fn crashes(&self) -> u32 {
        self.shared.crashes.load(Ordering::SeqCst)
    }

    /// Invokes the function with `event` and waits for its answer, at most its timeout.
    pub async fn invoke(&self, event: Bytes) -> Result<Bytes, InvokeError> {
        let _one_at_a_time = self.serial.lock().await;
        let (reply, answer) = oneshot::channel();
        {
            let mut slot = self.shared.slot();
            *slot = Slot {
                waiting: Some(Invocation {
                    id: request_id(),
                    deadline_ms: epoch_ms() + self.config.timeout.as_millis() as u64,
                    event,
                }),
                in_flight: None,
                reply: Some(reply),
            };
        }
        self.shared.ready.notify_one();
        match tokio::time::timeout(self.config.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InvokeError::Crashed),
            Err(_) => {
                *self.shared.slot() = Slot::default();
                self.shared.kill.notify_one();
                Err(InvokeError::Timeout(self.config.timeout))
            }
        }
    }
}

/// Keeps one process of the function running: starts it, and when it exits (crashed, killed
/// by hand or at a timeout) fails the invocation it was running and starts another.
async fn supervise(config: FunctionConfig, runtime_api: SocketAddr, shared: Arc<Shared>) {
    loop {
        let mut command = tokio::process::Command::new(&config.binary);
        command
            // Set after the function's own environment, so they win.
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(binary = %config.binary.display(), error = &error as &dyn std::error::Error, "could not start the function");
                tokio::time::sleep(QUICK_EXIT).await;
                continue;
            }
        };
        shared.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        tracing::info!(function = %config.name, pid = child.id(), "function process started");
        let status = tokio::select! {
            status = child.wait() => status,
            _ = shared.kill.notified() => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        shared.pid.store(0, Ordering::SeqCst);
        tracing::warn!(function = %config.name, ?status, "function process ended; starting another");
        let in_flight = shared.slot().in_flight.clone();
        if let Some(id) = in_flight {
            if shared.answer(&id, Err(InvokeError::Crashed)) {
                shared.crashes.fetch_add(1, Ordering::SeqCst);
            }
        }
        if started.elapsed() < QUICK_EXIT {
            tokio::time::sleep(QUICK_EXIT).await;
        }
    }
}

/// `GET …/invocation/next`: waits for an invocation and hands it to the process.
async fn next(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        let notified = shared.ready.notified();
        let invocation = {
            let mut slot = shared.slot();
            let taken = slot.waiting.take();
            if let Some(invocation) = &taken {
                slot.in_flight = Some(invocation.id.clone());
            }
            taken
        };
        if let Some(invocation) = invocation {
            let mut headers = HeaderMap::new();
            let mut set = |name: &'static str, value: String| {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            };
            set("lambda-runtime-aws-request-id", invocation.id);
            set(
                "lambda-runtime-deadline-ms",
                invocation.deadline_ms.to_string(),
            );
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:local".into(),
            );
            set("content-type", "application/json".into());
            return (StatusCode::OK, headers, invocation.event).into_response();
        }
        notified.await;
    }
}

/// `POST …/invocation/{id}/response`: the function's answer.
async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    accepted(shared.answer(&id, Ok(body)))
}

/// `POST …/invocation/{id}/error`: the function's handler failed.
async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let message = String::from_utf8_lossy(&body).into_owned();
    accepted(shared.answer(&id, Err(InvokeError::Function(message))))
}

/// `POST …/init/error`: the process could not start; it exits and is started again.
async fn init_error(body: Bytes) -> StatusCode {
    tracing::error!(error = %String::from_utf8_lossy(&body), "function init failed");
    StatusCode::ACCEPTED
}

fn accepted(known: bool) -> StatusCode {
    if known {
        StatusCode::ACCEPTED
    } else {
        // An answer for an invocation that already timed out or was never made.
        StatusCode::BAD_REQUEST
    }
}

fn request_id() -> String {
    use rand::Rng;
    format!("{:032x}", rand::rng().random::<u128>())
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads `KEY=VALUE` lines (blank lines and `#` comments skipped), as `--env-file` does for
/// `cargo lambda watch`.
pub fn read_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}
