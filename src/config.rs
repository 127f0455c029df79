//! Configuration: one typed struct per function, read from the environment at cold start.

use std::env;

/// A missing or malformed environment variable, named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

fn number_or<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// Where the collaboration data and the control records live.
#[derive(Debug, Clone)]
pub struct Tables {
    /// `DATA_TABLE`: the collaboration data store.
    pub data: String,
    /// `CONTROL_TABLE`: tenants, jobs, idempotency records, rate-limit windows.
    pub control: String,
}

impl Tables {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            data: required("DATA_TABLE")?,
            control: required("CONTROL_TABLE")?,
        })
    }
}

/// The `api` function's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub tables: Tables,
    /// `TASK_QUEUE_URL`: where tasks are sent.
    pub task_queue_url: String,
    /// `RATE_LIMIT_PER_MINUTE`: requests a tenant may make per minute (default 600).
    pub rate_limit_per_minute: u32,
    /// `JOB_RETENTION_DAYS`: how long finished job records are kept (default 30).
    pub job_retention_days: u32,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables::from_env()?,
            task_queue_url: required("TASK_QUEUE_URL")?,
            rate_limit_per_minute: number_or("RATE_LIMIT_PER_MINUTE", 600)?,
            job_retention_days: number_or("JOB_RETENTION_DAYS", 30)?,
        })
    }
}

/// The `worker` function's configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub tables: Tables,
    /// `TASK_QUEUE_URL`: where a task paused at the invocation's deadline sends its continuation.
    pub task_queue_url: String,
    /// `MAX_RECEIVE_COUNT`: the queue's redrive `maxReceiveCount`; the receive that reaches it is
    /// a task's last attempt, whose failure is recorded on the job.
    pub max_receive_count: u32,
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let max_receive_count = number_or("MAX_RECEIVE_COUNT", 0)?;
        if max_receive_count == 0 {
            return Err(ConfigError::Missing("MAX_RECEIVE_COUNT"));
        }
        Ok(Self {
            tables: Tables::from_env()?,
            task_queue_url: required("TASK_QUEUE_URL")?,
            max_receive_count,
        })
    }
}

/// The `sweeper` function's configuration.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    /// `CONTROL_TABLE`: the jobs and the open-jobs index.
    pub control_table: String,
    /// `MAX_RECEIVE_COUNT`: the task queue's redrive `maxReceiveCount`; with the visibility
    /// timeout it sets how long a job may go without progress before its tasks are surely
    /// dead letters.
    pub max_receive_count: u32,
}

impl SweeperConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let max_receive_count = number_or("MAX_RECEIVE_COUNT", 0)?;
        if max_receive_count == 0 {
            return Err(ConfigError::Missing("MAX_RECEIVE_COUNT"));
        }
        Ok(Self {
            control_table: required("CONTROL_TABLE")?,
            max_receive_count,
        })
    }
}
