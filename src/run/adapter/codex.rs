//! Codex: `codex exec --json --skip-git-repo-check --sandbox <mode> -`, the prompt on stdin.
//! A later turn is `codex exec resume --json ... SESSION -` (that subcommand has no `--sandbox`
//! flag; the sandbox mode is given as `-c sandbox_mode="<mode>"`). Inside Forgehand's own
//! sandbox (`sandbox = "bwrap"`) Codex's cannot nest, so it runs with `danger-full-access`
//! (which also lets it reach the callback API); without one it keeps `workspace-write`.
//!
//! Codex refuses input over [`MAX_INPUT_CHARS`]: a longer prompt is written to
//! [`PROMPT_FILE`] in the agent's home, and stdin tells the agent to read it from there.
//!
//! JSONL events: `thread.started` (session id), `item.started` / `item.completed` (agent
//! messages, reasoning, command executions, file changes, MCP tool calls, web searches, to-do
//! lists), `turn.completed` (usage, no cost), `turn.failed` and `error`.
//!
//! A command execution or MCP call becomes a `ToolCall` when it starts and a `ToolResult` when it
//! completes (both at completion if the start was not seen). `turn.completed` also yields the
//! turn's `Result`: the last agent message (Codex has no result event of its own). `error` lines
//! are also sent while Codex retries a dropped stream, so they become `Message { role: "error" }`;
//! only `turn.failed` ends the turn with an error `Result`.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::util::{self, json_text, str_of, u64_of};
use super::{Adapter, Invocation, StreamParser, TurnSpec};
use crate::config::server::SandboxMode;
use crate::domain::agent_event::{AgentEvent, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub struct Codex;

impl Adapter for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn skills_dir(&self) -> &'static str {
        ".codex/skills"
    }

    fn invocation(&self, turn: &TurnSpec<'_>) -> Invocation {
        let profile = turn.profile;
        let mut args: Vec<String> = vec!["exec".to_owned()];
        if turn.resume.is_some() {
            args.push("resume".to_owned());
        }
        args.extend(["--json", "--skip-git-repo-check"].map(str::to_owned));
        let mode = match profile.sandbox {
            SandboxMode::Bwrap => "danger-full-access",
            SandboxMode::None => "workspace-write",
        };
        if turn.resume.is_some() {
            args.extend(["-c".to_owned(), format!("sandbox_mode=\"{mode}\"")]);
        } else {
            args.extend(["--sandbox".to_owned(), mode.to_owned()]);
        }
        if let Some(model) = &profile.model {
            args.extend(["-m".to_owned(), model.clone()]);
        }
        args.extend(profile.args.iter().cloned());
        if let Some(session) = turn.resume {
            args.push(session.to_owned());
        }
        // The prompt comes on stdin.
        args.push("-".to_owned());
        let mut home_files = vec![(".codex/config.toml".to_owned(), CONFIG_TOML.to_owned())];
        let stdin = if turn.prompt.chars().count() > MAX_INPUT_CHARS {
            home_files.push((PROMPT_FILE.to_owned(), turn.prompt.to_owned()));
            format!(
                "Your instructions are too long to be given here: they are in the file `{}`. \
                 Read the whole file first, then do what it says.",
                turn.home.join(PROMPT_FILE).display()
            )
        } else {
            turn.prompt.to_owned()
        };
        Invocation {
            program: util::program(profile, "codex"),
            args,
            stdin: Some(stdin),
            // Codex keeps its state in `$HOME/.codex`, the agent's home.
            env: Vec::new(),
            home_files,
        }
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::<CodexParser>::default()
    }
}

/// The longest input `codex exec` takes (`input_too_large` past it), in characters.
const MAX_INPUT_CHARS: usize = 1 << 20;

/// Where a prompt too long for Codex's input goes, relative to the agent's home.
const PROMPT_FILE: &str = ".forgehand/prompt.md";

/// The run home's Codex config: no update checks, no analytics or feedback uploads.
const CONFIG_TOML: &str = "\
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false
";

#[derive(Debug, Default)]
struct CodexParser {
    /// Items whose start was reported as a `ToolCall`.
    started: HashSet<String>,
    last_message: String,
    /// A resumed thread may be announced twice.
    session: Option<String>,
}

