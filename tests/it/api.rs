//! The JSON API: authentication, filters and pagination; health and readiness.

use forgehand::web::api::types::{Page, TicketSummary};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, fixture};

backend_tests!(admin_token_guards_the_api, tickets_filter_and_paginate);

async fn admin_token_guards_the_api(db: Db) {
    let server = TestServer::start_with(
        db,
        Options::default().env("FORGEHAND_ADMIN_TOKEN", "let-me-in-let-me-in"),
    )
    .await;
    let url = format!("{}/api/v1/tickets", server.base);
    let stranger = reqwest::Client::new();
    assert_eq!(stranger.get(&url).send().await.unwrap().status(), 401);
    let wrong = stranger
        .get(&url)
        .bearer_auth("let-me-out-let-me-out")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = stranger
        .get(&url)
        .bearer_auth("let-me-in-let-me-in")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // Probes and webhooks are not behind the admin token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = server
            .http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    server.finish().await;
}

/// Gitea's `label_updated` example, renumbered into issue `number`.
fn labelled_issue(number: u64, labels: &[&str], repo: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("gitea/issues.label_updated.json")).unwrap();
    v["number"] = json!(number);
    v["issue"]["number"] = json!(number);
    v["issue"]["title"] = json!(format!("Issue {number}"));
    v["issue"]["labels"] = labels
        .iter()
        .enumerate()
        .map(|(i, l)| json!({ "id": i, "name": l, "color": "ededed" }))
        .collect();
    v["repository"]["name"] = json!(repo);
    v["repository"]["full_name"] = json!(format!("acme/{repo}"));
    serde_json::to_vec(&v).unwrap()
}

async fn tickets_filter_and_paginate(db: Db) {
    let server = TestServer::start(db).await;
    for n in 1..=35 {
        let status = if n % 5 == 0 {
            "agent:in-review"
        } else {
            "agent:todo"
        };
        let body = labelled_issue(n, &[status], "widgets");
        assert_eq!(
            server
                .post_gitea("issues", &format!("w{n}"), &body, false)
                .await
                .status(),
            202
        );
    }
    let body = labelled_issue(1, &["agent:todo"], "gadgets");
    assert_eq!(
        server
            .post_gitea("issues", "g1", &body, false)
            .await
            .status(),
        202
    );
    server.drain_inbox().await;

    let page1: Page<TicketSummary> = server
        .get_json("/api/v1/tickets?repo=gitea:acme/widgets")
        .await;
    assert_eq!(page1.items.len(), 30);
    assert_eq!(page1.next_page, Some(2));
    let page2: Page<TicketSummary> = server
        .get_json("/api/v1/tickets?repo=gitea:acme/widgets&page=2")
        .await;
    assert_eq!(page2.items.len(), 5);
    assert_eq!(page2.next_page, None);
    let mut numbers: Vec<i64> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|t| t.ticket.number)
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=35).collect::<Vec<_>>(),
        "pages overlap or miss tickets"
    );

    let review: Page<TicketSummary> = server
        .get_json("/api/v1/tickets?status=in-review&per_page=100")
        .await;
    assert_eq!(review.items.len(), 7);
    assert!(
        review
            .items
            .iter()
            .all(|t| t.ticket.status.as_deref() == Some("in-review"))
    );
    let all: Page<TicketSummary> = server.get_json("/api/v1/tickets?per_page=100").await;
    assert_eq!(all.items.len(), 36);
    let unknown: Page<TicketSummary> = server
        .get_json("/api/v1/tickets?repo=gitea:acme/nothing")
        .await;
    assert!(unknown.items.is_empty());

    let bad = server
        .http
        .get(format!("{}/api/v1/tickets?per_page=1000", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = server
        .http
        .get(format!("{}/api/v1/tickets?repo=nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let missing = server
        .http
        .get(format!(
            "{}/api/v1/tickets/gitea/acme/widgets/999",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.finish().await;
}
