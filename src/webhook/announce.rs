//! Announcing a settlement: the job's event enqueued on the webhook queue, then recorded on the
//! job (`announcedStatus`), so that a settlement whose announcement was lost stays visible to
//! the sweep, which sends it later (DESIGN §8). Every settle point goes through here.

use super::event::Notification;
use super::queue::{NotificationQueue, WebhookQueueError};
use crate::control::{ControlStore, JobView};
use crate::dynamo::DynamoError;

/// Why a settlement's announcement did not complete. Either way the settlement is still owed
/// one, and the sweep sends it.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("the job's event could not be enqueued")]
    Enqueue(#[source] WebhookQueueError),
    #[error("the job's counts could not be read")]
    Read(#[source] DynamoError),
    #[error("the job's event was enqueued but could not be recorded as such")]
    Record(#[source] DynamoError),
}

/// Enqueues settled jobs' events and records them.
#[derive(Clone)]
pub struct Announcer {
    control: ControlStore,
    queue: NotificationQueue,
}

impl Announcer {
    pub fn new(control: ControlStore, queue: NotificationQueue) -> Self {
        Self { control, queue }
    }

    /// Enqueues the event of `job`'s current settlement, then records it on the job. A copy
    /// sent twice (a record lost, the sweep sending again) has the same event id, and the
    /// receiver dedupes on it.
    pub async fn send(&self, job: &JobView, now_ms: i64) -> Result<(), AnnounceError> {
        let items = self
            .control
            .job_counts(job)
            .await
            .map_err(AnnounceError::Read)?;
        let notification = Notification::of(job, &items, now_ms);
        self.queue
            .send(&notification)
            .await
            .map_err(AnnounceError::Enqueue)?;
        self.control
            .record_announced(&job.job_id, job.status)
            .await
            .map_err(AnnounceError::Record)?;
        tracing::info!(event_id = %notification.event.id, "job settled; notification enqueued");
        Ok(())
    }

    /// [`Announcer::send`] for the one whose update just settled `job`, which has ended whatever
    /// happens to its announcement: a failure is logged, never returned; the sweep sends it.
    pub async fn announce(&self, job: &JobView, now_ms: i64) {
        if let Err(error) = self.send(job, now_ms).await {
            tracing::error!(
                job_id = %job.job_id,
                status = job.status.as_str(),
                error = &error as &dyn std::error::Error,
                "job settled but its announcement did not complete; the sweep will send it"
            );
        }
    }
}
