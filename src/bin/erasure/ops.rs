//! The operator's view of jobs: where one stands (once, or watched until it settles), a
//! tenant's jobs, and redriving the dead-letter queue's tasks once their cause is fixed.

use std::time::Duration;

use erasure::control::{ControlStore, Counts, JobView};
use erasure::domain::ids::JobId;
use erasure::domain::job::JobStatus;
use erasure::domain::tenant::Tenant;
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
            .job_report(&job_id)
            .await?
            .ok_or_else(|| Failure::from(format!("no job {}", job_id.as_str())))
    };
    let (mut job, mut items) = read().await?;
    if !watch {
        println!("{}", summary(&job, &items));
        return Ok(());
    }
    let bar = ProgressBar::new(job.tasks_count as u64).with_style(ProgressStyle::with_template(
        "{spinner} [{bar:30}] {pos}/{len} tasks  {msg}",
    )?);
    loop {
        bar.set_position(job.succeeded.len() as u64);
        bar.set_message(summary(&job, &items));
        if settled(job.status) {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        (job, items) = read().await?;
    }
}

/// A job status to list, as `--status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    Queued,
    Running,
    Completed,
    Partial,
    Failed,
}

impl StatusFilter {
    fn admits(self, status: JobStatus) -> bool {
        let wanted = match self {
            StatusFilter::Queued => JobStatus::Queued,
            StatusFilter::Running => JobStatus::Running,
            StatusFilter::Completed => JobStatus::Completed,
            StatusFilter::Partial => JobStatus::Partial,
            StatusFilter::Failed => JobStatus::Failed,
        };
        wanted == status
    }
}

/// `--since`: a whole number and a unit, `s`, `m`, `h` or `d`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("end with s, m, h or d (as in 30m or 7d)".into()),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| "a whole number, then s, m, h or d (as in 30m or 7d)".to_owned())?;
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// Prints the tenant's jobs, newest first, one a line.
pub async fn jobs(
    control: &ControlStore,
    tenant: &Tenant,
    status: Option<StatusFilter>,
    since: Option<Duration>,
    now_ms: i64,
) -> Result<(), Failure> {
    let since_ms = since.map_or(0, |age| {
        now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    });
    let jobs = control.tenant_jobs(tenant, since_ms).await?;
    let listed: Vec<&JobView> = jobs
        .iter()
        .filter(|job| status.is_none_or(|wanted| wanted.admits(job.status)))
        .collect();
    for job in &listed {
        println!("{}", job_line(job));
    }
    eprintln!("{} job(s)", listed.len());
    Ok(())
}

/// `<jobId> <status> <left>/<count> tasks left created <time> completed <time or ->`, then the
/// failed task ids when there are any.
fn job_line(job: &JobView) -> String {
    let time = |ms: i64| {
        aws_smithy_types::DateTime::from_millis(ms)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_else(|_| ms.to_string())
    };
    let failed = if job.failed.is_empty() {
        String::new()
    } else {
        format!("  failed: {}", job.failed.join(" "))
    };
    format!(
        "{}  {:<9}  {}/{} tasks left  created {}  completed {}{failed}",
        job.job_id.as_str(),
        job.status.as_str(),
        job.progress().tasks_left(),
        job.tasks_count,
        time(job.created_at),
        job.completed_at.map_or_else(|| "-".to_owned(), time),
    )
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

fn summary(job: &JobView, items: &Counts) -> String {
    let (removed, rewritten) = items
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
