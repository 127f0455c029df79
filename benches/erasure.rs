//! `cargo bench --bench erasure` (or `make bench`, which starts the emulators): measures,
//! against dynalite (DynamoDB) and moto (SQS) on loopback, in one run:
//!
//! - P1: the worker's path (the nine tasks of one user at once, each under its lease and
//!   ledger: `DataStore::erase_recorded` with the worker's `TaskLedger`) erasing a
//!   100,000-entity user, against a plain loop (Query the user's references, BatchWriteItem-
//!   delete references and targets, 8 batches in flight) on the same emulator and an identical
//!   user: entities/s and DynamoDB calls per entity for both, and their ratio (goal ≥ 0.9);
//! - P2: the same 5,000-entity user erased next to 10k and next to 1M background items (goal:
//!   ratio ≤ 1.2, cost follows the user);
//! - P3: the 202's p99 against the two calls a durable acceptance needs at the least (one
//!   PutItem, one SendMessage), in process and, when `make bench` runs the api behind
//!   `cargo lambda watch` (`ERASURE_BENCH_WATCH_URL`, `ERASURE_BENCH_WATCH_ENV`), through it
//!   (goal ≤ 1.3); and the 100-user and status latencies;
//! - P4: the peak RSS (VmHWM) of a process running the worker's path on the P1 user (goal
//!   ≤ 64 MiB);
//! - cost growth: entities/s for users of 100, 1k, 10k and 100k entities.
//!
//! `ERASURE_BENCH_ONLY=p1` runs P1 alone, with a third arm: the worker's path without its ledger
//! (what exact counts after a kill cost); `ERASURE_BENCH_ONLY=p3` runs the api's latencies alone.
//!
//! Each erasure arm runs in a child process (this binary again, `ERASURE_BENCH_ARM`), so its
//! peak RSS is its own. Needs `ERASURE_BENCH_DYNAMODB_ENDPOINT` and `ERASURE_BENCH_SQS_ENDPOINT`.
//! `ERASURE_BENCH_SCALE` (default 1) multiplies the data sizes; `ERASE_PAGES_IN_FLIGHT` tunes
//! the engine as it tunes the worker. Each run makes its own tables and queues and deletes them.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use erasure::api::Api;
use erasure::config::{ApiConfig, Tables};
use erasure::control::{ControlStore, TaskClaim};
use erasure::domain::entity::Entity;
use erasure::domain::ids::{ApiKey, JobId, UserId};
use erasure::domain::task::Outcome;
use erasure::domain::task::TaskKind;
use erasure::domain::tenant::Tenant;
use erasure::dynamo;
use erasure::erase::Scope;
use erasure::features::deleter;
use erasure::infra;
use erasure::queue::TaskQueue;
use erasure::store::synthetic::{background_document, user_world};
use erasure::store::tuning::Tuning;
use erasure::store::DataStore;
use erasure::worker::ledger::TaskLedger;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

const API_KEY: &str = "bench-api-key";
const AUTH_TOKEN: &str = "bench-auth-token";
const ORG: &str = "org-bench";

/// P1's user, and the largest of the growth table.
const P1_ENTITIES: usize = 100_000;
/// P2's user and backgrounds (items, reference items included).
const P2_ENTITIES: usize = 5_000;
const P2_SMALL_ITEMS: usize = 10_000;
const P2_LARGE_ITEMS: usize = 1_000_000;
/// P2 users erased per background size (the median is reported).
const P2_TARGETS: usize = 3;
const GROWTH: [usize; 3] = [100, 1_000, 10_000];
/// The plain loop's batches in flight.
const LOOP_IN_FLIGHT: usize = 8;
/// API requests measured per case, after a few unmeasured warm-up requests: enough that the
/// p99 is not one sample (with 100 it was the second slowest, and moved by ±0.4 between runs).
const API_REQUESTS: usize = 500;
const API_WARMUP: usize = 10;
/// Requests with 100 users (moto takes tens of milliseconds per SendMessageBatch).
const API_REQUESTS_MANY: usize = 10;

const GOAL_P1: f64 = 0.9;
const GOAL_P2: f64 = 1.2;
const GOAL_P3: f64 = 1.3;
const GOAL_P4_MIB: f64 = 64.0;

fn endpoint(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the benchmark with `make bench` (scripts/bench.sh), which \
             starts dynalite and moto, or set ERASURE_BENCH_DYNAMODB_ENDPOINT and \
             ERASURE_BENCH_SQS_ENDPOINT to running emulators"
        )
    })
}

