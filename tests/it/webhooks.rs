//! Webhook intake through the real HTTP endpoints: GitHub's own examples, Gitea/Forgejo
//! payloads, and everything a hostile or broken sender can do.

use std::collections::BTreeMap;

use forgehand::config::repo::ConfigFiles;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::RepoInfo;
use forgehand::store::repos;
use forgehand::sync::config_sync;
use forgehand::web::api::types::{Delivery, DeliveryPage, Page, TicketDetail, TicketSummary};
use serde_json::Value;

use crate::backend_tests;
use crate::harness::{Db, TestServer, fixture, fixtures_in};

backend_tests!(
    github_examples_are_accepted_and_mirrored,
    gitea_issue_lifecycle,
    forgejo_headers_and_reordered_deliveries,
    signatures_replays_and_bad_payloads,
);

/// Installs a config whose statuses use the label `bug`, so GitHub's examples (labelled `bug`)
/// carry a status label.
async fn install_bug_status(server: &TestServer, owner: &str, name: &str) {
    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, owner, name),
        default_branch: "main".into(),
        clone_url: format!("https://github.com/{owner}/{name}.git"),
        html_url: format!("https://github.com/{owner}/{name}"),
    };
    let mut conn = server.app.store.pool().acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    drop(conn);
    let config = "statuses:\n  - { name: triage, label: bug, stage: unstarted }\n  \
                  - { name: working, label: wip, stage: started }\n  \
                  - { name: done, label: shipped, stage: completed }\n  \
                  - { name: canceled, label: wontfix, stage: canceled }\n";
    let files = ConfigFiles::from([(
        ".forgehand/config.yaml".to_owned(),
        config.as_bytes().to_vec(),
    )]);
    let outcome = config_sync::store_tree(&server.app, repo_id, "0123abcd", &files)
        .await
        .unwrap();
    assert!(
        matches!(outcome, config_sync::SyncOutcome::Stored { number: 1 }),
        "{outcome:?}"
    );
}

async fn github_examples_are_accepted_and_mirrored(db: Db) {
    let server = TestServer::start(db).await;
    let events = [
        "issues",
        "issue_comment",
        "pull_request",
        "push",
        "label",
        "installation",
        "installation_repositories",
        "ping",
    ];
    let mut examples = Vec::new();
    for event in events {
        for (file, body) in fixtures_in(&format!("github/{event}")) {
            examples.push((event, file, body));
        }
    }
    assert!(
        examples.len() > 80,
        "the example set looks incomplete: {}",
        examples.len()
    );

    let mut repos_seen = std::collections::BTreeSet::new();
    for (_, _, body) in &examples {
        let v: Value = serde_json::from_slice(body).unwrap();
        if let (Some(owner), Some(name)) = (
            v["repository"]["owner"]["login"].as_str(),
            v["repository"]["name"].as_str(),
        ) {
            repos_seen.insert((owner.to_owned(), name.to_owned()));
        }
    }
    for (owner, name) in &repos_seen {
        install_bug_status(&server, owner, name).await;
    }

    for (i, (event, file, body)) in examples.iter().enumerate() {
        let response = server
            .post_github(event, &format!("example-{i}"), body)
            .await;
        assert_eq!(response.status(), 202, "{event}/{file}");
    }
    server.drain_inbox().await;

    // No example may fail to process.
    let deliveries: DeliveryPage = server.get_json("/api/v1/deliveries?per_page=100").await;
    let failed: Vec<&Delivery> = deliveries
        .items
        .iter()
        .filter(|d| d.outcome == "failed")
        .collect();
    assert!(failed.is_empty(), "failed deliveries: {failed:#?}");

    // The newest snapshot of each issue decides its ticket; compute it from the raw examples.
    let mut newest: BTreeMap<(String, String, u64), (String, Value)> = BTreeMap::new();
    for (event, _, body) in &examples {
        if !matches!(*event, "issues" | "issue_comment") {
            continue;
        }
        let v: Value = serde_json::from_slice(body).unwrap();
        let issue = &v["issue"];
        if !issue["pull_request"].is_null() || v["action"] == "deleted" {
            continue;
        }
        let key = (
            v["repository"]["owner"]["login"]
                .as_str()
                .unwrap()
                .to_owned(),
            v["repository"]["name"].as_str().unwrap().to_owned(),
            issue["number"].as_u64().unwrap(),
        );
        let updated = issue["updated_at"].as_str().unwrap_or_default().to_owned();
        if newest.get(&key).is_none_or(|(u, _)| *u <= updated) {
            newest.insert(key, (updated, issue.clone()));
        }
    }
    let mut checked = 0;
    for ((owner, name, number), (_, issue)) in &newest {
        let labels: Vec<&str> = issue["labels"]
            .as_array()
            .map(|l| l.iter().filter_map(|l| l["name"].as_str()).collect())
            .unwrap_or_default();
        if !labels.contains(&"bug") {
            continue;
        }
        let ticket: TicketDetail = server
            .get_json(&format!("/api/v1/tickets/github/{owner}/{name}/{number}"))
            .await;
        let ticket = ticket.ticket;
        assert_eq!(
            ticket.status.as_deref(),
            Some("triage"),
            "{owner}/{name}#{number}"
        );
        assert_eq!(issue["title"], ticket.title.as_str());
        assert_eq!(issue["user"]["login"], ticket.author.as_str());
        checked += 1;
    }
    assert!(checked > 0, "no example carried the status label");

    let list: Page<TicketSummary> = server.get_json("/api/v1/tickets?status=triage").await;
    assert!(!list.items.is_empty());
    server.finish().await;
}

