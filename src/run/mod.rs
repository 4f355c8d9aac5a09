//! Executing agent runs: worktrees, prompts, skills, adapters, processes, the runner.

pub mod adapter;
pub mod cleanup;
pub mod context;
pub mod event;
pub mod executor;
pub mod finish;
pub mod gates;
pub mod home;
pub mod hooks;
pub mod identity;
pub mod lease;
pub mod process;
pub mod prompt;
pub mod runner;
pub mod sandbox;
pub mod skills;
pub mod steps;
pub mod turns;
pub mod worktree;
