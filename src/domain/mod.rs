//! The domain: ids, deletion requests, tasks and the job state machine. Plain Rust, no AWS types.

pub mod export;
pub mod ids;
pub mod job;
pub mod request;
pub mod task;
