//! Claude Code: `claude -p --output-format stream-json --verbose`, the prompt on stdin (an argv
//! value is limited to 128 KiB; a harness with long comments is more).
//!
//! Stream-json lines: `system/init` (session id), `assistant` and `user` messages (content blocks:
//! `text`, `thinking`, `tool_use`, `tool_result`) and a final `result` with the turn's usage and
//! cost. Usage is taken from `result` only (the per-message usage would count twice).

use serde_json::Value;

use super::util::{self, json_text, str_of, u64_of};
use super::{Adapter, Invocation, StreamParser, TurnSpec};
use crate::domain::agent_event::{AgentEvent, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub struct ClaudeCode;

impl Adapter for ClaudeCode {
    fn name(&self) -> &'static str {
        "claude-code"
    }

    fn skills_dir(&self) -> &'static str {
        ".claude/skills"
    }

    fn invocation(&self, turn: &TurnSpec<'_>) -> Invocation {
        let profile = turn.profile;
        let mut args: Vec<String> = [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(model) = &profile.model {
            args.extend(["--model".to_owned(), model.clone()]);
        }
        if let Some(session) = turn.resume {
            args.extend(["--resume".to_owned(), session.to_owned()]);
        }
        args.extend(profile.args.iter().cloned());
        Invocation {
            program: util::program(profile, "claude"),
            args,
            stdin: Some(turn.prompt.to_owned()),
            env: util::env(
                profile,
                &[
                    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                    ("DISABLE_AUTOUPDATER", "1"),
                    ("DISABLE_TELEMETRY", "1"),
                    ("DISABLE_ERROR_REPORTING", "1"),
                    // As root, `--dangerously-skip-permissions` is refused without it.
                    ("IS_SANDBOX", "1"),
                ],
            ),
            home_files: Vec::new(),
        }
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::<ClaudeParser>::default()
    }
}

#[derive(Debug, Default)]
struct ClaudeParser {
    session: Option<String>,
}

impl ClaudeParser {
    fn session(&mut self, id: Option<&str>, out: &mut Vec<AgentEvent>) {
        if let Some(id) = id.filter(|id| !id.is_empty())
            && self.session.as_deref() != Some(id)
        {
            self.session = Some(id.to_owned());
            out.push(AgentEvent::Session { id: id.to_owned() });
        }
    }
}

/// Text of a `tool_result` block's `content`: a string, or a list of blocks.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match str_of(b, "type") {
                Some("text") => str_of(b, "text").unwrap_or_default().to_owned(),
                _ => b.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

