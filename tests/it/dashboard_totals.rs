//! The overview's, agents page's and workflows page's totals (kept by triggers, migration
//! 0022) against the scans they replace, through the transitions that change them: runs
//! finishing, failing, being retried, deleted or costed late; tickets closing, reopening,
//! changing status or pin, deleted.

use std::collections::BTreeMap;

use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::RepoInfo;
use forgehand::store::dashboard::totals;
use forgehand::store::{costs, repos, runs};

use crate::backend_tests;
use crate::dashboard::Browser;
use crate::harness::{Db, Options, TestServer};

backend_tests!(
    open_ticket_counts_follow_the_tickets,
    run_totals_follow_the_runs,
    overview_page_shows_the_scanned_figures,
);

const DAY_MS: i64 = 86_400_000;

async fn repo(server: &TestServer, name: &str) -> i64 {
    let mut conn = server.app.store.pool().acquire().await.unwrap();
    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", name),
        default_branch: "main".into(),
        clone_url: String::new(),
        html_url: String::new(),
    };
    repos::upsert(&mut conn, &info).await.unwrap()
}

async fn ticket(
    server: &TestServer,
    repo_id: i64,
    number: i64,
    state: &str,
    status: Option<&str>,
    pinned: Option<i64>,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO tickets (repo_id, number, title, body, state, labels, author, html_url, \
         status, pinned_version, forge_updated_at, created_at, updated_at) \
         VALUES ($1, $2, 't', '', $3, '[]', 'alice', '', $4, $5, 0, 0, 0) RETURNING id",
    )
    .bind(repo_id)
    .bind(number)
    .bind(state)
    .bind(status)
    .bind(pinned)
    .fetch_one(server.app.store.pool())
    .await
    .unwrap()
}

async fn exec(server: &TestServer, sql: &str, id: i64) {
    sqlx::query(sql)
        .bind(id)
        .execute(server.app.store.pool())
        .await
        .unwrap();
}

/// Open tickets per status and per (repository, pin) as the scans (the queries the totals
/// replace) count them.
async fn scanned_open(
    server: &TestServer,
    repo_ids: &[i64],
) -> (Vec<(Option<String>, i64)>, Vec<Vec<(Option<i64>, i64)>>) {
    let pool = server.app.store.pool();
    let mut statuses: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) AS n FROM tickets WHERE deleted = 0 AND state = 'open' \
         GROUP BY status",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    statuses.sort();
    let mut pins = Vec::new();
    for id in repo_ids {
        let mut rows: Vec<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT pinned_version, COUNT(*) AS n FROM tickets WHERE repo_id = $1 \
             AND deleted = 0 AND state = 'open' GROUP BY pinned_version",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        // Newest version first, then the tickets not pinned yet.
        rows.sort_by_key(|(v, _)| std::cmp::Reverse(v.unwrap_or(0)));
        pins.push(rows);
    }
    (statuses, pins)
}

async fn read_open(
    server: &TestServer,
    repo_ids: &[i64],
) -> (Vec<(Option<String>, i64)>, Vec<Vec<(Option<i64>, i64)>>) {
    let pool = server.app.store.pool();
    let statuses = totals::open_per_status(pool).await.unwrap();
    let mut pins = Vec::new();
    for id in repo_ids {
        pins.push(totals::open_per_pin(pool, *id).await.unwrap());
    }
    (statuses, pins)
}

async fn open_ticket_counts_follow_the_tickets(db: Db) {
    let server = TestServer::start(db).await;
    let (a, b) = (repo(&server, "a").await, repo(&server, "b").await);
    let t1 = ticket(&server, a, 1, "open", Some("todo"), Some(2)).await;
    let t2 = ticket(&server, a, 2, "open", Some("todo"), None).await;
    let t3 = ticket(&server, a, 3, "open", None, Some(1)).await;
    let t4 = ticket(&server, b, 1, "open", Some("backlog"), Some(1)).await;
    let _closed = ticket(&server, b, 2, "closed", Some("done"), Some(1)).await;
    let check = |step: &'static str| {
        let server = &server;
        async move {
            let scan = scanned_open(server, &[a, b]).await;
            assert_eq!(read_open(server, &[a, b]).await, scan, "after {step}");
        }
    };
    check("inserts").await;
    assert_eq!(
        totals::open_per_status(server.app.store.pool())
            .await
            .unwrap(),
        vec![
            (None, 1),
            (Some("backlog".to_owned()), 1),
            (Some("todo".to_owned()), 2)
        ]
    );

    // A mirrored snapshot writing the same values again changes nothing.
    exec(
        &server,
        "UPDATE tickets SET status = status, state = state, pinned_version = pinned_version, \
         title = 'new' WHERE id = $1",
        t1,
    )
    .await;
    check("a same-values update").await;
    exec(
        &server,
        "UPDATE tickets SET status = 'in-review' WHERE id = $1",
        t1,
    )
    .await;
    check("a status change").await;
    exec(
        &server,
        "UPDATE tickets SET status = NULL WHERE id = $1",
        t2,
    )
    .await;
    check("a status label removed").await;
    exec(
        &server,
        "UPDATE tickets SET pinned_version = 3 WHERE id = $1",
        t2,
    )
    .await;
    check("a pin").await;
    exec(
        &server,
        "UPDATE tickets SET state = 'closed' WHERE id = $1",
        t3,
    )
    .await;
    check("a ticket closed").await;
    exec(
        &server,
        "UPDATE tickets SET state = 'open' WHERE id = $1",
        t3,
    )
    .await;
    check("a ticket reopened").await;
    exec(&server, "UPDATE tickets SET deleted = 1 WHERE id = $1", t4).await;
    check("a ticket marked deleted").await;
    sqlx::query("UPDATE tickets SET repo_id = $1, number = 9 WHERE id = $2")
        .bind(b)
        .bind(t2)
        .execute(server.app.store.pool())
        .await
        .unwrap();
    check("a ticket moved to another repository").await;
    exec(&server, "DELETE FROM tickets WHERE id = $1", t1).await;
    check("a ticket row deleted").await;
    // Repository b's other open ticket is gone: no zero lines.
    assert_eq!(
        totals::open_per_pin(server.app.store.pool(), b)
            .await
            .unwrap(),
        vec![(Some(3), 1)]
    );
    server.finish().await;
}

