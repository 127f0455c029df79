//! The queue is not trusted to say whom to erase: a message that names a user outside its job,
//! or a task id that is not that user's, is dropped, and the job goes on as accepted. Before
//! this check, a message naming another user under an existing job id erased that user and
//! could count their task as the job's, leaving the job's own user's data in place.

mod common;

use common::{entity_of, TestEnv};
use erasure::domain::ids::{JobId, UserId};
use erasure::domain::task::{Task, TaskKind};
use erasure::queue::TaskQueue;
use serde_json::json;

fn world() -> String {
    let documents: Vec<_> = (0..3)
        .map(|i| {
            json!({"documentId": format!("d{i}"),
                   "users": [{"userId": "alice", "accessRole": "editor"},
                             {"userId": "bob", "accessRole": "editor"}]})
        })
        .collect();
    json!({
        "users": [{"userId": "alice", "name": "Alice Able", "email": "alice@example.com"},
                  {"userId": "bob", "name": "Bob Baker", "email": "bob@example.com"}],
        "organizations": [{"organizationId": "o", "documents": documents}],
    })
    .to_string()
}

fn forged(job_id: &str, user: &str, task_id: &str, kind: TaskKind) -> Task {
    Task {
        job_id: JobId::parse(job_id).unwrap(),
        task_id: task_id.into(),
        user_id: UserId::parse(user).unwrap(),
        kind,
        resume_at: 0,
    }
}

#[tokio::test]
async fn messages_naming_users_or_tasks_outside_their_job_are_dropped() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), &world()).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["alice"]}}"#).await;
    // Delivered before the job's own message: bob under alice's task id, bob under an index
    // the job does not have, and alice under a task id of another kind.
    let queue = TaskQueue::new(env.sqs.clone(), &env.queue_url);
    let own = env.queue_depth(&env.queue_url).await;
    assert_eq!(own, 1);
    queue
        .send_all(
            &env.tenant(),
            &[
                forged(&job_id, "bob", "t0.access", TaskKind::Access),
                forged(&job_id, "bob", "t1.access", TaskKind::Access),
                forged(&job_id, "alice", "t0.views", TaskKind::Access),
            ],
        )
        .await
        .unwrap();
    env.drain(&env.worker).await;

    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["items"]["access"]["removed"], 3);
    let grants: Vec<String> = env
        .scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|i| entity_of(i) == "DocumentAccess")
        .map(|i| i["userId"].as_s().unwrap().clone())
        .collect();
    assert_eq!(grants, vec!["bob"; 3], "bob's access is untouched");
    let profiles = env
        .scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|i| entity_of(i) == "Profile")
        .count();
    assert_eq!(profiles, 1, "only alice's profile went");
}
