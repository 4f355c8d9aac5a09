//! Agent adapters: how to launch each agent CLI for one turn, and how to read its output into
//! the normalized [`AgentEvent`] stream.

use std::path::Path;

use crate::config::server::AgentProfile;
use crate::domain::agent_event::AgentEvent;

/// One turn to run.
#[derive(Clone, Debug)]
pub struct TurnSpec<'a> {
    pub profile: &'a AgentProfile,
    pub prompt: &'a str,
    /// The worktree: the agent's working directory.
    pub workdir: &'a Path,
    /// The agent's home directory, one per ticket (the CLI's own state, its sessions, lives
    /// there and survives retries and restarts).
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
    /// Where the CLI reads user-level skills, relative to its home, e.g. `.claude/skills`.
    fn skills_dir(&self) -> &'static str;
    fn invocation(&self, turn: &TurnSpec<'_>) -> Invocation;
    fn parser(&self) -> Box<dyn StreamParser>;
}

mod claude_code;
mod codex;
mod command;
mod gemini;

pub use claude_code::ClaudeCode;
pub use codex::Codex;
pub use command::Command;
pub use gemini::Gemini;

/// Every adapter, in the order of their names in `forgehand.toml`.
pub static ADAPTERS: [&dyn Adapter; 4] = [&ClaudeCode, &Codex, &Gemini, &Command];

/// The adapter called `name` (`claude-code`, `codex`, `gemini`, `command`).
fn by_name(name: &str) -> Option<&'static dyn Adapter> {
    ADAPTERS.iter().copied().find(|a| a.name() == name)
}

/// The adapter a profile asks for (`profile.adapter`); `None` for an unknown name (which config
/// validation already refuses).
pub fn for_profile(profile: &AgentProfile) -> Option<&'static dyn Adapter> {
    by_name(&profile.adapter)
}

/// Conventions shared by the adapters.
///
/// Token counts are normalized to one meaning across CLIs: `input_tokens` are the uncached input
/// tokens, `cache_read_tokens` the cached ones (Codex and Gemini report input including cached
/// tokens; Claude Code reports them apart, as here).
pub(crate) mod util {
    use crate::config::server::AgentProfile;
    use crate::domain::agent_event::AgentEvent;

    /// `profile.command`, or the CLI's usual program name.
    pub fn program(profile: &AgentProfile, default: &str) -> String {
        profile
            .command
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    /// The adapter's own environment defaults, minus those the profile sets itself (the executor
    /// adds the profile's `env`, which so wins over an adapter default).
    pub fn env(profile: &AgentProfile, defaults: &[(&str, &str)]) -> Vec<(String, String)> {
        defaults
            .iter()
            .filter(|(k, _)| !profile.env.contains_key(*k))
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub fn raw(line: &str) -> Vec<AgentEvent> {
        vec![AgentEvent::Raw {
            line: line.to_owned(),
        }]
    }

    /// The line as a JSON object, or `None` when it is not one.
    pub fn object(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        }
    }

    pub fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
        v.get(key).and_then(serde_json::Value::as_str)
    }

    pub fn u64_of(v: &serde_json::Value, key: &str) -> u64 {
        v.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0)
    }

    /// JSON text of a tool's arguments (a string stays as it is when it is already JSON text).
    pub fn json_text(v: Option<&serde_json::Value>) -> String {
        match v {
            None | Some(serde_json::Value::Null) => "{}".to_owned(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// A profile for tests.
    #[cfg(test)]
    pub fn profile(adapter: &str, model: Option<&str>) -> AgentProfile {
        AgentProfile {
            adapter: adapter.to_owned(),
            command: None,
            args: Vec::new(),
            model: model.map(str::to_owned),
            env: Default::default(),
            max_parallel: None,
            sandbox: Default::default(),
            memory_limit: Default::default(),
            max_processes: 2048,
            sandbox_writable: Vec::new(),
            credential_files: Vec::new(),
        }
    }

    /// Every line of a recorded stream through a parser.
    #[cfg(test)]
    pub fn parse_all(parser: &mut dyn super::StreamParser, text: &str) -> Vec<AgentEvent> {
        text.lines().flat_map(|l| parser.line(l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_profile_picks_the_adapter_by_name() {
        for (name, skills) in [
            ("claude-code", ".claude/skills"),
            ("codex", ".codex/skills"),
            ("gemini", ".gemini/skills"),
            ("command", ".agents/skills"),
        ] {
            let adapter = for_profile(&util::profile(name, None)).unwrap();
            assert_eq!(adapter.name(), name);
            assert_eq!(adapter.skills_dir(), skills);
        }
        assert!(for_profile(&util::profile("aider", None)).is_none());
    }
}
