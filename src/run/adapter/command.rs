//! Any program: `profile.command` with `profile.args`, the prompt on stdin.
//!
//! Every non-blank stdout line is kept as `Raw`, except a JSON object with a `kind` that parses as an
//! [`AgentEvent`] in its own serde shape (`{"kind":"tool_call","id":null,"name":"edit",
//! "input":"{}"}`, `{"kind":"usage","input_tokens":1,...}`, `{"kind":"session","id":"s1"}`), which
//! is passed through, so a scripted agent can report tool calls, usage, a session and a result.
//!
//! When a turn resumes a session the program gets it as `FORGEHAND_AGENT_SESSION`.

use super::util;
use super::{Adapter, Invocation, StreamParser, TurnSpec};
use crate::run::event::AgentEvent;

#[derive(Clone, Copy, Debug, Default)]
pub struct Command;

impl Adapter for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn skills_dir(&self) -> &'static str {
        ".agents/skills"
    }

    fn invocation(&self, turn: &TurnSpec<'_>) -> Invocation {
        let profile = turn.profile;
        Invocation {
            // Config validation requires a command for this adapter.
            program: profile.command.clone().unwrap_or_default(),
            args: profile.args.clone(),
            stdin: Some(turn.prompt.to_owned()),
            env: turn
                .resume
                .map(|s| ("FORGEHAND_AGENT_SESSION".to_owned(), s.to_owned()))
                .into_iter()
                .collect(),
            home_files: Vec::new(),
        }
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(CommandParser)
    }
}

struct CommandParser;

impl StreamParser for CommandParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        if trimmed.starts_with('{')
            && let Some(obj) = util::object(trimmed)
            && obj.contains_key("kind")
            && let Ok(event) = serde_json::from_value::<AgentEvent>(serde_json::Value::Object(obj))
        {
            return vec![event];
        }
        util::raw(line)
    }
}
