//! Executing agent runs: worktrees, prompts, skills, adapters, processes, the runner.

pub mod adapter;
pub mod bundle;
pub mod cleanup;
pub mod context;
pub mod cost;
// Re-exported at its old path while callers move; remove once none remain.
pub mod event {
    pub use crate::domain::agent_event::*;
}
pub mod executor;
// Re-exported at its old path while callers move; remove once none remain.
pub use publish as finish;
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
// Re-exported at its old path while callers move; remove once none remain.
pub use crate::exec as sandbox;
pub mod skills;
pub mod steps;
pub mod turns;
pub mod worktree;
