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
use erasure::store::tuning::Tuning;
use erasure::store::DataStore;

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

/// An annotation viewed `VIEWERS` times, whose one comment is u1's: erasing u1's comments
/// empties it, and its sweep must remove the annotation with every view.
fn crowded_world() -> String {
    let viewers: Vec<String> = (0..VIEWERS).map(|v| format!("viewer-{v}")).collect();
    serde_json::json!({
        "users": [{"userId": "u1", "name": "Una One", "email": "una@example.com"}],
        "organizations": [{"organizationId": "o", "documents": [{
            "documentId": "d",
            "commentAnnotations": [{
                "annotationId": "a", "viewedBy": viewers,
                "comments": [{"commentId": "c", "from": "u1", "text": "hello"}]
            }]
        }]}],
    })
    .to_string()
}

const VIEWERS: usize = 2_000;
const SWEEP_PAGE: i32 = 250;

#[tokio::test]
async fn a_crowded_annotations_sweep_goes_page_by_page_across_passes_and_counts_once() {
    let u1 = UserId::parse("u1").unwrap();
    let comments = deleter(TaskKind::Comments);
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, &crowded_world()).await;
    let expected = env
        .data
        .preview(&tenant, &u1, comments, &[], &mut Default::default())
        .await
        .unwrap();
    assert_eq!(expected.removed as usize, VIEWERS + 2, "{expected:?}");

    // Every pass is given a deadline that has already passed, as `cargo lambda watch` gives
    // every invocation: each must stop after a bounded piece of the sweep and still progress.
    let data = env.data.clone().with_tuning(Tuning {
        sweep_page: SWEEP_PAGE,
        ..Tuning::default()
    });
    let mut total = erasure::domain::task::Outcome::default();
    let mut passes = Vec::new();
    let mut from = 0;
    loop {
        let pass = data
            .erase_until(&tenant, &u1, comments, &[], from, Some(Instant::now()))
            .await
            .unwrap();
        passes.push(pass.outcome.removed);
        total += pass.outcome;
        match pass.resume_at {
            Some(at) => from = at,
            None => break,
        }
        assert!(passes.len() <= 2 * VIEWERS, "the passes do not progress");
    }
    eprintln!("removed per pass: {passes:?}");
    // The first pass removes the comment and stops before the sweep; each later one sweeps a
    // page of views at most (the annotation goes with the last).
    assert!(
        passes.iter().all(|&n| n <= SWEEP_PAGE as u64 + 1),
        "a pass did more than a page of the sweep: {passes:?}"
    );
    assert!(passes.len() > VIEWERS / SWEEP_PAGE as usize, "{passes:?}");
    assert_eq!(total, expected, "the passes count what the dry run counts");
    let left = kinds(&env.scan(&env.tables.data).await);
    assert!(
        !left
            .iter()
            .any(|k| k == "View" || k == "Annotation" || k == "Comment"),
        "{left:?}"
    );
    assert_eq!(
        data.remaining_references(&tenant, &u1, comments, &[])
            .await
            .unwrap(),
        0
    );
}

/// Counts the `Query` calls of the client it is given to.
#[derive(Debug, Clone, Default)]
struct Queries(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for Queries {
    fn name(&self) -> &'static str {
        "Queries"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if context
            .input()
            .downcast_ref::<aws_sdk_dynamodb::operation::query::QueryInput>()
            .is_some()
        {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_sweep_stops_reading_at_the_first_view_its_annotation_keeps() {
    // The crowded annotation, with a second comment, by someone who is not erased: erasing
    // u1's comments keeps the annotation and its 2,000 views, and the sweep need not read them.
    let u1 = UserId::parse("u1").unwrap();
    let comments = deleter(TaskKind::Comments);
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    let mut world: serde_json::Value = serde_json::from_str(&crowded_world()).unwrap();
    world["organizations"][0]["documents"][0]["commentAnnotations"][0]["comments"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"commentId": "c2", "from": "u2", "text": "still here"}));
    env.seed(&tenant, &world.to_string()).await;
    let expected = env
        .data
        .preview(&tenant, &u1, comments, &[], &mut Default::default())
        .await
        .unwrap();
    assert_eq!(expected.removed, 1, "{expected:?}");

    let queries = Queries::default();
    let counted = common::intercepted(&env.dynamodb, queries.clone());
    let data = DataStore::new(counted, &env.tables.data).with_tuning(Tuning {
        sweep_page: SWEEP_PAGE,
        ..Tuning::default()
    });
    let outcome = data.erase(&tenant, &u1, comments, &[]).await.unwrap();
    assert_eq!(outcome, expected);
    let queries = queries.0.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("Query calls of the erasure: {queries}");
    // One page of u1's references, one of the sweep: the annotation, the comment left and the
    // first view. Reading every view would take 1 + 2,002 / 250 pages more.
    assert!(queries <= 3, "{queries} Query calls");
    let left = kinds(&env.scan(&env.tables.data).await);
    assert_eq!(left.iter().filter(|k| *k == "View").count(), VIEWERS);
    assert!(left.iter().any(|k| k == "Annotation") && left.iter().any(|k| k == "Comment"));
}
