//! The operator's view of jobs: where one stands (once, or watched until it settles), and
//! redriving the dead-letter queue's tasks once their cause is fixed.

use std::time::Duration;

use erasure::control::{ControlStore, JobView};
use erasure::domain::ids::JobId;
use erasure::domain::job::JobStatus;
use erasure::queue::TaskQueue;
use indicatif::{ProgressBar, ProgressStyle};

use super::Failure;

/// How often `status --watch` reads the job.
const POLL: Duration = Duration::from_millis(500);

/// Prints where the job stands; with `watch`, follows it with a progress bar until it settles.
pub async fn status(control: &ControlStore, job_id: &str, watch: bool) -> Result<(), Failure> {
    let job_id = JobId::parse(job_id)
        .map_err(|_| "a job id is 20 characters of A-Z, a-z and 0-9".to_owned())?;
    let read = || async {
        control
            .get_job(&job_id)
            .await?
            .ok_or_else(|| Failure::from(format!("no job {}", job_id.as_str())))
    };
    let mut job = read().await?;
    if !watch {
        println!("{}", summary(&job));
        return Ok(());
    }
    let bar = ProgressBar::new(job.tasks_count as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{bar:30}] {pos}/{len} tasks  {msg}",
    )?);
    loop {
        bar.set_position(job.succeeded.len() as u64);
        bar.set_message(summary(&job));
        if settled(job.status) {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        job = read().await?;
    }
}

/// Moves the dead-letter queue's messages back to the task queue.
pub async fn redrive(queue: &TaskQueue, dead_letter_url: &str) -> Result<(), Failure> {
    let moved = queue.redrive(dead_letter_url).await?;
    println!("moved {moved} message(s) back to the task queue");
    Ok(())
}

fn settled(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Completed | JobStatus::Partial | JobStatus::Failed
    )
}

fn summary(job: &JobView) -> String {
    let (removed, rewritten) = job
        .items
        .values()
        .fold((0, 0), |(r, w), o| (r + o.removed, w + o.rewritten));
    let failed = if job.failed.is_empty() {
        String::new()
    } else {
        format!(", failed: {}", job.failed.join(" "))
    };
    format!(
        "{}: {}/{} tasks done, {removed} items removed, {rewritten} rewritten{failed}",
        job.status.as_str(),
        job.succeeded.len(),
        job.tasks_count,
    )
}
