//! A mock model server speaking just enough of three model APIs for the agent CLIs: Anthropic
//! Messages (`POST /v1/messages`), OpenAI Responses (`POST /v1/responses`) and Gemini
//! (`POST /v1beta/models/M:generateContent` and `:streamGenerateContent?alt=sse`).
//!
//! Every API is scripted the same way, without state: while the conversation holds no tool result
//! yet, the answer is one call of the CLI's file-writing tool (writing `file` with `content`);
//! once it does, the answer is a final text. Every request is logged (method, path, a summary)
//! and its body kept. With [`MockServer::hang_after_tool`] the answer to a conversation that holds
//! a tool result never comes (for killing a CLI mid-turn).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const FINAL_TEXT: &str = "Done: the file is written.";

#[derive(Clone)]
pub struct Script {
    /// The absolute path of the file the tool call writes.
    pub file: String,
    pub content: String,
}

#[derive(Clone)]
struct Shared {
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<String>>>,
    hang: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
}

pub struct MockServer {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<String>>>,
    hang: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    pub async fn start(script: Script) -> Self {
        let shared = Shared {
            script,
            log: Arc::default(),
            bodies: Arc::default(),
            hang: Arc::default(),
            hung: Arc::default(),
        };
        let (log, bodies, hang, hung) = (
            shared.log.clone(),
            shared.bodies.clone(),
            shared.hang.clone(),
            shared.hung.clone(),
        );
        // Prompts of several MiB come in one request.
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            port,
            log,
            bodies,
            hang,
            hung,
            task,
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Every request body so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// From now on (`true`), a conversation holding a tool result gets no answer.
    pub fn hang_after_tool(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
    }

    /// Whether a request was left hanging.
    pub fn hung(&self) -> bool {
        self.hung.load(Ordering::SeqCst)
    }
}

/// Whether a request's conversation holds a tool's result (any of the three APIs).
fn after_tool(body: &str) -> bool {
    [
        "\"tool_result\"",
        "function_call_output",
        "custom_tool_call_output",
        "functionResponse",
    ]
    .iter()
    .any(|marker| body.contains(marker))
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    let hang = method == Method::POST && s.hang.load(Ordering::SeqCst) && after_tool(&text);
    s.bodies.lock().unwrap().push(text);
    if hang {
        s.log
            .lock()
            .unwrap()
            .push(format!("{method} {uri} -> left hanging"));
        s.hung.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (summary, resp) = if method == Method::POST && path == "/v1/messages" {
        anthropic(&s.script, &req)
    } else if method == Method::POST && path == "/v1/responses" {
        openai(&s.script, &req)
    } else if method == Method::POST && path.starts_with("/v1beta/models/") {
        gemini(&s.script, &path, &req)
    } else {
        (
            "not found".to_owned(),
            (StatusCode::NOT_FOUND, "not found").into_response(),
        )
    };
    s.log
        .lock()
        .unwrap()
        .push(format!("{method} {uri} -> {summary}"));
    resp
}

fn sse(events: Vec<(Option<&str>, Value)>) -> Response {
    let mut body = String::new();
    for (event, data) in events {
        if let Some(event) = event {
            body.push_str(&format!("event: {event}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json_response(v: Value) -> Response {
    axum::Json(v).into_response()
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages.

fn anthropic(script: &Script, req: &Value) -> (String, Response) {
    let has_tool_result = req["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|bs| bs.iter().any(|b| b["type"] == "tool_result"))
        })
    });
    let has_write = req["tools"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["name"] == "Write"));
    let model = req["model"].as_str().unwrap_or("claude-mock").to_owned();
    let usage = json!({"input_tokens": 120, "output_tokens": 1,
        "cache_read_input_tokens": 30, "cache_creation_input_tokens": 10});
    let (block, stop, summary) = if has_write && !has_tool_result {
        let input = json!({"file_path": script.file, "content": script.content});
        (
            json!({"type": "tool_use", "id": "toolu_mock_1", "name": "Write", "input": input}),
            "tool_use",
            "tool_use Write",
        )
    } else {
        (
            json!({"type": "text", "text": FINAL_TEXT}),
            "end_turn",
            "text",
        )
    };
    if req["stream"] != true {
        let msg = json!({"id": "msg_mock", "type": "message", "role": "assistant",
            "model": model, "content": [block], "stop_reason": stop, "stop_sequence": null,
            "usage": usage});
        return (format!("{summary} (json)"), json_response(msg));
    }
    let (start_block, delta) = if block["type"] == "tool_use" {
        (
            json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
        )
    } else {
        (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": FINAL_TEXT}),
        )
    };
    let mut deltas = vec![delta];
    if block["type"] == "text" {
        let (a, b) = FINAL_TEXT.split_at(FINAL_TEXT.len() / 2);
        deltas = [a, b]
            .map(|t| json!({"type": "text_delta", "text": t}))
            .to_vec();
    }
    let mut events = vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": usage}}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": start_block}),
        ),
    ];
    for delta in deltas {
        events.push((
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.extend([
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": 25}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ]);
    (format!("{summary} (sse)"), sse(events))
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses.

fn openai(script: &Script, req: &Value) -> (String, Response) {
    let input = req["input"].as_array().cloned().unwrap_or_default();
    let has_tool_result = input.iter().any(|i| {
        matches!(
            i["type"].as_str(),
            Some("function_call_output" | "custom_tool_call_output" | "local_shell_call_output")
        )
    });
    let tools: Vec<(String, String)> = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["type"].as_str().unwrap_or_default().to_owned(),
                t["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let tool_names = tools
        .iter()
        .map(|(k, n)| format!("{k}:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let patch = format!(
        "*** Begin Patch\n*** Add File: {}\n{}*** End Patch\n",
        script.file,
        script
            .content
            .lines()
            .map(|l| format!("+{l}\n"))
            .collect::<String>()
    );
    let shell_script = format!(
        "printf '%s\\n' '{}' > '{}'",
        script.content.trim_end(),
        script.file
    );
    let item = if has_tool_result {
        None
    } else if let Some((kind, _)) = tools.iter().find(|(_, n)| n == "apply_patch") {
        Some(if kind == "custom" {
            json!({"type": "custom_tool_call", "id": "ctc_mock_1", "call_id": "call_mock_1",
                "name": "apply_patch", "input": patch, "status": "completed"})
        } else {
            json!({"type": "function_call", "id": "fc_mock_1", "call_id": "call_mock_1",
                "name": "apply_patch", "arguments": json!({"input": patch}).to_string(),
                "status": "completed"})
        })
    } else if tools.iter().any(|(_, n)| n == "shell") {
        Some(
            json!({"type": "function_call", "id": "fc_mock_1", "call_id": "call_mock_1",
            "name": "shell", "status": "completed",
            "arguments": json!({"command": ["bash", "-lc", shell_script]}).to_string()}),
        )
    } else if tools.iter().any(|(_, n)| n == "exec_command") {
        Some(
            json!({"type": "function_call", "id": "fc_mock_1", "call_id": "call_mock_1",
            "name": "exec_command", "status": "completed",
            "arguments": json!({"cmd": shell_script}).to_string()}),
        )
    } else {
        None
    };
    let (item, summary) = match item {
        Some(item) => {
            let s = format!("tool call {} [tools {tool_names}]", item["name"]);
            (item, s)
        }
        None => (
            json!({"type": "message", "id": "msg_mock_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": FINAL_TEXT, "annotations": []}]}),
            "text".to_owned(),
        ),
    };
    let response = |status: &str, output: Value| {
        json!({"id": "resp_mock", "object": "response", "created_at": 0, "status": status,
            "model": req["model"], "output": output,
            "usage": {"input_tokens": 150, "input_tokens_details": {"cached_tokens": 50},
                "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 5},
                "total_tokens": 180}})
    };
    let events = vec![
        (
            Some("response.created"),
            json!({"type": "response.created", "response": response("in_progress", json!([]))}),
        ),
        (
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
        ),
        (
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        ),
        (
            Some("response.completed"),
            json!({"type": "response.completed", "response": response("completed", json!([item]))}),
        ),
    ];
    (summary, sse(events))
}

// ---------------------------------------------------------------------------------------------
// Gemini.

fn gemini(script: &Script, path: &str, req: &Value) -> (String, Response) {
    let (model, action) = path
        .trim_start_matches("/v1beta/models/")
        .split_once(':')
        .unwrap_or(("gemini-mock", "generateContent"));
    let contents = req["contents"].as_array().cloned().unwrap_or_default();
    let has_tool_result = contents.iter().any(|c| {
        c["parts"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p.get("functionResponse").is_some()))
    });
    let has_write = req["tools"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["functionDeclarations"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["name"] == "write_file"))
        })
    });
    let usage = json!({"promptTokenCount": 200, "candidatesTokenCount": 40,
        "totalTokenCount": 240, "cachedContentTokenCount": 20});
    let (part, summary) = if action == "generateContent" && !has_write {
        // The model router (or another side call) wants a JSON answer.
        (
            json!({"text": json!({"reasoning": "A simple file edit.", "model_choice": "flash"}).to_string()}),
            "router text",
        )
    } else if has_write && !has_tool_result {
        (
            json!({"functionCall": {"name": "write_file",
                "args": {"file_path": script.file, "content": script.content}}}),
            "functionCall write_file",
        )
    } else {
        (json!({"text": FINAL_TEXT}), "text")
    };
    let chunk = json!({"candidates": [{"content": {"role": "model", "parts": [part]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage, "modelVersion": model, "responseId": "resp_mock"});
    if action.starts_with("streamGenerateContent") {
        let mut chunks = Vec::new();
        if let Some(text) = part["text"].as_str().filter(|_| summary == "text") {
            // The final text streamed in two chunks, usage on the last.
            let (a, b) = text.split_at(text.len() / 2);
            for (t, last) in [(a, false), (b, true)] {
                let mut c = json!({"candidates": [{"content": {"role": "model",
                    "parts": [{"text": t}]}, "index": 0}], "modelVersion": model});
                if last {
                    c["candidates"][0]["finishReason"] = json!("STOP");
                    c["usageMetadata"] = usage.clone();
                }
                chunks.push((None, c));
            }
        } else {
            chunks.push((None, chunk));
        }
        (format!("{summary} (sse)"), sse(chunks))
    } else {
        (format!("{summary} (json)"), json_response(chunk))
    }
}
