//! Deciding what happens to tickets: who may trigger, claims within limits, cancellation,
//! review and merge.

pub mod audit;
pub mod claim;
pub mod claim_error;
pub mod claim_loop;
pub mod command;
pub mod conversation;
// Re-exported at its old path while callers move; remove once none remain.
pub mod cost {
    pub use crate::run::cost::*;
}
pub mod deps;
pub mod diagnosis;
pub mod gating;
pub mod labeller;
pub mod merge;
// Re-exported at its old path while callers move; remove once none remain.
pub mod permission_cache {
    pub use crate::forge::permission_cache::*;
}
// Re-exported at its old path while callers move; remove once none remain.
pub mod progress {
    pub use crate::report::progress::*;
}
// Re-exported at its old path while callers move; remove once none remain.
pub mod review_pace {
    pub use crate::app::review_pace::*;
}
pub mod requests;
pub mod schedule;
pub mod transition;
pub mod trigger;
pub mod verdict;
// Re-exported at its old path while callers move; remove once none remain.
pub use claim_loop as watch;
