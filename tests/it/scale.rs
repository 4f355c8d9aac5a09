//! Costs that grow with what changed, not with what waits: a claim pass with nothing changed
//! evaluates no ticket, however many wait; a change, or a run's end freeing a limit, is what
//! makes the waiting tickets be looked at again.

use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::engine::claim::Claimer;
use forgehand::forge::RepoInfo;
use forgehand::store::{costs, dashboard, repos, runs};
use forgehand::sync::retention;
use forgehand::web::api::types::RunState;
use tokio_util::sync::CancellationToken;

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    quiet_pass_evaluates_no_ticket,
    freed_limit_wakes_the_waiting_ticket,
    a_run_ending_rechecks_the_queue_on_its_limits_alone,
    a_ticket_waiting_on_a_limit_that_changes_is_evaluated_anew,
    a_snapshot_changing_nothing_a_claim_reads_marks_no_ticket,
    expired_deliveries_are_deleted_in_batches,
    overview_totals_follow_the_runs,
    board_counts_beyond_a_column,
    filtered_board_counts_beyond_a_column,
);

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
        assert_eq!(ticket.runs[0].state, RunState::Succeeded, "{ticket:?}");
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
        assert_eq!(ticket.runs.len(), 1, "{ticket:?}");
    }
    s.finish().await;
}

/// Holds its run until `$SHARED/release-<ticket>` exists.
const HOLDING_AGENT: &str = r#"
while [ ! -e "$SHARED/release-$FORGEHAND_TICKET_NUMBER" ]; do sleep 0.1; done
echo "done" > "done-$FORGEHAND_TICKET_NUMBER.txt"
echo '{"kind":"result","text":"ok","is_error":false}'
"#;

const ONE_AT_A_TIME: &str = "[limits]\nclaim_recheck_interval = \"1h\"\nmax_concurrent_runs = 1\n";

/// Opens `first`, whose run holds the server's one slot, then `count` more that wait on it.
async fn queue_behind_one(s: &Scenario, count: usize) -> (u64, Vec<u64>) {
    let first = s.open_labelled("First", &["agent:todo"], "alice").await;
    wait_until("the first run to start", || async {
        s.run_state(first, 0).await == Some(RunState::Running)
    })
    .await;
    let mut queue = Vec::new();
    for i in 0..count {
        let n = s
            .open_labelled(&format!("Queued {i}"), &["agent:todo"], "alice")
            .await;
        s.wait_diagnosis(n, "limit_reached").await;
        queue.push(n);
    }
    (first, queue)
}

async fn a_run_ending_rechecks_the_queue_on_its_limits_alone(db: Db) {
    let s = Scenario::start(db, HOLDING_AGENT, &workflow(HARNESS, ""), ONE_AT_A_TIME).await;
    let app = &s.server.app;
    let (first, queue) = queue_behind_one(&s, 3).await;
    // Nothing else about them may change from here: their re-reads are done, and the passes
    // have settled them.
    wait_until("deliveries, re-reads and passes to be done", || async {
        let due: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tickets t WHERE claim_due = 0 AND NOT EXISTS \
             (SELECT 1 FROM runs u WHERE u.ticket_id = t.id AND u.state IN ('queued', 'running'))",
        )
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        settled(&s).await && due == 0
    })
    .await;
    let checks = app.metrics.claim_limit_checks();
    // The slot frees: the queue's head takes it; the two behind it, unchanged since they were
    // decided, are held back by the limit again without a full evaluation.
    std::fs::write(s.shared_path(&format!("release-{first}")), "").unwrap();
    wait_until("the queue's head to run", || async {
        s.run_state(queue[0], 0).await == Some(RunState::Running)
    })
    .await;
    wait_until("the two behind it to be checked on the limits", || async {
        app.metrics.claim_limit_checks() >= checks + 2
    })
    .await;
    for &n in &queue[1..] {
        assert_eq!(s.run_count(n).await, 0, "#{n}");
        s.wait_diagnosis(n, "limit_reached").await;
    }
    // And each still gets its turn.
    for &n in &queue {
        std::fs::write(s.shared_path(&format!("release-{n}")), "").unwrap();
    }
    for &n in &queue {
        let ticket = s.wait_status(n, "in-review").await;
        assert_eq!(ticket.runs.len(), 1, "{ticket:?}");
    }
    s.finish().await;
}

