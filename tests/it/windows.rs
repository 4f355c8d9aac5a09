//! No fixed window decides whether a ticket is ever looked at: the claim, review and
//! reconcile passes walk every ticket, however many wait ahead of it.

use forgehand::sandbox::Fault;
use forgehand::web::api::types::RunState;

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    claimed_behind_many_waiting_tickets,
    merged_behind_many_tickets_in_review,
    reconciled_behind_many_marked_tickets,
    review_polls_beyond_the_cap_are_spread,
    no_ticket_in_review_starves_under_the_cap
);

/// More than any page size the passes read at once.
const AHEAD: u64 = 230;

const AGENT: &str = r#"
echo "done" > done.txt
echo '{"kind":"result","text":"ok","is_error":false}'
"#;

async fn claimed_behind_many_waiting_tickets(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    // Older tickets with a status that is no pickup status: they are candidates the claim
    // pass reads first, in id order.
    for i in 0..AHEAD {
        s.open_labelled(&format!("Later {i}"), &["agent:backlog"], "alice")
            .await;
    }
    let last = AHEAD;
    wait_until("the backlog to be mirrored", || async {
        s.try_ticket(last)
            .await
            .is_some_and(|t| t.ticket.status.as_deref() == Some("backlog"))
    })
    .await;

    let n = s.open_labelled("Now", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs[0].state, RunState::Succeeded, "{ticket:?}");
    s.finish().await;
}

/// Tickets in review ahead of the one whose pull request is merged: written straight into the
/// database (their pull requests do not exist on the forge, so each review fails, as a
/// deleted pull request would).
async fn insert_tickets_in_review(s: &Scenario, count: u64) {
    let pulls: Vec<u64> = (0..count).map(|i| 10_000 + i).collect();
    insert_tickets_with_pulls(s, &pulls).await;
}

/// Tickets in review whose runs opened `pulls`, one each (numbered 10,000 and up).
async fn insert_tickets_with_pulls(s: &Scenario, pulls: &[u64]) {
    let pool = s.server.app.store.pool();
    let repo_id: i64 = sqlx::query_scalar("SELECT id FROM repositories WHERE name = 'app'")
        .fetch_one(pool)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for (i, pull) in pulls.iter().enumerate() {
        let number = 10_000 + i as i64;
        let ticket_id: i64 = sqlx::query_scalar(
            "INSERT INTO tickets (repo_id, number, title, body, state, labels, author, html_url, \
             status, pinned_version, forge_updated_at, created_at, updated_at) \
             VALUES ($1, $2, 'old', '', 'open', '[\"agent:in-review\"]', 'alice', '', \
             'in-review', 1, $3, $3, $3) RETURNING id",
        )
        .bind(repo_id)
        .bind(number)
        .bind(now)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO runs (ticket_id, workflow, agent, config_version, pickup_status, \
             started_status, attempt, state, not_before, pull_number, created_at) \
             VALUES ($1, 'build', 'script', 1, 'todo', 'in-progress', 1, 'succeeded', 0, $2, $3)",
        )
        .bind(ticket_id)
        .bind(*pull as i64)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn merged_behind_many_tickets_in_review(db: Db) {
    let s = Scenario::start(
        db,
        AGENT,
        &workflow(HARNESS, ""),
        // Polled at every pass, with no cap on the polls a minute: this is about the pages.
        "[limits]\nreview_poll = \"0s\"\nreview_polls_per_minute = 0\n",
    )
    .await;
    insert_tickets_in_review(&s, AHEAD).await;
    let n = s.open_labelled("Merge me", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    let pull = ticket.runs[0].pull_number.map(|p| p as u64).unwrap();

    // A person merges the pull request on the forge: the ticket is done, although more
    // tickets than one page are in review ahead of it.
    s.model.merge_pull(REPO, pull);
    let ticket = s.wait_status(n, "done").await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("done"));
    s.finish().await;
}

async fn reconciled_behind_many_marked_tickets(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), "").await;
    let pool = s.server.app.store.pool();
    // First in line: a ticket the forge refuses to show (403).
    let forbidden = s.open_labelled("Hidden", &["agent:backlog"], "alice").await;
    // Then more marked tickets than one page, whose issues the forge does not know.
    insert_tickets_in_review(&s, AHEAD).await;
    // Last: a real issue, mirrored through its delivery, then changed on the forge without one.
    let n = s.open_labelled("Later", &["agent:backlog"], "alice").await;
    wait_until("the tickets to be mirrored", || async {
        s.try_ticket(n)
            .await
            .is_some_and(|t| t.ticket.status.as_deref() == Some("backlog"))
    })
    .await;
    s.model.set_labels(REPO, n, &["agent:done"]);
    s.model.inject_fault(Fault {
        method: "GET".into(),
        path_contains: format!("/github/repos/{REPO}/issues/{forbidden}"),
        status: 403,
        message: "Resource not accessible by integration".into(),
        times: None,
    });
    sqlx::query("UPDATE tickets SET needs_reconcile = 1")
        .execute(pool)
        .await
        .unwrap();

    forgehand::sync::reconcile::reconcile_marked(&s.server.app)
        .await
        .expect("one ticket's failure does not fail the pass");
    assert_eq!(s.ticket(n).await.ticket.status.as_deref(), Some("done"));
    let still_marked: i64 =
        sqlx::query_scalar("SELECT needs_reconcile FROM tickets WHERE number = $1")
            .bind(forbidden as i64)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(still_marked, 1, "the refused ticket is tried again later");
    s.finish().await;
}

