//! Receipts decide who counts an entity more than one task can remove (DESIGN §3, "Exact
//! counts"): the first claimant, and only it, whoever deletes the entity; a claim repeated by
//! the same claimant (an answer lost) is its own again; an expired receipt can be claimed anew;
//! and a recovery reads back exactly the claims of the page it recovers.

mod common;

use common::TestEnv;
use erasure::domain::entity::Key;

fn entities(n: usize) -> Vec<Key> {
    (0..n)
        .map(|i| Key {
            pk: "D#doc".into(),
            sk: format!("ANN#a#V#{i}"),
        })
        .collect()
}

#[tokio::test]
async fn the_first_claimant_counts_an_entity_and_no_one_else_does() {
    let env = TestEnv::new().await;
    let (now, later) = (1_000, 2_000);
    let group = "1".repeat(32);
    let keys = entities(30);
    // Two pages claim overlapping entities at once: each entity is counted by one of them.
    let (first, second) = tokio::join!(
        env.control
            .claim_receipts(&group, &keys[..20], "page_a_1", now, later),
        env.control
            .claim_receipts(&group, &keys[10..], "page_b_1", now, later),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first + second, 30, "{first} + {second}: each entity once");
    assert_eq!(
        env.control
            .claimed_receipts(&group, "page_a_1")
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        env.control
            .claimed_receipts(&group, "page_b_1")
            .await
            .unwrap(),
        second
    );

    // The same claims again (a retry whose first answers were lost): each its own again.
    let again = env
        .control
        .claim_receipts(&group, &keys[..20], "page_a_1", now, later)
        .await
        .unwrap();
    assert_eq!(again, first);
    // Another page of the same task, or another task: nothing it did not claim first.
    let third = env
        .control
        .claim_receipts(&group, &keys, "page_c_1", now, later)
        .await
        .unwrap();
    assert_eq!(third, 0);
    assert_eq!(
        env.control
            .claimed_receipts(&group, "page_c_1")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn an_expired_receipt_is_claimed_anew() {
    let env = TestEnv::new().await;
    let group = "2".repeat(32);
    let keys = entities(3);
    assert_eq!(
        env.control
            .claim_receipts(&group, &keys, "page_a_1", 1_000, 2_000)
            .await
            .unwrap(),
        3
    );
    // Before it expires: still the first claimant's.
    assert_eq!(
        env.control
            .claim_receipts(&group, &keys, "page_b_1", 1_500, 9_000)
            .await
            .unwrap(),
        0
    );
    // After (TTL deletes an expired item only eventually; until then it is still read).
    assert_eq!(
        env.control
            .claim_receipts(&group, &keys, "page_b_1", 2_001, 9_000)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        env.control
            .claimed_receipts(&group, "page_a_1")
            .await
            .unwrap(),
        0
    );
}
