//! `cargo bench --bench erasure` (or `make bench`, which starts the emulators): measures, against
//! dynalite (DynamoDB) and moto (SQS) on loopback,
//!
//! a. that erasing a user costs what the user owns, not what the tenant holds: the same target
//!    user erased next to a small and a large amount of other users' data;
//! b. erasure throughput for one user owning many items;
//! c. the latency of the API's `POST /v2/users/data/delete` (1 and 100 users) and of the status
//!    endpoint.
//!
//! Needs `ERASURE_BENCH_DYNAMODB_ENDPOINT` and `ERASURE_BENCH_SQS_ENDPOINT`.
//! `ERASURE_BENCH_SCALE` (default 1) multiplies the data sizes.
//! Each run makes its own tables and queues, and deletes them at the end.

use std::time::{Duration, Instant};

use erasure::api::Api;
use erasure::config::{ApiConfig, Tables};
use erasure::control::ControlStore;
use erasure::domain::ids::{ApiKey, JobId, UserId};
use erasure::domain::task::{plan_tasks, TaskKind};
use erasure::features::deleter;
use erasure::infra;
use erasure::queue::TaskQueue;
use erasure::store::entity::{self as e, Entity, Tenant};
use erasure::store::erase::Outcome;
use erasure::store::DataStore;
use futures::{stream, StreamExt, TryStreamExt};

const API_KEY: &str = "bench-api-key";
const AUTH_TOKEN: &str = "bench-auth-token";
const ORG: &str = "org-bench";

/// Documents of a target user; each holds 10 entities naming them (6 more outside documents).
const TARGET_DOCUMENTS: usize = 19;
/// Target users erased per background size (the median is reported).
const TARGETS_PER_SIZE: usize = 9;
/// Entities of a background document.
const BACKGROUND_PER_DOCUMENT: usize = 12;
/// Background documents per `DataStore::write` call, and such calls in flight.
const DOCUMENTS_PER_WRITE: usize = 20;
const WRITES_IN_FLIGHT: usize = 4;
/// API requests measured per case, after a few unmeasured warm-up requests.
const API_REQUESTS: usize = 50;
const API_WARMUP: usize = 5;
/// Requests with 100 users: 100 tombstones, the job, and 100 task messages (one per user) in 10
/// SendMessageBatch calls. moto takes tens of milliseconds per batch, so these are fewer.
const API_REQUESTS_MANY: usize = 20;

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

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("bench user ids are valid")
}

