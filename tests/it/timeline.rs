//! The ticket page's timeline: what the forge reported about a ticket (labels, its pull request,
//! reviews, checks, the merge) in order, once each however often a delivery comes, and where the
//! pull request stands while it is in review.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::dashboard::Browser;
use crate::harness::{Db, fixture};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(labels_pull_reviews_checks_and_merge_show_in_order_once);

/// Writes a change every turn.
const AGENT: &str = "cat > /dev/null\necho turn >> work.txt\n";

fn payload(s: &Scenario, path: &str) -> Value {
    let mut v: Value = serde_json::from_slice(&fixture(path)).unwrap();
    v["repository"] = s.repository_json();
    v
}

/// A `pull_request` delivery of the sandbox's pull request, `merged` or as it is.
fn pull_payload(s: &Scenario, pull: u64, issue: u64, merged: bool) -> Value {
    let p = s.model.pull(REPO, pull).unwrap();
    let file = if merged {
        "github/pull_request/closed.with-installation.payload.json"
    } else {
        "github/pull_request/opened.payload.json"
    };
    let mut v = payload(s, file);
    let pr = &mut v["pull_request"];
    pr["number"] = json!(pull);
    pr["title"] = json!(p.title);
    pr["body"] = json!(format!("Closes #{issue}"));
    pr["state"] = json!(if merged { "closed" } else { "open" });
    pr["merged"] = json!(merged);
    pr["head"]["ref"] = json!(p.head_ref);
    pr["head"]["sha"] = json!(p.head_sha);
    pr["base"]["ref"] = json!("main");
    pr["user"] = json!({"login": "forgehand-bot"});
    pr["html_url"] = json!(format!("https://github.com/{REPO}/pull/{pull}"));
    pr["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
    v
}

async fn deliver(s: &Scenario, event: &str, id: &str, body: &Value) {
    let response = s
        .server
        .post_github(event, id, &serde_json::to_vec(body).unwrap())
        .await;
    assert_eq!(response.status(), 202, "{event} {id}");
    s.server.drain_inbox().await;
}

/// The position of `needle` in `page`, which must contain it.
fn at(page: &str, needle: &str) -> usize {
    page.find(needle)
        .unwrap_or_else(|| panic!("the page lacks {needle:?}:\n{page}"))
}

async fn labels_pull_reviews_checks_and_merge_show_in_order_once(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Show the history", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let pull = ticket.runs[0].pull_number.map(|p| p as u64).unwrap();
    let head = s.model.pull(REPO, pull).unwrap().head_sha;

    deliver(
        &s,
        "pull_request",
        "pr-opened",
        &pull_payload(&s, pull, n, false),
    )
    .await;
    let mut review = payload(&s, "github/pull_request_review/submitted.payload.json");
    review["pull_request"]["number"] = json!(pull);
    review["pull_request"]["head"]["sha"] = json!(head);
    review["review"]["state"] = json!("changes_requested");
    review["review"]["user"] = json!({"login": "bob"});
    deliver(&s, "pull_request_review", "review-1", &review).await;
    for (id, conclusion) in [("check-1", "failure"), ("check-2", "success")] {
        let mut check = payload(&s, "github/check_run/completed.payload.json");
        check["check_run"]["name"] = json!("ci/test");
        check["check_run"]["conclusion"] = json!(conclusion);
        check["check_run"]["head_sha"] = json!(head);
        check["check_run"]["pull_requests"] = json!([{"number": pull, "head": {"sha": head}}]);
        deliver(&s, "check_run", id, &check).await;
    }
    // The forge redelivers the review (same delivery id): nothing new.
    deliver(&s, "pull_request_review", "review-1", &review).await;

    let path = format!("/tickets/github/octo/app/{n}");
    let browser = Browser::signed_in(&s.server).await;
    let in_review = browser.page(&path).await;
    let standing = &in_review[at(&in_review, "id=\"review-standing\"")..];
    let standing = &standing[..at(standing, "</div>")];
    assert!(
        standing.contains("Changes requested by <span class=\"badge failed\">bob</span>"),
        "{standing}"
    );
    assert!(
        standing.contains("ci/test <span class=\"badge succeeded\">success"),
        "{standing}"
    );
    assert!(
        !standing.contains("failure"),
        "only the latest conclusion: {standing}"
    );

    deliver(
        &s,
        "pull_request",
        "pr-merged",
        &pull_payload(&s, pull, n, true),
    )
    .await;
    let page = browser.page(&path).await;
    let timeline = &page[at(&page, "<h2>Timeline</h2>")..];
    let order = [
        "alice added the label agent:todo".to_owned(),
        "claimed from todo".to_owned(),
        format!("pull request #{pull} opened by forgehand-bot"),
        format!("bob requested changes on #{pull}"),
        "check ci/test: failure".to_owned(),
        "check ci/test: success".to_owned(),
        format!("pull request #{pull} merged"),
    ];
    let positions: Vec<usize> = order.iter().map(|row| at(timeline, row)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "rows out of order {positions:?}:\n{timeline}"
    );
    assert_eq!(
        timeline.matches("bob requested changes").count(),
        1,
        "{timeline}"
    );
    // Merged: no longer in review, so no standing.
    assert!(!page.contains("id=\"review-standing\""));
    s.finish().await;
}