fn scale() -> f64 {
    match std::env::var("ERASURE_BENCH_SCALE") {
        Ok(raw) => match raw.parse::<f64>() {
            Ok(s) if s > 0.0 => s,
            _ => panic!("ERASURE_BENCH_SCALE must be a positive number, not {raw:?}"),
        },
        Err(_) => 1.0,
    }
}

fn scaled(base: usize, scale: f64) -> usize {
    ((base as f64 * scale).round() as usize).max(1)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", JobId::generate().as_str())
}

/// The api behind `cargo lambda watch` that `make bench` started, and the tables and queue its
/// env file names (the bench makes them and registers its tenant there).
struct Watch {
    url: String,
    http: reqwest::Client,
    tables: Tables,
    queue_name: String,
}

impl Watch {
    fn from_env() -> Option<Self> {
        let url = std::env::var("ERASURE_BENCH_WATCH_URL").ok()?;
        let path = std::env::var("ERASURE_BENCH_WATCH_ENV")
            .expect("ERASURE_BENCH_WATCH_ENV names the env file of the api behind watch");
        let text = std::fs::read_to_string(&path).expect("the env file of watch");
        let var = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{path} has no {name}"))
                .to_owned()
        };
        let queue_url = var("TASK_QUEUE_URL");
        Some(Self {
            url,
            http: reqwest::Client::new(),
            tables: Tables {
                data: var("DATA_TABLE"),
                control: var("CONTROL_TABLE"),
            },
            queue_name: queue_url.rsplit('/').next().unwrap().to_owned(),
        })
    }

    /// One POST through watch's function URL, which must answer 202; returns its latency.
    async fn start_job(&self, users: &[String]) -> Duration {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/lambda-url/api/v2/users/data/delete", self.url))
            .header("x-velt-api-key", API_KEY)
            .header("x-velt-auth-token", AUTH_TOKEN)
            .json(&serde_json::json!({"data": {"userIds": users}}))
            .send()
            .await
            .expect("POST through cargo lambda watch");
        let status = response.status().as_u16();
        let body = response.text().await.expect("the answer's body");
        let elapsed = started.elapsed();
        assert_eq!(
            status, 202,
            "delete through watch answered {status}: {body}"
        );
        elapsed
    }
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("bench user ids are valid")
}

/// Counts the DynamoDB calls a client makes (once per operation, whatever its retries).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<AtomicU64>);

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "bench-call-counter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn counted(client: &aws_sdk_dynamodb::Client) -> (aws_sdk_dynamodb::Client, Calls) {
    let calls = Calls::default();
    let config = client
        .config()
        .to_builder()
        .interceptor(calls.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), calls)
}

/// Erases every feature of `user` as the worker did before its ledger: its nine tasks at once,
/// no page written down, a contested entity counted by the `DeleteItem` that finds it.
async fn erase_user_unrecorded(data: &DataStore, tenant: &Tenant, user: &UserId) {
    futures::future::try_join_all(
        TaskKind::ALL.map(|kind| data.erase(tenant, user, deleter(kind), &[])),
    )
    .await
    .expect("erase");
}

/// Erases every feature of `user` as the worker runs one user's message: its nine tasks at once,
/// each under a lease of its own and recorded page by page in its ledger, as the worker does.
async fn erase_user(
    data: &DataStore,
    control: &ControlStore,
    tenant: &Tenant,
    user: &UserId,
) -> Outcome {
    let job_id = JobId::generate();
    let now = erasure::clock::now_ms();
    let expires_at_s = now / 1000 + 3_600;
    let job_id = &job_id;
    let outcomes = futures::future::try_join_all(TaskKind::ALL.map(|kind| async move {
        let task_id = format!("t0.{kind}");
        let claim = control
            .claim_task(job_id, &task_id, now + 3_600_000, now, expires_at_s)
            .await
            .expect("claim");
        let TaskClaim::Granted(lease) = claim else {
            panic!("a new task's claim is granted");
        };
        let ledger = TaskLedger::new(control, job_id, &lease, expires_at_s);
        let scope = Scope {
            tenant,
            user,
            deleter: deleter(kind),
            organizations: &[],
        };
        data.erase_recorded(scope, 0, None, &ledger)
            .await
            .map(|pass| pass.outcome)
    }))
    .await
    .expect("erase");
    let mut total = Outcome::default();
    for outcome in outcomes {
        total += outcome;
    }
    total
}

