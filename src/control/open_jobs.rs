//! The open-jobs index: one small item per job whose current state is not yet dealt with (not
//! settled, or settled and not yet announced), under a few fixed partitions, so that the sweep
//! finds every such job by key (no Scan, no GSI). Written before its job, and again before a
//! settled job settles anew (a redrive); removed by the sweep once the job's settlement is
//! announced, or when it names a job that never got written.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{key, number, string, ControlStore};
use crate::domain::ids::JobId;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::component;

/// Partitions of the index: a job goes to the one its id's hash names, so that accepting
/// jobs spreads its writes; the sweep reads all of them.
pub const SHARDS: u32 = 16;

fn shard_pk(shard: u32) -> String {
    format!("OPEN#{shard:x}")
}

fn entry_key(job_id: &JobId) -> Item {
    let hash = component(job_id.as_str());
    let shard = u32::from_str_radix(&hash[..1], 16).unwrap_or(0) % SHARDS;
    key(shard_pk(shard), &format!("JOB#{job_id}"))
}

/// A job the index lists as open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEntry {
    pub job_id: JobId,
    /// When the entry was last written: the sweep removes it only if it is still this write.
    pub opened_at: i64,
}

impl ControlStore {
    /// Lists the job as open (idempotent: a retry writes the same item, a later write only
    /// moves `openedAt`).
    pub(super) async fn put_open_entry(
        &self,
        job_id: &JobId,
        now_ms: i64,
        expires_at_s: i64,
    ) -> Result<(), DynamoError> {
        let mut item = entry_key(job_id);
        item.insert("jobId".into(), AttributeValue::S(job_id.to_string()));
        item.insert("openedAt".into(), AttributeValue::N(now_ms.to_string()));
        // The entry never outlives the job it names.
        item.insert(
            "expiresAt".into(),
            AttributeValue::N(expires_at_s.to_string()),
        );
        self.put(item).await
    }

    /// Every job the index lists as open, shard by shard.
    pub async fn open_jobs(&self) -> Result<Vec<OpenEntry>, DynamoError> {
        let mut entries = Vec::new();
        for shard in 0..SHARDS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(shard_pk(shard)))
                // Consistent: lifting a tombstone relies on seeing every job accepted before
                // it looked (the `lift` module).
                .consistent_read(true);
            entries.extend(dynamo::query_pages(query).await?.iter().filter_map(|item| {
                Some(OpenEntry {
                    job_id: JobId::parse(&string(item, "jobId")?).ok()?,
                    opened_at: number(item, "openedAt")?,
                })
            }));
        }
        Ok(entries)
    }

    /// Removes a job from the index, unless its entry was written again since `entry` was
    /// read (a settling that re-opened it); `false` then.
    pub async fn close_open_entry(&self, entry: &OpenEntry) -> Result<bool, DynamoError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(entry_key(&entry.job_id)))
            .condition_expression("openedAt = :seen")
            .expression_attribute_values(":seen", AttributeValue::N(entry.opened_at.to_string()))
            .send()
            .await;
        dynamo::applied("DeleteItem", result)
    }
}
