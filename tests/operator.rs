//! The operator's commands, run as the operator runs them (the `erasure` binary against the
//! emulators): a job whose tasks all died ends `failed`, `erasure status` says so, `erasure
//! redrive` moves its dead letters back, and the job then completes; `erasure jobs` lists a
//! tenant's jobs from the sparse index; `erasure tombstone lift` is refused while a job names
//! the user, lets new data in once lifted, puts the tombstone back when a job is accepted
//! during the lift, and leaves an audit record that names the user by hash only.

mod common;

use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use common::{TestEnv, API_KEY};
use erasure::control::{LiftAudit, LiftOutcome};
use erasure::domain::ids::{JobId, UserId};
use erasure::keys::{component, fingerprint};
use erasure::lift::{Lift, LiftError, LiftRequest};
use erasure::store::fixture::Fixture;
use erasure::store::Release;

const WORLD: &str = include_str!("fixtures/contract-example.json");
// Ids that no hash, job id or timestamp could contain by chance.
const ADA: &str = "ada-lovelace-0001";
const GRACE: &str = "grace-hopper-0002";

/// Runs the `erasure` binary with the test's tables and queues.
fn run(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_erasure"))
        .args(args)
        .env(
            "AWS_ENDPOINT_URL_DYNAMODB",
            common::emulators::dynamodb_endpoint(),
        )
        .env("AWS_ENDPOINT_URL_SQS", common::emulators::sqs_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CONTROL_TABLE", &env.tables.control)
        .env("DATA_TABLE", &env.tables.data)
        .env("TASK_QUEUE_URL", &env.queue_url)
        .env("TASK_DEAD_LETTER_QUEUE_URL", &env.dlq_url)
        .env("RUST_LOG", "info")
        .output()
        .expect("the erasure binary runs")
}

/// Runs the `erasure` binary, which must succeed; returns its standard output.
fn erasure(env: &TestEnv, args: &[&str]) -> String {
    let output = run(env, args);
    assert!(
        output.status.success(),
        "erasure {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_job_failed_by_dead_letters_completes_after_erasure_redrive() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    // Every attempt fails until the message moves to the dead-letter queue (SQS moves it on
    // the receive after the last allowed one).
    let broken = env.broken_worker();
    for _ in 0..30 {
        if env.queue_depth(&env.dlq_url).await == 1 {
            break;
        }
        env.deliver_once(&broken).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let status = erasure(&env, &["status", &job_id]);
    assert!(status.starts_with("failed: 0/9 tasks done"), "{status}");
    assert!(status.ends_with("failed: t0.access t0.profile t0.contacts t0.mentions t0.comments t0.reactions t0.notifications t0.recordings t0.views\n"), "{status}");
    assert_eq!(env.queue_depth(&env.dlq_url).await, 1);

    let moved = erasure(&env, &["redrive"]);
    assert_eq!(moved.trim(), "moved 1 message(s) back to the task queue");
    assert_eq!(env.queue_depth(&env.dlq_url).await, 0);
    env.drain(&env.worker).await;

    let watched = erasure(&env, &["status", &job_id, "--watch"]);
    assert!(watched.is_empty(), "the bar draws on stderr: {watched}");
    let status = erasure(&env, &["status", &job_id]);
    assert!(status.starts_with("completed: 9/9 tasks done"), "{status}");
    assert_eq!(env.status(&job_id).await["isDeleteCompleted"], true);
}

/// The world with its two users renamed to ids nothing else contains.
fn world() -> String {
    WORLD.replace("u1", ADA).replace("u2", GRACE)
}

/// Writes the world again: refused while a tombstone of one of its users stands.
async fn write_world(env: &TestEnv) -> Result<usize, erasure::store::StoreError> {
    let fixture = Fixture::parse(&world()).unwrap();
    env.data.load_fixture(&env.tenant(), fixture, |_| {}).await
}

/// The tenant's audit records.
async fn audits(env: &TestEnv) -> (Vec<LiftAudit>, String) {
    let items = env
        .dynamodb
        .query()
        .table_name(&env.tables.control)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            AttributeValue::S(format!("AUDIT#{}", env.tenant().as_str())),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let raw = format!("{items:?}");
    let records = items
        .into_iter()
        .map(|item| serde_dynamo::from_item(item).unwrap())
        .collect();
    (records, raw)
}

#[tokio::test]
async fn erasure_jobs_lists_a_tenants_jobs_newest_first_filtered_by_status_and_age() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), &world()).await;
    let done = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#))
        .await;
    env.drain(&env.worker).await;
    let queued = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{GRACE}"]}}}}"#))
        .await;
    // Another tenant's job is not listed.
    env.add_tenant("other-key", "other-token").await;

    let listed = erasure(&env, &["jobs", "--tenant", API_KEY]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&format!("{queued}  queued")),
        "{listed}"
    );
    assert!(lines[0].contains("9/9 tasks left"), "{listed}");
    assert!(lines[0].contains("completed -"), "{listed}");
    assert!(
        lines[1].starts_with(&format!("{done}  completed")),
        "{listed}"
    );
    assert!(lines[1].contains("0/9 tasks left"), "{listed}");
    assert!(lines[1].contains("created 20"), "RFC 3339 times: {listed}");

    let completed = erasure(
        &env,
        &["jobs", "--tenant", API_KEY, "--status", "completed"],
    );
    assert_eq!(completed.lines().count(), 1, "{completed}");
    assert!(completed.starts_with(&done));
    let partial = erasure(&env, &["jobs", "--tenant", API_KEY, "--status", "partial"]);
    assert!(partial.is_empty(), "{partial}");
    let recent = erasure(&env, &["jobs", "--tenant", API_KEY, "--since", "1h"]);
    assert_eq!(recent.lines().count(), 2, "{recent}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let none = erasure(&env, &["jobs", "--tenant", API_KEY, "--since", "1s"]);
    assert!(none.is_empty(), "{none}");
    assert!(erasure(&env, &["jobs", "--tenant", "other-key"]).is_empty());
    let refused = run(&env, &["jobs", "--tenant", API_KEY, "--since", "7 days"]);
    assert!(!refused.status.success());

    // Sparse: the index holds the two jobs and nothing else of the control table (tenants,
    // open-jobs entries, idempotency and rate records, audit records).
    let indexed = env
        .dynamodb
        .scan()
        .table_name(&env.tables.control)
        .index_name(erasure::infra::JOBS_BY_TENANT.name)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut keys: Vec<String> = indexed
        .iter()
        .map(|item| item["pk"].as_s().unwrap().clone())
        .collect();
    keys.sort();
    let mut expected = vec![format!("JOB#{done}"), format!("JOB#{queued}")];
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn a_tombstone_is_not_lifted_while_a_job_names_the_user_then_is_with_an_audit_record() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), &world()).await;
    let job = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#))
        .await;
    let lift = [
        "tombstone",
        "lift",
        "--api-key",
        API_KEY,
        "--user-id",
        ADA,
        "--reason",
        "erased by mistake, ticket 4711",
        "--operator",
        "ops-on-call",
    ];

    // The job is open: refused, and the tombstone stands.
    let refused = run(&env, &lift);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains(&job),
        "{stderr}"
    );
    assert!(write_world(&env).await.is_err(), "the tombstone stands");

    // Settled: lifted, and the user's new data is accepted.
    env.drain(&env.worker).await;
    assert_eq!(env.status(&job).await["jobStatus"], "completed");
    let lifted = run(&env, &lift);
    let stderr = String::from_utf8_lossy(&lifted.stderr).into_owned();
    assert!(lifted.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&lifted.stdout).starts_with("tombstone lifted"));
    write_world(&env)
        .await
        .expect("new data for the user is accepted");

    let (records, raw) = audits(&env).await;
    let outcomes: Vec<LiftOutcome> = records.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [LiftOutcome::Refused, LiftOutcome::Lifted]);
    assert_eq!(records[0].jobs, std::slice::from_ref(&job));
    for record in &records {
        assert_eq!(record.action, "tombstone.lift");
        assert_eq!(record.user_hash, component(ADA));
        assert_eq!(record.operator, "ops-on-call");
        assert_eq!(
            record.reason.as_deref(),
            Some("erased by mistake, ticket 4711")
        );
        assert!(record.at > 0);
    }
    // The log line names the user by fingerprint; neither it nor the record by id.
    assert!(
        stderr.contains("tombstone lift") && stderr.contains(&fingerprint(ADA)),
        "{stderr}"
    );
    for text in [&raw, &stderr] {
        assert!(!text.contains(ADA), "{text}");
    }

    // A reason naming the user is refused before anything happens.
    let named = run(
        &env,
        &[
            "tombstone",
            "lift",
            "--api-key",
            API_KEY,
            "--user-id",
            ADA,
            "--reason",
            ADA,
        ],
    );
    assert!(!named.status.success());
    // Nothing left to lift: said so, and audited.
    let again = erasure(&env, &lift[..6]);
    assert!(again.starts_with("no tombstone"), "{again}");
    let (records, _) = audits(&env).await;
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].outcome, LiftOutcome::Absent);
}