/// Inserts a run of `ticket` by `agent` in `state`, created `age_days` ago and finished
/// `minutes` later unless in flight.
async fn run(
    server: &TestServer,
    ticket: i64,
    agent: &str,
    state: &str,
    age_days: i64,
    minutes: f64,
    pull: Option<i64>,
) -> i64 {
    let at = chrono::Utc::now().timestamp_millis() - age_days * DAY_MS;
    let finished =
        (!matches!(state, "queued" | "running")).then_some(at + (minutes * 60_000.0) as i64);
    sqlx::query_scalar(
        "INSERT INTO runs (ticket_id, workflow, agent, config_version, pickup_status, \
         started_status, attempt, state, not_before, cost_usd, pull_number, created_at, \
         started_at, finished_at) \
         VALUES ($1, 'build', $2, 1, 'todo', 'in-progress', 1, $3, 0, 0.5, $4, $5, $5, $6) \
         RETURNING id",
    )
    .bind(ticket)
    .bind(agent)
    .bind(state)
    .bind(pull)
    .bind(at)
    .bind(finished)
    .fetch_one(server.app.store.pool())
    .await
    .unwrap()
}

type AgentFigures = BTreeMap<String, (i64, i64, i64, i64, i64, String)>;

/// The agents page's figures and the median time to a pull request, as the scans of the
/// runs (the queries the totals replace) give them.
async fn scanned_runs(server: &TestServer, since: i64) -> (AgentFigures, Option<i64>) {
    let pool = server.app.store.pool();
    let rows: Vec<(String, String, i64, f64)> = sqlx::query_as(
        "SELECT agent, state, COUNT(*) AS n, COALESCE(SUM(cost_usd), 0.0) AS cost FROM runs \
         WHERE state IN ('queued', 'running') OR finished_at >= $1 GROUP BY agent, state",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut lines: BTreeMap<String, totals::AgentLine> = BTreeMap::new();
    for (agent, state, n, cost) in rows {
        let line = lines.entry(agent).or_default();
        match state.as_str() {
            "running" => line.running += n,
            "queued" => line.queued += n,
            "succeeded" => line.succeeded += n,
            "failed" => line.failed += n,
            _ => line.canceled += n,
        }
        line.cost_usd += cost;
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM runs WHERE finished_at >= $1 AND pull_number IS NOT NULL \
         AND state = 'succeeded'",
    )
    .bind(since)
    .fetch_one(pool)
    .await
    .unwrap();
    let median: Option<i64> = sqlx::query_scalar(
        "SELECT finished_at - created_at AS d FROM runs WHERE finished_at >= $1 \
         AND pull_number IS NOT NULL AND state = 'succeeded' ORDER BY d LIMIT 1 OFFSET $2",
    )
    .bind(since)
    .bind(n / 2)
    .fetch_optional(pool)
    .await
    .unwrap();
    (figures(lines), median)
}

fn figures(lines: impl IntoIterator<Item = (String, totals::AgentLine)>) -> AgentFigures {
    lines
        .into_iter()
        .map(|(agent, l)| {
            let cost = format!("{:.2}", l.cost_usd);
            (
                agent,
                (l.running, l.queued, l.succeeded, l.failed, l.canceled, cost),
            )
        })
        .collect()
}

async fn read_runs(server: &TestServer, since: i64) -> (AgentFigures, Option<i64>) {
    let pool = server.app.store.pool();
    let lines = totals::agent_lines(pool, since).await.unwrap();
    let median = totals::median_time_to_pull(pool, since).await.unwrap();
    (figures(lines), median)
}

async fn run_totals_follow_the_runs(db: Db) {
    let server = TestServer::start(db).await;
    let pool = server.app.store.pool();
    let a = repo(&server, "a").await;
    let mut tickets = Vec::new();
    for number in 1..=8 {
        tickets.push(ticket(&server, a, number, "open", Some("todo"), None).await);
    }
    let since = costs::window_start(chrono::Utc::now().timestamp_millis(), 7);
    let check = |step: &'static str| {
        let server = &server;
        async move {
            let scan = scanned_runs(server, since).await;
            assert_eq!(read_runs(server, since).await, scan, "after {step}");
        }
    };
    check("nothing").await;
    assert_eq!(read_runs(&server, since).await.1, None);

    // Finished when written (an import): several in one minute bucket, so the median is
    // found inside a bucket, not at its start.
    run(&server, tickets[0], "claude", "succeeded", 1, 12.1, Some(1)).await;
    run(&server, tickets[0], "claude", "succeeded", 2, 12.7, Some(2)).await;
    run(&server, tickets[1], "codex", "succeeded", 3, 12.4, Some(3)).await;
    run(&server, tickets[1], "codex", "succeeded", 0, 3.0, Some(4)).await;
    run(&server, tickets[2], "codex", "succeeded", 4, 50.0, Some(5)).await;
    run(&server, tickets[2], "claude", "succeeded", 2, 1.0, None).await;
    run(&server, tickets[3], "claude", "failed", 1, 5.0, None).await;
    run(&server, tickets[3], "gemini", "canceled", 6, 7.0, None).await;
    // Older than the window: in no figure.
    run(&server, tickets[4], "claude", "succeeded", 30, 0.5, Some(6)).await;
    check("imports").await;
    let median = read_runs(&server, since).await.1;
    assert_eq!(median.map(|d| d / 60_000), Some(12), "{median:?}");

    // Finishing through the store, as runners do: succeeded with a pull request, failed.
    let ok = run(&server, tickets[5], "codex", "running", 0, 0.0, None).await;
    let bad = run(&server, tickets[6], "gemini", "running", 1, 0.0, None).await;
    let waiting = run(&server, tickets[7], "claude", "queued", 0, 0.0, None).await;
    check("runs in flight").await;
    runs::record_outcome(pool, ok, runs::RunState::Succeeded, None, Some(9))
        .await
        .unwrap();
    runs::record_outcome(pool, bad, runs::RunState::Failed, Some("boom"), None)
        .await
        .unwrap();
    check("runs finishing").await;
    // Canceled while queued.
    runs::record_outcome(pool, waiting, runs::RunState::Canceled, None, None)
        .await
        .unwrap();
    check("a queued run canceled").await;
    // A finished run's cost recorded late, and a run put back in the queue (a retry of the
    // same row), then deleted.
    exec(
        &server,
        "UPDATE runs SET cost_usd = cost_usd + 2.0 WHERE id = $1",
        ok,
    )
    .await;
    check("a late cost").await;
    exec(
        &server,
        // Not due for a long time, so the test server's runner leaves it queued.
        "UPDATE runs SET state = 'queued', finished_at = NULL, not_before = 9000000000000000 \
         WHERE id = $1",
        bad,
    )
    .await;
    check("a run requeued").await;
    exec(&server, "DELETE FROM runs WHERE id = $1", ok).await;
    check("a run deleted").await;
    server.finish().await;
}

