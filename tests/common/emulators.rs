//! The local AWS a test talks to: the emulators `make test` started (their endpoints in the
//! environment), or, under a plain `cargo test` (after `make tools`), ones this test process
//! starts itself on free loopback ports. Those stop when the process ends: each runs under a
//! shell that kills it when its stdin, a pipe held by this process, closes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// dynalite's table operations, instant: a test never waits for a table to become active.
const DYNALITE_TIMINGS: [&str; 6] = [
    "--createTableMs",
    "0",
    "--deleteTableMs",
    "0",
    "--updateTableMs",
    "0",
];

/// The processes started here, kept so their stdin pipes stay open while the tests run.
static STARTED: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// DynamoDB: `ERASURE_TEST_DYNAMODB_ENDPOINT`, or a dynalite of this process.
pub fn dynamodb_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            given("ERASURE_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|| {
                let port = free_port();
                let port_arg = port.to_string();
                start(
                    "node_modules/.bin/dynalite",
                    &[
                        &["--host", "127.0.0.1", "--port", &port_arg][..],
                        &DYNALITE_TIMINGS,
                    ]
                    .concat(),
                    port,
                )
            })
        })
        .clone()
}

/// SQS: `ERASURE_TEST_SQS_ENDPOINT`, or a moto server of this process.
pub fn sqs_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            given("ERASURE_TEST_SQS_ENDPOINT").unwrap_or_else(|| {
                let port = free_port();
                let port_arg = port.to_string();
                start(
                    ".venv/bin/moto_server",
                    &["-H", "127.0.0.1", "-p", &port_arg],
                    port,
                )
            })
        })
        .clone()
}

/// The Lambda emulator for `api`: `ERASURE_E2E_LAMBDA_ENDPOINT` with its env file, or a
/// `cargo lambda watch` of this process over the emulators above. Its functions build in a
/// target directory of their own: `cargo test` holds the lock of `target/` while tests run.
pub fn lambda_watch() -> (String, String) {
    static WATCH: OnceLock<(String, String)> = OnceLock::new();
    WATCH
        .get_or_init(|| {
            if let (Some(endpoint), Some(env_file)) = (
                given("ERASURE_E2E_LAMBDA_ENDPOINT"),
                given("ERASURE_E2E_ENV_FILE"),
            ) {
                return (endpoint, env_file);
            }
            let port = free_port();
            let sqs = sqs_endpoint();
            let env_file = format!("{ROOT}/target/e2e-{port}.env");
            let env = [
                ("AWS_REGION", "us-east-1".to_owned()),
                ("AWS_ACCESS_KEY_ID", "local".into()),
                ("AWS_SECRET_ACCESS_KEY", "local".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint()),
                ("AWS_ENDPOINT_URL_SQS", sqs.clone()),
                ("DATA_TABLE", "e2e-data".into()),
                ("CONTROL_TABLE", "e2e-control".into()),
                ("TASK_QUEUE_URL", format!("{sqs}/123456789012/e2e-tasks")),
                (
                    "WEBHOOK_QUEUE_URL",
                    format!("{sqs}/123456789012/e2e-webhooks"),
                ),
                ("MAX_RECEIVE_COUNT", "5".into()),
                // A fresh key per run: tokens of another run must not open.
                (
                    "EXPORT_TOKEN_KEY",
                    format!(
                        "{:032x}{:032x}",
                        rand::random::<u128>(),
                        rand::random::<u128>()
                    ),
                ),
            ];
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            std::fs::write(&env_file, text).expect("the env file can be written");
            let port_arg = port.to_string();
            let endpoint = start_with(
                ".venv/bin/cargo-lambda",
                &[
                    "lambda",
                    "watch",
                    "--ignore-changes",
                    "-A",
                    "127.0.0.1",
                    "-P",
                    &port_arg,
                    "--env-file",
                    &env_file,
                ],
                &[("CARGO_TARGET_DIR", format!("{ROOT}/target/watch"))],
                port,
            );
            warm_up(&endpoint);
            (endpoint, env_file)
        })
        .clone()
}

fn given(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start(program: &str, args: &[&str], port: u16) -> String {
    start_with(program, args, &[], port)
}

/// Starts `program` (relative to the repository) under a shell that kills it once stdin
/// closes, and waits until it listens on `port`.
fn start_with(program: &str, args: &[&str], env: &[(&str, String)], port: u16) -> String {
    let path = Path::new(ROOT).join(program);
    assert!(
        path.exists(),
        "{} is missing: run `make tools` once (or run the tests with `make test`)",
        path.display()
    );
    let log = std::fs::File::create(format!("{ROOT}/target/emulator-{port}.log"))
        .expect("the emulator's log can be written");
    let child = Command::new("bash")
        .arg("-c")
        .arg(r#""$@" </dev/null & child=$!; read -r _; kill "$child"; wait"#)
        .arg("emulator")
        .arg(&path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(ROOT)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("the emulator starts");
    STARTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{program} does not listen on {port}; see target/emulator-{port}.log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// `cargo lambda watch` builds a function on its first call: call both once, with the patience
/// a cold build on a busy machine needs (any HTTP answer means the function runs).
fn warm_up(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    for (path, body) in [
        ("lambda-url/api/warmup", ""),
        (
            "2015-03-31/functions/worker/invocations",
            r#"{"Records":[]}"#,
        ),
    ] {
        loop {
            let answered = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "--max-time", "120"])
                .args(["-H", "content-type: application/json", "-d", body])
                .arg(format!("{endpoint}/{path}"))
                .status()
                .expect("curl runs")
                .success();
            if answered {
                break;
            }
            assert!(Instant::now() < deadline, "{path} never answered");
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// A dynalite of one test's own, keeping its tables on disk at `path`, that the test can stop
/// and start again on the same port and path (what a DynamoDB outage looks like from here).
pub struct PersistentDynalite {
    port: u16,
    path: std::path::PathBuf,
    child: Option<Child>,
}

impl PersistentDynalite {
    pub fn start(path: &Path) -> Self {
        let mut dynalite = Self {
            port: free_port(),
            path: path.to_owned(),
            child: None,
        };
        dynalite.restart();
        dynalite
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process (nothing is flushed on its way out) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("dynalite can be killed");
            child.wait().expect("dynalite exits");
        }
    }

    /// Starts dynalite on the same port and path, and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(format!("{ROOT}/target/emulator-{}.log", self.port))
            .expect("the emulator's log can be written");
        let child = Command::new(Path::new(ROOT).join("node_modules/.bin/dynalite"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--path")
            .arg(&self.path)
            .args(DYNALITE_TIMINGS)
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("dynalite starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dynalite does not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PersistentDynalite {
    fn drop(&mut self) {
        self.stop();
    }
}