/// The plain loop P1 compares with: every reference of the user, and its target, deleted in
/// 25-item batches, `LOOP_IN_FLIGHT` at once; reading the next page while they are written.
/// Returns the references it followed.
async fn plain_loop(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> u64 {
    let mut in_flight = FuturesUnordered::new();
    let mut start = None;
    let mut followed = 0;
    let mut pending = Vec::new();
    loop {
        let page = dynamo::query_prefix(client, table, pk, "REF#", 100, start, false)
            .await
            .expect("query references");
        for item in &page.items {
            let key = dynamo::item_key(item).expect("a key");
            let target = match (item.get("targetPk"), item.get("targetSk")) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                    erasure::domain::entity::Key {
                        pk: pk.clone(),
                        sk: sk.clone(),
                    }
                }
                _ => panic!("a reference without a target"),
            };
            pending.push(dynamo::delete_request(&key));
            pending.push(dynamo::delete_request(&target));
            followed += 1;
        }
        let last = page.next.is_none();
        while pending.len() >= 25 || (last && !pending.is_empty()) {
            let chunk: Vec<_> = pending.drain(..pending.len().min(25)).collect();
            in_flight.push(dynamo::batch_write(client, table, chunk));
            while in_flight.len() >= LOOP_IN_FLIGHT {
                in_flight
                    .next()
                    .await
                    .expect("a batch")
                    .expect("batch write");
            }
        }
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    while let Some(done) = in_flight.next().await {
        done.expect("batch write");
    }
    followed
}

/// What a child process measured for one arm.
#[derive(Debug, Clone, Copy)]
struct Arm {
    seconds: f64,
    calls: u64,
    rss_kib: u64,
}

impl Arm {
    fn per_second(&self, entities: usize) -> f64 {
        entities as f64 / self.seconds
    }

