//! Agent adapters: how to launch each agent CLI for one turn, and how to read its output into
//! the normalized [`AgentEvent`] stream.

use std::path::Path;

use crate::config::server::AgentProfile;
use crate::run::event::AgentEvent;

/// One turn to run.
#[derive(Clone, Debug)]
pub struct TurnSpec<'a> {
    pub profile: &'a AgentProfile,
    pub prompt: &'a str,
    /// The worktree: the agent's working directory.
    pub workdir: &'a Path,
    /// The per-run home directory (the CLI's own state lives there).
    pub home: &'a Path,
    /// The session to resume, from an earlier turn's [`AgentEvent::Session`].
    pub resume: Option<&'a str>,
}

/// A process to start: the executor adds the environment it builds and runs it in `workdir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    /// Written to the process's stdin, which is then closed (`None`: stdin is /dev/null).
    pub stdin: Option<String>,
    /// Variables the adapter needs on top of the built environment.
    pub env: Vec<(String, String)>,
    /// Files to create under the run's home before the start (path relative to home, content).
    pub home_files: Vec<(String, String)>,
}

/// Reads one turn's stdout, line by line.
pub trait StreamParser: Send {
    fn line(&mut self, line: &str) -> Vec<AgentEvent>;
}

pub trait Adapter: Send + Sync {
    /// The adapter's name in `forgehand.toml` (`claude-code`, `codex`, `gemini`, `command`).
    fn name(&self) -> &'static str;
    /// Where skills go in the worktree, e.g. `.claude/skills`.
    fn skills_dir(&self) -> &'static str;
    fn invocation(&self, turn: &TurnSpec<'_>) -> Invocation;
    fn parser(&self) -> Box<dyn StreamParser>;
}