async fn post_gitea_fixture(server: &TestServer, name: &str, forgejo: bool) {
    let event = name.split('.').next().unwrap();
    let response = server
        .post_gitea(
            event,
            &format!("{name}-{forgejo}"),
            &fixture(&format!("gitea/{name}.json")),
            forgejo,
        )
        .await;
    assert_eq!(response.status(), 202, "{name}");
    server.drain_inbox().await;
}

const TICKET: &str = "/api/v1/tickets/gitea/acme/widgets/17";

async fn ticket_17(server: &TestServer) -> TicketDetail {
    server.get_json(TICKET).await
}

async fn gitea_issue_lifecycle(db: Db) {
    let server = TestServer::start(db).await;

    post_gitea_fixture(&server, "issues.opened", false).await;
    let response = server
        .http
        .get(format!("{}{TICKET}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "an issue without a status label is not a ticket"
    );

    post_gitea_fixture(&server, "issues.label_updated", false).await;
    let ticket = ticket_17(&server).await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("todo"));
    assert_eq!(ticket.ticket.state, "open");
    assert_eq!(ticket.ticket.labels, ["agent:todo", "bug"]);

    post_gitea_fixture(&server, "issue_comment.created", false).await;
    let ticket = ticket_17(&server).await;
    assert_eq!(ticket.comments.len(), 1);

    post_gitea_fixture(&server, "pull_request.opened", false).await;
    let pull = ticket_17(&server)
        .await
        .pull_request
        .expect("the linked pull request");
    assert_eq!(pull.number, 18);
    assert_eq!(pull.state, "open");
    assert_eq!(pull.head_ref, "forgehand/17-csv-export");

    post_gitea_fixture(&server, "issues.label_cleared", false).await;
    let ticket = ticket_17(&server).await;
    assert!(
        ticket.ticket.status.is_none(),
        "status label removed: {ticket:?}"
    );

    post_gitea_fixture(&server, "pull_request.closed_merged", false).await;
    post_gitea_fixture(&server, "issues.closed", false).await;
    let ticket = ticket_17(&server).await;
    assert_eq!(ticket.ticket.state, "closed");
    assert_eq!(ticket.pull_request.unwrap().state, "merged");

    // A push to the default branch touching .forgehand/ asks for a config sync; others do not.
    post_gitea_fixture(&server, "push.other", false).await;
    post_gitea_fixture(&server, "push.forgehand", false).await;
    let deliveries: DeliveryPage = server.get_json("/api/v1/deliveries").await;
    let outcome_of = |id: &str| {
        deliveries
            .items
            .iter()
            .find(|d| d.delivery_id == id)
            .map(|d| d.outcome.clone())
    };
    assert_eq!(outcome_of("push.other-false").as_deref(), Some("ignored"));
    assert_eq!(
        outcome_of("push.forgehand-false").as_deref(),
        Some("processed")
    );
    server.finish().await;
}

