//! Executing agent runs: worktrees, harnesses, skills, adapters, processes.

pub mod adapter;
pub mod event;
