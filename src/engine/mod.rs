//! Deciding what happens to tickets: who may trigger, claims within limits, cancellation,
//! review and merge.

pub(crate) mod audit;
pub mod claim;
pub(crate) mod claim_error;
pub(crate) mod claim_loop;
pub(crate) mod command;
pub(crate) mod conversation;
pub(crate) mod deps;
pub(crate) mod diagnosis;
pub(crate) mod gating;
pub(crate) mod labeller;
pub(crate) mod merge;
pub(crate) mod requests;
pub(crate) mod runners;
pub mod schedule;
pub(crate) mod transition;
pub(crate) mod trigger;
pub(crate) mod verdict;