#[tokio::test]
async fn a_job_accepted_during_a_lift_gets_its_tombstone_back_and_the_lift_is_refused() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), &world()).await;
    let first = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#))
        .await;
    env.drain(&env.worker).await;
    assert_eq!(env.status(&first).await["jobStatus"], "completed");
    let request = LiftRequest {
        tenant: env.tenant(),
        user: UserId::parse(ADA).unwrap(),
        operator: "ops-on-call".into(),
        reason: Some("re-registering".into()),
    };

    // No open job when the lift looks; a job for the user is accepted right after (its
    // tombstone written), and the lift's delete then removes that tombstone.
    let checked = Lift::check(&env.control, &env.data, request, erasure::clock::now_ms())
        .await
        .unwrap();
    let racing = env
        .start_job(&format!(
            r#"{{"data":{{"userIds":["{ADA}"],"organizationIds":["org1"]}}}}"#
        ))
        .await;
    let deleted = checked.delete().await.unwrap();
    write_world(&env)
        .await
        .expect("the hazard: between the delete and the second look, nothing refuses the user");
    match deleted.confirm().await {
        Err(LiftError::AcceptedDuringLift(jobs)) => assert_eq!(jobs, std::slice::from_ref(&racing)),
        other => panic!("the lift stood: {other:?}"),
    }
    // Put back: the user's data is refused again, everywhere (the first job's scope) and in
    // org1 (the racing job's).
    assert!(write_world(&env).await.is_err());
    // With its holders: were the racing job to end unaccepted, its release would leave the
    // first job's hold in place.
    let released = env
        .data
        .release_tombstones(
            &env.tenant(),
            &[component(ADA)],
            &JobId::parse(&racing).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(released, [Release::Kept]);
    assert!(write_world(&env).await.is_err());
    let (records, _) = audits(&env).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, LiftOutcome::Restored);
    assert_eq!(records[0].jobs, [racing]);
}