    fn calls_per_entity(&self, entities: usize) -> f64 {
        self.calls as f64 / entities as f64
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child's side: runs one arm on `table` for `user`, prints `seconds calls rss_kib`.
async fn child(arm: &str, tables: &Tables, target: &str) {
    let (dynamodb, _) = infra::emulator_clients(
        &endpoint("ERASURE_BENCH_DYNAMODB_ENDPOINT"),
        &endpoint("ERASURE_BENCH_SQS_ENDPOINT"),
    )
    .await;
    let (client, calls) = counted(&dynamodb);
    let tenant = Tenant::from_api_key(API_KEY);
    let started = Instant::now();
    match arm {
        "engine" => {
            let tuning = Tuning::from_env().expect("ERASE_PAGES_IN_FLIGHT");
            let data = DataStore::new(client.clone(), &tables.data).with_tuning(tuning);
            let control = ControlStore::new(client, &tables.control);
            erase_user(&data, &control, &tenant, &user(target)).await;
        }
        "unrecorded" => {
            let tuning = Tuning::from_env().expect("ERASE_PAGES_IN_FLIGHT");
            let data = DataStore::new(client, &tables.data).with_tuning(tuning);
            erase_user_unrecorded(&data, &tenant, &user(target)).await;
        }
        "loop" => {
            plain_loop(&client, &tables.data, &tenant.user_partition(target)).await;
        }
        other => panic!("unknown arm {other}"),
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{seconds} {} {}",
        calls.0.load(Ordering::Relaxed),
        peak_rss_kib()
    );
}

/// Runs one arm in a child process (this binary again).
fn run_arm(arm: &str, tables: &Tables, target: &str) -> Arm {
    let output = Command::new(std::env::current_exe().expect("the bench binary"))
        .env("ERASURE_BENCH_ARM", arm)
        .env("ERASURE_BENCH_ARM_TABLE", &tables.data)
        .env("ERASURE_BENCH_ARM_CONTROL", &tables.control)
        .env("ERASURE_BENCH_ARM_USER", target)
        .output()
        .expect("run the arm");
    assert!(
        output.status.success(),
        "the {arm} arm failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = line.split_whitespace().collect();
    Arm {
        seconds: fields[0].parse().expect("seconds"),
        calls: fields[1].parse().expect("calls"),
        rss_kib: fields[2].parse().expect("rss"),
    }
}

struct Bench {
    watch: Option<Watch>,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    tables: Tables,
    queues: infra::Queues,
    data: DataStore,
    api: Api,
    tenant: Tenant,
}

impl Bench {
    async fn new() -> Self {
        let (dynamodb, sqs) = infra::emulator_clients(
            &endpoint("ERASURE_BENCH_DYNAMODB_ENDPOINT"),
            &endpoint("ERASURE_BENCH_SQS_ENDPOINT"),
        )
        .await;
        // With an api behind watch, both apis share its tables, queue and tenant.
        let watch = Watch::from_env();
        let (tables, queue_name) = match &watch {
            Some(watch) => (watch.tables.clone(), watch.queue_name.clone()),
            None => (
                Tables {
                    data: unique("bench-data"),
                    control: unique("bench-control"),
                },
                unique("bench-tasks"),
            ),
        };
        infra::ensure_table(&dynamodb, &tables.data, &infra::DATA_TABLE)
            .await
            .expect("create the data table");
        infra::ensure_table(&dynamodb, &tables.control, &infra::CONTROL_TABLE)
            .await
            .expect("create the control table");
        let queues = infra::ensure_queues(&sqs, &queue_name, 30)
            .await
            .expect("create the queues");
        let control = ControlStore::new(dynamodb.clone(), &tables.control);
        let data = DataStore::new(dynamodb.clone(), &tables.data);
        control
            .put_tenant(&ApiKey::parse(API_KEY).unwrap(), AUTH_TOKEN, 0)
            .await
            .expect("register the bench tenant");
        let api = Api::new(
            control,
            data.clone(),
            TaskQueue::new(sqs.clone(), &queues.task_queue_url),
            ApiConfig {
                tables: tables.clone(),
                task_queue_url: queues.task_queue_url.clone(),
                rate_limit_per_minute: 10_000_000,
                job_retention_days: 30,
                export_token_key: erasure::config::ExportTokenKey::parse(
                    "export-token-key-for-tests-only-0123456789",
                )
                .unwrap(),
                webhook_queue_url: None,
            },
        );
        Self {
            watch,
            dynamodb,
            sqs,
            tables,
            queues,
            data,
            api,
            tenant: Tenant::from_api_key(API_KEY),
        }
    }

    /// Seeds a user owning `n` entities; returns how long it took.
    async fn seed_user(&self, id: &str, n: usize) -> Duration {
        let started = Instant::now();
        self.write_all(user_world(ORG, id, n), "seed a user").await;
        started.elapsed()
    }

    /// Grows the background to documents `from..to`; returns how long it took.
    async fn grow_background(&self, from: usize, to: usize) -> Duration {
        let started = Instant::now();
        let batches: Vec<Vec<Entity>> = (from..to)
            .collect::<Vec<_>>()
            .chunks(100)
            .map(|chunk| {
                chunk
                    .iter()
                    .flat_map(|&d| background_document(ORG, d))
                    .collect()
            })
            .collect();
        self.write_all(batches, "grow the background").await;
        started.elapsed()
    }

    /// Writes `batches` through the write path, 8 at once.
    async fn write_all(&self, batches: Vec<Vec<Entity>>, what: &str) {
        futures::stream::iter(batches)
            .map(|batch| self.data.write(&self.tenant, batch))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .expect(what);
    }

    /// Panics unless no reference of `user` is left (not timed).
    async fn assert_erased(&self, user: &UserId) {
        for kind in TaskKind::ALL {
            let left = self
                .data
                .remaining_references(&self.tenant, user, deleter(kind), &[])
                .await
                .expect("remaining references");
            assert_eq!(left, 0, "{kind} references of {} left", user.as_str());
        }
    }

    async fn call(&self, path: &str, body: String) -> (Duration, u16, String) {
        let request = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("x-velt-api-key", API_KEY)
            .header("x-velt-auth-token", AUTH_TOKEN)
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap();
        let started = Instant::now();
        let response = self.api.handle(request).await;
        let elapsed = started.elapsed();
        (elapsed, response.status().as_u16(), response.into_body())
    }

    /// Starts a deletion job for `users`; returns the latency and the job id.
    async fn start_job(&self, users: &[String]) -> (Duration, String) {
        let body = serde_json::json!({"data": {"userIds": users}}).to_string();
        let (elapsed, status, answer) = self.call("/v2/users/data/delete", body).await;
        assert_eq!(status, 202, "delete answered {status}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let job_id = answer["data"]["jobId"].as_str().unwrap().to_owned();
        (elapsed, job_id)
    }

    /// Marks the job running and claims every one of its tasks, as deliveries would: each task
    /// then has its item, holding a lease (not timed).
    async fn run_every_task(&self, job_id: &str) {
        let control = ControlStore::new(self.dynamodb.clone(), &self.tables.control);
        let id = JobId::parse(job_id).expect("a job id");
        control.mark_running(&id).await.expect("job marked running");
        let job = control.get_job(&id).await.expect("job read").expect("job");
        let now = erasure::clock::now_ms();
        futures::stream::iter(job.task_ids())
            .map(|task| {
                let (control, id) = (&control, &id);
                async move {
                    control
                        .claim_task(id, &task, now + 600_000, now, job.expires_at)
                        .await
                        .expect("task claimed")
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    async fn job_status(&self, job_id: &str) -> Duration {
        let body = serde_json::json!({"data": {"jobId": job_id}}).to_string();
        let (elapsed, status, answer) = self.call("/v2/users/data/delete/status", body).await;
        assert_eq!(status, 200, "status answered {status}: {answer}");
        elapsed
    }

    /// The floor of a durable acceptance: one PutItem (the job) and one SendMessage (its
    /// tasks), one after the other, as bare SDK calls.
    async fn bare_acceptance(&self, round: usize) -> Duration {
        let started = Instant::now();
        self.dynamodb
            .put_item()
            .table_name(&self.tables.control)
            .item("pk", AttributeValue::S(format!("BENCH#{round}")))
            .item("sk", AttributeValue::S("JOB".into()))
            .item("tasksCount", AttributeValue::N("9".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .expect("put item");
        self.sqs
            .send_message()
            .queue_url(&self.queues.task_queue_url)
            .message_body(format!("{{\"jobId\":\"bench{round}\",\"tasks\":[]}}"))
            .send()
            .await
            .expect("send message");
        started.elapsed()
    }

    /// Empties the task queue (not timed): moto's sends slow down as its queue grows (about
    /// 5 ms more per SendMessage for every 250 messages waiting), which would measure the
    /// emulator instead of the API. `make bench` runs moto with its one-purge-a-minute rule
    /// off; a refused purge stops the bench rather than skewing P3 unseen.
    async fn purge_queue(&self) {
        self.sqs
            .purge_queue()
            .queue_url(&self.queues.task_queue_url)
            .send()
            .await
            .expect("purge the task queue (moto must run with MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false)");
    }

    async fn tear_down(&self) {
        for table in [&self.tables.data, &self.tables.control] {
            let _ = self.dynamodb.delete_table().table_name(table).send().await;
        }
        for url in [
            &self.queues.task_queue_url,
            &self.queues.dead_letter_queue_url,
        ] {
            let _ = self.sqs.delete_queue().queue_url(url).send().await;
        }
    }
}

/// Items (entities and their reference items) of one background document.
fn items_per_background_document() -> usize {
    background_document(ORG, 0)
        .iter()
        .map(|e| 1 + e.references().len())
        .sum()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn latency_row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "  {name:<44} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        samples.len(),
        ms(quantile(&samples, 0.50)),
        ms(quantile(&samples, 0.95)),
        ms(quantile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
        ms(mean),
    );
}

/// Erases `n`-entity user `id` in a child process, checks nothing of theirs is left.
async fn measured_erase(bench: &Bench, id: &str, n: usize, arm: &str) -> Arm {
    bench.seed_user(id, n).await;
    let measured = run_arm(arm, &bench.tables, id);
    bench.assert_erased(&user(id)).await;
    measured
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// The api's latencies: P3's two arms, interleaved, and the 100-user and status requests.
struct ApiLatency {
    one_user: Vec<Duration>,
    /// The same requests through `cargo lambda watch`, when it runs.
    through_watch: Vec<Duration>,
    floor: Vec<Duration>,
    hundred_users: Vec<Duration>,
    status: Vec<Duration>,
    /// The status of a 100-user job whose 900 tasks are all running: the job item, then a
    /// Query of its 900 task items.
    status_running: Vec<Duration>,
}

impl ApiLatency {
    /// p99 of the 202 for one user over p99 of the bare PutItem + SendMessage.
    fn p3(&self) -> f64 {
        self.over_floor(&self.one_user)
    }

    /// The same through `cargo lambda watch`, when it ran.
    fn p3_through_watch(&self) -> Option<f64> {
        (!self.through_watch.is_empty()).then(|| self.over_floor(&self.through_watch))
    }

    fn over_floor(&self, samples: &[Duration]) -> f64 {
        let (mut samples, mut floor) = (samples.to_vec(), self.floor.clone());
        samples.sort();
        floor.sort();
        ms(quantile(&samples, 0.99)) / ms(quantile(&floor, 0.99))
    }

    /// The P3 rows of the summary.
    fn print_p3(&self) {
        let rows = [
            (
                "P3",
                "p99 of the 202 (1 user) / p99 of PutItem + SendMessage",
                Some(self.p3()),
            ),
            (
                "P3w",
                "the same, the 202 through cargo lambda watch",
                self.p3_through_watch(),
            ),
        ];
        for (name, what, ratio) in rows {
            match ratio {
                Some(ratio) => println!(
                    "  {:<4} {:<58} {:>12.2} {:>8} {:>7}",
                    name,
                    what,
                    ratio,
                    format!("≤ {GOAL_P3}"),
                    verdict(ratio <= GOAL_P3)
                ),
                None => println!("  {name:<4} {what:<58} {:>12}", "no watch"),
            }
        }
    }

    fn print_detail(&self, rule: &str) {
        println!(
            "P3 in detail: Api::handle in process, and the api's release build behind cargo \
             lambda watch; DynamoDB and SQS over loopback"
        );
        println!(
            "  {:<44} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"
        );
        latency_row(
            "POST delete, 1 user (9 tasks, 1 message)",
            self.one_user.clone(),
        );
        if !self.through_watch.is_empty() {
            latency_row(
                "  the same through cargo lambda watch",
                self.through_watch.clone(),
            );
        }
        latency_row("  floor: PutItem + SendMessage, bare", self.floor.clone());
        latency_row(
            "POST delete, 100 users (900 tasks, 100 msgs)",
            self.hundred_users.clone(),
        );
        latency_row("POST delete/status, queued job", self.status.clone());
        latency_row(
            "POST delete/status, 100 users, 900 running",
            self.status_running.clone(),
        );
        println!("{rule}");
    }
}

async fn measure_api(bench: &Bench) -> ApiLatency {
    eprintln!("P3: API latency…");
    let mut one_user = Vec::new();
    let mut through_watch = Vec::new();
    let mut floor = Vec::new();
    let mut job_ids = Vec::new();
    for round in 0..API_WARMUP + API_REQUESTS {
        // Interleaved, so all arms see the same emulator load.
        let (elapsed, job_id) = bench.start_job(&[format!("api-one-{round}")]).await;
        let watched = match &bench.watch {
            Some(watch) => Some(watch.start_job(&[format!("api-watch-{round}")]).await),
            None => None,
        };
        let bare = bench.bare_acceptance(round).await;
        if round >= API_WARMUP {
            one_user.push(elapsed);
            through_watch.extend(watched);
            floor.push(bare);
        }
        job_ids.push(job_id);
        bench.purge_queue().await;
    }
    let mut hundred_users = Vec::new();
    let mut hundred_user_job = None;
    for round in 0..API_REQUESTS_MANY {
        let users: Vec<String> = (0..100).map(|k| format!("api-many-{round}-{k}")).collect();
        let (elapsed, job_id) = bench.start_job(&users).await;
        hundred_users.push(elapsed);
        hundred_user_job = Some(job_id);
        bench.purge_queue().await;
    }
    let mut status = Vec::new();
    for job_id in job_ids.iter().skip(API_WARMUP) {
        status.push(bench.job_status(job_id).await);
    }
    let running = hundred_user_job.expect("a 100-user job");
    bench.run_every_task(&running).await;
    let mut status_running = Vec::new();
    for _ in 0..API_REQUESTS_MANY * 10 {
        status_running.push(bench.job_status(&running).await);
    }
    ApiLatency {
        one_user,
        through_watch,
        floor,
        hundred_users,
        status,
        status_running,
    }
}

/// P1's arms, each on a user of its own with the same data.
struct P1 {
    /// A plain loop: Query the user's references, BatchWriteItem-delete them and their targets.
    plain: Arm,
    /// The worker's path, every page written down and every contested entity claimed.
    engine: Arm,
    /// The worker's path without its ledger: what exact counts after a kill cost.
    unrecorded: Arm,
}

async fn measure_p1(bench: &Bench, entities: usize) -> P1 {
    let seeded = bench.seed_user("p1-loop", entities).await;
    bench.seed_user("p1-engine", entities).await;
    bench.seed_user("p1-unrecorded", entities).await;
    eprintln!(
        "   seeded each in about {:.1} s; the plain loop, the worker's path, the worker's path \
         without its ledger…",
        seeded.as_secs_f64()
    );
    let mut arms = Vec::new();
    for (arm, id) in [
        ("loop", "p1-loop"),
        ("engine", "p1-engine"),
        ("unrecorded", "p1-unrecorded"),
    ] {
        arms.push(run_arm(arm, &bench.tables, id));
        bench.assert_erased(&user(id)).await;
    }
    P1 {
        plain: arms[0],
        engine: arms[1],
        unrecorded: arms[2],
    }
}

fn print_p1_detail(p1: &P1, entities: usize, rule: &str) {
    println!("P1 in detail: one user of {entities} entities (half document access, half comments, ten per annotation)");
    println!(
        "  {:<52} {:>10} {:>12} {:>16} {:>10}",
        "arm", "seconds", "entities/s", "calls per entity", "peak RSS"
    );
    for (name, arm) in [
        (
            "worker's path (9 tasks at once, under its ledger)",
            p1.engine,
        ),
        ("worker's path without its ledger", p1.unrecorded),
        ("plain loop (Query + BatchWriteItem, 8 in flight)", p1.plain),
    ] {
        println!(
            "  {:<52} {:>10.2} {:>12.0} {:>16.3} {:>7.1} MiB",
            name,
            arm.seconds,
            arm.per_second(entities),
            arm.calls_per_entity(entities),
            arm.rss_kib as f64 / 1024.0
        );
    }
    println!(
        "  the ledger's cost: {:.2} of the entities/s without it; P1 without it would be {:.2}",
        p1.engine.per_second(entities) / p1.unrecorded.per_second(entities),
        p1.unrecorded.per_second(entities) / p1.plain.per_second(entities)
    );
    println!("{rule}");
}

/// `ERASURE_BENCH_ONLY=p3`: the api's latencies alone, for a quick look at the 202 path.
async fn run_api_only(bench: &Bench) {
    let api = measure_api(bench).await;
    bench.tear_down().await;
    let rule = "-".repeat(100);
    println!();
    api.print_p3();
    println!("{rule}");
    api.print_detail(&rule);
}

async fn run() {
    let scale = scale();
    let total = Instant::now();
    let bench = Bench::new().await;
    if std::env::var("ERASURE_BENCH_ONLY").as_deref() == Ok("p3") {
        return run_api_only(&bench).await;
    }
    let p1_entities = scaled(P1_ENTITIES, scale);
    let p2_entities = scaled(P2_ENTITIES, scale);
    let per_doc = items_per_background_document();
    let small_docs = scaled(P2_SMALL_ITEMS, scale).div_ceil(per_doc);
    let large_docs = scaled(P2_LARGE_ITEMS, scale).div_ceil(per_doc);
    let pages = Tuning::from_env()
        .expect("ERASE_PAGES_IN_FLIGHT")
        .pages_in_flight;
    eprintln!(
        "erasure bench: scale {scale}, pages in flight {pages}, data table {}",
        bench.tables.data
    );

    // Warm-up: connections, the emulator's JIT, the child binary in the page cache.
    eprintln!("warming up…");
    measured_erase(&bench, "warmup", 2_000, "engine").await;

    // P1 and P4: the same user three times, one per arm.
    eprintln!(
        "P1: seeding three users of {p1_entities} entities… ({:.0} s)",
        total.elapsed().as_secs_f64()
    );
    let p1 = measure_p1(&bench, p1_entities).await;
    if std::env::var("ERASURE_BENCH_ONLY").as_deref() == Ok("p1") {
        bench.tear_down().await;
        println!();
        print_p1_detail(&p1, p1_entities, &"-".repeat(100));
        return;
    }
    let engine = p1.engine;
    let plain = p1.plain;

    // Cost growth.
    let mut growth = Vec::new();
    for base in GROWTH {
        let n = scaled(base, scale);
        eprintln!("growth: a user of {n} entities…");
        growth.push((
            n,
            measured_erase(&bench, &format!("growth-{n}"), n, "engine").await,
        ));
    }
    growth.push((p1_entities, engine));

    // P2: cost follows the user.
    eprintln!(
        "P2: background of {} items… ({:.0} s)",
        small_docs * per_doc,
        total.elapsed().as_secs_f64()
    );
    bench.grow_background(0, small_docs).await;
    let mut small = Vec::new();
    for i in 0..P2_TARGETS {
        small.push(measured_erase(&bench, &format!("p2-small-{i}"), p2_entities, "engine").await);
    }
    eprintln!(
        "   growing the background to {} items… ({:.0} s)",
        large_docs * per_doc,
        total.elapsed().as_secs_f64()
    );
    let grow_large = bench.grow_background(small_docs, large_docs).await;
    let mut large = Vec::new();
    for i in 0..P2_TARGETS {
        large.push(measured_erase(&bench, &format!("p2-large-{i}"), p2_entities, "engine").await);
    }

    let api = measure_api(&bench).await;
    bench.tear_down().await;

    // Report.
    let rule = "-".repeat(100);
    let p1_ratio = engine.per_second(p1_entities) / plain.per_second(p1_entities);
    let mut small_rates: Vec<f64> = small.iter().map(|a| a.seconds).collect();
    let mut large_rates: Vec<f64> = large.iter().map(|a| a.seconds).collect();
    let (small_median, large_median) = (median(&mut small_rates), median(&mut large_rates));
    let p2 = large_median / small_median;
    let p4 = engine.rss_kib as f64 / 1024.0;
    println!();
    println!(
        "erasure benchmark — dynalite + moto on loopback, release build, scale {scale}, \
         {pages} pages in flight per task"
    );
    println!("{rule}");
    println!(
        "  {:<4} {:<58} {:>12} {:>8} {:>7}",
        "", "what", "measured", "goal", ""
    );
    println!(
        "  {:<4} {:<58} {:>12.2} {:>8} {:>7}",
        "P1",
        "worker's path / plain BatchWriteItem loop, entities/s",
        p1_ratio,
        format!("≥ {GOAL_P1}"),
        verdict(p1_ratio >= GOAL_P1)
    );
    println!(
        "  {:<4} {:<58} {:>12.2} {:>8} {:>7}",
        "P2",
        format!(
            "{p2_entities}-entity user next to {} / next to {} items",
            large_docs * per_doc,
            small_docs * per_doc
        ),
        p2,
        format!("≤ {GOAL_P2}"),
        verdict(p2 <= GOAL_P2)
    );
    api.print_p3();
    println!(
        "  {:<4} {:<58} {:>12} {:>8} {:>7}",
        "P4",
        format!("peak RSS (VmHWM) of the worker's path on the {p1_entities}-entity user"),
        format!("{p4:.1} MiB"),
        format!("≤ {GOAL_P4_MIB}"),
        verdict(p4 <= GOAL_P4_MIB)
    );
    println!("{rule}");
    print_p1_detail(&p1, p1_entities, &rule);
    println!("Cost growth: the worker's path on users of growing size");
    println!(
        "  {:<12} {:>10} {:>12} {:>16} {:>10}",
        "entities", "seconds", "entities/s", "calls per entity", "peak RSS"
    );
    for (n, arm) in &growth {
        println!(
            "  {:<12} {:>10.3} {:>12.0} {:>16.3} {:>7.1} MiB",
            n,
            arm.seconds,
            arm.per_second(*n),
            arm.calls_per_entity(*n),
            arm.rss_kib as f64 / 1024.0
        );
    }
    println!("{rule}");
    println!(
        "P2 in detail: median of {P2_TARGETS} users per size: {:.3} s next to {} items, {:.3} s next to {} items (background grown in {:.0} s)",
        small_median,
        small_docs * per_doc,
        large_median,
        large_docs * per_doc,
        grow_large.as_secs_f64()
    );
    println!("{rule}");
    api.print_detail(&rule);
    println!("total run time: {:.1} s", total.elapsed().as_secs_f64());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match std::env::var("ERASURE_BENCH_ARM") {
        Ok(arm) => {
            let tables = Tables {
                data: std::env::var("ERASURE_BENCH_ARM_TABLE").expect("the arm's table"),
                control: std::env::var("ERASURE_BENCH_ARM_CONTROL").expect("the arm's control"),
            };
            let target = std::env::var("ERASURE_BENCH_ARM_USER").expect("the arm's user");
            runtime.block_on(child(&arm, &tables, &target));
        }
        Err(_) => runtime.block_on(run()),
    }
}
