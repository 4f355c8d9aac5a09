//! Input from the network that is well-formed HTTP but hostile or unusual: GitHub's and Gitea's
//! form-encoded deliveries, out-of-range query values, NUL characters in issue text.

use forgehand::web::api::types::{Delivery, DeliveryPage, ErrorBody, TicketDetail};
use serde_json::Value;

use crate::backend_tests;
use crate::harness::{Db, GITEA_SECRET, GITHUB_SECRET, Options, TestServer, fixture};

backend_tests!(
    form_encoded_deliveries_are_processed,
    out_of_range_queries_are_400,
    nul_characters_are_stored_the_same_on_both_databases,
);

const TOKEN: &str = "untrusted-input-admin-token-0123456789abcdef";

async fn start(db: Db) -> TestServer {
    TestServer::start_with(db, Options::default().env("FORGEHAND_ADMIN_TOKEN", TOKEN)).await
}

async fn api(server: &TestServer, path: &str) -> (u16, String) {
    let response = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn deliveries(server: &TestServer) -> Vec<Delivery> {
    let (status, body) = api(server, "/api/v1/deliveries").await;
    assert_eq!(status, 200, "{body}");
    let page: DeliveryPage = serde_json::from_str(&body).unwrap();
    page.items
}

fn form(json: &[u8]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(json).unwrap())
        .finish()
        .into_bytes()
}

async fn form_encoded_deliveries_are_processed(db: Db) {
    let server = start(db).await;
    let sign = forgehand::forge::signature::sign;

    // GitHub signs the form body as sent.
    let body = form(&fixture("github/ping/payload.json"));
    let response = server
        .http
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "form-github")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", sign(GITHUB_SECRET.as_bytes(), &body)),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Gitea signs the JSON payload inside the form.
    let json = fixture("gitea/issues.label_updated.json");
    let response = server
        .http
        .post(format!("{}/webhooks/gitea", server.base))
        .header("X-Gitea-Event", "issues")
        .header("X-Gitea-Delivery", "form-gitea")
        .header("X-Gitea-Signature", sign(GITEA_SECRET.as_bytes(), &json))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&json))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // A form signed with another secret, and one without `payload`: refused, nothing stored.
    let body = form(b"{}");
    let response = server
        .http
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "form-forged")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", sign(b"other", &body)),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = b"zen=1".to_vec();
    let response = server
        .http
        .post(format!("{}/webhooks/github", server.base))
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "form-empty")
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", sign(GITHUB_SECRET.as_bytes(), &body)),
        )
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    server.drain_inbox().await;
    let items = deliveries(&server).await;
    assert_eq!(items.len(), 2, "{items:#?}");
    for d in &items {
        assert_eq!(d.outcome, "processed", "{d:#?}");
    }
    let (status, body) = api(&server, "/api/v1/tickets/gitea/acme/widgets/17").await;
    assert_eq!(status, 200, "{body}");
    let ticket: TicketDetail = serde_json::from_str(&body).unwrap();
    assert_eq!(ticket.ticket.status.as_deref(), Some("todo"));
    server.finish().await;
}

async fn out_of_range_queries_are_400(db: Db) {
    let server = start(db).await;
    let paths = [
        "/api/v1/tickets?page=9223372036854775807",
        "/api/v1/tickets?page=1000001",
        "/api/v1/tickets?page=-1",
        "/api/v1/tickets?page=abc",
        "/api/v1/tickets?page=99999999999999999999",
        "/api/v1/tickets?per_page=1000000",
        "/api/v1/deliveries?before=x",
        "/api/v1/runs/1/events?after=1e9",
        "/api/v1/costs?days=9223372036854775807",
        "/api/v1/runs/abc",
        "/api/v1/runs/99999999999999999999/events",
        "/api/v1/tickets/github/o/r/-/diagnosis",
    ];
    for path in paths {
        let (status, body) = api(&server, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error: ErrorBody =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(!error.error.is_empty(), "{path}: {body}");
    }
    // The largest page that is allowed answers, empty.
    let (status, body) = api(&server, "/api/v1/tickets?page=1000000").await;
    assert_eq!(status, 200, "{body}");

    // The dashboard answers with its error page.
    for path in [
        "/board?page=abc",
        "/activity?before=99999999999999999999",
        "/repos?page=-",
    ] {
        let (status, body) = api(&server, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("<html"), "{path}: {body}");
        assert!(body.contains("invalid query string"), "{path}: {body}");
    }
    server.finish().await;
}

async fn nul_characters_are_stored_the_same_on_both_databases(db: Db) {
    let server = start(db).await;
    let mut issue: Value =
        serde_json::from_slice(&fixture("gitea/issues.label_updated.json")).unwrap();
    issue["issue"]["title"] = Value::from("nul\u{0}in the title");
    issue["issue"]["body"] = Value::from("and\u{0}in the body");
    let body = serde_json::to_vec(&issue).unwrap();
    assert!(String::from_utf8_lossy(&body).contains("\\u0000"));
    let response = server.post_gitea("issues", "nul", &body, false).await;
    assert_eq!(response.status(), 202);
    let mut comment: Value =
        serde_json::from_slice(&fixture("gitea/issue_comment.created.json")).unwrap();
    comment["issue"]["title"] = issue["issue"]["title"].clone();
    comment["issue"]["body"] = issue["issue"]["body"].clone();
    comment["comment"]["body"] = Value::from("\u{0}comment");
    let body = serde_json::to_vec(&comment).unwrap();
    let response = server
        .post_gitea("issue_comment", "nul-comment", &body, false)
        .await;
    assert_eq!(response.status(), 202);
    server.drain_inbox().await;

    for d in deliveries(&server).await {
        assert_eq!(d.outcome, "processed", "{d:#?}");
    }
    let (status, body) = api(&server, "/api/v1/tickets/gitea/acme/widgets/17").await;
    assert_eq!(status, 200, "{body}");
    let ticket: TicketDetail = serde_json::from_str(&body).unwrap();
    assert_eq!(ticket.ticket.title, "nul\u{FFFD}in the title");
    assert_eq!(ticket.ticket.body, "and\u{FFFD}in the body");
    assert_eq!(ticket.comments[0].body, "\u{FFFD}comment");
    server.finish().await;
}