/// More tickets in review than `review_polls_per_minute` allows at `review_poll`: the process
/// starts a quarter of a minute's polls at once, then one a second, and says how many it put
/// off; nothing polls every ticket at every pass (40 pull requests × about five GETs).
async fn review_polls_beyond_the_cap_are_spread(db: Db) {
    let s = Scenario::start(
        db,
        AGENT,
        &workflow(HARNESS, ""),
        "[limits]\nreview_poll = \"0s\"\nreview_polls_per_minute = 60\n",
    )
    .await;
    let polled = || {
        s.model
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/pulls/100"))
            .map(|r| r.path)
            .collect::<std::collections::BTreeSet<String>>()
            .len()
    };
    let started = std::time::Instant::now();
    insert_tickets_in_review(&s, 40).await;
    wait_until("the first polls", || async { polled() >= 15 }).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (polls, elapsed) = (polled(), started.elapsed().as_secs());
    // 15 at once, then one a second (each fails, as a deleted pull request would, and is
    // not asked again within its backoff).
    assert!(
        polls <= 15 + elapsed as usize + 1,
        "{polls} polled in {elapsed} s"
    );
    let metrics = s.server.get_text("/metrics").await;
    let deferred: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("forgehand_review_polls_deferred_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_default();
    assert!(deferred > 0, "{metrics}");
    s.finish().await;
}

/// Tickets in review whose polls succeed come due again at every pass (`review_poll = "0s"`),
/// more of them than the cap lets through: the polls go to the longest unpolled, so every
/// ticket is polled. In ticket order, the first ones would take every poll for ever.
async fn no_ticket_in_review_starves_under_the_cap(db: Db) {
    let s = Scenario::start(
        db,
        AGENT,
        &workflow(HARNESS, ""),
        // 30 polls at once, then 2 a second.
        "[limits]\nreview_poll = \"0s\"\nreview_polls_per_minute = 120\n",
    )
    .await;
    let pulls: Vec<u64> = (0..40)
        .map(|i| {
            s.model.open_pull(
                REPO,
                forgehand::sandbox::NewPull {
                    title: format!("Change {i}"),
                    body: String::new(),
                    head_ref: format!("change-{i}"),
                    head_sha: format!("{i:040x}"),
                    base_ref: "main".into(),
                    author: "alice".into(),
                },
            )
        })
        .collect();
    insert_tickets_with_pulls(&s, &pulls).await;
    let unpolled = || {
        let asked: std::collections::BTreeSet<String> =
            s.model.requests().into_iter().map(|r| r.path).collect();
        pulls
            .iter()
            .filter(|n| !asked.iter().any(|p| p.ends_with(&format!("/pulls/{n}"))))
            .count()
    };
    wait_until("every ticket in review to be polled", || async {
        unpolled() == 0
    })
    .await;
    s.finish().await;
}
