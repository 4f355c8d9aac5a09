//! Deciding what happens to tickets: who may trigger, claims within limits, cancellation,
//! review and merge.

pub mod audit;
pub mod claim;
pub mod claim_error;
pub mod claim_loop;
pub mod command;
pub mod conversation;
pub mod deps;
pub mod diagnosis;
pub mod gating;
pub mod labeller;
pub mod merge;
pub mod requests;
pub mod runners;
pub mod schedule;
pub mod transition;
pub mod trigger;
pub mod verdict;
