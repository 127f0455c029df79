//! The domain: the collaboration model (entities, tenants, mention rules), ids, deletion
//! requests, tasks and the job state machine. Plain Rust, no AWS types; everything else builds on it.

pub mod entity;
pub mod export;
pub mod ids;
pub mod job;
pub mod mention;
pub mod request;
pub mod task;
pub mod tenant;
