//! Gemini CLI: `gemini -o stream-json --skip-trust --yolo`, the prompt on stdin (piped stdin makes
//! it headless; an argv value is limited to 128 KiB), resumed with `--resume SESSION`. The run home gets `.gemini/settings.json` selecting API-key auth (the CLI
//! refuses to start headless without an auth type) with usage statistics off.
//!
//! JSONL events: `init` (session id), `message` (`role`, `content`, `delta`), `tool_use`,
//! `tool_result`, `error`, `result` (`status`, `stats` with token counts, no cost).
//!
//! Streamed assistant deltas are merged: consecutive `delta` chunks are held and sent as one
//! `Message` when anything else arrives (a tool call, a non-delta message, the result). The user
//! prompt echoed back as a `message` is not kept. The turn's `Result` text is the last assistant
//! message.

use serde_json::Value;

use super::util::{self, json_text, str_of, u64_of};
use super::{Adapter, Invocation, StreamParser, TurnSpec};
use crate::domain::agent_event::{AgentEvent, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub struct Gemini;

/// `~/.gemini/settings.json` for headless runs.
const SETTINGS_JSON: &str = r#"{"security":{"auth":{"selectedType":"gemini-api-key"}},"privacy":{"usageStatisticsEnabled":false},"telemetry":{"enabled":false},"general":{"enableAutoUpdate":false,"enableAutoUpdateNotification":false}}"#;

impl Adapter for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn skills_dir(&self) -> &'static str {
        ".gemini/skills"
    }

    fn invocation(&self, turn: &TurnSpec<'_>) -> Invocation {
        let profile = turn.profile;
        let mut args: Vec<String> = ["-o", "stream-json", "--skip-trust", "--yolo"]
            .map(str::to_owned)
            .to_vec();
        if let Some(model) = &profile.model {
            args.extend(["-m".to_owned(), model.clone()]);
        }
        if let Some(session) = turn.resume {
            args.extend(["--resume".to_owned(), session.to_owned()]);
        }
        args.extend(profile.args.iter().cloned());
        Invocation {
            program: util::program(profile, "gemini"),
            args,
            stdin: Some(turn.prompt.to_owned()),
            env: util::env(profile, &[("GEMINI_CLI_TRUST_WORKSPACE", "true")]),
            home_files: vec![(".gemini/settings.json".to_owned(), SETTINGS_JSON.to_owned())],
        }
    }

    fn parser(&self) -> Box<dyn StreamParser> {
        Box::<GeminiParser>::default()
    }
}

#[derive(Debug, Default)]
struct GeminiParser {
    /// Assistant text streamed as deltas, not sent yet.
    pending: String,
    last_message: String,
}

impl GeminiParser {
    fn flush(&mut self, out: &mut Vec<AgentEvent>) {
        if !self.pending.is_empty() {
            let text = std::mem::take(&mut self.pending);
            self.last_message.clone_from(&text);
            out.push(AgentEvent::Message {
                role: "assistant".to_owned(),
                text,
            });
        }
    }
}

