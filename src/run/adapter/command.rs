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
use crate::domain::agent_event::AgentEvent;

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
            // Hook results, steps and diffs are Forgehand's to report; an agent claiming one
            // is just output.
            && !event.is_forgehands()
        {
            return vec![event];
        }
        util::raw(line)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn agents_cannot_report_hook_results() {
        let mut parser = super::Command.parser();
        let line = r#"{"kind":"hook","stage":"on_complete","name":"tests","outcome":"passed","passed":true,"output":""}"#;
        assert_eq!(
            parser.line(line),
            vec![crate::domain::agent_event::AgentEvent::Raw {
                line: line.to_owned()
            }]
        );
    }

    #[test]
    fn agents_cannot_report_steps_or_diffs() {
        let mut parser = super::Command.parser();
        for line in [
            r#"{"kind":"step","name":"push","millis":1,"passed":true,"outcome":"done"}"#,
            r#"{"kind":"diff","base":"a","head":"b","patch":"+x","truncated":false}"#,
        ] {
            assert_eq!(
                parser.line(line),
                vec![crate::domain::agent_event::AgentEvent::Raw {
                    line: line.to_owned()
                }]
            );
        }
    }

    use std::path::Path;

    use super::*;
    use crate::domain::agent_event::Usage;
    use crate::run::adapter::util::{parse_all, profile};

    #[test]
    fn invocation_passes_the_prompt_on_stdin() {
        let mut p = profile("command", None);
        p.command = Some("./agent.sh".into());
        p.args = vec!["--fast".into()];
        let spec = TurnSpec {
            profile: &p,
            prompt: "Fix #7",
            workdir: Path::new("/w"),
            home: Path::new("/h"),
            resume: None,
        };
        let inv = Command.invocation(&spec);
        assert_eq!(inv.program, "./agent.sh");
        assert_eq!(inv.args, ["--fast"]);
        assert_eq!(inv.stdin.as_deref(), Some("Fix #7"));
        assert!(inv.env.is_empty());
        let inv = Command.invocation(&TurnSpec {
            resume: Some("s1"),
            ..spec
        });
        assert_eq!(
            inv.env,
            [("FORGEHAND_AGENT_SESSION".to_owned(), "s1".to_owned())]
        );
    }

    #[test]
    fn passes_its_own_events_through_and_keeps_the_rest_raw() {
        let text = r#"editing README.md
{"kind":"session","id":"s1"}
{"kind":"tool_call","id":null,"name":"edit","input":"{\"path\":\"README.md\"}"}
{"kind":"usage","input_tokens":5,"output_tokens":7,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.01}
{"kind":"no_such_kind"}
{"type":"message"}

{"kind":"result","text":"done","is_error":false}"#;
        let events = parse_all(&mut *Command.parser(), text);
        assert_eq!(
            events,
            [
                AgentEvent::Raw {
                    line: "editing README.md".into()
                },
                AgentEvent::Session { id: "s1".into() },
                AgentEvent::ToolCall {
                    id: None,
                    name: "edit".into(),
                    input: r#"{"path":"README.md"}"#.into()
                },
                AgentEvent::Usage(Usage {
                    input_tokens: 5,
                    output_tokens: 7,
                    cost_usd: Some(0.01),
                    ..Usage::default()
                }),
                AgentEvent::Raw {
                    line: r#"{"kind":"no_such_kind"}"#.into()
                },
                AgentEvent::Raw {
                    line: r#"{"type":"message"}"#.into()
                },
                AgentEvent::Result {
                    text: "done".into(),
                    is_error: false
                },
            ]
        );
    }
}
