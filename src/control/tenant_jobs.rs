//! A tenant's jobs, newest first, through the sparse `JobsByTenant` index (keys only), each
//! then read from the table: the operator's `erasure jobs`. The index is eventually
//! consistent, so a job accepted a moment ago may be missing; what is listed is read fresh.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{stream, StreamExt, TryStreamExt};

use super::{string, ControlStore, JobView};
use crate::domain::ids::JobId;
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError};
use crate::infra::JOBS_BY_TENANT;

/// Jobs read at once.
const READ_CONCURRENCY: usize = 16;

impl ControlStore {
    /// The tenant's jobs created at or after `since_ms`, newest first.
    pub async fn tenant_jobs(
        &self,
        tenant: &Tenant,
        since_ms: i64,
    ) -> Result<Vec<JobView>, DynamoError> {
        let (partition, _) = JOBS_BY_TENANT.partition_key;
        let (sort, _) = JOBS_BY_TENANT.sort_key;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(JOBS_BY_TENANT.name)
            .key_condition_expression("#tenant = :tenant AND #created >= :since")
            .expression_attribute_names("#tenant", partition)
            .expression_attribute_names("#created", sort)
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .expression_attribute_values(":since", AttributeValue::N(since_ms.to_string()))
            .scan_index_forward(false);
        // Job items are keyed `JOB#<jobId>`; the index holds nothing else.
        let ids: Vec<JobId> = dynamo::query_pages(query)
            .await?
            .iter()
            .filter_map(|item| JobId::parse(string(item, "pk")?.strip_prefix("JOB#")?).ok())
            .collect();
        // `buffered` keeps the index's order; a job expired since is left out.
        stream::iter(ids)
            .map(|id| async move { self.get_job(&id).await })
            .buffered(READ_CONCURRENCY)
            .try_filter_map(|job| async move { Ok(job) })
            .try_collect()
            .await
    }
}
