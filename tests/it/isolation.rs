//! Failure isolation and webhook-driven review: an issue the forge says is gone (`410`, `301`,
//! `issues.deleted`, `issues.transferred`) stops its ticket without holding up the others, a
//! broken ticket backs off, a delivery whose database work fails is retried and can be
//! re-driven, and review, check and merge deliveries drive the merge flow at once.

use std::time::Duration;

use forgehand::forge::ReviewState;
use forgehand::sandbox::Fault;
use forgehand::web::api::types::{DeliveryPage, RunState};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{Db, fixture, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    gone_issue_cancels_its_run_without_holding_up_others,
    transferred_issue_stops_its_ticket_and_follows,
    broken_ticket_backs_off,
    failed_delivery_is_retried_then_failed_and_redriven,
    approval_delivery_merges_at_once,
    merged_delivery_makes_the_ticket_done_at_once,
    changes_requested_is_acted_on_once,
);

/// Reviews are polled so rarely that only a delivery can move a ticket during a test.
const SLOW_REVIEW: &str = "[limits]\nreview_poll = \"1h\"\n";
const FAST_REVIEW: &str = "[limits]\nreview_poll = \"0s\"\n";
const MERGE: &str = "merge: { approvals: 1, method: squash, auto: true }\n";
/// Writes a change every turn.
const AGENT: &str = "cat > /dev/null\necho turn >> work.txt\n";
/// Works until it is stopped.
const SLOW_AGENT: &str = "cat > /dev/null\necho turn >> work.txt\nsleep 60\n";
/// How long a ticket that must not move is watched.
const STAY: Duration = Duration::from_secs(3);

fn issue_path(number: u64) -> String {
    format!("/github/repos/{REPO}/issues/{number}")
}

/// Reads the sandbox answered for `path` (and what is under it).
fn requests_to(s: &Scenario, path: &str) -> usize {
    s.model
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .filter(|r| r.path == path || r.path.starts_with(&format!("{path}/")))
        .count()
}

async fn mark_all_for_reconcile(s: &Scenario) {
    sqlx::query("UPDATE tickets SET needs_reconcile = 1")
        .execute(s.server.app.store.pool())
        .await
        .unwrap();
}

async fn in_review(s: &Scenario, title: &str) -> (u64, u64) {
    let n = s.open_labelled(title, &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    (n, ticket.runs[0].pull_number.map(|p| p as u64).unwrap())
}

async fn gone_issue_cancels_its_run_without_holding_up_others(db: Db) {
    let s = Scenario::start(db, SLOW_AGENT, &workflow(HARNESS, ""), "").await;
    let doomed = s.open_labelled("Doomed", &["agent:todo"], "alice").await;
    wait_until("the doomed ticket's run to start", || async {
        s.run_state(doomed, 0).await == Some(RunState::Running)
    })
    .await;
    // Behind it: a ticket changed on the forge without a delivery.
    let later = s.open_labelled("Later", &["agent:backlog"], "alice").await;
    s.wait_status(later, "backlog").await;
    s.model.set_labels(REPO, later, &["agent:done"]);
    // The doomed issue is deleted: GitHub answers 410 Gone for it from now on.
    s.model.inject_fault(Fault {
        method: "GET".into(),
        path_contains: issue_path(doomed),
        status: 410,
        message: "This issue was deleted".into(),
        times: None,
    });
    mark_all_for_reconcile(&s).await;

    forgehand::sync::reconcile::reconcile_marked(&s.server.app)
        .await
        .expect("a gone issue does not fail the pass");
    assert_eq!(s.ticket(later).await.ticket.status.as_deref(), Some("done"));
    let ticket = s.ticket(doomed).await;
    assert!(ticket.ticket.deleted, "{ticket:?}");
    assert!(
        ticket
            .ticket
            .gone_reason
            .as_deref()
            .unwrap()
            .contains("deleted"),
        "{ticket:?}"
    );
    wait_until("the doomed ticket's run to be canceled", || async {
        s.ticket(doomed).await.runs[0].state == RunState::Canceled
    })
    .await;
    let run = &s.ticket(doomed).await.runs[0];
    assert!(
        run.cancel_reason
            .as_deref()
            .unwrap_or_default()
            .contains("deleted"),
        "{run:?}"
    );

    // Converged: the gone ticket is not asked for again.
    let asked = requests_to(&s, &issue_path(doomed));
    mark_all_for_reconcile(&s).await;
    forgehand::sync::reconcile::reconcile_marked(&s.server.app)
        .await
        .unwrap();
    assert_eq!(requests_to(&s, &issue_path(doomed)), asked);
    s.finish().await;
}

/// The official `issues.transferred` delivery of `number`, moved to `octo/elsewhere` as `to`.
fn transferred(s: &Scenario, number: u64, to: u64, labels: &[&str]) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("github/issues/transferred.payload.json")).unwrap();
    v["repository"] = s.repository_json();
    v["issue"]["number"] = json!(number);
    let mut elsewhere = s.repository_json();
    elsewhere["name"] = json!("elsewhere");
    elsewhere["full_name"] = json!("octo/elsewhere");
    elsewhere["html_url"] = json!("https://github.com/octo/elsewhere");
    v["changes"]["new_repository"] = elsewhere;
    let new_issue = &mut v["changes"]["new_issue"];
    new_issue["number"] = json!(to);
    new_issue["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
    new_issue["labels"] = labels.iter().map(|l| json!({"name": l})).collect();
    serde_json::to_vec(&v).unwrap()
}

