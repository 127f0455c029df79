//! Tasks that outlive an invocation: whatever the deadline, a chain of passes (each resuming
//! where the last stopped) reaches the end of the job's scope, with exact counts. Before
//! continuations carried their position, a scoped job over two organizations under a deadline
//! that had already passed paused on the first organization's empty range forever.

mod common;

use std::time::{Duration, Instant};

use common::{entity_of, TestEnv};
use erasure::domain::ids::{OrganizationId, UserId};
use erasure::domain::task::TaskKind;
use erasure::features::deleter;
use serde_json::{json, Value};

/// `user` has `documents` document grants (and a membership) in each organization of
/// `with_data`; `bystander` has the same grants, which must all stay.
fn world(with_data: &[(&str, usize)]) -> Value {
    let organizations: Vec<Value> = with_data
        .iter()
        .map(|(organization, documents)| {
            let documents: Vec<Value> = (0..*documents)
                .map(|i| {
                    json!({
                        "documentId": format!("d{i}"),
                        "users": [{"userId": "user", "accessRole": "editor"},
                                  {"userId": "bystander", "accessRole": "viewer"}],
                    })
                })
                .collect();
            json!({
                "organizationId": organization,
                "members": [{"userId": "user", "accessRole": "editor"},
                            {"userId": "bystander", "accessRole": "viewer"}],
                "documents": documents,
            })
        })
        .collect();
    json!({
        "users": [{"userId": "user", "name": "Una User", "email": "una@example.com"},
                  {"userId": "bystander", "name": "Bea Bystander", "email": "bea@example.com"}],
        "organizations": organizations,
    })
}

fn organizations(ids: &[&str]) -> Vec<OrganizationId> {
    ids.iter()
        .map(|id| OrganizationId::parse(*id).unwrap())
        .collect()
}

#[tokio::test]
async fn a_chain_of_passes_past_their_deadline_reaches_the_end_of_every_organization() {
    let env = TestEnv::new().await;
    env.seed(
        &env.tenant(),
        &world(&[("org-a", 3), ("org-b", 250)]).to_string(),
    )
    .await;
    let tenant = env.tenant();
    let user = UserId::parse("user").unwrap();
    // Empty organizations first, between and last: each costs one empty Query, never a pause.
    let scope = organizations(&["org-empty", "org-a", "org-missing", "org-b", "org-last"]);
    let access = deleter(TaskKind::Access);

    let mut from = 0;
    let mut passes = 0;
    let mut removed = 0;
    loop {
        passes += 1;
        assert!(passes <= 20, "no end in sight: a pass made no progress");
        let already_passed = Some(Instant::now() - Duration::from_secs(1));
        let pass = env
            .data
            .erase_until(&tenant, &user, access, &scope, from, already_passed)
            .await
            .unwrap();
        removed += pass.outcome.removed;
        match pass.resume_at {
            Some(position) => {
                assert!(position >= from, "a pass never goes back");
                from = position;
            }
            None => break,
        }
    }
    // org-a: a membership and 3 grants in one page; org-b: 251 references in three pages.
    assert_eq!(removed, 4 + 251);
    // One pass per page of work, and one more that finds org-last empty: the pass that finished
    // org-b had no time left to look at it.
    assert_eq!(passes, 5);
    let left = env
        .data
        .remaining_references(&tenant, &user, access, &scope)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_scoped_job_over_several_organizations_completes_when_every_deadline_has_passed() {
    let mut env = TestEnv::new().await;
    // Every invocation is already past its deadline, as under `cargo lambda watch`.
    env.invocation_budget = Duration::ZERO;
    env.seed(
        &env.tenant(),
        &world(&[("org-a", 2), ("org-b", 120), ("org-c", 0)]).to_string(),
    )
    .await;
    let job_id = env
        .start_job(
            r#"{"data":{"userIds":["user","nobody"],
                "organizationIds":["org-none","org-a","org-b","org-c","org-gone"]}}"#,
        )
        .await;

    // Rounds that ran something: the final verification's continuation waits out the write
    // window (a delayed message), so rounds that find nothing visible yet do not count.
    let mut rounds = 0;
    let waiting_since = std::time::Instant::now();
    while env.status(&job_id).await["jobStatus"] != "completed" {
        assert!(
            rounds <= 30 && waiting_since.elapsed() < Duration::from_secs(120),
            "the job does not finish: {}",
            env.status(&job_id).await
        );
        if env.deliver_once(&env.worker).await > 0 {
            rounds += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let status = env.status(&job_id).await;
    assert_eq!(status["isDeleteCompleted"], true, "{status}");
    assert_eq!(status["tasksLeft"], 0);
    // Memberships in org-a, org-b and org-c, and 2 + 120 document grants.
    assert_eq!(status["items"]["access"]["removed"], 3 + 122, "{status}");

    let grants: Vec<String> = env
        .scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|i| matches!(entity_of(i), "DocumentAccess" | "Member"))
        .map(|i| i["userId"].as_s().unwrap().clone())
        .collect();
    assert_eq!(grants.len(), 3 + 122, "the bystander's grants all stay");
    assert!(grants.iter().all(|u| u == "bystander"));
}