/// A ticket that waits on a limit and then changes (here: its status label taken away and put
/// back by someone without permission) is evaluated in full at once, limit or not.
async fn a_ticket_waiting_on_a_limit_that_changes_is_evaluated_anew(db: Db) {
    let s = Scenario::start(db, HOLDING_AGENT, &workflow(HARNESS, ""), ONE_AT_A_TIME).await;
    let (first, queue) = queue_behind_one(&s, 1).await;
    let n = queue[0];
    s.model.set_labels(REPO, n, &[]);
    s.deliver_issue(n, "octo", "unlabeled").await;
    s.wait_diagnosis(n, "no_status").await;
    s.model.add_labels(REPO, n, &["agent:todo"], "mallory");
    s.deliver_issue(n, "mallory", "labeled").await;
    let d = s.wait_diagnosis(n, "permission_denied").await;
    assert!(format!("{d:?}").contains("mallory"), "{d:?}");
    wait_until("mallory's label to be removed", || async {
        s.model
            .issue(REPO, n)
            .is_some_and(|i| !i.labels.iter().any(|l| l == "agent:todo"))
    })
    .await;
    std::fs::write(s.shared_path(&format!("release-{first}")), "").unwrap();
    s.wait_status(first, "in-review").await;
    assert_eq!(s.run_count(n).await, 0);
    s.finish().await;
}

async fn claim_mark(s: &Scenario, number: u64) -> i64 {
    sqlx::query_scalar("SELECT claim_mark FROM tickets WHERE number = $1")
        .bind(number as i64)
        .fetch_one(s.server.app.store.pool())
        .await
        .unwrap()
}

