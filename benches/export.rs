//! `cargo bench --bench export` (or `make bench`, which starts the emulators): the latency of
//! `POST /v2/users/data/get` through the real handler against dynalite, page by page, for a user
//! with 10,000 items in one organization, next to other users' data; and the same for a user
//! with a few items next to a small and a ten-times-larger background (cost follows the user).
//!
//! Needs `ERASURE_BENCH_DYNAMODB_ENDPOINT` and `ERASURE_BENCH_SQS_ENDPOINT`.
//! `ERASURE_BENCH_SCALE` (default 1) multiplies the data sizes. Each run makes its own tables
//! and deletes them at the end.

use std::time::{Duration, Instant};

use erasure::api::Api;
use erasure::config::{ApiConfig, ExportTokenKey, Tables};
use erasure::control::ControlStore;
use erasure::domain::entity::{self as e, Entity};
use erasure::domain::ids::ApiKey;
use erasure::domain::tenant::Tenant;
use erasure::infra;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

const API_KEY: &str = "bench-api-key";
const AUTH_TOKEN: &str = "bench-auth-token";
const ORG: &str = "org-bench";
/// Entities naming the exported user per document (see [`document`]).
const PER_DOCUMENT: usize = 8;
/// Full exports of the large user measured (every page of each is a sample).
const RUNS: usize = 5;
/// Exports of the small user measured per background size.
const SMALL_RUNS: usize = 30;

fn endpoint(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `make bench`, which starts dynalite and moto")
    })
}

