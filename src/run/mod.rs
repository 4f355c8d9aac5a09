//! Executing agent runs: worktrees, prompts, skills, adapters, processes, the runner.

pub mod adapter;
pub(crate) mod bundle;
pub mod cleanup;
pub(crate) mod context;
pub(crate) mod cost;
pub(crate) mod executor;
pub(crate) mod gates;
pub(crate) mod home;
pub mod hooks;
pub mod hooks_cli;
pub(crate) mod identity;
pub(crate) mod lease;
pub(crate) mod process;
pub(crate) mod prompt;
pub mod protocol;
pub(crate) mod publish;
pub(crate) mod remote;
pub(crate) mod remote_gates;
pub(crate) mod replies;
pub(crate) mod runner;
pub(crate) mod skills;
pub(crate) mod steps;
pub(crate) mod turns;
pub mod worktree;
