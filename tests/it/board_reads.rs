//! What the board and the ticket page read at scale: the cards of every column of several
//! repositories in one statement, each card with its latest run; and the turns of a ticket's
//! runs from the summaries kept as events are appended, not from the events.

use forgehand::domain::agent_event::AgentEvent;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::RepoInfo;
use forgehand::store::{dashboard, repos, runs};

use crate::backend_tests;
use crate::dashboard::Browser;
use crate::harness::{Db, TestServer};

backend_tests!(
    turn_summaries_follow_the_events,
    a_long_runs_latest_turns_are_read_and_the_rest_counted,
    board_of_several_repositories,
    the_repository_filter_reaches_past_its_suggestions,
);

async fn repo(server: &TestServer, name: &str) -> i64 {
    let mut conn = server.app.store.pool().acquire().await.unwrap();
    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", name),
        default_branch: "main".into(),
        clone_url: String::new(),
        html_url: format!("https://github.com/octo/{name}"),
    };
    repos::upsert(&mut conn, &info).await.unwrap()
}

async fn ticket(server: &TestServer, repo_id: i64, number: i64, status: &str, at: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO tickets (repo_id, number, title, body, state, labels, author, html_url, \
         status, forge_updated_at, created_at, updated_at) \
         VALUES ($1, $2, $3, '', 'open', '[]', 'alice', '', $4, $5, $5, $5) RETURNING id",
    )
    .bind(repo_id)
    .bind(number)
    .bind(format!("Ticket {number}"))
    .bind(status)
    .bind(at)
    .fetch_one(server.app.store.pool())
    .await
    .unwrap()
}

async fn run(server: &TestServer, ticket: i64, agent: &str, state: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO runs (ticket_id, workflow, agent, config_version, pickup_status, \
         started_status, attempt, state, not_before, created_at) \
         VALUES ($1, 'build', $2, 1, 'todo', 'in-progress', 1, $3, 0, 0) RETURNING id",
    )
    .bind(ticket)
    .bind(agent)
    .bind(state)
    .fetch_one(server.app.store.pool())
    .await
    .unwrap()
}

fn messages(n: usize) -> Vec<AgentEvent> {
    (0..n)
        .map(|i| AgentEvent::Message {
            role: "assistant".into(),
            text: format!("step {i}"),
        })
        .collect()
}

async fn turn_summaries_follow_the_events(db: Db) {
    let server = TestServer::start(db).await;
    let store = &server.app.store;
    let pool = store.pool();
    let repo_id = repo(&server, "app").await;
    let t = ticket(&server, repo_id, 1, "in-progress", 1).await;
    let (a, b) = (
        run(&server, t, "claude", "failed").await,
        run(&server, t, "claude", "running").await,
    );
    // Turns appended in several pieces (an agent's turn, then hooks), one piece empty.
    for (run_id, turn, n) in [
        (a, 1, 3),
        (a, 1, 2),
        (a, 2, 4),
        (b, 1, 1),
        (b, 1, 0),
        (b, 3, 5),
    ] {
        runs::append_events(store, run_id, turn, &messages(n))
            .await
            .unwrap();
    }
    let kept = dashboard::turn_summaries(pool, &[a, b], 100).await.unwrap();
    let kept: Vec<(i64, i64, i64)> = kept.iter().map(|s| (s.run_id, s.turn, s.events)).collect();
    assert_eq!(kept, vec![(a, 1, 5), (a, 2, 4), (b, 1, 1), (b, 3, 5)]);
    // Against the events themselves, times included.
    let counted: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT run_id, turn, COUNT(*), MIN(at), MAX(at) FROM run_events \
         GROUP BY run_id, turn ORDER BY run_id, turn",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let read: Vec<(i64, i64, i64, i64, i64)> = dashboard::turn_summaries(pool, &[a, b], 100)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.run_id, s.turn, s.events, s.first_at, s.last_at))
        .collect();
    assert_eq!(read, counted);
    server.finish().await;
}

async fn a_long_runs_latest_turns_are_read_and_the_rest_counted(db: Db) {
    let server = TestServer::start(db).await;
    let store = &server.app.store;
    let pool = store.pool();
    let repo_id = repo(&server, "app").await;
    let t = ticket(&server, repo_id, 1, "in-progress", 1).await;
    let (long, short) = (
        run(&server, t, "claude", "failed").await,
        run(&server, t, "claude", "running").await,
    );
    for turn in 1..=60 {
        runs::append_events(store, long, turn, &messages(1))
            .await
            .unwrap();
    }
    for turn in 1..=2 {
        runs::append_events(store, short, turn, &messages(2))
            .await
            .unwrap();
    }
    let read = dashboard::turn_summaries(pool, &[long, short], 50)
        .await
        .unwrap();
    let of = |run_id: i64| -> Vec<(i64, i64)> {
        read.iter()
            .filter(|s| s.run_id == run_id)
            .map(|s| (s.turn, s.of_run))
            .collect()
    };
    // The long run's latest 50, oldest of them first, each saying the run has 60.
    assert_eq!(
        of(long),
        (11..=60).map(|turn| (turn, 60)).collect::<Vec<_>>()
    );
    assert_eq!(of(short), vec![(1, 2), (2, 2)]);
    // The ticket's page says how many came before, and links to the run's page.
    let html = Browser::signed_in(&server)
        .await
        .page("/tickets/github/octo/app/1")
        .await;
    assert!(html.contains("10 earlier turns on the run"), "{html}");
    server.finish().await;
}

