//! How much of one erasure task runs at once, from the function's configuration.

use crate::config::ConfigError;

/// How much of one task runs at once: configuration, so it can follow the table's capacity
/// (docs/SCALING.md says what each costs on AWS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Pages of one task dealt with at once (each page also has its own batches in flight).
    pub pages_in_flight: usize,
    /// Items of an annotation's subtree a sweep reads and deals with at a time: the most it
    /// holds in memory, and does between two looks at the deadline.
    pub sweep_page: i32,
}

impl Default for Tuning {
    /// Measured on dynalite with `make bench` (docs/PERFORMANCE.md): 4 pages keep the emulator
    /// busy; more only queue.
    fn default() -> Self {
        Self {
            pages_in_flight: 4,
            sweep_page: 1_000,
        }
    }
}

impl Tuning {
    /// The tuning named by `ERASE_PAGES_IN_FLIGHT` (1–64), or the default; read at cold start.
    pub fn from_env() -> Result<Self, ConfigError> {
        const NAME: &str = "ERASE_PAGES_IN_FLIGHT";
        match std::env::var(NAME) {
            Err(_) => Ok(Self::default()),
            Ok(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => Ok(Self {
                    pages_in_flight: n,
                    ..Self::default()
                }),
                _ => Err(ConfigError::Invalid {
                    name: NAME,
                    reason: format!("must be a whole number from 1 to 64, not {raw:?}"),
                }),
            },
        }
    }
}
