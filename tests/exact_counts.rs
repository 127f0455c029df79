//! A job's counts are exactly what it removed, however its tasks ran (DESIGN §3, "Exact
//! counts"): copies of one task running at the same moment (an SQS duplicate, a retry of a
//! message whose continuation is running) — one copy holds the task's lease and runs it, the
//! others come back once it has ended — a run that fails half-way, and a run that dies in the
//! middle of its pages (killed, out of time), whose retries find gone what it removed: the
//! pages it left open on the task's item tell them what to count. A holder that stalls past
//! its lease never counts what the copy that took over counts.

mod common;

use std::time::Duration;

use common::faults::{Faults, Kind, Rule};
use common::TestEnv;
use erasure::domain::ids::JobId;
use erasure::store::DataStore;
use erasure::worker::{Delivery, LeaseTiming};
use serde_json::{json, Value};

/// A user with a few hundred entities of every feature, beside a bystander who keeps theirs.
fn world() -> String {
    let documents: Vec<Value> = (0..240)
        .map(|i| {
            json!({
                "documentId": format!("d{i}"),
                "users": [{"userId": "dup", "accessRole": "editor"},
                          {"userId": "other", "accessRole": "viewer"}],
                "contacts": ["dup", "other"],
                "commentAnnotations": [{
                    "annotationId": "a", "viewedBy": ["dup", "other"],
                    "comments": [
                        {"commentId": "c1", "from": "dup", "text": "{{other}} look", "to": ["other"],
                         "reactions": [{"emoji": "👀", "userId": "other"}]},
                        {"commentId": "c2", "from": "other", "text": "{{dup}} ok", "to": ["dup"],
                         "reactions": [{"emoji": "👍", "userId": "dup"}]}]
                }],
                "reactions": [{"reactionId": "r", "emoji": "👍", "userId": "dup"}],
            })
        })
        .collect();
    json!({
        "users": [{"userId": "dup", "name": "Dee Dup", "email": "dee@example.com"},
                  {"userId": "other", "name": "Otto Other", "email": "otto@example.com"}],
        "organizations": [{"organizationId": "o", "documents": documents}],
    })
    .to_string()
}

/// What each feature removed and rewrote, added up, as the status or the dry run reports it.
fn per_kind(items: &Value, removed_and_rewritten: bool) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = items
        .as_object()
        .unwrap()
        .iter()
        .map(|(kind, n)| {
            let total = if removed_and_rewritten {
                n["removed"].as_u64().unwrap() + n["rewritten"].as_u64().unwrap()
            } else {
                n.as_u64().unwrap()
            };
            (kind.clone(), total)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    counts
}

/// The world seeded, and what a dry run of erasing "dup" counts, per feature.
async fn seeded() -> (TestEnv, Vec<(String, u64)>) {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), &world()).await;
    let (status, dry) = env
        .post(
            "/v2/users/data/delete",
            r#"{"data":{"userIds":["dup"],"dryRun":true}}"#,
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let expected = per_kind(&dry["data"]["items"], false);
    assert!(
        expected.iter().map(|(_, n)| n).sum::<u64>() > 1_000,
        "{expected:?}"
    );
    (env, expected)
}

/// The job has completed with the dry run's counts, and nothing names the user any more.
async fn assert_completed_exactly(env: &TestEnv, job_id: &str, expected: &[(String, u64)]) {
    let status = env.status(job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(
        per_kind(&status["items"], true),
        expected,
        "the job's counts against the dry run's"
    );
    assert_nothing_names_the_user(env).await;
}

/// The job has completed, with no feature counted above the dry run's figure (a run that died
/// or lost its lease may leave counts short); returns its counts and how many fell short.
async fn assert_completed_never_above(
    env: &TestEnv,
    job_id: &str,
    expected: &[(String, u64)],
) -> (Vec<(String, u64)>, u64) {
    let status = env.status(job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    let counted = per_kind(&status["items"], true);
    let mut short = 0;
    for (kind, want) in expected {
        let got = counted
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n);
        assert!(
            got <= *want,
            "{kind}: counted {got}, more than the {want} removed"
        );
        short += want - got;
    }
    (counted, short)
}

async fn assert_nothing_names_the_user(env: &TestEnv) {
    let left: Vec<_> = env
        .scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|item| format!("{item:?}").contains("\"dup\""))
        .collect();
    assert!(left.is_empty(), "items still name the user: {left:?}");
}