/// A busy issue (comments, edits, redeliveries) is not evaluated again at every delivery:
/// only a snapshot that changes what a claim reads (labels, body, state, author) marks it.
async fn a_snapshot_changing_nothing_a_claim_reads_marks_no_ticket(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), NO_RECHECK).await;
    let prerequisite = s
        .open_labelled("Prerequisite", &["agent:backlog"], "alice")
        .await;
    let body = format!("Depends on #{prerequisite}");
    let n = s
        .open_with_body("Blocked", &body, &["agent:todo"], "alice")
        .await;
    s.wait_diagnosis(n, "blocked").await;
    wait_until("deliveries and re-reads to be done", || settled(&s)).await;
    let before = claim_mark(&s, n).await;

    // The same snapshot again (a redelivery, or an edit of nothing the claim reads), then one
    // newer only by a comment: the ticket's mark stays.
    s.deliver_issue(n, "alice", "edited").await;
    s.deliver_comment(n, "alice", "Any news?").await;
    wait_until("deliveries and re-reads to be done", || settled(&s)).await;
    assert_eq!(
        claim_mark(&s, n).await,
        before,
        "nothing a claim reads changed"
    );

    // Another label is a fact the claim reads.
    s.model.add_labels(REPO, n, &["priority"], "alice");
    s.deliver_issue(n, "alice", "labeled").await;
    wait_until("the label to mark the ticket", || async {
        claim_mark(&s, n).await > before
    })
    .await;
    s.wait_diagnosis(n, "blocked").await;
    s.finish().await;
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Stores `count` deliveries with `outcome`, received and processed `age_days` ago (pending
/// ones are never processed).
async fn old_deliveries(
    server: &TestServer,
    tag: &str,
    count: usize,
    outcome: &str,
    age_days: i64,
) {
    let pool = server.app.store.pool();
    let at = chrono::Utc::now().timestamp_millis() - age_days * DAY_MS;
    let processed = (outcome != "pending").then_some(at);
    let mut tx = pool.begin().await.unwrap();
    for i in 0..count {
        sqlx::query(
            "INSERT INTO deliveries (forge, delivery_id, event, received_at, body, outcome, \
             processed_at) VALUES ('github', $1, 'issues', $2, $3, $4, $5)",
        )
        .bind(format!("{tag}-{i}"))
        .bind(at)
        .bind(b"{}".to_vec())
        .bind(outcome)
        .bind(processed)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn remaining(server: &TestServer, tag: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE delivery_id LIKE $1")
        .bind(format!("{tag}-%"))
        .fetch_one(server.app.store.pool())
        .await
        .unwrap()
}

async fn expired_deliveries_are_deleted_in_batches(db: Db) {
    let toml = "[retention]\ndeliveries = \"2d\"\nfailed_deliveries = \"30d\"\n";
    let server = TestServer::start_with(db, Options::default().toml(toml)).await;
    // More expired deliveries than one batch.
    let many = 2 * retention::BATCH as usize + 200;
    old_deliveries(&server, "old-processed", many, "processed", 3).await;
    old_deliveries(&server, "old-ignored", 5, "ignored", 3).await;
    old_deliveries(&server, "recent-processed", 4, "processed", 1).await;
    old_deliveries(&server, "failed", 3, "failed", 20).await;
    old_deliveries(&server, "old-failed", 2, "failed", 40).await;
    // Never processed, however old: still to be done, never deleted.
    old_deliveries(&server, "pending", 2, "pending", 400).await;

    retention::sweep(&server.app, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(remaining(&server, "old-processed").await, 0);
    assert_eq!(remaining(&server, "old-ignored").await, 0);
    assert_eq!(remaining(&server, "recent-processed").await, 4);
    assert_eq!(
        remaining(&server, "failed").await,
        3,
        "failures are kept longer"
    );
    assert_eq!(remaining(&server, "old-failed").await, 0);
    assert_eq!(remaining(&server, "pending").await, 2);
    server.finish().await;
}

/// A WAL grown under a burst of writes returns to a small file once the writes stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_shrinks_when_writes_stop() {
    let server = TestServer::start(Db::Sqlite).await;
    let wal = server.data_dir.path().join("forgehand.db-wal");
    let pool = server.app.store.pool();
    let body = vec![b'x'; 2048];
    for batch in 0..10 {
        let mut tx = pool.begin().await.unwrap();
        for i in 0..1000 {
            sqlx::query(
                "INSERT INTO deliveries (forge, delivery_id, event, received_at, body, outcome, \
                 processed_at) VALUES ('github', $1, 'issues', 0, $2, 'processed', 0)",
            )
            .bind(format!("burst-{batch}-{i}"))
            .bind(&body)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let grown = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(grown > 8 << 20, "the burst grows the WAL: {grown} bytes");
    // A trickle of writes after the burst, spanning several checkpoints: the first after a
    // complete one starts the WAL over, so it holds a few pages while its file stays large.
    for i in 0..15 {
        sqlx::query(
            "INSERT INTO deliveries (forge, delivery_id, event, received_at, body, outcome, \
             processed_at) VALUES ('github', $1, 'issues', 0, x'00', 'processed', 0)",
        )
        .bind(format!("trickle-{i}"))
        .execute(pool)
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    wait_until("the WAL to be truncated", || async {
        std::fs::metadata(&wal).map_or(0, |m| m.len()) < 1 << 20
    })
    .await;
    server.finish().await;
}

/// Inserts a run of `ticket` by `agent` in `state`, created and started `age_days` ago,
/// finished then too unless in flight.
async fn insert_run(
    server: &TestServer,
    ticket: i64,
    agent: &str,
    state: &str,
    age_days: i64,
    cost: f64,
    tokens: (i64, i64),
) -> i64 {
    let at = chrono::Utc::now().timestamp_millis() - age_days * DAY_MS;
    let finished = (!matches!(state, "queued" | "running")).then_some(at + 60_000);
    sqlx::query_scalar(
        "INSERT INTO runs (ticket_id, workflow, agent, config_version, pickup_status, \
         started_status, attempt, state, not_before, cost_usd, input_tokens, output_tokens, \
         reasoning_tokens, created_at, started_at, finished_at) \
         VALUES ($1, 'build', $2, 1, 'todo', 'in-progress', 1, $3, 0, $4, $5, $6, 7, $7, $7, $8) \
         RETURNING id",
    )
    .bind(ticket)
    .bind(agent)
    .bind(state)
    .bind(cost)
    .bind(tokens.0)
    .bind(tokens.1)
    .bind(at)
    .bind(finished)
    .fetch_one(server.app.store.pool())
    .await
    .unwrap()
}

/// Runs per (day, state) and tokens per day, then spend per (day, agent): the overview's
/// figures.
type Figures = (Vec<(i64, String, i64)>, Vec<(i64, i64)>, Vec<String>);

/// The figures as a scan of every run gives them (what the totals replace).
async fn scanned(server: &TestServer, since: i64) -> Figures {
    let pool = server.app.store.pool();
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT (finished_at - $1) / 86400000, state, COUNT(*), \
         CAST(SUM(input_tokens + output_tokens) AS BIGINT) FROM runs WHERE finished_at >= $1 \
         GROUP BY (finished_at - $1) / 86400000, state ORDER BY 1, 2",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut tokens = std::collections::BTreeMap::<i64, i64>::new();
    for (day, _, _, t) in &rows {
        *tokens.entry(*day).or_default() += t;
    }
    let costs: Vec<(i64, String, i64, i64, f64)> = sqlx::query_as(
        "SELECT COALESCE(u.started_at, u.created_at) / 86400000, u.agent, COUNT(*), \
         CAST(SUM(u.reasoning_tokens) AS BIGINT), SUM(u.cost_usd) FROM runs u \
         WHERE COALESCE(u.started_at, u.created_at) >= $1 \
         GROUP BY COALESCE(u.started_at, u.created_at) / 86400000, u.agent ORDER BY 1, 2",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    (
        rows.into_iter().map(|(d, s, n, _)| (d, s, n)).collect(),
        tokens.into_iter().collect(),
        costs
            .into_iter()
            .map(|(day, agent, n, reasoning, cost)| {
                format!("{day} {agent} {n} {reasoning} {cost:.2}")
            })
            .collect(),
    )
}

/// The figures as the overview reads them.
async fn totals(server: &TestServer, since: i64) -> Figures {
    let pool = server.app.store.pool();
    let mut runs = Vec::new();
    let mut tokens = Vec::new();
    for d in dashboard::daily_stats(pool, since).await.unwrap() {
        for (state, n) in [
            ("canceled", d.canceled),
            ("failed", d.failed),
            ("succeeded", d.succeeded),
        ] {
            if n > 0 {
                runs.push((d.day, state.to_owned(), n));
            }
        }
        tokens.push((d.day, d.tokens));
    }
    let costs = costs::daily(pool, since)
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let day = chrono::NaiveDate::parse_from_str(&c.day, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis()
                / DAY_MS;
            format!(
                "{day} {} {} {} {:.2}",
                c.agent, c.runs, c.reasoning_tokens, c.cost_usd
            )
        })
        .collect();
    (runs, tokens, costs)
}

async fn overview_totals_follow_the_runs(db: Db) {
    let server = TestServer::start(db).await;
    let pool = server.app.store.pool();
    let repo_id = {
        let mut conn = pool.acquire().await.unwrap();
        let info = RepoInfo {
            repo: RepoRef::new(ForgeKind::Github, "octo", "app"),
            default_branch: "main".into(),
            clone_url: String::new(),
            html_url: String::new(),
        };
        repos::upsert(&mut conn, &info).await.unwrap()
    };
    let mut tickets = Vec::new();
    for number in 1..=3_i64 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tickets (repo_id, number, title, body, state, labels, author, html_url, \
             status, forge_updated_at, created_at, updated_at) \
             VALUES ($1, $2, 't', '', 'open', '[]', 'alice', '', 'todo', 0, 0, 0) RETURNING id",
        )
        .bind(repo_id)
        .bind(number)
        .fetch_one(pool)
        .await
        .unwrap();
        tickets.push(id);
    }
    // Finished when written (an import), over several days and agents.
    insert_run(
        &server,
        tickets[0],
        "claude",
        "succeeded",
        0,
        1.5,
        (100, 50),
    )
    .await;
    insert_run(&server, tickets[0], "codex", "failed", 2, 0.25, (10, 5)).await;
    insert_run(&server, tickets[1], "claude", "canceled", 5, 0.0, (0, 0)).await;
    // Longer ago than the window: out of every figure.
    insert_run(&server, tickets[1], "claude", "succeeded", 30, 9.0, (1, 1)).await;
    // Finished through the store, as runners do, after spending.
    let ending = insert_run(&server, tickets[1], "codex", "running", 1, 0.5, (20, 20)).await;
    sqlx::query("UPDATE runs SET cost_usd = 0.75, input_tokens = 30 WHERE id = $1")
        .bind(ending)
        .execute(pool)
        .await
        .unwrap();
    runs::record_outcome(pool, ending, runs::RunState::Succeeded, None, Some(7))
        .await
        .unwrap();
    // A finished run whose cost is recorded late.
    let late = insert_run(&server, tickets[2], "claude", "failed", 3, 0.1, (1, 1)).await;
    sqlx::query("UPDATE runs SET cost_usd = cost_usd + 2.0, reasoning_tokens = 40 WHERE id = $1")
        .bind(late)
        .execute(pool)
        .await
        .unwrap();
    // In flight: in the spend, not among the finished.
    insert_run(&server, tickets[2], "codex", "running", 0, 0.3, (5, 5)).await;

    let since = costs::window_start(chrono::Utc::now().timestamp_millis(), 7);
    let scan = scanned(&server, since).await;
    let read = totals(&server, since).await;
    assert_eq!(read, scan);
    assert_eq!(read.0.len(), 4, "{read:?}");
    assert_eq!(read.2.len(), 6, "{read:?}");
    server.finish().await;
}

/// The board's counts (kept by triggers) against a count of the tickets themselves.
async fn counted(s: &Scenario, repo_id: i64) -> std::collections::HashMap<Option<String>, i64> {
    let pool = s.server.app.store.pool();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM tickets WHERE repo_id = $1 AND deleted = 0 \
         AND status IS NOT NULL GROUP BY status",
    )
    .bind(repo_id)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|(s, n)| (Some(s), n)).collect()
}

async fn board_counts_beyond_a_column(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), NO_RECHECK).await;
    let pool = s.server.app.store.pool();
    // More than a column shows (10 cards).
    let mut backlog = Vec::new();
    for i in 0..26 {
        backlog.push(
            s.open_labelled(&format!("Later {i}"), &["agent:backlog"], "alice")
                .await,
        );
    }
    wait_until("deliveries to be done", || settled(&s)).await;
    let repo_id = repos::find(pool, &REPO.parse::<RepoRef>().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let unfiltered = dashboard::CardFilter::default();
    let counts = dashboard::status_counts(pool, repo_id, &unfiltered)
        .await
        .unwrap();
    assert_eq!(counts.get(&Some("backlog".into())), Some(&26), "{counts:?}");
    assert_eq!(counts, counted(&s, repo_id).await);

    // Tickets leave the column: one unlabelled, one deleted.
    s.model.set_labels(REPO, backlog[0], &[]);
    s.deliver_issue(backlog[0], "alice", "unlabeled").await;
    s.deliver_issue(backlog[1], "alice", "deleted").await;
    // (The deleted issue is still on the sandbox forge, so its ticket stays marked for
    // re-reading: wait for the inbox, not for every mark.)
    s.server.drain_inbox().await;
    wait_until("the two tickets to leave the column", || async {
        let counts = dashboard::status_counts(pool, repo_id, &unfiltered)
            .await
            .unwrap();
        counts.get(&Some("backlog".into())) == Some(&24)
    })
    .await;
    let counts = dashboard::status_counts(pool, repo_id, &unfiltered)
        .await
        .unwrap();
    assert_eq!(counts.get(&Some("backlog".into())), Some(&24), "{counts:?}");
    assert_eq!(counts, counted(&s, repo_id).await);

    // The page: the column shows its count and links to the rest.
    let cookie = s.server.sign_in().await;
    let page = |path: &'static str| {
        let cookie = cookie.clone();
        let base = s.server.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let board = page("/board").await;
    assert!(board.contains("all 24 →"), "{board}");
    assert_eq!(
        board.matches("href=\"/tickets/github/octo/app/").count(),
        10,
        "{board}"
    );
    // Filtered by an agent none of them ran with: nothing counted.
    let none = page("/board?repo=github%3Aocto%2Fapp&agent=nobody").await;
    assert!(!none.contains("all 24"), "{none}");
    assert!(!none.contains("href=\"/tickets/github/octo/app/"), "{none}");
    // The column's own page: the fourteen past the board's 10 cards are on page 1 of 50.
    let column = page("/board?repo=github%3Aocto%2Fapp&status=backlog").await;
    assert_eq!(
        column.matches("href=\"/tickets/github/octo/app/").count(),
        24,
        "{column}"
    );
}

/// A workflow or agent filter's counts as the tickets and their runs give them (what the kept
/// counts replace).
async fn counted_filtered(
    s: &Scenario,
    repo_id: i64,
    workflow: Option<&str>,
    agent: Option<&str>,
) -> std::collections::HashMap<Option<String>, i64> {
    let pool = s.server.app.store.pool();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.status, COUNT(*) FROM tickets t WHERE t.repo_id = $1 AND t.deleted = 0 \
         AND t.status IS NOT NULL AND EXISTS (SELECT 1 FROM runs u WHERE u.ticket_id = t.id \
         AND ($2 IS NULL OR u.workflow = $2) AND ($3 IS NULL OR u.agent = $3)) GROUP BY t.status",
    )
    .bind(repo_id)
    .bind(workflow)
    .bind(agent)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|(s, n)| (Some(s), n)).collect()
}