impl StreamParser for ClaudeParser {
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
            Some("system") => {
                if str_of(&v, "subtype") == Some("init") {
                    self.session(str_of(&v, "session_id"), &mut out);
                }
                // Other system lines (hooks, status, compaction) carry nothing for the stream.
            }
            Some(role @ ("assistant" | "user")) => {
                self.session(str_of(&v, "session_id"), &mut out);
                let content = v.get("message").and_then(|m| m.get("content"));
                match content {
                    Some(Value::String(text)) if role == "assistant" => {
                        out.push(AgentEvent::Message {
                            role: role.to_owned(),
                            text: text.clone(),
                        });
                    }
                    Some(Value::Array(blocks)) => {
                        for b in blocks {
                            match str_of(b, "type") {
                                Some("text") if role == "assistant" => {
                                    out.push(AgentEvent::Message {
                                        role: role.to_owned(),
                                        text: str_of(b, "text").unwrap_or_default().to_owned(),
                                    })
                                }
                                Some("thinking") => {
                                    let text = str_of(b, "thinking").unwrap_or_default();
                                    if !text.is_empty() {
                                        out.push(AgentEvent::Message {
                                            role: "reasoning".to_owned(),
                                            text: text.to_owned(),
                                        });
                                    }
                                }
                                Some("tool_use" | "server_tool_use") => {
                                    out.push(AgentEvent::ToolCall {
                                        id: str_of(b, "id").map(str::to_owned),
                                        name: str_of(b, "name").unwrap_or_default().to_owned(),
                                        input: json_text(b.get("input")),
                                    })
                                }
                                Some("tool_result") => out.push(AgentEvent::ToolResult {
                                    id: str_of(b, "tool_use_id").map(str::to_owned),
                                    output: content_text(b.get("content")),
                                    is_error: b
                                        .get("is_error")
                                        .and_then(Value::as_bool)
                                        .unwrap_or(false),
                                }),
                                // The prompt echoed back, images, redacted thinking: not kept.
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some("result") => {
                self.session(str_of(&v, "session_id"), &mut out);
                let u = v.get("usage").cloned().unwrap_or(Value::Null);
                out.push(AgentEvent::Usage(Usage {
                    input_tokens: u64_of(&u, "input_tokens"),
                    output_tokens: u64_of(&u, "output_tokens"),
                    cache_read_tokens: u64_of(&u, "cache_read_input_tokens"),
                    cache_write_tokens: u64_of(&u, "cache_creation_input_tokens"),
                    reasoning_tokens: 0,
                    cost_usd: v.get("total_cost_usd").and_then(Value::as_f64),
                }));
                let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false)
                    || str_of(&v, "subtype").is_some_and(|s| s != "success");
                let text = match str_of(&v, "result") {
                    Some(text) => text.to_owned(),
                    None => match v.get("errors") {
                        Some(Value::Array(errors)) => errors
                            .iter()
                            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        _ => str_of(&v, "subtype").unwrap_or_default().to_owned(),
                    },
                };
                out.push(AgentEvent::Result { text, is_error });
            }
            // Partial-message stream events and rate-limit notices: nothing to keep.
            Some("stream_event" | "rate_limit_event") => {}
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
    fn new_turn_invocation() {
        let p = profile("claude-code", None);
        let inv = ClaudeCode.invocation(&turn(&p, None));
        assert_eq!(inv.program, "claude");
        assert_eq!(
            inv.args,
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--dangerously-skip-permissions"
            ]
        );
        assert_eq!(inv.stdin.as_deref(), Some("Fix #7"));
        assert!(inv.env.contains(&("IS_SANDBOX".into(), "1".into())));
        assert!(inv.env.contains(&(
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
            "1".into()
        )));
        assert!(inv.home_files.is_empty());
    }

    #[test]
    fn resumed_turn_invocation_with_model_and_profile_args() {
        let mut p = profile("claude-code", Some("opus"));
        p.command = Some("/opt/bin/claude".into());
        p.args = vec!["--max-turns".into(), "30".into()];
        p.env.insert("IS_SANDBOX".into(), "0".into());
        let inv = ClaudeCode.invocation(&turn(&p, Some("sess-1")));
        assert_eq!(inv.program, "/opt/bin/claude");
        assert_eq!(
            inv.args[5..],
            ["--model", "opus", "--resume", "sess-1", "--max-turns", "30"]
        );
        // The profile's own value wins: the adapter does not set it.
        assert!(inv.env.iter().all(|(k, _)| k != "IS_SANDBOX"));
    }

    #[test]
    fn parses_a_recorded_tool_call_turn() {
        let events = parse_all(
            &mut *ClaudeCode.parser(),
            include_str!("testdata/claude-new.jsonl"),
        );
        let session = "20d322f4-ba85-4042-9a31-52bf5ca4fbbb";
        assert_eq!(
            events,
            [
                AgentEvent::Session { id: session.into() },
                AgentEvent::ToolCall {
                    id: Some("toolu_mock_1".into()),
                    name: "Write".into(),
                    input: r#"{"content":"hello from claude\n","file_path":"/tmp/worktree/hello.txt"}"#
                        .into(),
                },
                AgentEvent::ToolResult {
                    id: Some("toolu_mock_1".into()),
                    output: "File created successfully at: /tmp/worktree/hello.txt (file state is current in your context — no need to Read it back)".into(),
                    is_error: false,
                },
                AgentEvent::Message {
                    role: "assistant".into(),
                    text: "Done: the file is written.".into(),
                },
                AgentEvent::Usage(Usage {
                    input_tokens: 240,
                    output_tokens: 50,
                    cache_read_tokens: 60,
                    cache_write_tokens: 20,
                    reasoning_tokens: 0,
                    cost_usd: Some(0.001563),
                }),
                AgentEvent::Result {
                    text: "Done: the file is written.".into(),
                    is_error: false,
                },
            ]
        );
    }

    #[test]
    fn parses_a_recorded_resumed_turn() {
        let events = parse_all(
            &mut *ClaudeCode.parser(),
            include_str!("testdata/claude-resume.jsonl"),
        );
        assert_eq!(
            events[0],
            AgentEvent::Session {
                id: "20d322f4-ba85-4042-9a31-52bf5ca4fbbb".into()
            }
        );
        assert!(matches!(
            events.last(),
            Some(AgentEvent::Result {
                is_error: false,
                ..
            })
        ));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, AgentEvent::Session { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn errors_thinking_and_unknown_lines() {
        let mut parser = ClaudeCode.parser();
        let text = r#"{"type":"assistant","message":{"role":"assistant","content":[{"type":"thinking","thinking":"Let me look.","signature":"x"}]},"session_id":"s"}
{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"Exit code 1"},{"type":"text","text":"boom"}]}]},"session_id":"s"}
{"type":"result","subtype":"error_max_turns","is_error":true,"session_id":"s","total_cost_usd":0.5,"usage":{"input_tokens":3,"output_tokens":4}}
Error: something odd

{"type":"system","subtype":"hook_response","session_id":"s"}"#;
        let events = parse_all(&mut *parser, text);
        assert_eq!(
            events,
            [
                AgentEvent::Session { id: "s".into() },
                AgentEvent::Message {
                    role: "reasoning".into(),
                    text: "Let me look.".into()
                },
                AgentEvent::ToolResult {
                    id: Some("t1".into()),
                    output: "Exit code 1\nboom".into(),
                    is_error: true
                },
                AgentEvent::Usage(Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                    cost_usd: Some(0.5),
                    ..Usage::default()
                }),
                AgentEvent::Result {
                    text: "error_max_turns".into(),
                    is_error: true
                },
                AgentEvent::Raw {
                    line: "Error: something odd".into()
                },
            ]
        );
    }
}