async fn transferred_issue_stops_its_ticket_and_follows(db: Db) {
    let s = Scenario::start(db, SLOW_AGENT, &workflow(HARNESS, ""), "").await;
    let moved = s.open_labelled("Moved", &["agent:todo"], "alice").await;
    wait_until("the moved ticket's run to start", || async {
        s.run_state(moved, 0).await == Some(RunState::Running)
    })
    .await;
    // GitHub answers 301 for the issue's old place from now on.
    s.model.inject_fault(Fault {
        method: "GET".into(),
        path_contains: issue_path(moved),
        status: 301,
        message: "Moved Permanently".into(),
        times: None,
    });
    let body = transferred(&s, moved, 7, &["agent:backlog"]);
    let response = s.server.post_github("issues", "transfer-1", &body).await;
    assert_eq!(response.status(), 202);
    s.server.drain_inbox().await;

    let ticket = s.ticket(moved).await;
    assert!(ticket.ticket.deleted, "{ticket:?}");
    assert_eq!(
        ticket.ticket.gone_reason.as_deref(),
        Some("the issue was transferred to octo/elsewhere#7")
    );
    wait_until("the moved ticket's run to be canceled", || async {
        s.ticket(moved).await.runs[0].state == RunState::Canceled
    })
    .await;
    // It follows the issue: the new repository knows it under its new number.
    let followed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets t JOIN repositories r ON r.id = t.repo_id \
         WHERE r.name = 'elsewhere' AND t.number = 7",
    )
    .fetch_one(s.server.app.store.pool())
    .await
    .unwrap();
    assert_eq!(followed, 1);

    // Without a delivery, the forge's 301 for the issue stops the ticket as well.
    let other = s
        .open_labelled("Also moved", &["agent:backlog"], "alice")
        .await;
    s.wait_status(other, "backlog").await;
    s.model.inject_fault(Fault {
        method: "GET".into(),
        path_contains: issue_path(other),
        status: 301,
        message: "Moved Permanently".into(),
        times: None,
    });
    mark_all_for_reconcile(&s).await;
    forgehand::sync::reconcile::reconcile_marked(&s.server.app)
        .await
        .unwrap();
    let ticket = s.ticket(other).await;
    assert!(ticket.ticket.deleted, "{ticket:?}");
    assert!(
        ticket
            .ticket
            .gone_reason
            .as_deref()
            .unwrap()
            .contains("transferred"),
        "{ticket:?}"
    );
    s.finish().await;
}