impl StreamParser for GeminiParser {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        let Some(obj) = util::object(line) else {
            let mut out = Vec::new();
            self.flush(&mut out);
            out.extend(util::raw(line));
            return out;
        };
        let v = Value::Object(obj);
        let mut out = Vec::new();
        let kind = str_of(&v, "type");
        let is_delta_message = kind == Some("message")
            && str_of(&v, "role") == Some("assistant")
            && v.get("delta").and_then(Value::as_bool) == Some(true);
        if !is_delta_message {
            self.flush(&mut out);
        }
        match kind {
            Some("init") => {
                if let Some(id) = str_of(&v, "session_id") {
                    out.push(AgentEvent::Session { id: id.to_owned() });
                }
            }
            Some("message") => {
                let content = str_of(&v, "content").unwrap_or_default();
                match str_of(&v, "role") {
                    Some("user") => {}
                    _ if is_delta_message => self.pending.push_str(content),
                    role => {
                        let role = role.unwrap_or("assistant").to_owned();
                        if role == "assistant" {
                            self.last_message = content.to_owned();
                        }
                        out.push(AgentEvent::Message {
                            role,
                            text: content.to_owned(),
                        });
                    }
                }
            }
            Some("tool_use") => out.push(AgentEvent::ToolCall {
                id: str_of(&v, "tool_id").map(str::to_owned),
                name: str_of(&v, "tool_name").unwrap_or_default().to_owned(),
                input: json_text(v.get("parameters")),
            }),
            Some("tool_result") => {
                let is_error = str_of(&v, "status").is_some_and(|s| s != "success");
                let output = match (str_of(&v, "output"), v.get("error")) {
                    (Some(output), _) => output.to_owned(),
                    (None, Some(err)) => {
                        str_of(err, "message").map_or_else(|| err.to_string(), str::to_owned)
                    }
                    (None, None) => String::new(),
                };
                out.push(AgentEvent::ToolResult {
                    id: str_of(&v, "tool_id").map(str::to_owned),
                    output,
                    is_error,
                });
            }
            Some("error") => out.push(AgentEvent::Message {
                role: "error".to_owned(),
                text: str_of(&v, "message").unwrap_or_default().to_owned(),
            }),
            Some("result") => {
                let stats = v.get("stats").cloned().unwrap_or(Value::Null);
                // `input_tokens` is the whole prompt, `cached` the cached part of it.
                let prompt = u64_of(&stats, "input_tokens");
                let cached = u64_of(&stats, "cached");
                out.push(AgentEvent::Usage(Usage {
                    input_tokens: prompt.saturating_sub(cached),
                    output_tokens: u64_of(&stats, "output_tokens"),
                    cache_read_tokens: cached,
                    cache_write_tokens: 0,
                    reasoning_tokens: 0,
                    cost_usd: None,
                }));
                let is_error = str_of(&v, "status").is_some_and(|s| s != "success");
                let text = match v.get("error").filter(|e| !e.is_null()) {
                    Some(err) if is_error => {
                        str_of(err, "message").map_or_else(|| err.to_string(), str::to_owned)
                    }
                    _ => std::mem::take(&mut self.last_message),
                };
                out.push(AgentEvent::Result { text, is_error });
            }
            _ => out.extend(util::raw(line)),
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
    fn new_and_resumed_turn_invocations() {
        let p = profile("gemini", None);
        let inv = Gemini.invocation(&turn(&p, None));
        assert_eq!(inv.program, "gemini");
        assert_eq!(inv.args, ["-o", "stream-json", "--skip-trust", "--yolo"]);
        assert_eq!(inv.stdin.as_deref(), Some("Fix #7"));
        let (path, settings) = &inv.home_files[0];
        assert_eq!(path, ".gemini/settings.json");
        let settings: serde_json::Value = serde_json::from_str(settings).unwrap();
        assert_eq!(
            settings["security"]["auth"]["selectedType"],
            "gemini-api-key"
        );

        let p = profile("gemini", Some("gemini-2.5-pro"));
        let inv = Gemini.invocation(&turn(&p, Some("sess-9")));
        assert_eq!(
            inv.args[4..],
            ["-m", "gemini-2.5-pro", "--resume", "sess-9"]
        );
    }

    #[test]
    fn parses_a_recorded_tool_call_turn() {
        let events = parse_all(
            &mut *Gemini.parser(),
            include_str!("testdata/gemini-new.jsonl"),
        );
        let id = "write_file__write_file_1795607113017_0";
        assert_eq!(
            events,
            [
                AgentEvent::Session {
                    id: "5404f855-57bb-4376-9ba7-08baac6e8aad".into()
                },
                AgentEvent::ToolCall {
                    id: Some(id.into()),
                    name: "write_file".into(),
                    input:
                        r#"{"content":"hello from gemini\n","file_path":"/tmp/worktree/hello.txt"}"#
                            .into(),
                },
                AgentEvent::ToolResult {
                    id: Some(id.into()),
                    output: String::new(),
                    is_error: false,
                },
                // Two streamed deltas, merged.
                AgentEvent::Message {
                    role: "assistant".into(),
                    text: "Done: the file is written.".into(),
                },
                AgentEvent::Usage(Usage {
                    input_tokens: 360,
                    output_tokens: 80,
                    cache_read_tokens: 40,
                    ..Usage::default()
                }),
                AgentEvent::Result {
                    text: "Done: the file is written.".into(),
                    is_error: false,
                },
            ]
        );
    }

    #[test]
    fn parses_recorded_routed_and_resumed_turns() {
        for text in [
            include_str!("testdata/gemini-routed-new.jsonl"),
            include_str!("testdata/gemini-resume.jsonl"),
        ] {
            let events = parse_all(&mut *Gemini.parser(), text);
            assert!(matches!(events[0], AgentEvent::Session { .. }));
            assert!(matches!(
                events.last(),
                Some(AgentEvent::Result { is_error: false, text }) if text == "Done: the file is written."
            ));
            assert!(!events.iter().any(|e| matches!(e, AgentEvent::Raw { .. })));
        }
    }

    #[test]
    fn errors_and_failed_tools() {
        let text = r#"{"type":"message","role":"assistant","content":"Let me ","delta":true}
{"type":"message","role":"assistant","content":"try.","delta":true}
{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t1","parameters":{"command":"false"}}
{"type":"tool_result","tool_id":"t1","status":"error","error":{"type":"exec","message":"exit 1"}}
{"type":"error","severity":"warning","message":"Loop detected"}
{"type":"result","status":"error","error":{"type":"FatalTurnLimitedError","message":"Reached max turns"},"stats":{"input_tokens":10,"output_tokens":2,"cached":0}}"#;
        let events = parse_all(&mut *Gemini.parser(), text);
        assert_eq!(
            events,
            [
                AgentEvent::Message {
                    role: "assistant".into(),
                    text: "Let me try.".into()
                },
                AgentEvent::ToolCall {
                    id: Some("t1".into()),
                    name: "run_shell_command".into(),
                    input: r#"{"command":"false"}"#.into()
                },
                AgentEvent::ToolResult {
                    id: Some("t1".into()),
                    output: "exit 1".into(),
                    is_error: true
                },
                AgentEvent::Message {
                    role: "error".into(),
                    text: "Loop detected".into()
                },
                AgentEvent::Usage(Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    ..Usage::default()
                }),
                AgentEvent::Result {
                    text: "Reached max turns".into(),
                    is_error: true
                },
            ]
        );
    }
}
