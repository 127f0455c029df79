//! What a job's bookkeeping costs on the control table: the worker's updates of the job item
//! and of its task items (claims, checkpoints, records, settling) for a 100-user job, each with
//! the write units DynamoDB would charge for it (dynalite computes them from the item's size, as
//! DynamoDB does). The job item's partition takes 1,000 write units a second, so the job item
//! must be written once per task, not on every claim and checkpoint (DESIGN §4,
//! docs/SCALING.md): that is asserted. The write units it prints are for docs/SCALING.md.

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use common::TestEnv;
use erasure::control::ControlStore;
use erasure::queue::TaskQueue;
use erasure::worker::Worker;
use serde_json::{json, Value};

const USERS: usize = 100;
const TASKS: usize = 9 * USERS;

/// Every `UpdateItem` the client makes asks for its consumed capacity; the answers are added up,
/// apart for the job item and for the task items.
#[derive(Debug, Clone, Default)]
struct WriteUnits(Arc<Mutex<Measured>>);

#[derive(Debug, Default)]
struct Measured {
    job_item: Updates,
    task_items: Updates,
    unmeasured: usize,
}

#[derive(Debug, Default)]
struct Updates {
    count: usize,
    units: f64,
    largest: f64,
}

impl Updates {
    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} updates, {:.0} write units ({:.1} per update on average, {:.0} the \
             largest)",
            self.count,
            self.units,
            self.units / self.count.max(1) as f64,
            self.largest
        )
    }
}

/// Which item an update is for, kept with the operation from its input to its output.
#[derive(Debug, Clone, Copy)]
struct OfJobItem(bool);

impl Storable for OfJobItem {
    type Storer = StoreReplace<Self>;
}

impl Intercept for WriteUnits {
    fn name(&self) -> &'static str {
        "WriteUnits"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input_mut().downcast_mut::<UpdateItemInput>() {
            input.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
            let sk = input.key().and_then(|key| key.get("sk"));
            let job_item = sk == Some(&AttributeValue::S("JOB".into()));
            cfg.interceptor_state().store_put(OfJobItem(job_item));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let Some(output) = output.downcast_ref::<UpdateItemOutput>() else {
            return Ok(());
        };
        let mut measured = self.0.lock().unwrap();
        let Some(units) = output.consumed_capacity().and_then(|c| c.capacity_units()) else {
            measured.unmeasured += 1;
            return Ok(());
        };
        let updates = match cfg.load::<OfJobItem>() {
            Some(OfJobItem(true)) => &mut measured.job_item,
            _ => &mut measured.task_items,
        };
        updates.count += 1;
        updates.units += units;
        updates.largest = updates.largest.max(units);
        Ok(())
    }
}

#[tokio::test]
async fn a_hundred_user_jobs_bookkeeping_is_measured_in_write_units() {
    let env = TestEnv::new().await;
    let users: Vec<String> = (0..USERS).map(|u| format!("user-{u}")).collect();
    let profiles: Vec<Value> = users
        .iter()
        .map(|u| json!({"userId": u, "name": format!("Name {u}"), "email": format!("{u}@example.com")}))
        .collect();
    env.seed(
        &env.tenant(),
        &json!({"users": profiles, "organizations": []}).to_string(),
    )
    .await;
    let measured = WriteUnits::default();
    let counted = common::intercepted(&env.dynamodb, measured.clone());
    let worker = Worker::new(
        ControlStore::new(counted, &env.tables.control),
        env.data.clone(),
        TaskQueue::new(env.sqs.clone(), &env.queue_url),
        erasure::infra::MAX_RECEIVE_COUNT,
    );

    let job_id = env
        .start_job(&json!({"data": {"userIds": users}}).to_string())
        .await;
    env.drain(&worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");

    let measured = measured.0.lock().unwrap();
    assert_eq!(
        measured.unmeasured, 0,
        "an update came back without its write units"
    );
    // Every task claims its item and records its end there.
    assert!(measured.task_items.count >= 2 * TASKS, "{measured:?}");
    // The job item: one update per task (its end), the job's `running` mark and its settling.
    assert!(
        measured.job_item.count <= TASKS + 2,
        "the job item is written more than once per task: {measured:?}"
    );
    println!(
        "bookkeeping of a {USERS}-user job ({TASKS} tasks): {}; {}; at 1,000 write units a \
         second for the job's partition, {:.1} s of it",
        measured.job_item.line("job item"),
        measured.task_items.line("task items"),
        (measured.job_item.units + measured.task_items.units) / 1_000.0
    );
}