struct Bench {
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
        let dynamodb_endpoint = endpoint("ERASURE_BENCH_DYNAMODB_ENDPOINT");
        let sqs_endpoint = endpoint("ERASURE_BENCH_SQS_ENDPOINT");
        let (dynamodb, sqs) = infra::emulator_clients(&dynamodb_endpoint, &sqs_endpoint).await;
        let tables = Tables {
            data: unique("bench-data"),
            control: unique("bench-control"),
        };
        infra::ensure_table(&dynamodb, &tables.data, &infra::DATA_TABLE)
            .await
            .expect("create the data table");
        infra::ensure_table(&dynamodb, &tables.control, &infra::CONTROL_TABLE)
            .await
            .expect("create the control table");
        let queues = infra::ensure_queues(&sqs, &unique("bench-tasks"), 30)
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
            },
        );
        Self {
            dynamodb,
            sqs,
            tables,
            queues,
            data,
            api,
            tenant: Tenant::from_api_key(API_KEY),
        }
    }

    /// Writes entities through the write path, `DOCUMENTS_PER_WRITE` documents per call.
    async fn write_all(&self, batches: Vec<Vec<Entity>>) {
        stream::iter(batches)
            .map(|batch| self.data.write(&self.tenant, batch))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await
            .expect("write entities");
    }

    /// Grows the background to documents `from..to`; returns how long it took.
    async fn grow_background(&self, from: usize, to: usize) -> Duration {
        let started = Instant::now();
        let docs: Vec<usize> = (from..to).collect();
        let batches = docs
            .chunks(DOCUMENTS_PER_WRITE)
            .map(|chunk| chunk.iter().flat_map(|&d| background_document(d)).collect())
            .collect();
        self.write_all(batches).await;
        started.elapsed()
    }

    /// Erases every feature of `user`, one kind after the other, as the worker's tasks would.
    async fn erase_user(&self, user: &UserId) -> (Duration, Outcome) {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        for kind in TaskKind::ALL {
            outcome += self
                .data
                .erase(&self.tenant, user, deleter(kind), &[])
                .await
                .expect("erase");
        }
        (started.elapsed(), outcome)
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

    async fn job_status(&self, job_id: &str) -> Duration {
        let body = serde_json::json!({"data": {"jobId": job_id}}).to_string();
        let (elapsed, status, answer) = self.call("/v2/users/data/delete/status", body).await;
        assert_eq!(status, 200, "status answered {status}: {answer}");
        elapsed
    }

    /// Empties the task queue (not timed): moto's SendMessageBatch slows down as its queue
    /// grows, which would measure the emulator instead of the API.
    async fn purge_queue(&self) {
        let _ = self
            .sqs
            .purge_queue()
            .queue_url(&self.queues.task_queue_url)
            .send()
            .await;
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

/// One document of other users' data: 12 entities, among them a membership that grows the
/// organization's partition. None of them names a target user.
fn background_document(d: usize) -> Vec<Entity> {
    let doc = format!("bg-doc-{d}");
    let a = format!("bg-user-{}", d % 997);
    // Never the same user as `a`: one document access each.
    let b = format!("bg-user-{}", (d % 997 + 1 + d % 13) % 997);
    let ann = format!("bg-ann-{d}");
    let comment = format!("bg-c-{d}");
    vec![
        Entity::Member(e::Member {
            organization_id: ORG.into(),
            user_id: format!("bg-member-{d}"),
            access_role: "editor".into(),
        }),
        Entity::Document(e::Document {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            folder_id: None,
        }),
        access(&doc, &a),
        access(&doc, &b),
        contact(None, Some(&doc), &b),
        Entity::Annotation(e::Annotation {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            annotation_id: ann.clone(),
            assigned_to: Some(b.clone()),
            resolved_by: None,
        }),
        comment_entity(
            &doc,
            &ann,
            &comment,
            &a,
            &b,
            format!("{{{{{b}}}}} please look"),
        ),
        Entity::CommentReaction(e::CommentReaction {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            annotation_id: ann.clone(),
            comment_id: comment,
            emoji: "👍".into(),
            user_id: b.clone(),
        }),
        Entity::DocumentReaction(e::DocumentReaction {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            reaction_id: format!("bg-r-{d}"),
            emoji: "🎉".into(),
            user_id: a.clone(),
        }),
        Entity::Recording(e::Recording {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            recording_id: format!("bg-rec-{d}"),
            from: a.clone(),
            url: format!("https://example.com/{d}.webm"),
        }),
        Entity::Notification(e::Notification {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            notification_id: format!("bg-n-{d}"),
            to: b.clone(),
            from: a.clone(),
            text: format!("{{{{{a}}}}} mentioned you"),
        }),
        Entity::View(e::View {
            organization_id: ORG.into(),
            document_id: doc,
            annotation_id: ann,
            user_id: b,
        }),
    ]
}

fn access(doc: &str, user: &str) -> Entity {
    Entity::DocumentAccess(e::DocumentAccess {
        organization_id: ORG.into(),
        document_id: doc.into(),
        user_id: user.into(),
        access_role: "editor".into(),
        expires_at: None,
    })
}

fn contact(folder: Option<&str>, doc: Option<&str>, user: &str) -> Entity {
    Entity::Contact(e::Contact {
        organization_id: ORG.into(),
        folder_id: folder.map(Into::into),
        document_id: doc.map(Into::into),
        user_id: user.into(),
    })
}

fn comment_entity(doc: &str, ann: &str, id: &str, from: &str, to: &str, text: String) -> Entity {
    Entity::Comment(e::Comment {
        organization_id: ORG.into(),
        document_id: doc.into(),
        annotation_id: ann.into(),
        comment_id: id.into(),
        from: from.into(),
        text,
        to: vec![to.into()],
        tagged_user_contacts: Vec::new(),
    })
}

fn names(entity: &Entity, user: &str) -> bool {
    entity.users().contains(&user)
}

fn profile(user: &str) -> Entity {
    Entity::Profile(e::Profile {
        user_id: user.into(),
        name: format!("Name of {user}"),
        email: format!("{user}@example.com"),
        photo_url: None,
    })
}

/// A target user's world: the entities that name them (196: profile, membership, group, folder
/// access, contacts, document access, comments, mentions, reactions, notifications, recordings,
/// views), plus the entities around them they do not own (documents, other users' comments
/// mentioning them, co-workers' profiles). Returns (entities, how many name the target).
fn target_world(target: &str) -> (Vec<Entity>, usize) {
    let co: Vec<String> = (0..3).map(|k| format!("{target}-co{k}")).collect();
    let mut entities: Vec<Entity> = co.iter().map(|u| profile(u)).collect();
    let folder = format!("{target}-folder");
    let group = format!("{target}-group");
    let mut owned = vec![
        profile(target),
        Entity::Member(e::Member {
            organization_id: ORG.into(),
            user_id: target.into(),
            access_role: "editor".into(),
        }),
        Entity::GroupMember(e::GroupMember {
            organization_id: ORG.into(),
            group_id: group.clone(),
            user_id: target.into(),
        }),
        Entity::FolderAccess(e::FolderAccess {
            organization_id: ORG.into(),
            folder_id: folder.clone(),
            user_id: target.into(),
            access_role: "viewer".into(),
        }),
        contact(Some(&folder), None, target),
        contact(None, None, target),
    ];
    entities.push(Entity::UserGroup(e::UserGroup {
        organization_id: ORG.into(),
        group_id: group,
    }));
    entities.push(Entity::Folder(e::Folder {
        organization_id: ORG.into(),
        folder_id: folder,
    }));
    for i in 0..TARGET_DOCUMENTS {
        let doc = format!("{target}-doc{i}");
        let ann = format!("{target}-ann{i}");
        let mate = &co[i % co.len()];
        let own_comment = format!("{target}-c{i}");
        let their_comment = format!("{target}-m{i}");
        entities.push(Entity::Document(e::Document {
            organization_id: ORG.into(),
            document_id: doc.clone(),
            folder_id: None,
        }));
        entities.push(access(&doc, mate));
        // Another user's comment that mentions the target: rewritten, not removed.
        entities.push(comment_entity(
            &doc,
            &ann,
            &their_comment,
            mate,
            target,
            format!("{{{{{target}}}}} can you check?"),
        ));
        owned.extend([
            access(&doc, target),
            contact(None, Some(&doc), target),
            Entity::Annotation(e::Annotation {
                organization_id: ORG.into(),
                document_id: doc.clone(),
                annotation_id: ann.clone(),
                assigned_to: Some(target.into()),
                resolved_by: None,
            }),
            comment_entity(
                &doc,
                &ann,
                &own_comment,
                target,
                mate,
                format!("{{{{{mate}}}}} see this"),
            ),
            Entity::CommentReaction(e::CommentReaction {
                organization_id: ORG.into(),
                document_id: doc.clone(),
                annotation_id: ann.clone(),
                comment_id: their_comment,
                emoji: "👍".into(),
                user_id: target.into(),
            }),
            Entity::DocumentReaction(e::DocumentReaction {
                organization_id: ORG.into(),
                document_id: doc.clone(),
                reaction_id: format!("{target}-r{i}"),
                emoji: "🎉".into(),
                user_id: target.into(),
            }),
            Entity::Recording(e::Recording {
                organization_id: ORG.into(),
                document_id: doc.clone(),
                recording_id: format!("{target}-rec{i}"),
                from: target.into(),
                url: format!("https://example.com/{target}/{i}.webm"),
            }),
            Entity::Notification(e::Notification {
                organization_id: ORG.into(),
                document_id: doc.clone(),
                notification_id: format!("{target}-n{i}"),
                to: target.into(),
                from: mate.clone(),
                text: format!("{{{{{mate}}}}} mentioned you"),
            }),
            Entity::View(e::View {
                organization_id: ORG.into(),
                document_id: doc,
                annotation_id: ann,
                user_id: target.into(),
            }),
        ]);
    }
    let count = owned.len() + entities.iter().filter(|e| names(e, target)).count();
    entities.extend(owned);
    (entities, count)
}

/// A user owning `n` entities: half document access (one per document), half comments (ten
/// per annotation, so the annotations go too). Returns (entities, how many name the user).
fn bulk_world(user: &str, n: usize) -> (Vec<Vec<Entity>>, usize) {
    let accesses = n / 2;
    let comments = n - accesses;
    let mut batches = Vec::new();
    let mut owned = 0;
    let docs: Vec<usize> = (0..accesses.max(comments.div_ceil(10))).collect();
    for chunk in docs.chunks(DOCUMENTS_PER_WRITE * 5) {
        let mut batch = Vec::new();
        for &d in chunk {
            let doc = format!("{user}-doc{d}");
            batch.push(Entity::Document(e::Document {
                organization_id: ORG.into(),
                document_id: doc.clone(),
                folder_id: None,
            }));
            if d < accesses {
                batch.push(access(&doc, user));
                owned += 1;
            }
            let first = d * 10;
            if first < comments {
                let ann = format!("{user}-ann{d}");
                batch.push(Entity::Annotation(e::Annotation {
                    organization_id: ORG.into(),
                    document_id: doc.clone(),
                    annotation_id: ann.clone(),
                    assigned_to: None,
                    resolved_by: None,
                }));
                for c in first..(first + 10).min(comments) {
                    batch.push(Entity::Comment(e::Comment {
                        organization_id: ORG.into(),
                        document_id: doc.clone(),
                        annotation_id: ann.clone(),
                        comment_id: format!("c{c}"),
                        from: user.into(),
                        text: format!("comment {c}"),
                        to: Vec::new(),
                        tagged_user_contacts: Vec::new(),
                    }));
                    owned += 1;
                }
            }
        }
        batches.push(batch);
    }
    (batches, owned)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
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

/// Seeds `TARGETS_PER_SIZE` fresh target users, erases each, and returns the erase times and
/// the outcome of one of them.
async fn erase_targets(bench: &Bench, label: &str) -> (Vec<Duration>, Outcome, usize) {
    let targets: Vec<String> = (0..TARGETS_PER_SIZE)
        .map(|i| format!("target-{label}-{i}"))
        .collect();
    let mut owned = 0;
    for target in &targets {
        let (entities, count) = target_world(target);
        owned = count;
        bench.write_all(vec![entities]).await;
    }
    let mut times = Vec::new();
    let mut last = Outcome::default();
    for target in &targets {
        let target = user(target);
        let (elapsed, outcome) = bench.erase_user(&target).await;
        bench.assert_erased(&target).await;
        times.push(elapsed);
        last = outcome;
    }
    (times, last, owned)
}

async fn run() {
    let scale = scale();
    let small_entities = scaled(10_000, scale);
    let large_entities = scaled(100_000, scale);
    let bulk_items = scaled(5_000, scale);
    let small_docs = small_entities.div_ceil(BACKGROUND_PER_DOCUMENT);
    let large_docs = large_entities.div_ceil(BACKGROUND_PER_DOCUMENT);
    let total = Instant::now();
    let bench = Bench::new().await;
    eprintln!(
        "erasure bench: scale {scale}, data table {}, queue {}",
        bench.tables.data, bench.queues.task_queue_url
    );

    // a. Cost follows the user.
    eprintln!(
        "a. seeding {} background entities…",
        small_docs * BACKGROUND_PER_DOCUMENT
    );
    let seed_small = bench.grow_background(0, small_docs).await;
    // An unmeasured round first: the first erasures of a process pay for connections and the
    // emulator's warm-up, which would flatter the larger size.
    eprintln!("   warming up…");
    erase_targets(&bench, "warmup").await;
    eprintln!("   erasing {TARGETS_PER_SIZE} target users…");
    let (mut small_times, small_outcome, owned) = erase_targets(&bench, "small").await;
    eprintln!(
        "   growing the background to {} entities…",
        large_docs * BACKGROUND_PER_DOCUMENT
    );
    let seed_large = bench.grow_background(small_docs, large_docs).await;
    eprintln!("   erasing {TARGETS_PER_SIZE} target users…");
    let (mut large_times, large_outcome, _) = erase_targets(&bench, "large").await;
    assert_eq!(
        (small_outcome.removed, small_outcome.rewritten),
        (large_outcome.removed, large_outcome.rewritten),
        "both sizes must erase the same amount"
    );

    // b. Throughput.
    eprintln!(
        "b. seeding a user owning {bulk_items} entities… ({:.1} s)",
        total.elapsed().as_secs_f64()
    );
    let bulk_user = "bulk-user";
    let (batches, bulk_owned) = bulk_world(bulk_user, bulk_items);
    let seed_bulk = Instant::now();
    bench.write_all(batches).await;
    let seed_bulk = seed_bulk.elapsed();
    eprintln!("   erasing them… ({:.1} s)", total.elapsed().as_secs_f64());
    let (bulk_time, bulk_outcome) = bench.erase_user(&user(bulk_user)).await;
    bench.assert_erased(&user(bulk_user)).await;

    // c. API latency.
    eprintln!(
        "   done in {:.1} s. c. API latency ({API_REQUESTS} requests with 1 user, \
         {API_REQUESTS_MANY} with 100)…",
        total.elapsed().as_secs_f64()
    );
    let mut one_user = Vec::new();
    let mut hundred_users = Vec::new();
    let mut job_ids = Vec::new();
    for round in 0..API_WARMUP + API_REQUESTS {
        let (elapsed, job_id) = bench.start_job(&[format!("api-one-{round}")]).await;
        if round >= API_WARMUP {
            one_user.push(elapsed);
        }
        job_ids.push(job_id);
        bench.purge_queue().await;
    }
    for round in 0..API_REQUESTS_MANY {
        let users: Vec<String> = (0..100).map(|k| format!("api-many-{round}-{k}")).collect();
        let (elapsed, job_id) = bench.start_job(&users).await;
        hundred_users.push(elapsed);
        job_ids.push(job_id);
        bench.purge_queue().await;
    }
    // The 100-user path's two parts alone, to tell the API's cost from the emulators'.
    let mut tombstones_alone = Vec::new();
    let mut sends_alone = Vec::new();
    let queue = TaskQueue::new(bench.sqs.clone(), &bench.queues.task_queue_url);
    for round in 0..API_REQUESTS_MANY {
        let users: Vec<UserId> = (0..100)
            .map(|k| user(&format!("floor-{round}-{k}")))
            .collect();
        let started = Instant::now();
        bench
            .data
            .mark_erased(&bench.tenant, &users, &[], 0)
            .await
            .expect("tombstones");
        tombstones_alone.push(started.elapsed());
        let tasks = plan_tasks(&JobId::generate(), &users, false);
        let started = Instant::now();
        queue.send_all(&tasks).await.expect("send");
        sends_alone.push(started.elapsed());
        bench.purge_queue().await;
    }
    let mut status = Vec::new();
    for (round, job_id) in job_ids.iter().enumerate() {
        let elapsed = bench.job_status(job_id).await;
        if round >= API_WARMUP {
            status.push(elapsed);
        }
    }
    bench.tear_down().await;

    // Report.
    let small_median = median(&mut small_times);
    let large_median = median(&mut large_times);
    let rule = "-".repeat(92);
    println!();
    println!("erasure benchmark — dynalite + moto on loopback, release build, scale {scale}");
    println!("{rule}");
    println!(
        "a. Cost follows the user: erase one target user ({owned} entities naming them; all 9 \
         kinds, sequential)"
    );
    println!(
        "   each erase: {} entities removed, {} rewritten; median of {TARGETS_PER_SIZE} fresh \
         target users per size",
        small_outcome.removed, small_outcome.rewritten
    );
    println!(
        "  {:<26} {:>12} {:>11} {:>11} {:>11}",
        "background (other users)", "seed time s", "median ms", "min ms", "max ms"
    );
    for (entities, seed, times, median) in [
        (
            small_docs * BACKGROUND_PER_DOCUMENT,
            seed_small,
            &small_times,
            small_median,
        ),
        (
            large_docs * BACKGROUND_PER_DOCUMENT,
            seed_small + seed_large,
            &large_times,
            large_median,
        ),
    ] {
        println!(
            "  {:<26} {:>12.1} {:>11.1} {:>11.1} {:>11.1}",
            format!("{entities} entities"),
            seed.as_secs_f64(),
            ms(median),
            ms(times[0]),
            ms(*times.last().unwrap()),
        );
    }
    println!(
        "  ratio large/small (median): {:.2}   (background grew {:.1}x)",
        large_median.as_secs_f64() / small_median.as_secs_f64(),
        (large_docs as f64) / (small_docs as f64)
    );
    println!("{rule}");
    println!(
        "b. Throughput: one user owning {bulk_owned} entities ({} document access, {} comments)",
        bulk_items / 2,
        bulk_owned - bulk_items / 2
    );
    let handled = bulk_outcome.removed + bulk_outcome.rewritten;
    println!(
        "  seeded in {:.1} s; erased in {:.2} s: {} entities removed (incl. emptied annotations), \
         {} rewritten",
        seed_bulk.as_secs_f64(),
        bulk_time.as_secs_f64(),
        bulk_outcome.removed,
        bulk_outcome.rewritten
    );
    println!(
        "  throughput: {:.0} entities/s ({:.0} of the user's entities/s; each also had its \
         reference item deleted)",
        handled as f64 / bulk_time.as_secs_f64(),
        bulk_owned as f64 / bulk_time.as_secs_f64()
    );
    println!("{rule}");
    println!("c. API latency (Api::handle in process; DynamoDB and SQS calls over loopback)");
    println!(
        "   one task message per user: 1 user = 1 message, 100 users = 100 messages in 10 \
         SendMessageBatch calls (moto: tens of ms each)"
    );
    println!(
        "  {:<44} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"
    );
    latency_row("POST delete, 1 user (9 tasks, 1 message)", one_user);
    latency_row(
        "POST delete, 100 users (900 tasks, 100 msgs)",
        hundred_users,
    );
    latency_row("  of which 100 tombstones alone", tombstones_alone);
    latency_row("  of which 10 SendMessageBatch alone", sends_alone);
    latency_row("POST delete/status", status);
    println!("{rule}");
    println!("total run time: {:.1} s", total.elapsed().as_secs_f64());
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}