/// `(name, input)` of a tool-like item, or `None` for items that are not tool calls.
fn tool_call(item: &Value) -> Option<(String, String)> {
    match str_of(item, "type")? {
        "command_execution" => Some((
            "command_execution".to_owned(),
            json!({ "command": item.get("command") }).to_string(),
        )),
        "file_change" => Some((
            "file_change".to_owned(),
            json!({ "changes": item.get("changes") }).to_string(),
        )),
        "mcp_tool_call" => Some((
            format!(
                "{}/{}",
                str_of(item, "server").unwrap_or_default(),
                str_of(item, "tool").unwrap_or_default()
            ),
            json_text(item.get("arguments")),
        )),
        "web_search" => Some((
            "web_search".to_owned(),
            json!({ "query": item.get("query") }).to_string(),
        )),
        _ => None,
    }
}

/// `(output, is_error)` of a completed tool-like item.
fn tool_result(item: &Value) -> (String, bool) {
    let failed = str_of(item, "status") == Some("failed");
    match str_of(item, "type") {
        Some("command_execution") => {
            let code = item.get("exit_code").and_then(Value::as_i64);
            (
                str_of(item, "aggregated_output")
                    .unwrap_or_default()
                    .to_owned(),
                failed || code.is_some_and(|c| c != 0),
            )
        }
        Some("file_change") => {
            let lines: Vec<String> = item
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{} {}",
                        str_of(c, "kind").unwrap_or("change"),
                        str_of(c, "path").unwrap_or_default()
                    )
                })
                .collect();
            (lines.join("\n"), failed)
        }
        Some("mcp_tool_call") => match item.get("error").filter(|e| !e.is_null()) {
            Some(err) => (
                str_of(err, "message").map_or_else(|| err.to_string(), str::to_owned),
                true,
            ),
            None => (
                item.get("result")
                    .filter(|r| !r.is_null())
                    .map(Value::to_string)
                    .unwrap_or_default(),
                failed,
            ),
        },
        _ => (String::new(), failed),
    }
}

