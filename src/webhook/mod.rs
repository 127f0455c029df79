//! Signed notifications when a job settles: the event and its id, its announcement by whoever
//! settled the job, the signature a receiver checks, the URL policy that keeps requests off
//! private networks, the queue that carries events, and the sender that delivers them with
//! backoff.

pub mod announce;
pub mod config;
pub mod delivery;
pub mod event;
pub mod lambda;
pub mod queue;
pub mod signing;
pub mod url_policy;
