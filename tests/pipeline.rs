//! The pipeline API → DynamoDB job → SQS → worker against dynalite and moto: completion,
//! duplicate deliveries, retries after failure, and tasks that fail on every attempt.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{entity_of, key_of, TestEnv};
use erasure::domain::entity::{reference_key, Key};
use erasure::domain::ids::{JobId, UserId};
use erasure::domain::task::plan_tasks;
use erasure::domain::task::TaskKind;
use erasure::queue::TaskQueue;
use erasure::store::WriteWindow;

const WORLD: &str = include_str!("fixtures/contract-example.json");

#[tokio::test]
async fn a_job_runs_to_completion_and_removes_only_the_users_profile_and_access() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    let before = env.scan(&env.tables.data).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&env.worker).await;

    let status = env.status(&job_id).await;
    assert_eq!(status["isDeleteCompleted"], true, "{status}");
    assert_eq!(status["jobStatus"], "completed");
    assert_eq!(status["tasksLeft"], 0);
    assert!(status["lastTaskCompletedTime"].as_i64().unwrap() > 0);
    assert!(status["completedAt"].as_i64().unwrap() > 0);
    assert_eq!(status["items"]["profile"]["removed"], 1);
    // Membership, group membership, folder access and document access.
    assert_eq!(status["items"]["access"]["removed"], 4);

    let after = env.scan(&env.tables.data).await;
    let remaining = |entity: &str, user: &str| {
        after
            .iter()
            .filter(|i| entity_of(i) == entity)
            .filter(|i| {
                i.get("userId")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(user)
            })
            .count()
    };
    assert_eq!(remaining("Profile", "u1"), 0);
    assert_eq!(remaining("Member", "u1"), 0);
    assert_eq!(remaining("GroupMember", "u1"), 0);
    assert_eq!(remaining("FolderAccess", "u1"), 0);
    assert_eq!(remaining("DocumentAccess", "u1"), 0);
    // The other user's records are all still there.
    for entity in [
        "Profile",
        "Member",
        "GroupMember",
        "FolderAccess",
        "DocumentAccess",
    ] {
        assert_eq!(remaining(entity, "u2"), 1, "{entity}");
    }
    // Nothing that was not the user's changed, apart from documented rewrites.
    let u1_items = before.len() - after.len();
    assert!(u1_items > 0);
    let before_u2_profile = before
        .iter()
        .find(|i| entity_of(i) == "Profile" && i["userId"].as_s().unwrap() == "u2");
    let after_u2_profile = after
        .iter()
        .find(|i| entity_of(i) == "Profile" && i["userId"].as_s().unwrap() == "u2");
    assert_eq!(before_u2_profile, after_u2_profile);
}

#[tokio::test]
async fn a_task_delivered_twice_counts_once() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    // SQS delivers at least once: send every task a second time.
    let tasks = plan_tasks(
        &JobId::parse(&job_id).unwrap(),
        &[UserId::parse("u1").unwrap()],
        false,
    );
    TaskQueue::new(env.sqs.clone(), &env.queue_url)
        .send_all(&env.tenant(), &tasks)
        .await
        .unwrap();
    assert_eq!(env.queue_depth(&env.queue_url).await, 2);
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed");
    assert_eq!(status["tasksLeft"], 0);
    assert_eq!(status["items"]["profile"]["removed"], 1);
    assert_eq!(status["items"]["access"]["removed"], 4);
}

#[tokio::test]
async fn a_task_that_fails_then_succeeds_completes_the_job() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    let broken = env.broken_worker();
    while env.deliver_once(&broken).await > 0 {}
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "running");
    assert_eq!(status["tasksLeft"], 9);
    assert_eq!(status["tasksFailed"], 0, "a first failure is not final");
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["isDeleteCompleted"], true);
    assert_eq!(env.queue_depth(&env.dlq_url).await, 0);
}