async fn broken_ticket_backs_off(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let broken = s.open_labelled("Broken", &["agent:backlog"], "alice").await;
    let fine = s.open_labelled("Fine", &["agent:backlog"], "alice").await;
    s.wait_status(fine, "backlog").await;
    s.model.inject_fault(Fault {
        method: "GET".into(),
        path_contains: issue_path(broken),
        status: 502,
        message: "Bad Gateway".into(),
        times: None,
    });
    s.model.set_labels(REPO, fine, &["agent:done"]);
    mark_all_for_reconcile(&s).await;
    let reconcile = || forgehand::sync::reconcile::reconcile_marked(&s.server.app);

    reconcile().await.unwrap();
    assert_eq!(s.ticket(fine).await.ticket.status.as_deref(), Some("done"));
    let asked = requests_to(&s, &issue_path(broken));
    assert!(asked >= 1);
    // The next passes leave it alone until its backoff is over (5 s, then longer).
    for _ in 0..3 {
        reconcile().await.unwrap();
    }
    assert_eq!(requests_to(&s, &issue_path(broken)), asked);
    let ticket = s.ticket(broken).await;
    assert!(ticket.ticket.needs_reconcile, "still to be re-read");

    // Once the forge recovers and the backoff is over, it converges.
    s.model.clear_faults();
    sqlx::query("UPDATE tickets SET reconcile_retry_at = 0")
        .execute(s.server.app.store.pool())
        .await
        .unwrap();
    reconcile().await.unwrap();
    assert!(!s.ticket(broken).await.ticket.needs_reconcile);
    s.finish().await;
}