async fn board_of_several_repositories(db: Db) {
    let server = TestServer::start(db).await;
    let pool = server.app.store.pool();
    let (app, lib) = (repo(&server, "app").await, repo(&server, "lib").await);
    // `app`: 25 in backlog (more than a column shows), 2 in todo; `lib`: 1 in a status no
    // config lists, 1 in todo.
    let mut backlog = Vec::new();
    for n in 1..=25 {
        backlog.push(ticket(&server, app, n, "backlog", 1_000 + n).await);
    }
    let todo_old = ticket(&server, app, 26, "todo", 10).await;
    let todo_new = ticket(&server, app, 27, "todo", 20).await;
    let stray = ticket(&server, lib, 1, "parked", 5).await;
    let lib_todo = ticket(&server, lib, 2, "todo", 5).await;
    // The latest run is the one a card shows.
    run(&server, todo_new, "claude", "failed").await;
    let latest = run(&server, todo_new, "codex", "succeeded").await;
    run(&server, lib_todo, "gemini", "canceled").await;

    let unfiltered = dashboard::CardFilter::default();
    let counts = dashboard::status_counts_of(pool, &[app, lib], &unfiltered)
        .await
        .unwrap();
    assert_eq!(counts[&app][&Some("backlog".into())], 25, "{counts:?}");
    assert_eq!(counts[&app][&Some("todo".into())], 2, "{counts:?}");
    assert_eq!(counts[&lib][&Some("parked".into())], 1, "{counts:?}");

    let key = |repo_id: i64, status: &str| dashboard::ColumnKey {
        repo_id,
        status: status.into(),
    };
    let wanted = [
        key(app, "backlog"),
        key(app, "todo"),
        key(lib, "parked"),
        key(lib, "todo"),
        key(lib, "done"),
    ];
    let read = dashboard::columns(
        pool,
        server.app.store.backend(),
        &wanted,
        &unfiltered,
        0,
        20,
    )
    .await
    .unwrap();
    let ids = |column: &[(dashboard::Card, Option<dashboard::RunBrief>)]| -> Vec<i64> {
        column.iter().map(|(card, _)| card.id).collect()
    };
    // Newest first, each column bounded on its own.
    let newest: Vec<i64> = backlog.iter().rev().take(20).copied().collect();
    assert_eq!(ids(&read[0]), newest);
    assert_eq!(ids(&read[1]), vec![todo_new, todo_old]);
    assert_eq!(ids(&read[2]), vec![stray]);
    assert_eq!(ids(&read[3]), vec![lib_todo]);
    assert!(read[4].is_empty());
    let run = read[1][0].1.as_ref().expect("the latest run");
    assert_eq!((run.id, run.agent.as_str()), (latest, "codex"));
    assert!(read[1][1].1.is_none(), "no run, no badge");
    // The next page of a column, and a filter: only tickets with a run of that agent.
    let rest = dashboard::columns(
        pool,
        server.app.store.backend(),
        &wanted[..1],
        &unfiltered,
        20,
        20,
    )
    .await
    .unwrap();
    let oldest: Vec<i64> = backlog.iter().rev().skip(20).copied().collect();
    assert_eq!(ids(&rest[0]), oldest);
    let codex = dashboard::CardFilter {
        workflow: None,
        agent: Some("codex".into()),
    };
    let filtered = dashboard::columns(pool, server.app.store.backend(), &wanted, &codex, 0, 20)
        .await
        .unwrap();
    let filtered: Vec<Vec<i64>> = filtered.iter().map(|c| ids(c)).collect();
    assert_eq!(
        filtered,
        vec![vec![], vec![todo_new], vec![], vec![], vec![]]
    );

    // The page: both repositories, the full column's count and link, the stray status.
    let page = Browser::signed_in(&server).await.page("/board").await;
    assert!(page.contains("all 25 →"), "{page}");
    assert!(page.contains("data-status=\"parked\""), "{page}");
    // A column shows 10 cards.
    assert_eq!(
        page.matches("href=\"/tickets/github/octo/app/").count(),
        12,
        "{page}"
    );
    assert_eq!(
        page.matches("href=\"/tickets/github/octo/lib/").count(),
        2,
        "{page}"
    );
    assert!(page.contains(&format!("href=\"/runs/{latest}\"")), "{page}");
    server.finish().await;
}

/// More repositories than the filter suggests: the page says so, and the last one, which is
/// not suggested, is filtered to by its name.
async fn the_repository_filter_reaches_past_its_suggestions(db: Db) {
    let server = TestServer::start(db).await;
    let mut last = 0;
    for i in 0..201 {
        last = repo(&server, &format!("r{i:03}")).await;
    }
    ticket(&server, last, 7, "todo", 1_000).await;
    let browser = Browser::signed_in(&server).await;
    let page = browser.page("/board").await;
    assert_eq!(
        page.matches("<option value=\"github:octo/r").count(),
        200,
        "{page}"
    );
    assert!(
        !page.contains("<option value=\"github:octo/r200\""),
        "{page}"
    );
    assert!(page.contains("type any other"), "{page}");

    let page = browser.page("/board?repo=github:octo/r200").await;
    assert!(page.contains("value=\"github:octo/r200\""), "{page}");
    assert!(
        page.contains("href=\"/tickets/github/octo/r200/7\""),
        "{page}"
    );
    server.finish().await;
}
