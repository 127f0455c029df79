//! A worker may die between any two writes of a task; the retry must still leave no trace and
//! no orphan. Each test leaves the store as a crash at one point would, then runs the task again.

mod common;

use common::{entity_of, TestEnv};
use erasure::domain::entity::{reference_key, Entity, Key};
use erasure::domain::ids::UserId;
use erasure::domain::task::TaskKind;
use erasure::features::deleter;

const WORLD: &str = include_str!("fixtures/contract-example.json");

fn comment_c1(env: &TestEnv) -> Key {
    Entity::Comment(erasure::domain::entity::Comment {
        organization_id: "org1".into(),
        document_id: "d1".into(),
        annotation_id: "a1".into(),
        comment_id: "c1".into(),
        from: "u1".into(),
        text: String::new(),
        to: vec![],
        tagged_user_contacts: vec![],
    })
    .key(&env.tenant())
}

#[tokio::test]
async fn a_retry_after_the_comment_went_but_not_its_annotation_sweeps_the_annotation() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    // The crash: u1's only comment in a1 and its reactions are gone, the sweep never ran.
    let c1 = comment_c1(&env);
    env.delete_data_item(&c1).await;
    for item in env.scan(&env.tables.data).await {
        if entity_of(&item) == "CommentReaction" {
            env.delete_data_item(&erasure::dynamo::item_key(&item).unwrap())
                .await;
        }
    }
    let u1 = UserId::parse("u1").unwrap();
    let comments = deleter(TaskKind::Comments);
    env.data.erase(&tenant, &u1, comments, &[]).await.unwrap();

    let after = env.scan(&env.tables.data).await;
    assert!(
        after.iter().all(|i| entity_of(i) != "Annotation"),
        "the annotation left with no comment is removed"
    );
    assert!(after.iter().all(|i| entity_of(i) != "View"));
    assert_eq!(
        env.data
            .remaining_references(&tenant, &u1, comments, &[])
            .await
            .unwrap(),
        0
    );
    // The views' and the annotation's references of other users went with them.
    let u2 = UserId::parse("u2").unwrap();
    for kind in [TaskKind::Views, TaskKind::Comments] {
        assert_eq!(
            env.data
                .remaining_references(&tenant, &u2, deleter(kind), &[])
                .await
                .unwrap(),
            0,
            "{kind}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_other_users_references_went_but_not_the_entity_removes_it() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    // The crash: u2's mention reference to c1 is gone, c1 itself is still there.
    let c1 = comment_c1(&env);
    let mention = reference_key(&tenant, "u2", TaskKind::Mentions, Some("org1"), &c1);
    env.delete_data_item(&mention).await;
    let u1 = UserId::parse("u1").unwrap();
    env.data
        .erase(&tenant, &u1, deleter(TaskKind::Comments), &[])
        .await
        .unwrap();
    let after = env.scan(&env.tables.data).await;
    assert!(after
        .iter()
        .all(|i| !matches!(entity_of(i), "Comment" | "CommentReaction" | "Annotation")));
}