/// Every filter's kept counts are the counts from the tickets; `alpha`'s backlog has `alpha`.
async fn check_filtered(s: &Scenario, repo_id: i64, alpha: i64) {
    let pool = s.server.app.store.pool();
    let filters: [(Option<&str>, Option<&str>); 6] = [
        (Some("build"), None),
        (None, Some("alpha")),
        (None, Some("beta")),
        (Some("build"), Some("beta")),
        (Some("other"), None),
        (Some("other"), Some("alpha")),
    ];
    for (workflow, agent) in filters {
        let filter = dashboard::CardFilter {
            workflow: workflow.map(str::to_owned),
            agent: agent.map(str::to_owned),
        };
        let kept = dashboard::status_counts(pool, repo_id, &filter)
            .await
            .unwrap();
        assert_eq!(
            kept,
            counted_filtered(s, repo_id, workflow, agent).await,
            "{workflow:?} {agent:?}"
        );
    }
    let only_alpha = dashboard::CardFilter {
        workflow: None,
        agent: Some("alpha".into()),
    };
    let kept = dashboard::status_counts(pool, repo_id, &only_alpha)
        .await
        .unwrap();
    assert_eq!(kept.get(&Some("backlog".into())), Some(&alpha), "{kept:?}");
}

async fn filtered_board_counts_beyond_a_column(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow(HARNESS, ""), NO_RECHECK).await;
    let pool = s.server.app.store.pool();
    let mut backlog = Vec::new();
    for i in 0..27 {
        backlog.push(
            s.open_labelled(&format!("Later {i}"), &["agent:backlog"], "alice")
                .await,
        );
    }
    wait_until("deliveries to be done", || settled(&s)).await;
    let repo_id = repos::find(pool, &REPO.parse::<RepoRef>().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let ticket_of = |number: u64| async move {
        sqlx::query_scalar::<_, i64>("SELECT id FROM tickets WHERE repo_id = $1 AND number = $2")
            .bind(repo_id)
            .bind(number as i64)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    // More than a column (20 cards) ran with `alpha`, some twice (counted once), some also
    // with `beta`; the last two never ran.
    for (i, number) in backlog.iter().take(25).enumerate() {
        let id = ticket_of(*number).await;
        insert_run(&s.server, id, "alpha", "succeeded", 0, 0.1, (1, 1)).await;
        if i % 3 == 0 {
            insert_run(&s.server, id, "alpha", "failed", 0, 0.1, (1, 1)).await;
        }
        if i % 4 == 0 {
            insert_run(&s.server, id, "beta", "succeeded", 0, 0.1, (1, 1)).await;
        }
    }
    check_filtered(&s, repo_id, 25).await;

    // Tickets leave the column (one unlabelled, one deleted), one of them gains a run after.
    s.model.set_labels(REPO, backlog[0], &[]);
    s.deliver_issue(backlog[0], "alice", "unlabeled").await;
    s.deliver_issue(backlog[1], "alice", "deleted").await;
    s.server.drain_inbox().await;
    wait_until("the two tickets to leave the column", || async {
        let counts = dashboard::status_counts(pool, repo_id, &dashboard::CardFilter::default())
            .await
            .unwrap();
        counts.get(&Some("backlog".into())) == Some(&25)
    })
    .await;
    let id = ticket_of(backlog[1]).await;
    insert_run(&s.server, id, "gamma", "succeeded", 0, 0.1, (1, 1)).await;
    check_filtered(&s, repo_id, 23).await;
    let gamma = dashboard::CardFilter {
        workflow: None,
        agent: Some("gamma".into()),
    };
    let kept = dashboard::status_counts(pool, repo_id, &gamma)
        .await
        .unwrap();
    assert!(kept.is_empty(), "{kept:?}");

    // The page: the filtered column shows its count, a column's worth of cards, and the rest
    // on the column's own page.
    let cookie = s.server.sign_in().await;
    let page = |path: &'static str| {
        let cookie = cookie.clone();
        let base = s.server.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let board = page("/board?repo=github%3Aocto%2Fapp&agent=alpha").await;
    assert!(board.contains("all 23 →"), "{board}");
    assert_eq!(
        board.matches("href=\"/tickets/github/octo/app/").count(),
        10,
        "{board}"
    );
    let column = page("/board?repo=github%3Aocto%2Fapp&agent=alpha&status=backlog").await;
    assert_eq!(
        column.matches("href=\"/tickets/github/octo/app/").count(),
        23,
        "{column}"
    );
    let beta =
        page("/board?repo=github%3Aocto%2Fapp&workflow=build&agent=beta&status=backlog").await;
    let expect_beta = counted_filtered(&s, repo_id, Some("build"), Some("beta")).await;
    assert_eq!(
        beta.matches("href=\"/tickets/github/octo/app/").count() as i64,
        expect_beta[&Some("backlog".into())],
        "{beta}"
    );
}