fn scale() -> f64 {
    std::env::var("ERASURE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// One document of `user`: their comment (and its annotation), a reaction on it, a reaction on
/// the document, a recording, a notification to them, a view, document access, a contact entry.
fn document(user: &str, d: usize) -> Vec<Entity> {
    let doc = format!("{user}-doc-{d}");
    let ann = format!("ann-{d}");
    let (organization_id, document_id) = (ORG.to_owned(), doc.clone());
    vec![
        Entity::Annotation(e::Annotation {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            annotation_id: ann.clone(),
            assigned_to: None,
            resolved_by: None,
        }),
        Entity::Comment(e::Comment {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            annotation_id: ann.clone(),
            comment_id: format!("c-{d}"),
            from: user.to_owned(),
            text: format!("comment {d} of a document with some text in it"),
            to: vec![],
            tagged_user_contacts: vec![],
        }),
        Entity::CommentReaction(e::CommentReaction {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            annotation_id: ann.clone(),
            comment_id: format!("c-{d}"),
            emoji: "👍".into(),
            user_id: user.to_owned(),
        }),
        Entity::DocumentReaction(e::DocumentReaction {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            reaction_id: format!("r-{d}"),
            emoji: "🎉".into(),
            user_id: user.to_owned(),
        }),
        Entity::Recording(e::Recording {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            recording_id: format!("rec-{d}"),
            from: user.to_owned(),
            url: format!("https://example.com/{doc}/{d}.webm"),
        }),
        Entity::Notification(e::Notification {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            notification_id: format!("n-{d}"),
            to: user.to_owned(),
            from: "someone-else".into(),
            text: format!("notification {d}"),
        }),
        Entity::View(e::View {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            annotation_id: ann,
            user_id: user.to_owned(),
        }),
        Entity::DocumentAccess(e::DocumentAccess {
            organization_id: organization_id.clone(),
            document_id: document_id.clone(),
            user_id: user.to_owned(),
            access_role: "editor".into(),
            expires_at: None,
        }),
        Entity::Contact(e::Contact {
            organization_id,
            folder_id: None,
            document_id: Some(document_id),
            user_id: user.to_owned(),
        }),
    ]
}

struct Bench {
    dynamodb: aws_sdk_dynamodb::Client,
    tables: Tables,
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
        let suffix = erasure::domain::ids::JobId::generate();
        let tables = Tables {
            data: format!("export-bench-data-{}", suffix.as_str()),
            control: format!("export-bench-control-{}", suffix.as_str()),
        };
        infra::ensure_table(&dynamodb, &tables.data, &infra::DATA_TABLE)
            .await
            .expect("data table");
        infra::ensure_table(&dynamodb, &tables.control, &infra::CONTROL_TABLE)
            .await
            .expect("control table");
        let control = ControlStore::new(dynamodb.clone(), &tables.control);
        control
            .put_tenant(&ApiKey::parse(API_KEY).expect("key"), AUTH_TOKEN, 0)
            .await
            .expect("tenant");
        let data = DataStore::new(dynamodb.clone(), &tables.data);
        let queue_url = "http://127.0.0.1/123456789012/unused".to_owned();
        let api = Api::new(
            control,
            data.clone(),
            TaskQueue::new(sqs, &queue_url),
            ApiConfig {
                tables: tables.clone(),
                task_queue_url: queue_url,
                rate_limit_per_minute: 1_000_000,
                job_retention_days: 30,
                export_token_key: ExportTokenKey::parse("export-bench-key-0123456789abcdef0123")
                    .expect("key"),
                webhook_queue_url: None,
            },
        );
        Self {
            dynamodb,
            tables,
            data,
            api,
            tenant: Tenant::from_api_key(API_KEY),
        }
    }

    /// Writes `documents` documents of `user`; returns the entities naming them.
    async fn grow(&self, user: &str, documents: std::ops::Range<usize>) -> usize {
        let batches: Vec<Vec<Entity>> = documents
            .collect::<Vec<_>>()
            .chunks(20)
            .map(|ds| ds.iter().flat_map(|d| document(user, *d)).collect())
            .collect();
        let count = batches.len();
        stream::iter(batches)
            .map(|batch| self.data.write(&self.tenant, batch))
            .buffer_unordered(4)
            .for_each(|r| async { r.expect("write") })
            .await;
        count
    }

    async fn page(&self, user: &str, token: Option<&str>) -> (Duration, Value) {
        let body = json!({"data": {"organizationId": ORG, "userId": user, "pageToken": token}});
        let request = http::Request::builder()
            .method("POST")
            .uri("/v2/users/data/get")
            .header("x-velt-api-key", API_KEY)
            .header("x-velt-auth-token", AUTH_TOKEN)
            .body(body.to_string().into_bytes())
            .expect("request");
        let started = Instant::now();
        let response = self.api.handle(request).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 200, "{}", response.body());
        (
            elapsed,
            serde_json::from_str(response.body()).expect("json"),
        )
    }

    /// Every page of `user`'s export: each page's latency, and the items exported.
    async fn export(&self, user: &str) -> (Vec<Duration>, usize, usize) {
        let mut samples = Vec::new();
        let mut items = 0;
        let mut largest_page = 0;
        let mut token: Option<String> = None;
        loop {
            let (elapsed, answer) = self.page(user, token.as_deref()).await;
            samples.push(elapsed);
            let data = answer["result"]["data"].as_object().expect("data");
            let page_items: usize = data
                .values()
                .map(|v| v.as_array().map_or(0, Vec::len))
                .sum();
            items += page_items;
            largest_page = largest_page.max(page_items);
            match answer["result"]["nextPageToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return (samples, items, largest_page),
            }
        }
    }

    async fn tear_down(&self) {
        for table in [&self.tables.data, &self.tables.control] {
            let _ = self.dynamodb.delete_table().table_name(table).send().await;
        }
    }
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn row(name: &str, mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    println!(
        "{name:<66} {:>5} {:>8.1} {:>8.1} {:>8.1}",
        samples.len(),
        quantile(&samples, 0.5),
        quantile(&samples, 0.99),
        quantile(&samples, 1.0)
    );
    quantile(&samples, 0.5)
}

async fn run() {
    let bench = Bench::new().await;
    let scale = scale();
    let scaled = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let documents = scaled(10_000 / PER_DOCUMENT);
    bench.grow("target", 0..documents).await;
    bench.grow("small", 0..scaled(6)).await;
    // Other users' data beside them.
    let background = scaled(1_000);
    for b in 0..10 {
        bench.grow(&format!("other-{b}"), 0..background / 10).await;
    }
    println!(
        "\n{:<66} {:>5} {:>8} {:>8} {:>8}",
        "export page (POST /v2/users/data/get)", "n", "p50 ms", "p99 ms", "max ms"
    );
    let small_before: Vec<Duration> = {
        let mut s = Vec::new();
        for _ in 0..SMALL_RUNS {
            s.extend(bench.export("small").await.0);
        }
        s
    };
    let mut samples = Vec::new();
    let mut exported = (0, 0);
    for _ in 0..RUNS {
        let (pages, items, largest) = bench.export("target").await;
        samples.extend(pages);
        exported = (items, largest);
    }
    row(
        &format!(
            "user with {} items, every page ({} items per page at most)",
            exported.0, exported.1
        ),
        samples,
    );
    let small = row(
        &format!(
            "user with {} items, {} background docs",
            scaled(6) * PER_DOCUMENT,
            background + documents
        ),
        small_before,
    );
    for b in 10..100 {
        bench.grow(&format!("other-{b}"), 0..background / 10).await;
    }
    let mut small_after = Vec::new();
    for _ in 0..SMALL_RUNS {
        small_after.extend(bench.export("small").await.0);
    }
    let large = row(
        &format!(
            "user with {} items, {} background docs",
            scaled(6) * PER_DOCUMENT,
            background * 10 + documents
        ),
        small_after,
    );
    println!(
        "cost follows the user: p50 ratio large/small background = {:.2}",
        large / small
    );
    bench.tear_down().await;
}

fn main() {
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(run());
}