async fn forgejo_headers_and_reordered_deliveries(db: Db) {
    let server = TestServer::start(db).await;
    // Delivered out of order: the close arrives before the labelling it follows.
    post_gitea_fixture(&server, "issues.label_updated", true).await;
    post_gitea_fixture(&server, "issues.closed", true).await;
    post_gitea_fixture(&server, "issue_comment.created", true).await;
    let ticket = ticket_17(&server).await;
    assert_eq!(
        ticket.ticket.state, "closed",
        "the older comment snapshot must not reopen it"
    );
    assert_eq!(ticket.ticket.labels, ["bug"]);
    assert_eq!(ticket.comments.len(), 1);
    server.finish().await;
}

async fn signatures_replays_and_bad_payloads(db: Db) {
    let server = TestServer::start(db).await;
    let body = fixture("github/ping/payload.json");
    let url = format!("{}/webhooks/github", server.base);

    // Missing and wrong signatures: 401, nothing stored.
    let missing = server
        .http
        .post(&url)
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "nosig")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = server
        .http
        .post(&url)
        .header("X-GitHub-Event", "ping")
        .header("X-GitHub-Delivery", "badsig")
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let gitea_wrong = server
        .http
        .post(format!("{}/webhooks/gitea", server.base))
        .header("X-Gitea-Event", "push")
        .header("X-Gitea-Delivery", "badsig-gitea")
        .header(
            "X-Gitea-Signature",
            forgehand::forge::signature::sign(b"other", &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(gitea_wrong.status(), 401);
    let stored: DeliveryPage = server.get_json("/api/v1/deliveries").await;
    assert!(stored.items.is_empty());

    // A replayed delivery id is accepted and stored once.
    for _ in 0..3 {
        assert_eq!(
            server.post_github("ping", "same-id", &body).await.status(),
            202
        );
    }
    // Garbage JSON and an unknown event: 202, stored, failed/ignored with a reason.
    assert_eq!(
        server
            .post_github("issues", "garbage", b"{not json")
            .await
            .status(),
        202
    );
    assert_eq!(
        server
            .post_github("sponsorship", "unknown-event", br#"{"action":"created"}"#)
            .await
            .status(),
        202
    );
    assert_eq!(
        server
            .post_github("issues", "frobnicated", br#"{"action":"frobnicated"}"#)
            .await
            .status(),
        202
    );
    server.drain_inbox().await;
    let stored: DeliveryPage = server.get_json("/api/v1/deliveries").await;
    let by_id = |id: &str| {
        stored
            .items
            .iter()
            .filter(|d| d.delivery_id == id)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_id("same-id").len(), 1);
    assert_eq!(by_id("same-id")[0].outcome, "processed");
    assert_eq!(by_id("garbage")[0].outcome, "failed");
    assert!(
        by_id("garbage")[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("does not parse")
    );
    assert_eq!(by_id("unknown-event")[0].outcome, "ignored");
    assert_eq!(by_id("frobnicated")[0].outcome, "ignored");

    // Over the body limit: 413 before the body is read, in `http_limits` (a raw client, as
    // the server answers and closes while a client like reqwest is still writing).

    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"forgehand_webhook_deliveries_rejected_total{forge="github",reason="bad_signature"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"forgehand_deliveries_processed_total{forge="github",event="issues",outcome="failed"} 1"#), "{metrics}");
    assert!(metrics.contains("forgehand_inbox_pending 0"), "{metrics}");
    server.finish().await;
}
