//! erasure: erases a user's data from a collaboration product, behind a Velt-compatible
//! "Delete All User Data" API on AWS Lambda.

pub mod accept;
pub mod api;
pub mod aws;
#[cfg(feature = "cli")]
pub mod bridge;
pub mod clock;
pub mod config;
pub mod control;
pub mod domain;
pub mod dynamo;
pub mod erase;
pub mod fault;
pub mod features;
pub mod infra;
pub mod keys;
pub mod lift;
pub mod metrics;
pub mod queue;
pub mod sqs_event;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod webhook;
pub mod worker;
