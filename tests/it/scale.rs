//! Costs that grow with what changed, not with what waits: a claim pass with nothing changed
//! evaluates no ticket, however many wait; a change, or a run's end freeing a limit, is what
//! makes the waiting tickets be looked at again.

use forgehand::engine::claim::Claimer;

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(quiet_pass_evaluates_no_ticket, freed_limit_wakes_the_waiting_ticket);

/// More than the page a claim pass reads at once.
const BACKLOG: u64 = 230;

const AGENT: &str = r#"
echo "done" > "done-$FORGEHAND_TICKET_NUMBER.txt"
echo '{"kind":"result","text":"ok","is_error":false}'
"#;

/// Waits are looked at again only when something changes: a time-based recheck would hide
/// a missing mark.
const NO_RECHECK: &str = "[limits]\nclaim_recheck_interval = \"1h\"\n";

async fn settled(s: &Scenario) -> bool {
    let pool = s.server.app.store.pool();
    let marked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE needs_reconcile = 1")
        .fetch_one(pool)
        .await
        .unwrap();
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE outcome = 'pending'")
            .fetch_one(pool)
            .await
            .unwrap();
    marked == 0 && pending == 0
}

async fn quiet_pass_evaluates_no_ticket(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), NO_RECHECK).await;
    let app = &s.server.app;
    for i in 0..BACKLOG {
        s.open_labelled(&format!("Later {i}"), &["agent:backlog"], "alice")
            .await;
    }
    // Tickets in their pickup status, waiting on an open one. (A ticket: an issue that is no
    // ticket is read from the forge through a cache the tests' servers share.)
    let prerequisite = s
        .open_labelled("Prerequisite", &["agent:backlog"], "alice")
        .await;
    let mut blocked = Vec::new();
    for i in 0..3 {
        let body = format!("Depends on #{prerequisite}");
        blocked.push(
            s.open_with_body(&format!("Blocked {i}"), &body, &["agent:todo"], "alice")
                .await,
        );
    }
    for &n in &blocked {
        s.wait_diagnosis(n, "blocked").await;
    }
    wait_until("deliveries and re-reads to be done", || settled(&s)).await;

    // As after a restart, every ticket is looked at once; then nothing changed, so the next
    // pass reads none of them.
    let mut claimer = Claimer::default();
    let first = claimer.pass(app).await.unwrap();
    // (The server's own passes run meanwhile and may evaluate some of them first.)
    assert!(first.evaluated > 0, "{first:?}");
    assert!(first.queued.is_empty(), "{first:?}");
    let quiet = claimer.pass(app).await.unwrap();
    assert_eq!(quiet.evaluated, 0, "nothing changed: {quiet:?}");

    // The prerequisite closes: the tickets that waited on it go ahead.
    s.model.close_issue(REPO, prerequisite);
    s.deliver_issue(prerequisite, "alice", "closed").await;
    for &n in &blocked {
        let ticket = s.wait_status(n, "in-review").await;
        assert_eq!(ticket["runs"][0]["state"], "succeeded", "{ticket}");
    }
    s.finish().await;
}

async fn freed_limit_wakes_the_waiting_ticket(db: Db) {
    let limits = "[limits]\nclaim_recheck_interval = \"1h\"\nmax_concurrent_runs = 1\n";
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), limits).await;
    let a = s.open_labelled("First", &["agent:todo"], "alice").await;
    let b = s.open_labelled("Second", &["agent:todo"], "alice").await;
    // One of them waits for the other's run to end; nothing else about it changes.
    for n in [a, b] {
        let ticket = s.wait_status(n, "in-review").await;
        assert_eq!(ticket["runs"].as_array().unwrap().len(), 1, "{ticket}");
    }
    s.finish().await;
}