#[tokio::test]
async fn a_task_that_fails_on_every_attempt_ends_the_job_partial_until_its_dead_letter_is_redriven()
{
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    // Poison u1's `views`: a reference leading to an item no entity can be read from.
    let poison = Key {
        pk: "poison".into(),
        sk: "poison".into(),
    };
    let reference = reference_key(&tenant, "u1", TaskKind::Views, Some("org1"), &poison);
    for (key, extra) in [
        (
            &reference,
            vec![
                ("targetPk", "poison"),
                ("targetSk", "poison"),
                ("entity", "Reference"),
            ],
        ),
        (&poison, vec![("entity", "NotAnEntity")]),
    ] {
        let mut item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(key.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(key.sk.clone())),
        ]);
        for (name, value) in extra {
            item.insert(name.to_owned(), AttributeValue::S(value.to_owned()));
        }
        env.dynamodb
            .put_item()
            .table_name(&env.tables.data)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&env.worker).await;

    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "partial", "{status}");
    assert_eq!(status["isDeleteCompleted"], false);
    assert_eq!(status["tasksLeft"], 1);
    assert_eq!(status["tasksFailed"], 1);
    assert_eq!(status["failedTaskIds"], serde_json::json!(["t0.views"]));
    assert_eq!(env.queue_depth(&env.dlq_url).await, 1);
    // The failed task's reference is still there: nothing claims it was erased.
    let data = env.scan(&env.tables.data).await;
    assert!(data
        .iter()
        .any(|i| key_of(i) == (reference.pk.clone(), reference.sk.clone())));

    // Once the cause is fixed, redriving the dead letter completes the job.
    env.delete_data_item(&poison).await;
    assert_eq!(env.redrive().await, 1);
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["isDeleteCompleted"], true);
    assert_eq!(status["tasksFailed"], 0);
}

#[tokio::test]
async fn a_task_that_reaches_the_invocation_deadline_continues_in_a_new_message() {
    let mut env = TestEnv::new().await;
    // Every invocation is already past its deadline: each task does one page per delivery.
    env.invocation_budget = std::time::Duration::ZERO;
    // This test counts the deadline's continuations; the write window's wait before the final
    // verification (a continuation of its own under a passed deadline) is tests/write_race.rs's.
    env.worker = env.worker_with(env.data.clone().with_write_window(WriteWindow {
        land_within: std::time::Duration::from_secs(1),
        verify_after: std::time::Duration::ZERO,
    }));
    let documents: Vec<serde_json::Value> = (0..250)
        .map(|i| {
            serde_json::json!({
                "documentId": format!("d{i}"),
                "users": [{"userId": "heavy", "accessRole": "editor"},
                          {"userId": "light", "accessRole": "viewer"}],
            })
        })
        .collect();
    let world = serde_json::json!({
        "users": [{"userId": "heavy", "name": "Heavy User", "email": "heavy@example.com"}],
        "organizations": [{"organizationId": "o", "documents": documents}],
    });
    env.seed(&env.tenant(), &world.to_string()).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["heavy"]}}"#).await;

    let mut deliveries = 0;
    for _ in 0..100 {
        let received = env.deliver_once(&env.worker).await;
        if received == 0 && env.status(&job_id).await["jobStatus"] == "completed" {
            break;
        }
        deliveries += received;
    }
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["items"]["access"]["removed"], 250);
    // One message for the 9 tasks; the access task's 250 references took three pages, so two
    // continuations carried it on.
    assert_eq!(deliveries, 3);
    let left: Vec<_> = env
        .scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|i| entity_of(i) == "DocumentAccess")
        .collect();
    assert_eq!(left.len(), 250, "the other user's access is untouched");
    assert!(left.iter().all(|i| i["userId"].as_s().unwrap() == "light"));
}

#[test]
fn the_recorded_worker_event_carries_valid_task_messages() {
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(include_str!("../events/worker-sqs.json")).unwrap();
    assert_eq!(event.records.len(), 2);
    for record in event.records {
        let message: erasure::domain::task::TaskMessage =
            serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
        assert_eq!(message.tasks().len(), 9);
        assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    }
}