impl CodexParser {
    fn item(&mut self, completed: bool, item: &Value, out: &mut Vec<AgentEvent>) -> bool {
        let id = str_of(item, "id").map(str::to_owned);
        if let Some((name, input)) = tool_call(item) {
            let key = id.clone().unwrap_or_default();
            let seen = self.started.contains(&key);
            if !completed || !seen {
                out.push(AgentEvent::ToolCall {
                    id: id.clone(),
                    name,
                    input,
                });
                self.started.insert(key.clone());
            }
            if completed {
                self.started.remove(&key);
                let (output, is_error) = tool_result(item);
                out.push(AgentEvent::ToolResult {
                    id,
                    output,
                    is_error,
                });
            }
            return true;
        }
        if !completed {
            // Messages, reasoning and lists are kept when they are complete.
            return matches!(
                str_of(item, "type"),
                Some("agent_message" | "reasoning" | "todo_list" | "error")
            );
        }
        match str_of(item, "type") {
            Some("agent_message") => {
                let text = str_of(item, "text").unwrap_or_default().to_owned();
                self.last_message.clone_from(&text);
                out.push(AgentEvent::Message {
                    role: "assistant".to_owned(),
                    text,
                });
            }
            Some("reasoning") => out.push(AgentEvent::Message {
                role: "reasoning".to_owned(),
                text: str_of(item, "text").unwrap_or_default().to_owned(),
            }),
            Some("todo_list") => {
                let text = item
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let done = t.get("completed").and_then(Value::as_bool) == Some(true);
                        format!(
                            "[{}] {}",
                            if done { "x" } else { " " },
                            str_of(t, "text").unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push(AgentEvent::Message {
                    role: "plan".to_owned(),
                    text,
                });
            }
            Some("error") => out.push(AgentEvent::Message {
                role: "error".to_owned(),
                text: str_of(item, "message").unwrap_or_default().to_owned(),
            }),
            _ => return false,
        }
        true
    }
}

impl StreamParser for CodexParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        let Some(obj) = util::object(line) else {
            return util::raw(line);
        };
        let v = Value::Object(obj);
        let mut out = Vec::new();
        match str_of(&v, "type") {
            Some("thread.started") => {
                if let Some(id) = str_of(&v, "thread_id")
                    && self.session.as_deref() != Some(id)
                {
                    self.session = Some(id.to_owned());
                    out.push(AgentEvent::Session { id: id.to_owned() });
                }
            }
            Some("turn.started") => self.last_message.clear(),
            Some(kind @ ("item.started" | "item.updated" | "item.completed")) => {
                let item = v.get("item").cloned().unwrap_or(Value::Null);
                if kind == "item.updated" {
                    // Progress of an item that is reported again when complete.
                    return Vec::new();
                }
                if !self.item(kind == "item.completed", &item, &mut out) {
                    return util::raw(line);
                }
            }
            Some("turn.completed") => {
                let u = v.get("usage").cloned().unwrap_or(Value::Null);
                let input = u64_of(&u, "input_tokens");
                let cached = u64_of(&u, "cached_input_tokens");
                out.push(AgentEvent::Usage(Usage {
                    input_tokens: input.saturating_sub(cached),
                    output_tokens: u64_of(&u, "output_tokens"),
                    cache_read_tokens: cached,
                    cache_write_tokens: u64_of(&u, "cache_write_input_tokens"),
                    reasoning_tokens: u64_of(&u, "reasoning_output_tokens"),
                    cost_usd: None,
                }));
                out.push(AgentEvent::Result {
                    text: std::mem::take(&mut self.last_message),
                    is_error: false,
                });
            }
            Some("turn.failed") => {
                let text = v
                    .get("error")
                    .map(|e| str_of(e, "message").map_or_else(|| e.to_string(), str::to_owned))
                    .unwrap_or_else(|| "turn failed".to_owned());
                out.push(AgentEvent::Result {
                    text,
                    is_error: true,
                });
            }
            Some("error") => out.push(AgentEvent::Message {
                role: "error".to_owned(),
                text: str_of(&v, "message").unwrap_or_default().to_owned(),
            }),
            _ => return util::raw(line),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::run::adapter::util::{parse_all, profile};

    fn turn<'a>(
        profile: &'a crate::config::server::AgentProfile,
        resume: Option<&'a str>,
    ) -> TurnSpec<'a> {
        TurnSpec {
            profile,
            prompt: "Fix #7",
            workdir: Path::new("/w"),
            home: Path::new("/h"),
            resume,
        }
    }

    #[test]
    fn prompt_over_the_input_limit_goes_to_a_file() {
        let p = profile("codex", None);
        let prompt = "x".repeat(MAX_INPUT_CHARS + 1);
        let inv = Codex.invocation(&TurnSpec {
            prompt: &prompt,
            ..turn(&p, None)
        });
        assert_eq!(inv.home_files[1], (PROMPT_FILE.to_owned(), prompt));
        let stdin = inv.stdin.unwrap();
        assert!(stdin.len() < 1024);
        assert!(stdin.contains("/h/.forgehand/prompt.md"), "{stdin}");
        let inv = Codex.invocation(&turn(&p, None));
        assert_eq!(
            inv.home_files.len(),
            1,
            "a prompt within the limit stays on stdin"
        );
    }

    #[test]
    fn new_turn_invocation() {
        let mut p = profile("codex", Some("gpt-5.5"));
        p.args = vec!["-c".into(), "model_reasoning_effort=\"high\"".into()];
        let inv = Codex.invocation(&turn(&p, None));
        assert_eq!(inv.program, "codex");
        assert_eq!(
            inv.args,
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--sandbox",
                "danger-full-access",
                "-m",
                "gpt-5.5",
                "-c",
                "model_reasoning_effort=\"high\"",
                "-"
            ]
        );
        assert_eq!(inv.stdin.as_deref(), Some("Fix #7"));
        assert_eq!(inv.home_files[0].0, ".codex/config.toml");
        assert!(inv.home_files[0].1.parse::<toml::Table>().is_ok());
    }

    #[test]
    fn resumed_turn_invocation() {
        // Without Forgehand's sandbox, Codex keeps its own.
        let mut p = profile("codex", None);
        p.sandbox = SandboxMode::None;
        let inv = Codex.invocation(&turn(&p, Some("thread-1")));
        assert_eq!(
            inv.args,
            [
                "exec",
                "resume",
                "--json",
                "--skip-git-repo-check",
                "-c",
                "sandbox_mode=\"workspace-write\"",
                "thread-1",
                "-"
            ]
        );
        assert_eq!(inv.stdin.as_deref(), Some("Fix #7"));
    }

    #[test]
    fn parses_a_recorded_file_change_turn() {
        let events = parse_all(
            &mut *Codex.parser(),
            include_str!("testdata/codex-new.jsonl"),
        );
        assert_eq!(
            events,
            [
                AgentEvent::Session {
                    id: "01a21286-1874-7701-85b3-63525b7fd1af".into()
                },
                AgentEvent::ToolCall {
                    id: Some("item_0".into()),
                    name: "file_change".into(),
                    input: r#"{"changes":[{"kind":"add","path":"/tmp/worktree/hello.txt"}]}"#
                        .into(),
                },
                AgentEvent::ToolResult {
                    id: Some("item_0".into()),
                    output: "add /tmp/worktree/hello.txt".into(),
                    is_error: false,
                },
                AgentEvent::Message {
                    role: "assistant".into(),
                    text: "Done: the file is written.".into(),
                },
                AgentEvent::Usage(Usage {
                    input_tokens: 200,
                    output_tokens: 60,
                    cache_read_tokens: 100,
                    cache_write_tokens: 0,
                    reasoning_tokens: 10,
                    cost_usd: None,
                }),
                AgentEvent::Result {
                    text: "Done: the file is written.".into(),
                    is_error: false,
                },
            ]
        );
    }

    #[test]
    fn parses_a_recorded_command_turn() {
        let events = parse_all(
            &mut *Codex.parser(),
            include_str!("testdata/codex-shell-new.jsonl"),
        );
        let command =
            r#"/bin/bash -lc "printf '%s\\n' 'hello from codex' > '/tmp/worktree/hello.txt'""#;
        assert_eq!(
            events[1..4],
            [
                AgentEvent::Message {
                    role: "error".into(),
                    text: "Model metadata for `gpt-mock` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.".into(),
                },
                AgentEvent::ToolCall {
                    id: Some("item_1".into()),
                    name: "command_execution".into(),
                    input: serde_json::json!({ "command": command }).to_string(),
                },
                AgentEvent::ToolResult {
                    id: Some("item_1".into()),
                    output: String::new(),
                    is_error: false,
                },
            ]
        );
        assert!(matches!(
            events.last(),
            Some(AgentEvent::Result {
                is_error: false,
                ..
            })
        ));
    }

    #[test]
    fn parses_a_recorded_resumed_turn() {
        let events = parse_all(
            &mut *Codex.parser(),
            include_str!("testdata/codex-resume.jsonl"),
        );
        assert_eq!(events.len(), 4);
        assert!(matches!(&events[0], AgentEvent::Session { id } if id.starts_with("01a21286")));
    }

    #[test]
    fn failures_mcp_calls_and_unknown_lines() {
        let text = r#"{"type":"item.completed","item":{"id":"item_3","type":"command_execution","command":"false","aggregated_output":"oops\n","exit_code":1,"status":"failed"}}
{"type":"item.completed","item":{"id":"item_4","type":"mcp_tool_call","server":"gh","tool":"search","arguments":{"q":"x"},"result":null,"error":{"message":"denied"},"status":"failed"}}
{"type":"item.updated","item":{"id":"item_5","type":"todo_list","items":[]}}
{"type":"item.completed","item":{"id":"item_5","type":"todo_list","items":[{"text":"read","completed":true},{"text":"fix","completed":false}]}}
{"type":"error","message":"Reconnecting... 1/5"}
{"type":"turn.failed","error":{"message":"stream disconnected"}}
{"type":"something.new"}
not json"#;
        let events = parse_all(&mut *Codex.parser(), text);
        assert_eq!(
            events,
            [
                AgentEvent::ToolCall {
                    id: Some("item_3".into()),
                    name: "command_execution".into(),
                    input: r#"{"command":"false"}"#.into()
                },
                AgentEvent::ToolResult {
                    id: Some("item_3".into()),
                    output: "oops\n".into(),
                    is_error: true
                },
                AgentEvent::ToolCall {
                    id: Some("item_4".into()),
                    name: "gh/search".into(),
                    input: r#"{"q":"x"}"#.into()
                },
                AgentEvent::ToolResult {
                    id: Some("item_4".into()),
                    output: "denied".into(),
                    is_error: true
                },
                AgentEvent::Message {
                    role: "plan".into(),
                    text: "[x] read\n[ ] fix".into()
                },
                AgentEvent::Message {
                    role: "error".into(),
                    text: "Reconnecting... 1/5".into()
                },
                AgentEvent::Result {
                    text: "stream disconnected".into(),
                    is_error: true
                },
                AgentEvent::Raw {
                    line: r#"{"type":"something.new"}"#.into()
                },
                AgentEvent::Raw {
                    line: "not json".into()
                },
            ]
        );
    }
}