/// The overview, agents and workflows pages render the figures the scans give.
async fn overview_page_shows_the_scanned_figures(db: Db) {
    let options = Options::default().toml("[agents.claude]\nadapter = \"claude-code\"\n");
    let server = TestServer::start_with(db, options).await;
    let a = repo(&server, "a").await;
    let t1 = ticket(&server, a, 1, "open", Some("todo"), Some(1)).await;
    let t2 = ticket(&server, a, 2, "open", Some("todo"), None).await;
    ticket(&server, a, 3, "open", Some("in-review"), None).await;
    ticket(&server, a, 4, "closed", Some("done"), None).await;
    run(&server, t1, "claude", "succeeded", 1, 2.5, Some(1)).await;
    run(&server, t1, "claude", "succeeded", 1, 10.0, Some(2)).await;
    run(&server, t2, "claude", "succeeded", 2, 125.0, Some(3)).await;
    run(&server, t2, "claude", "failed", 2, 1.0, None).await;
    let since = costs::window_start(chrono::Utc::now().timestamp_millis(), 7);
    let (_, median) = scanned_runs(&server, since).await;
    assert_eq!(median, Some(600_000));

    let browser = Browser::signed_in(&server).await;
    let page = browser.page("/").await;
    assert!(
        page.contains("10m 00s"),
        "median time to pull request: {page}"
    );
    assert!(page.contains("(3 ok · 1 failed"), "{page}");
    let agents = browser.page("/agents").await;
    assert!(
        agents.contains("<td>3 / 1 / 0</td>"),
        "claude's runs: {agents}"
    );
    let workflows = browser.page("/repos/github/octo/a/config").await;
    assert!(
        workflows.contains("not pinned yet</strong> · 2 open ticket(s)"),
        "{workflows}"
    );
    server.finish().await;
}