#[tokio::test]
async fn copies_of_one_task_running_at_once_count_exactly_what_was_removed() {
    let (env, expected) = seeded().await;

    let job_id = env.start_job(r#"{"data":{"userIds":["dup"]}}"#).await;
    let sent = env.receive(&env.queue_url).await;
    assert_eq!(sent.len(), 1, "one user, one message");
    let body = sent[0].body().unwrap().to_owned();

    // Four copies of the message, each in an invocation of its own, all at once: three first
    // deliveries (SQS duplicates) and one redelivery, which goes over the whole scope again.
    let copy = |n: u32, receive_count: u32| Delivery {
        message_id: format!("copy-{n}"),
        body: body.clone(),
        receive_count,
    };
    let failed = futures::future::join_all(
        [copy(1, 1), copy(2, 1), copy(3, 1), copy(4, 2)]
            .map(|delivery| env.worker.handle(vec![delivery], env.deadline())),
    )
    .await;
    assert!(failed.iter().all(Vec::is_empty), "{failed:?}");
    // The original message is still in flight; its copies' continuations are in the queue.
    env.drain(&env.worker).await;

    assert_completed_exactly(&env, &job_id, &expected).await;
}

#[tokio::test]
async fn a_run_that_fails_half_way_keeps_the_count_of_what_it_removed() {
    let (env, expected) = seeded().await;
    // From the 80th on, every batch write of the erasure fails, past the SDK's retries: the
    // passes stop with hundreds of entities gone, which their retries will not find.
    let faults = Faults::start().await;
    let failing = env.worker_with(DataStore::new(
        faults.dynamodb(&env.dynamodb),
        &env.tables.data,
    ));
    faults.add(Rule::new("BatchWriteItem", "", Kind::ServerError).after(80));
    let job_id = env.start_job(r#"{"data":{"userIds":["dup"]}}"#).await;
    env.deliver_once(&failing).await;
    assert!(faults.injected() >= 3, "the fault did not stop a pass");
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "running", "{status}");
    // Tasks that failed half-way recorded what they had removed.
    let unfinished_counts: u64 = ["access", "comments", "contacts", "reactions", "views"]
        .iter()
        .map(|kind| status["items"][kind]["removed"].as_u64().unwrap())
        .sum();
    assert!(
        status["tasksLeft"].as_u64().unwrap() > 0 && unfinished_counts > 0,
        "no run failed half-way, or none recorded what it removed: {status}"
    );
    env.drain(&env.worker).await;
    assert_completed_exactly(&env, &job_id, &expected).await;
}

#[tokio::test]
async fn a_run_killed_in_the_middle_of_its_pages_is_counted_exactly_by_its_retry() {
    let (env, expected) = seeded().await;
    // A lease ends 1 s after its last renewal, so the killed run's retry need not wait long.
    let worker = env.worker.clone().with_lease_timing(LeaseTiming {
        term: Duration::from_secs(1),
        renewal: Duration::from_millis(20),
    });
    let job_id = env.start_job(r#"{"data":{"userIds":["dup"]}}"#).await;
    let sent = env.receive(&env.queue_url).await;
    assert_eq!(sent.len(), 1, "one user, one message");
    let delivery = Delivery {
        message_id: "killed".into(),
        body: sent[0].body().unwrap().to_owned(),
        receive_count: 1,
    };
    let run = worker.handle(vec![delivery], env.deadline());

    // The invocation dies the moment a task that has not ended has counts on the job (pages
    // it closed) while other pages are in flight: their writes may be applied or not.
    let id = JobId::parse(&job_id).unwrap();
    let counted_while_running = async {
        loop {
            let (job, items) = env.control.job_report(&id).await.unwrap().unwrap();
            let running = items.iter().find(|(kind, outcome)| {
                let ended = job
                    .succeeded
                    .iter()
                    .any(|t| t.ends_with(&format!(".{kind}")));
                !ended && outcome.removed + outcome.rewritten > 0
            });
            if let Some((kind, outcome)) = running {
                return (*kind, *outcome);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    // Whichever ends first: the run is dropped mid-flight when the counts show up.
    let counted_while_running = tokio::select! {
        failed = run => panic!(
            "the run ended ({failed:?}) and no task had counts on the job before it did"
        ),
        counted = counted_while_running => counted,
    };
    let left_open = open_pages(&env).await;
    eprintln!(
        "killed while {counted_while_running:?} was counted and running, {left_open} pages open"
    );
    assert!(
        left_open > 0,
        "the run died with no page open: nothing to recover"
    );

    // Its message comes back after the visibility timeout, and runs once the leases end: each
    // retry counts the pages its task left open, from what is left of them.
    env.drain(&worker).await;
    assert_completed_exactly(&env, &job_id, &expected).await;
    assert_eq!(open_pages(&env).await, 0, "a page was left open");
}

/// How many pages the task items of the control table hold open.
async fn open_pages(env: &TestEnv) -> usize {
    env.scan(&env.tables.control)
        .await
        .iter()
        .map(|item| item.keys().filter(|name| name.starts_with("page_")).count())
        .sum()
}

#[tokio::test]
async fn a_page_whose_close_has_its_answer_lost_is_counted_once() {
    let (env, expected) = seeded().await;
    // The first page's close is applied and its answer lost, and so is the answer to the
    // SDK's first retry: the second retry finds the page already closed, and must neither
    // count it again nor take the lease for lost.
    let faults = Faults::start().await;
    faults.add(Rule::new("UpdateItem", "ADD removed", Kind::LostAnswer).times(2));
    let worker = erasure::worker::Worker::new(
        erasure::control::ControlStore::new(faults.dynamodb(&env.dynamodb), &env.tables.control),
        env.data.clone(),
        erasure::queue::TaskQueue::new(env.sqs.clone(), &env.queue_url),
        erasure::infra::MAX_RECEIVE_COUNT,
    )
    .with_lease_timing(LeaseTiming {
        term: Duration::from_secs(1),
        renewal: Duration::from_millis(20),
    });
    let job_id = env.start_job(r#"{"data":{"userIds":["dup"]}}"#).await;
    env.drain(&worker).await;
    assert_eq!(faults.injected(), 2, "a close's answers were lost");
    assert_completed_exactly(&env, &job_id, &expected).await;
}

#[tokio::test]
async fn a_success_recorded_on_the_task_but_not_on_the_job_is_counted_once_with_its_total() {
    // A success is two updates: the task item (finished, with its total) and the job item
    // (succeeded, adding the total). Each fails here past the SDK's retries, on its own world:
    // the job's update refused outright, and the task's applied with every answer lost. The
    // message comes back, its claim finds the task finished, and the job counts the task's
    // total then, once.
    // One task's updates only (the rule counts attempts, and the job's nine tasks end at once):
    // the job's update names the task by `:id`; the task item's finish is the one update of
    // the task's item that sets `finishedBy`.
    for (needle, task, kind) in [
        (
            r#"{"S":"t0.profile"}"#,
            "ADD succeededTasks",
            Kind::ServerError,
        ),
        (
            "SET finishedBy",
            r#"{"S":"TASK#t0.profile"}"#,
            Kind::LostAnswer,
        ),
    ] {
        let (env, expected) = seeded().await;
        let faults = Faults::start().await;
        faults.add(Rule::new("UpdateItem", needle, kind).and(task).times(3));
        let worker = erasure::worker::Worker::new(
            erasure::control::ControlStore::new(
                faults.dynamodb(&env.dynamodb),
                &env.tables.control,
            ),
            env.data.clone(),
            erasure::queue::TaskQueue::new(env.sqs.clone(), &env.queue_url),
            erasure::infra::MAX_RECEIVE_COUNT,
        );
        let job_id = env.start_job(r#"{"data":{"userIds":["dup"]}}"#).await;
        env.drain(&worker).await;
        assert_eq!(faults.injected(), 3, "{needle}: a success's update failed");
        assert_completed_exactly(&env, &job_id, &expected).await;
    }
}

/// Stalls, once, the whole process of the client it is given to (the thread blocks, as in a
/// freeze or a pause for breath of the host) just before it sends the first batch that deletes
/// document-access entities, for `STALL`.
#[derive(Debug, Clone, Default)]
struct StallOnce {
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const STALL: Duration = Duration::from_millis(2_500);

impl aws_sdk_dynamodb::config::Intercept for StallOnce {
    fn name(&self) -> &'static str {
        "StallOnce"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let deletes_access =
            context.request().body().bytes().is_some_and(|body| {
                String::from_utf8_lossy(body).contains(r#""sk":{"S":"ACCESS#"#)
            });
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with("BatchWriteItem"));
        if target && deletes_access && !self.stalled.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            std::thread::sleep(STALL);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_holder_that_stalls_past_its_lease_never_counts_what_the_copy_that_took_over_counts() {
    let (env, expected) = seeded().await;
    let timing = LeaseTiming {
        term: Duration::from_secs(1),
        renewal: Duration::from_millis(20),
    };
    let job_id = env.start_job(r#"{"data":{"userIds":["dup"]}}"#).await;
    let sent = env.receive(&env.queue_url).await;
    assert_eq!(sent.len(), 1, "one user, one message");
    let delivery = |id: &str| Delivery {
        message_id: id.into(),
        body: sent[0].body().unwrap().to_owned(),
        receive_count: 1,
    };
    let (first, copy) = (delivery("a"), delivery("b"));

    // Run A, in a process of its own (a thread with its own runtime and clients): its leases
    // last 1 s from their last renewal; it stalls for 2.5 s in the middle of a page, its
    // leases end, and a copy B of its message takes the tasks over.
    let stall = StallOnce::default();
    let run_a = {
        let (stall, tables, queue_url) = (stall.clone(), env.tables.clone(), env.queue_url.clone());
        let deadline = env.deadline();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (dynamodb, sqs) = erasure::infra::emulator_clients(
                    &common::emulators::dynamodb_endpoint(),
                    &common::emulators::sqs_endpoint(),
                )
                .await;
                let stalling = common::intercepted(&dynamodb, stall);
                let a = erasure::worker::Worker::new(
                    erasure::control::ControlStore::new(dynamodb, &tables.control),
                    DataStore::new(stalling, &tables.data),
                    erasure::queue::TaskQueue::new(sqs, &queue_url),
                    erasure::infra::MAX_RECEIVE_COUNT,
                )
                .with_lease_timing(timing);
                a.handle(vec![first], deadline).await
            })
        })
    };
    while !stall.stalled.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A's leases have ended while it stalls: B takes its tasks over and runs them.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let b = env.worker.clone().with_lease_timing(timing);
    let b_failed = b.handle(vec![copy], env.deadline()).await;
    let a_failed = tokio::task::spawn_blocking(move || run_a.join().unwrap())
        .await
        .unwrap();
    env.drain(&env.worker).await;
    let (counted, _) = assert_completed_never_above(&env, &job_id, &expected).await;
    eprintln!("counted {counted:?} of {expected:?}");
    assert_nothing_names_the_user(&env).await;
    assert_eq!(
        a_failed,
        ["a"],
        "the stalled run lost its lease to the copy (B's run: {b_failed:?})"
    );
}
