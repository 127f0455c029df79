//! The annotation a removed comment leaves behind (and the comment's reactions) are swept once
//! per annotation after a scope's pages, behind a durable marker among the user's references:
//! a pass that stops between its pages and its sweep leaves the marker, the task cannot be
//! verified, and the next pass sweeps with the same counts a single pass would have had.

mod common;

use std::time::Instant;

use common::{entity_of, TestEnv};
use erasure::domain::ids::UserId;
use erasure::domain::task::TaskKind;
use erasure::features::deleter;

const WORLD: &str = include_str!("fixtures/contract-example.json");

fn kinds(
    items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
) -> Vec<String> {
    let mut kinds: Vec<String> = items.iter().map(|i| entity_of(i).to_owned()).collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn a_pass_stopped_before_its_sweep_leaves_a_marker_the_next_pass_sweeps() {
    let u1 = UserId::parse("u1").unwrap();
    let comments = deleter(TaskKind::Comments);

    // What one uninterrupted pass removes and leaves.
    let whole = TestEnv::new().await;
    let tenant = whole.tenant();
    whole.seed(&tenant, WORLD).await;
    let at_once = whole.data.erase(&tenant, &u1, comments, &[]).await.unwrap();
    let left_at_once = kinds(&whole.scan(&whole.tables.data).await);

    // The same, stopped at a deadline that has already passed: the pass deals with its page
    // of references and stops before the sweep.
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, WORLD).await;
    let first = env
        .data
        .erase_until(&tenant, &u1, comments, &[], 0, Some(Instant::now()))
        .await
        .unwrap();
    assert_eq!(first.resume_at, Some(0), "the pass stops before its sweep");
    assert!(
        env.scan(&env.tables.data)
            .await
            .iter()
            .any(|i| entity_of(i) == "CommentReaction"),
        "the removed comment's reactions wait for the sweep"
    );
    assert!(
        env.data
            .remaining_references(&tenant, &u1, comments, &[])
            .await
            .unwrap()
            > 0,
        "the marker keeps the task from being verified"
    );

    let second = env
        .data
        .erase_until(&tenant, &u1, comments, &[], 0, None)
        .await
        .unwrap();
    assert!(second.complete());
    assert_eq!(
        env.data
            .remaining_references(&tenant, &u1, comments, &[])
            .await
            .unwrap(),
        0
    );
    let mut both = first.outcome;
    both += second.outcome;
    assert_eq!(both, at_once, "two passes count what one pass counts");
    assert_eq!(kinds(&env.scan(&env.tables.data).await), left_at_once);
}
