//! Daily tokens and cost.

use serde::{Deserialize, Serialize};

use crate::store::costs as store;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub days: i64,
    /// The first day counted, `YYYY-MM-DD`.
    pub since: String,
    /// One row per day, repository and agent profile with runs, oldest first.
    pub items: Vec<DailyCost>,
    pub total_cost_usd: f64,
    pub total_runs: i64,
}

/// One day's spend of one agent profile in one repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyCost {
    /// `YYYY-MM-DD` (UTC), the day the run started (queued, when it never started).
    pub day: String,
    /// `forge:owner/name`
    pub repo: String,
    pub agent: String,
    pub runs: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: f64,
}

impl From<store::DailyCost> for DailyCost {
    fn from(d: store::DailyCost) -> Self {
        Self {
            day: d.day,
            repo: d.repo,
            agent: d.agent,
            runs: d.runs,
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            cache_read_tokens: d.cache_read_tokens,
            cache_write_tokens: d.cache_write_tokens,
            reasoning_tokens: d.reasoning_tokens,
            cost_usd: d.cost_usd,
        }
    }
}