async fn delivery_state(s: &Scenario, id: i64) -> (String, i64, Option<String>) {
    let row: (String, i64, Option<String>) =
        sqlx::query_as("SELECT outcome, attempts, reason FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(s.server.app.store.pool())
            .await
            .unwrap();
    row
}

async fn last_comment_delivery(s: &Scenario) -> i64 {
    sqlx::query_scalar("SELECT MAX(id) FROM deliveries WHERE event = 'issue_comment'")
        .fetch_one(s.server.app.store.pool())
        .await
        .unwrap()
}

async fn comments_table(s: &Scenario, present: bool) {
    let sql = if present {
        "ALTER TABLE comments_away RENAME TO comments"
    } else {
        "ALTER TABLE comments RENAME TO comments_away"
    };
    sqlx::query(sql)
        .execute(s.server.app.store.pool())
        .await
        .unwrap();
}

async fn failed_delivery_is_retried_then_failed_and_redriven(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let n = s.open_labelled("Talk", &["agent:backlog"], "alice").await;
    s.wait_status(n, "backlog").await;
    let pool = s.server.app.store.pool();

    // The database refuses the comment's write once: the delivery waits for a retry.
    comments_table(&s, false).await;
    s.deliver_comment(n, "alice", "first").await;
    let id = last_comment_delivery(&s).await;
    wait_until("a failed attempt", || async {
        delivery_state(&s, id).await.1 >= 1
    })
    .await;
    let (outcome, _, reason) = delivery_state(&s, id).await;
    assert_eq!(outcome, "pending");
    assert!(reason.unwrap().contains("storing its effects failed"));
    comments_table(&s, true).await;
    wait_until("the retry to store the comment", || async {
        delivery_state(&s, id).await.0 == "processed"
    })
    .await;

    // A delivery that keeps failing is `failed` after its last attempt.
    comments_table(&s, false).await;
    s.deliver_comment(n, "alice", "second").await;
    let id = last_comment_delivery(&s).await;
    wait_until("a failed attempt", || async {
        delivery_state(&s, id).await.1 >= 1
    })
    .await;
    // Skip the waits of the attempts in between.
    sqlx::query("UPDATE deliveries SET attempts = $1, retry_at = 0 WHERE id = $2")
        .bind(forgehand::sync::inbox::MAX_ATTEMPTS - 1)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    s.server.app.signals.inbox.notify_one();
    wait_until("the delivery to fail", || async {
        delivery_state(&s, id).await.0 == "failed"
    })
    .await;
    let listed: DeliveryPage = s.server.get_json("/api/v1/deliveries").await;
    let item = listed.items.into_iter().find(|d| d.id == id).unwrap();
    assert_eq!(item.outcome, "failed");
    assert_eq!(item.attempts, forgehand::sync::inbox::MAX_ATTEMPTS);

    // Fixed, and re-driven: processed.
    comments_table(&s, true).await;
    let response = s
        .server
        .http
        .post(format!("{}/api/v1/deliveries/{id}/redrive", s.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_until("the re-driven delivery", || async {
        delivery_state(&s, id).await.0 == "processed"
    })
    .await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM comments WHERE body = 'second'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    s.finish().await;
}

/// A `pull_request_review.submitted` delivery for `pull` at `head`.
async fn deliver_review(s: &Scenario, pull: u64, head: &str, id: &str) {
    let mut v: Value = serde_json::from_slice(&fixture(
        "github/pull_request_review/submitted.payload.json",
    ))
    .unwrap();
    v["repository"] = s.repository_json();
    v["pull_request"]["number"] = json!(pull);
    v["pull_request"]["head"]["sha"] = json!(head);
    v["review"]["commit_id"] = json!(head);
    let response = s
        .server
        .post_github("pull_request_review", id, &serde_json::to_vec(&v).unwrap())
        .await;
    assert_eq!(response.status(), 202);
}

fn review_workflow() -> String {
    workflow(HARNESS, MERGE)
}

async fn approval_delivery_merges_at_once(db: Db) {
    let s = Scenario::start(db, AGENT, &review_workflow(), SLOW_REVIEW).await;
    let (n, pull) = in_review(&s, "Approve me").await;
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    let reviews = format!("/github/repos/{REPO}/pulls/{pull}/reviews");
    wait_until("the first review", || async {
        requests_to(&s, &reviews) > 0
    })
    .await;
    // Reviewed once on arrival; the approval alone changes nothing for an hour.
    s.model
        .add_review_on(REPO, pull, ("alice", ReviewState::Approved, "LGTM"), &head);
    tokio::time::sleep(STAY).await;
    assert_eq!(
        s.ticket(n).await.ticket.status.as_deref(),
        Some("in-review")
    );
    assert!(s.model.merges().is_empty());

    // Its delivery moves it at once.
    deliver_review(&s, pull, &head, "review-1").await;
    s.wait_status(n, "done").await;
    let merges = s.model.merges();
    assert_eq!(merges.len(), 1, "{merges:?}");
    assert_eq!(merges[0].sha.as_deref(), Some(head.as_str()));
    s.finish().await;
}

async fn merged_delivery_makes_the_ticket_done_at_once(db: Db) {
    let s = Scenario::start(db, AGENT, &review_workflow(), SLOW_REVIEW).await;
    let (n, pull) = in_review(&s, "Merge me by hand").await;
    // A person merges on the forge.
    s.model.merge_pull(REPO, pull);
    let snapshot = s.model.pull(REPO, pull).unwrap();
    let mut v: Value = serde_json::from_slice(&fixture(
        "github/pull_request/closed.with-installation.payload.json",
    ))
    .unwrap();
    v["repository"] = s.repository_json();
    let p = &mut v["pull_request"];
    p["number"] = json!(pull);
    p["state"] = json!("closed");
    p["merged"] = json!(true);
    p["merged_at"] = json!(chrono::Utc::now().to_rfc3339());
    p["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
    p["head"]["ref"] = json!(snapshot.head_ref);
    p["head"]["sha"] = json!(snapshot.head_sha);
    let response = s
        .server
        .post_github("pull_request", "merged-1", &serde_json::to_vec(&v).unwrap())
        .await;
    assert_eq!(response.status(), 202);
    s.wait_status(n, "done").await;
    assert!(
        s.model.merges().is_empty(),
        "merged by the person, not again"
    );
    s.finish().await;
}

async fn changes_requested_is_acted_on_once(db: Db) {
    let s = Scenario::start(db, AGENT, &review_workflow(), FAST_REVIEW).await;
    let (n, pull) = in_review(&s, "Change me").await;
    let head = s.model.pull(REPO, pull).unwrap().head_sha;
    s.model.add_review_on(
        REPO,
        pull,
        ("alice", ReviewState::ChangesRequested, "Shorter, please"),
        &head,
    );
    // Back to the agent, whose next run pushes the answer.
    wait_until("a second run", || async {
        s.ticket(n).await.runs.len() == 2
    })
    .await;
    s.wait_status(n, "in-review").await;
    // The same review does not send it back again, however often it is polled.
    tokio::time::sleep(STAY).await;
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("in-review"));
    assert_eq!(ticket.runs.len(), 2, "{ticket:?}");
    s.finish().await;
}
