//! Executing agent runs: worktrees, prompts, skills, adapters, processes, the runner.

pub mod adapter;
pub mod bundle;
pub mod cleanup;
pub mod context;
pub mod cost;
pub mod executor;
pub mod gates;
pub mod home;
pub mod hooks;
pub mod hooks_cli;
pub mod identity;
pub mod lease;
pub mod process;
pub mod prompt;
pub mod publish;
pub mod remote;
pub mod replies;
pub mod runner;
pub mod skills;
pub mod steps;
pub mod turns;
pub mod worktree;
