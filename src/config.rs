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

pub(crate) fn required(name: &'static str) -> Result<String, ConfigError> {
    env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

pub(crate) fn number_or<T: std::str::FromStr>(
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
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
    /// `RATE_LIMIT_PER_MINUTE`: units a tenant may spend per minute and credential (default
    /// 600): a delete or dry run costs its users, any other request 1.
    pub rate_limit_per_minute: u32,
    /// `JOB_RETENTION_DAYS`: how long finished job records are kept (default 30).
    pub job_retention_days: u32,
    /// `EXPORT_TOKEN_KEY`: the key that seals export page tokens.
    pub export_token_key: ExportTokenKey,
    /// `WEBHOOK_QUEUE_URL`: where a job the enqueued mark settles announces it; unset, the
    /// sweep announces it.
    pub webhook_queue_url: Option<String>,
}

/// The secret that makes export page tokens tamper-proof (an HMAC key): at least 32 bytes.
/// Debug output never shows it.
#[derive(Clone)]
pub struct ExportTokenKey(Vec<u8>);

impl ExportTokenKey {
    /// The shortest key accepted: HMAC-SHA256's output size.
    pub const MIN_BYTES: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        if raw.len() < Self::MIN_BYTES {
            return Err(ConfigError::Invalid {
                name: "EXPORT_TOKEN_KEY",
                reason: format!("must be at least {} bytes", Self::MIN_BYTES),
            });
        }
        Ok(Self(raw.as_bytes().to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ExportTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExportTokenKey(..)")
    }
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables::from_env()?,
            task_queue_url: required("TASK_QUEUE_URL")?,
            rate_limit_per_minute: number_or("RATE_LIMIT_PER_MINUTE", 600)?,
            job_retention_days: number_or("JOB_RETENTION_DAYS", 30)?,
            export_token_key: ExportTokenKey::parse(&required("EXPORT_TOKEN_KEY")?)?,
            webhook_queue_url: required("WEBHOOK_QUEUE_URL").ok(),
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
    /// `WEBHOOK_QUEUE_URL`: where a job that settles announces it; unset, the sweep announces
    /// it.
    pub webhook_queue_url: Option<String>,
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
            webhook_queue_url: required("WEBHOOK_QUEUE_URL").ok(),
        })
    }
}

/// The `sweeper` function's configuration.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    /// `CONTROL_TABLE`: the jobs and the open-jobs index.
    pub control_table: String,
    /// `DATA_TABLE`: the tombstones of the jobs the sweep ends unaccepted, which it releases.
    pub data_table: String,
    /// `MAX_RECEIVE_COUNT`: the task queue's redrive `maxReceiveCount`; with the visibility
    /// timeout it sets how long a job may go without progress before its tasks are surely
    /// dead letters.
    pub max_receive_count: u32,
    /// `WEBHOOK_QUEUE_URL`: where the jobs the sweep settles, and settlements whose
    /// announcement was lost, are announced.
    pub webhook_queue_url: String,
}

impl SweeperConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let max_receive_count = number_or("MAX_RECEIVE_COUNT", 0)?;
        if max_receive_count == 0 {
            return Err(ConfigError::Missing("MAX_RECEIVE_COUNT"));
        }
        Ok(Self {
            control_table: required("CONTROL_TABLE")?,
            data_table: required("DATA_TABLE")?,
            max_receive_count,
            webhook_queue_url: required("WEBHOOK_QUEUE_URL")?,
        })
    }
}
