//! Webhook deliveries from the sandbox forge: with a target set
//! ([`ForgeModel::set_webhook`](super::ForgeModel::set_webhook)), every change to an issue or
//! pull request — through the arranging methods, either HTTP dialect or the web page — is POSTed
//! to the target as a signed GitHub-style delivery (`X-GitHub-Event`, a unique
//! `X-GitHub-Delivery`, `X-Hub-Signature-256: sha256=…`) with GitHub's payload shape.
//!
//! The payload is built under the model lock, at the moment of the change, so it is the state
//! right after it; it is sent later by one task per target, outside the lock, in the order the
//! changes happened. HTTP is a minimal HTTP/1.1 POST over a plain TCP connection: the target is
//! a local Forgehand (`http://` only, no TLS), and this keeps the sandbox free of an HTTP client
//! dependency.

use std::sync::{Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::github_api::{comment_json, issue_json, label_json, user_json};
use super::github_checks::pull_json;
use super::records::{Comment, Repo, State};
use super::types::WebhookDelivery;
use crate::forge::signature;

/// Deliveries kept for inspection; older ones are dropped.
const LOG_LIMIT: usize = 1000;
/// Attempts per delivery when the target cannot be reached or answers 5xx.
const ATTEMPTS: u32 = 5;
/// Time allowed for one attempt (connect, send, read the answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The queue of one webhook target; dropping it lets its sender task end once drained.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
}

struct Outgoing {
    event: &'static str,
    action: String,
    payload: Value,
}

struct Target {
    url: url::Url,
    secret: Vec<u8>,
}

/// Starts the sender task for `url`; it holds the model only weakly, so a dropped model ends it.
/// Must be called inside a Tokio runtime.
pub(super) fn start(state: Weak<Mutex<State>>, url: url::Url, secret: &[u8]) -> Outbox {
    let (tx, rx) = mpsc::unbounded_channel();
    let target = Target {
        url,
        secret: secret.to_vec(),
    };
    tokio::spawn(send_all(state, target, rx));
    Outbox { tx }
}

async fn send_all(
    state: Weak<Mutex<State>>,
    target: Target,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(outgoing) = rx.recv().await {
        let id = delivery_id();
        // Serializing a `Value` cannot fail.
        let body = serde_json::to_vec(&outgoing.payload).unwrap_or_default();
        let result = deliver(&target, outgoing.event, &id, &body).await;
        if let Err(error) = &result {
            tracing::warn!(event = outgoing.event, delivery = %id, url = %target.url, %error, "sandbox webhook not delivered");
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        state.webhooks_pending = state.webhooks_pending.saturating_sub(1);
        if state.webhook_log.len() >= LOG_LIMIT {
            state.webhook_log.remove(0);
        }
        let (status, error) = match result {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(error)),
        };
        state.webhook_log.push(WebhookDelivery {
            id,
            event: outgoing.event.to_owned(),
            action: outgoing.action,
            payload: outgoing.payload,
            status,
            error,
        });
    }
}

/// Sends one delivery, retrying while the target is unreachable or failing (5xx). Returns the
/// target's final HTTP status.
async fn deliver(target: &Target, event: &str, id: &str, body: &[u8]) -> Result<u16, String> {
    let signature = format!("sha256={}", signature::sign(&target.secret, body));
    let headers = [
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", id),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        match tokio::time::timeout(ATTEMPT_TIMEOUT, post(&target.url, &headers, body)).await {
            Ok(Ok(status)) if status < 500 => return Ok(status),
            Ok(Ok(status)) => last = format!("the target answered {status}"),
            Ok(Err(e)) => last = e,
            Err(_) => last = "the target did not answer in time".to_owned(),
        }
    }
    Err(last)
}

