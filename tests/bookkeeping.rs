//! What a job's bookkeeping costs on the control table: the worker's updates of the job item
//! (claims, checkpoints, records, settling) for a 100-user job, counted with the write units
//! DynamoDB would charge for each (dynalite computes them from the item's size, as DynamoDB
//! does). The test asserts that the job completes and that every update was measured; the
//! figures it prints are for docs/SCALING.md ("The job item"), not assertions.

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use common::TestEnv;
use erasure::control::ControlStore;
use erasure::queue::TaskQueue;
use erasure::worker::Worker;
use serde_json::{json, Value};

const USERS: usize = 100;

/// Every `UpdateItem` the client makes asks for its consumed capacity; the answers are added up.
#[derive(Debug, Clone, Default)]
struct WriteUnits(Arc<Mutex<Measured>>);

#[derive(Debug, Default)]
struct Measured {
    updates: usize,
    unmeasured: usize,
    units: f64,
    largest: f64,
}

impl Intercept for WriteUnits {
    fn name(&self) -> &'static str {
        "WriteUnits"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input_mut().downcast_mut::<UpdateItemInput>() {
            input.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let Some(output) = output.downcast_ref::<UpdateItemOutput>() else {
            return Ok(());
        };
        let mut measured = self.0.lock().unwrap();
        measured.updates += 1;
        match output.consumed_capacity().and_then(|c| c.capacity_units()) {
            Some(units) => {
                measured.units += units;
                measured.largest = measured.largest.max(units);
            }
            None => measured.unmeasured += 1,
        }
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
    let counted = aws_sdk_dynamodb::Client::from_conf(
        env.dynamodb
            .config()
            .to_builder()
            .interceptor(measured.clone())
            .build(),
    );
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
    assert!(measured.updates >= 2 * 9 * USERS, "{measured:?}");
    assert_eq!(
        measured.unmeasured, 0,
        "an update came back without its write units"
    );
    println!(
        "bookkeeping of a {USERS}-user job ({} tasks): {} updates of the control table, \
         {:.0} write units in all ({:.1} per update on average, {:.0} the largest); at 1,000 \
         write units a second for the job item's partition, {:.1} s of it",
        9 * USERS,
        measured.updates,
        measured.units,
        measured.units / measured.updates as f64,
        measured.largest,
        measured.units / 1_000.0
    );
}