#[tokio::test]
async fn a_dry_run_counts_an_entity_two_features_reach_once_as_the_job_does() {
    let env = TestEnv::new().await;
    // solo's only comment empties the annotation solo viewed and reacted in: the comments
    // task's cascade and the views and reactions tasks all reach the same entities.
    let world = serde_json::json!({
        "users": [{"userId": "solo", "name": "Solo Writer", "email": "solo@example.com"},
                  {"userId": "other", "name": "Other Reader", "email": "other@example.com"}],
        "organizations": [{"organizationId": "o", "documents": [{
            "documentId": "d",
            "commentAnnotations": [{
                "annotationId": "a", "viewedBy": ["solo", "other"],
                "comments": [{"commentId": "c", "from": "solo", "text": "note to {{other}}",
                              "to": ["other"],
                              "reactions": [{"emoji": "👀", "userId": "solo"},
                                            {"emoji": "👍", "userId": "other"}]}]
            }]
        }]}],
    });
    env.seed(&env.tenant(), &world.to_string()).await;
    let (status, dry) = env
        .post(
            "/v2/users/data/delete",
            r#"{"data":{"userIds":["solo"],"dryRun":true}}"#,
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let dry_total: u64 = dry["data"]["items"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    let job_id = env.start_job(r#"{"data":{"userIds":["solo"]}}"#).await;
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed");
    let real_total: u64 = status["items"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o["removed"].as_u64().unwrap() + o["rewritten"].as_u64().unwrap())
        .sum();
    // Profile, the comment, its two reactions, the annotation and its two views.
    assert_eq!(real_total, 7, "{status}");
    assert_eq!(dry_total, real_total, "dry run {dry}");
}

#[tokio::test]
async fn a_user_with_many_pages_of_comments_is_erased_exactly_with_pages_in_parallel() {
    let env = TestEnv::new().await;
    // 40 annotations of 10 comments by "prolific" (400 references: four pages at once); every
    // other annotation also holds a comment by "keeper", so it must stay.
    let annotations: Vec<serde_json::Value> = (0..40)
        .map(|a| {
            let mut comments: Vec<serde_json::Value> = (0..10)
                .map(|c| {
                    serde_json::json!({"commentId": format!("c{a}-{c}"), "from": "prolific",
                                       "text": "a remark", "to": []})
                })
                .collect();
            if a % 2 == 0 {
                comments.push(
                    serde_json::json!({"commentId": format!("k{a}"), "from": "keeper",
                                                 "text": "a reply", "to": []}),
                );
            }
            serde_json::json!({"annotationId": format!("a{a}"), "viewedBy": ["keeper"],
                               "comments": comments})
        })
        .collect();
    let world = serde_json::json!({"organizations": [{"organizationId": "o", "documents": [
        {"documentId": "d", "commentAnnotations": annotations}]}]});
    env.seed(&env.tenant(), &world.to_string()).await;

    let prolific = UserId::parse("prolific").unwrap();
    let comments = erasure::features::deleter(TaskKind::Comments);
    let outcome = env
        .data
        .erase(&env.tenant(), &prolific, comments, &[])
        .await
        .unwrap();
    // 400 comments, and the 20 annotations left empty with their 20 views.
    assert_eq!(outcome.removed, 440);
    assert_eq!(
        env.data
            .remaining_references(&env.tenant(), &prolific, comments, &[])
            .await
            .unwrap(),
        0
    );
    let after = env.scan(&env.tables.data).await;
    let count = |entity: &str| after.iter().filter(|i| entity_of(i) == entity).count();
    assert_eq!(count("Comment"), 20, "only keeper's comments are left");
    assert_eq!(count("Annotation"), 20);
    assert_eq!(count("View"), 20);
}

#[tokio::test]
async fn a_dry_run_that_cannot_count_in_time_is_refused_naming_the_field() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let body = r#"{"data":{"userIds":["u1","u2"],"dryRun":true}}"#;
    let headers = [
        ("x-velt-api-key", common::API_KEY),
        ("x-velt-auth-token", common::AUTH_TOKEN),
    ];
    // Counting reads the table: no read can answer within a microsecond.
    let hurried = env
        .api
        .clone()
        .with_dry_run_budget(std::time::Duration::from_micros(1));
    let (status, answer) =
        common::request_to(&hurried, "POST", "/v2/users/data/delete", &headers, body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("dryRun:"));
    // With the deployed budget the same preview answers.
    assert_eq!(env.post("/v2/users/data/delete", body).await.0, 200);
    assert_eq!(env.queue_depth(&env.queue_url).await, 0);
}
