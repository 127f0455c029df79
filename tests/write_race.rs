//! Writes racing an erasure (DESIGN §3 "Writes racing an erasure"): a writer that checked the
//! tombstones just before a job was accepted lands within its window or not at all, and the
//! job's tasks verify only once that window has closed, so the job never reports `completed`
//! with the late write still there.

mod common;

use std::time::{Duration, Instant};

use common::{entity_of, TestEnv};
use erasure::domain::entity::{self as e, Entity};
use erasure::store::{StoreError, WriteWindow};

fn member(org: &str, user: &str) -> Entity {
    Entity::Member(e::Member {
        organization_id: org.into(),
        user_id: user.into(),
        access_role: "editor".into(),
    })
}

/// The user's memberships left in the data table.
async fn memberships(env: &TestEnv, user: &str) -> usize {
    env.scan(&env.tables.data)
        .await
        .iter()
        .filter(|i| entity_of(i) == "Member" && i["userId"].as_s().unwrap() == user)
        .count()
}

#[tokio::test]
async fn a_write_checked_before_a_job_and_landing_after_its_tasks_ran_is_erased_all_the_same() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    // Long enough that the write surely lands after the tasks' first pass, under any load.
    let window = WriteWindow {
        land_within: Duration::from_secs(8),
        verify_after: Duration::from_secs(10),
    };
    let data = env.data.clone().with_write_window(window);
    let worker = env.worker_with(data.clone());
    data.write(&tenant, vec![member("org1", "late")])
        .await
        .unwrap();

    // The writer checks: no tombstone yet. Then the job is accepted (the tombstone is written).
    let pending = data
        .check_write(&tenant, vec![member("org2", "late")])
        .await
        .unwrap();
    let job_id = env.start_job(r#"{"data":{"userIds":["late"]}}"#).await;
    let accepted = Instant::now();

    let landing = async {
        // The tasks' first pass has removed the membership that was there; a second more, so
        // that a task not waiting for the window would have verified and succeeded by now.
        while memberships(&env, "late").await > 0 {
            assert!(
                accepted.elapsed() < Duration::from_secs(6),
                "the first pass never ran"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        pending.land(&data).await
    };
    let (landed, ()) = tokio::join!(landing, env.drain(&worker));
    landed.expect("the write lands inside its window");

    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(
        memberships(&env, "late").await,
        0,
        "the late write was left"
    );
    // Exact counts: the membership that was there and the one that landed late.
    assert_eq!(status["items"]["access"]["removed"], 2, "{status}");
    assert!(accepted.elapsed() >= window.verify_after);
}

#[tokio::test]
async fn a_write_that_cannot_land_within_its_window_lands_nothing_after_it() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    let data = env.data.clone().with_write_window(WriteWindow {
        land_within: Duration::from_millis(300),
        verify_after: Duration::from_secs(1),
    });
    let pending = data
        .check_write(&tenant, vec![member("org1", "slow")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let result = pending.land(&data).await;
    assert!(
        matches!(result, Err(StoreError::WindowPassed(_))),
        "{result:?}"
    );
    assert_eq!(memberships(&env, "slow").await, 0);
    assert!(env.scan(&env.tables.data).await.is_empty());
    // Checked again, the same write lands.
    data.write(&tenant, vec![member("org1", "slow")])
        .await
        .unwrap();
    assert_eq!(memberships(&env, "slow").await, 1);
}
