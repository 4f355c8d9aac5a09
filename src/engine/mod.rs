//! Deciding what happens to tickets: who may trigger, claims within limits, cancellation, and
//! the progress comment people read on the issue.

pub mod claim;
pub mod command;
pub mod conversation;
pub mod cost;
pub mod deps;
pub mod diagnosis;
pub mod gating;
pub mod labeller;
pub mod merge;
pub mod permission_cache;
pub mod progress;
pub mod requests;
pub mod review_pace;
pub mod schedule;
pub mod transition;
pub mod trigger;
pub mod verdict;
pub mod watch;
