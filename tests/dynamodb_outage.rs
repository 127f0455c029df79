//! DynamoDB down in the middle of a job: dynalite killed (mid-delivery) and started again on the
//! same data. While it is down the api answers 503 in the envelope, quickly, and leaves nothing;
//! once it is back the job completes with exact counts, as if nothing had happened.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::emulators::PersistentDynalite;
use common::{is_job_item, key_of, TestEnv};

const WORLD: &str = include_str!("fixtures/world-small.json");

/// Everything a dry run counts for these users, summed over the features.
async fn dry_run_total(env: &TestEnv, users: &str) -> u64 {
    let body = format!(r#"{{"data":{{"userIds":{users},"dryRun":true}}}}"#);
    let (status, answer) = env.post("/v2/users/data/delete", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["data"]["items"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_job_survives_dynamodb_going_down_mid_delivery_and_the_api_answers_503_meanwhile() {
    let dir = std::env::temp_dir().join(common::unique("dynalite-outage"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut dynalite = PersistentDynalite::start(&dir);
    let env = TestEnv::on(&dynalite.endpoint(), 10_000).await;
    env.seed(&env.tenant(), WORLD).await;
    // One user: the dry run's total is then exactly what the job counts (DESIGN §6).
    let users = r#"["u1"]"#;
    let expected = dry_run_total(&env, users).await;
    assert!(expected > 0);
    let job_id = env
        .start_job(&format!(r#"{{"data":{{"userIds":{users}}}}}"#))
        .await;

    // Killed while the first delivery is at work: wherever that lands, some calls fail.
    let delivery = env.deliver_once(&env.worker);
    let outage = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        dynalite.stop();
    };
    tokio::join!(delivery, outage);

    // Down: the api answers 503 in the envelope, well inside its own 10 s timeout.
    let started = Instant::now();
    let (status, answer) = env
        .post("/v2/users/data/delete", r#"{"data":{"userIds":["u3"]}}"#)
        .await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["status"], "UNAVAILABLE");
    assert!(took < Duration::from_secs(10), "the api took {took:?}");
    println!("api answer while DynamoDB is down: {} ms", took.as_millis());
    // Deliveries while it is down fail, and their messages come back.
    env.deliver_once(&env.worker).await;

    // Back on the same data: the job completes, counting every item once.
    dynalite.restart();
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    let counted: u64 = status["items"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o["removed"].as_u64().unwrap() + o["rewritten"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, expected, "{status}");
    // Nothing of the user is left but the tombstone: a consistent Query of their partition.
    // (Not a Scan: a dynalite restarted on its data still lists, in a Scan, items deleted
    // after the restart, while Query and GetItem do not: seen here, an emulator's quirk.)
    let left: Vec<String> = env
        .dynamodb
        .query()
        .table_name(&env.tables.data)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(env.tenant().user_partition("u1")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|item| key_of(item).1)
        .collect();
    assert_eq!(left, ["TOMBSTONE"]);
    // And no job was made while it was down.
    let jobs = env
        .scan(&env.tables.control)
        .await
        .iter()
        .filter(|i| is_job_item(i))
        .count();
    assert_eq!(jobs, 1);
    std::fs::remove_dir_all(&dir).ok();
}