/// A minimal HTTP/1.1 POST (`Connection: close`); returns the status code.
async fn post(url: &url::Url, headers: &[(&str, &str)], body: &[u8]) -> Result<u16, String> {
    if url.scheme() != "http" {
        return Err(format!(
            "only http:// webhook targets are supported, not {url}"
        ));
    }
    let host = url.host_str().ok_or("the webhook URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: GitHub-Hookshot/forgehand-sandbox\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");

    let io = |e: std::io::Error| format!("{authority}: {e}");
    let mut stream = TcpStream::connect(&authority).await.map_err(io)?;
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.map_err(io)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{authority}: not an HTTP answer: {status_line:?}"))?;
    // Read the rest (bounded) so the server is not cut off mid-answer.
    let _ = tokio::io::copy(&mut reader.take(1 << 20), &mut tokio::io::sink()).await;
    Ok(status)
}

/// A GUID-shaped id, as GitHub's `X-GitHub-Delivery`.
fn delivery_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // Unique enough without randomness: the clock.
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes = (nanos as u128).to_be_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn repository_json(state: &State, repo: &Repo) -> Value {
    json!({
        "id": repo.id,
        "name": repo.name,
        "full_name": repo.full_name(),
        "owner": user_json(&repo.owner),
        "private": false,
        "default_branch": repo.default_branch,
        "clone_url": repo.clone_url,
        "html_url": format!("{}/{}", state.web_url, repo.full_name()),
    })
}

impl State {
    fn enqueue(&mut self, event: &'static str, action: &str, payload: Value) {
        let Some(outbox) = &self.webhooks else {
            return;
        };
        let queued = outbox
            .tx
            .send(Outgoing {
                event,
                action: action.to_owned(),
                payload,
            })
            .is_ok();
        if queued {
            self.webhooks_pending += 1;
        }
    }

    /// Announces a change to issue or pull request `number`: an `issues` delivery, or a
    /// `pull_request` one when it is a pull request. `label` is the label added or removed.
    pub(super) fn announce_issue(
        &mut self,
        repo: &str,
        number: u64,
        action: &str,
        actor: &str,
        label: Option<&str>,
    ) {
        if self.webhooks.is_none() {
            return;
        }
        let Ok(r) = self.repo(repo) else { return };
        let Ok(issue) = r.issue(number) else { return };
        let mut payload = json!({
            "action": action,
            "repository": repository_json(self, r),
            "sender": user_json(actor),
        });
        if let Some(name) = label {
            payload["label"] = r
                .label(name)
                .map(label_json)
                .unwrap_or_else(|| json!({ "name": name }));
        }
        let event = match &issue.pull {
            Some(pull) => {
                let mut pull_request = pull_json(self, r, issue, pull);
                // GitHub's payload carries the base's SHA too; the sandbox does not track it.
                pull_request["base"]["sha"] = json!("");
                payload["number"] = json!(number);
                payload["pull_request"] = pull_request;
                "pull_request"
            }
            None => {
                payload["issue"] = issue_json(self, r, issue);
                "issues"
            }
        };
        self.enqueue(event, action, payload);
    }

    /// Announces a line comment created: a `pull_request_review_comment` delivery.
    pub(super) fn announce_line_comment(&mut self, comment: &super::types::LineComment) {
        if self.webhooks.is_none() {
            return;
        }
        let Ok(r) = self.repo(&comment.repo) else {
            return;
        };
        let Ok(issue) = r.issue(comment.number) else {
            return;
        };
        let Some(pull) = &issue.pull else {
            return;
        };
        let payload = json!({
            "action": "created",
            "comment": super::review_comments::github_json(self, comment),
            "pull_request": pull_json(self, r, issue, pull),
            "repository": repository_json(self, r),
            "sender": user_json(&comment.author),
        });
        self.enqueue("pull_request_review_comment", "created", payload);
    }

    /// Announces a comment created or edited: an `issue_comment` delivery.
    pub(super) fn announce_comment(&mut self, comment: &Comment, action: &str, actor: &str) {
        if self.webhooks.is_none() {
            return;
        }
        let Ok(r) = self.repo(&comment.repo) else {
            return;
        };
        let Ok(issue) = r.issue(comment.issue) else {
            return;
        };
        let payload = json!({
            "action": action,
            "issue": issue_json(self, r, issue),
            "comment": comment_json(self, comment),
            "repository": repository_json(self, r),
            "sender": user_json(actor),
        });
        self.enqueue("issue_comment", action, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_guids_and_unique() {
        let a = delivery_id();
        let b = delivery_id();
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, b);
    }
}
