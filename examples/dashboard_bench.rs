//! Dashboard render-time benchmark: fills a database with 10,000 tickets and 100,000 runs (plus
//! their comments, run events, deliveries and config versions), serves the dashboard in-process
//! and measures p50/p99 of full page requests (query, render, HTTP on loopback).
//!
//! ```text
//! cargo run --release --example dashboard_bench                      # SQLite in a temp dir
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/forgehand_bench \
//!     cargo run --release --example dashboard_bench                  # PostgreSQL (recreated)
//! ```
//!
//! Options: `--tickets N` (10000), `--runs N` (100000), `--iterations N` (300),
//! `--concurrency N` (1): viewers requesting at once, each page's requests shared among them.
//! `--reuse`: with a `DATABASE_URL` given, keep a database an earlier run filled (so two builds
//! are compared on the same data, without the minutes a fill takes); fill it when it is empty.
//! `--pages a,b` measures only the pages whose names start with one of these (all).
//! `CPU` is this process's CPU time (server, client and SQLite; not a PostgreSQL server's)
//! per request, from `getrusage`.
//! The target is p99 under 50 ms for the board and the ticket page.

mod bench_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use forgehand::app::{App, Forges};
use forgehand::config::server::ServerConfig;
use forgehand::store::{Store, now_ms};
use sqlx::AnyPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The admin token the benchmark server runs with.
const BENCH_TOKEN: &str = "bench-admin-token-0123456789";

const REPOS: i64 = 4;
const STATUSES: [&str; 7] = [
    "backlog",
    "todo",
    "in-progress",
    "in-review",
    "merging",
    "done",
    "canceled",
];
const EVENTS_PER_LATEST_RUN: i64 = 12;
const COMMENTS_PER_TICKET: i64 = 3;
const DELIVERIES: i64 = 10_000;
const DAY: i64 = 86_400_000;
/// The tables triggers keep as tickets and runs change (migrations 0016, 0019, 0022).
const COUNTER_TABLES_COMPACTED: &str = "VACUUM (FULL, ANALYZE) ticket_status_counts, \
     board_filter_counts, ticket_filter_keys, open_status_counts, open_pin_counts, \
     run_day_totals, run_cost_totals, run_agent_totals, run_pull_minutes";

fn arg(name: &str, default: i64) -> i64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator, so every run of the bench sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n as u64) as i64
    }
}

enum Val {
    I(i64),
    F(f64),
    S(String),
    B(Vec<u8>),
    /// NULL for an integer column.
    N,
    /// NULL for a text column.
    NullText,
}

/// Inserts rows in multi-row statements inside one transaction.
async fn insert_rows(
    pool: &AnyPool,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Val>>,
) -> anyhow::Result<()> {
    let per_statement = (30_000 / columns.len()).min(500);
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(per_statement) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..columns.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        let mut query = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                query = match v {
                    Val::I(x) => query.bind(*x),
                    Val::F(x) => query.bind(*x),
                    Val::S(x) => query.bind(x.clone()),
                    Val::B(x) => query.bind(x.clone()),
                    Val::N => query.bind(Option::<i64>::None),
                    Val::NullText => query.bind(Option::<String>::None),
                };
            }
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn fill(pool: &AnyPool, tickets: i64, runs: i64) -> anyhow::Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let now = now_ms();
    let config = "max_concurrent: 5\n";
    let workflow = "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\n---\nWork on {{ ticket.title }}.\n";
    let mut repo_rows = Vec::new();
    for r in 1..=REPOS {
        repo_rows.push(vec![
            Val::I(r),
            Val::S("github".into()),
            Val::S("bench".into()),
            Val::S(format!("repo{r}")),
            Val::S("main".into()),
            Val::S(format!("https://github.com/bench/repo{r}.git")),
            Val::S(format!("https://github.com/bench/repo{r}")),
            Val::I(now - 60 * DAY),
        ]);
    }
    insert_rows(
        pool,
        "repositories",
        &[
            "id",
            "forge",
            "owner",
            "name",
            "default_branch",
            "clone_url",
            "html_url",
            "first_seen_at",
        ],
        repo_rows,
    )
    .await?;
    let mut versions = Vec::new();
    let mut files = Vec::new();
    for r in 1..=REPOS {
        for v in 1..=3 {
            let id = (r - 1) * 3 + v;
            versions.push(vec![
                Val::I(id),
                Val::I(r),
                Val::I(v),
                Val::S(format!("{:040x}", id)),
                Val::S(format!("hash{id}")),
                Val::I(now - (10 - v) * DAY),
            ]);
            files.push((id, ".forgehand/config.yaml", config.to_owned()));
            files.push((
                id,
                ".forgehand/workflows/build.md",
                format!("{workflow}Version {v}.\n"),
            ));
        }
    }
    insert_rows(
        pool,
        "config_versions",
        &[
            "id",
            "repo_id",
            "number",
            "commit_sha",
            "content_hash",
            "created_at",
        ],
        versions,
    )
    .await?;
    for (id, path, content) in files {
        sqlx::query("INSERT INTO config_files (version_id, path, content) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(path)
            .bind(content.into_bytes())
            .execute(pool)
            .await?;
    }

    let mut ticket_rows = Vec::new();
    for t in 1..=tickets {
        let repo = (t - 1) % REPOS + 1;
        let number = (t - 1) / REPOS + 1;
        let status = STATUSES[rng.below(STATUSES.len() as i64) as usize];
        let updated = now - rng.below(30 * DAY);
        ticket_rows.push(vec![
            Val::I(t),
            Val::I(repo),
            Val::I(number),
            Val::S(format!("Ticket {number}: make the widget <faster> & safer")),
            Val::S("Some body text.\n\nWith a few lines.".into()),
            Val::S(
                if status == "done" || status == "canceled" {
                    "closed"
                } else {
                    "open"
                }
                .into(),
            ),
            Val::S(format!("[\"agent:{status}\",\"bug\"]")),
            Val::S("alice".into()),
            Val::S(format!(
                "https://github.com/bench/repo{repo}/issues/{number}"
            )),
            Val::S(status.into()),
            Val::I(1 + rng.below(3)),
            Val::I(updated),
            Val::I(updated - DAY),
            Val::I(updated),
        ]);
    }
    insert_rows(
        pool,
        "tickets",
        &[
            "id",
            "repo_id",
            "number",
            "title",
            "body",
            "state",
            "labels",
            "author",
            "html_url",
            "status",
            "pinned_version",
            "forge_updated_at",
            "created_at",
            "updated_at",
        ],
        ticket_rows,
    )
    .await?;

    // Runs: `runs / tickets` per ticket on average; the newest of each ticket gets events.
    let mut run_rows = Vec::new();
    let mut latest: Vec<(i64, i64)> = Vec::new();
    let per_ticket = (runs / tickets).max(1);
    let mut id = 0;
    for t in 1..=tickets {
        let count = if t == tickets { runs - id } else { per_ticket };
        for a in 1..=count {
            id += 1;
            let created = now - rng.below(30 * DAY);
            let last = a == count;
            // At most one in flight per ticket (the unique index); a few percent are.
            let state = if last && rng.below(50) == 0 {
                "running"
            } else {
                ["succeeded", "succeeded", "succeeded", "failed", "canceled"][rng.below(5) as usize]
            };
            let finished = (state != "running").then(|| created + 60_000 + rng.below(3_600_000));
            run_rows.push(vec![
                Val::I(id),
                Val::I(t),
                Val::S("build".into()),
                Val::S(["claude", "codex", "gemini"][rng.below(3) as usize].into()),
                Val::I(1),
                Val::S("todo".into()),
                Val::S("in-progress".into()),
                Val::I(a),
                Val::S(state.into()),
                Val::I(created),
                Val::I(1 + rng.below(5)),
                Val::I(rng.below(200_000)),
                Val::I(rng.below(20_000)),
                Val::F(rng.below(500) as f64 / 100.0),
                if state == "succeeded" {
                    Val::I(10_000 + id)
                } else {
                    Val::N
                },
                Val::I(created),
                Val::I(created + 1000),
                match finished {
                    Some(f) => Val::I(f),
                    None => Val::N,
                },
                if state == "running" {
                    Val::S("bench-runner".into())
                } else {
                    Val::NullText
                },
                if state == "running" {
                    Val::I(now + 60_000)
                } else {
                    Val::N
                },
            ]);
            if last {
                latest.push((id, created));
            }
        }
    }
    insert_rows(
        pool,
        "runs",
        &[
            "id",
            "ticket_id",
            "workflow",
            "agent",
            "config_version",
            "pickup_status",
            "started_status",
            "attempt",
            "state",
            "not_before",
            "turns",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "pull_number",
            "created_at",
            "started_at",
            "finished_at",
            "lease_owner",
            "lease_until",
        ],
        run_rows,
    )
    .await?;

    let mut event_rows = Vec::new();
    for (run, created) in &latest {
        for seq in 1..=EVENTS_PER_LATEST_RUN {
            let data = match seq % 4 {
                0 => r#"{"kind":"message","role":"assistant","text":"Looking at the code <here>."}"#.to_owned(),
                1 => r#"{"kind":"tool_call","id":"t1","name":"edit","input":"{\"path\":\"src/lib.rs\"}"}"#.to_owned(),
                2 => r#"{"kind":"tool_result","id":"t1","output":"ok","is_error":false}"#.to_owned(),
                _ => r#"{"kind":"usage","input_tokens":100,"output_tokens":20,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.01}"#.to_owned(),
            };
            event_rows.push(vec![
                Val::I(*run),
                Val::I(seq),
                Val::I(1 + seq / 5),
                Val::I(created + seq * 1000),
                Val::S(data),
            ]);
        }
    }
    insert_rows(
        pool,
        "run_events",
        &["run_id", "seq", "turn", "at", "data"],
        event_rows,
    )
    .await?;
    // What `runs::append_events` keeps as it appends (migration 0021).
    sqlx::query(
        "INSERT INTO run_turns (run_id, turn, events, first_at, last_at) \
         SELECT run_id, turn, COUNT(*), MIN(at), MAX(at) FROM run_events GROUP BY run_id, turn",
    )
    .execute(pool)
    .await?;

    let mut comment_rows = Vec::new();
    let mut forge_id = 0;
    for t in 1..=tickets {
        let repo = (t - 1) % REPOS + 1;
        let number = (t - 1) / REPOS + 1;
        for c in 0..COMMENTS_PER_TICKET {
            forge_id += 1;
            let at = now - rng.below(30 * DAY);
            comment_rows.push(vec![
                Val::I(repo),
                Val::I(number),
                Val::I(forge_id),
                Val::S("bob".into()),
                Val::S(format!("Comment {c} with <b>markup</b>.")),
                Val::I(at),
                Val::I(at),
            ]);
        }
    }
    insert_rows(
        pool,
        "comments",
        &[
            "repo_id",
            "issue_number",
            "forge_id",
            "author",
            "body",
            "created_at",
            "updated_at",
        ],
        comment_rows,
    )
    .await?;

    let mut delivery_rows = Vec::new();
    for d in 1..=DELIVERIES {
        let at = now - rng.below(30 * DAY);
        delivery_rows.push(vec![
            Val::S("github".into()),
            Val::S(format!("delivery-{d}")),
            Val::S("issues".into()),
            Val::I(at),
            Val::S("processed".into()),
            Val::I(at + 5),
            Val::B(b"{}".to_vec()),
        ]);
    }
    insert_rows(
        pool,
        "deliveries",
        &[
            "forge",
            "delivery_id",
            "event",
            "received_at",
            "outcome",
            "processed_at",
            "body",
        ],
        delivery_rows,
    )
    .await?;
    Ok(())
}

/// CPU time this process has used (server and client threads), from `getrusage`.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` fills the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Requests `paths` in turn, `iterations` in all, from `concurrency()` viewers at once; prints
/// the latency percentiles over every request.
async fn measure(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    paths: &[String],
    iterations: usize,
) -> anyhow::Result<(Duration, Duration)> {
    if !wanted(name) {
        return Ok((Duration::ZERO, Duration::ZERO));
    }
    for path in paths.iter().take(10) {
        http.get(format!("{base}{path}"))
            .send()
            .await?
            .text()
            .await?;
    }
    let viewers = concurrency();
    let cpu_before = cpu_time();
    let mut tasks = tokio::task::JoinSet::new();
    for viewer in 0..viewers {
        let (http, base, paths) = (http.clone(), base.to_owned(), paths.to_vec());
        tasks.spawn(async move {
            let mut times = Vec::new();
            let mut bytes = 0;
            for i in (viewer..iterations).step_by(viewers) {
                let path = &paths[i % paths.len()];
                let start = Instant::now();
                let response = http.get(format!("{base}{path}")).send().await?;
                let status = response.status();
                let body = response.text().await?;
                times.push(start.elapsed());
                anyhow::ensure!(status == 200, "GET {path}: {status}: {body}");
                bytes += body.len();
            }
            Ok::<_, anyhow::Error>((times, bytes))
        });
    }
    let mut times = Vec::with_capacity(iterations);
    let mut bytes = 0;
    while let Some(done) = tasks.join_next().await {
        let (t, b) = done??;
        times.extend(t);
        bytes += b;
    }
    // What a request costs whatever else the machine runs (the client's side included).
    let cpu = (cpu_time() - cpu_before).as_secs_f64() * 1000.0 / times.len().max(1) as f64;
    times.sort();
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "{name:<28} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   CPU {cpu:>6.2} ms/request   ({} requests, {viewers} at once, {} KiB/page)",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        times.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0),
        times.len(),
        bytes / times.len().max(1) / 1024
    );
    Ok((p50, p99))
}

/// `--pages a,b`: whether to measure page `name` (every page without the option).
fn wanted(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--pages") {
        Some(i) => args
            .get(i + 1)
            .is_some_and(|list| list.split(',').any(|p| name.starts_with(p))),
        None => true,
    }
}

/// `--concurrency N`: viewers requesting at once (1).
fn concurrency() -> usize {
    arg("--concurrency", 1).max(1) as usize
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tickets = arg("--tickets", 10_000);
    let runs = arg("--runs", 100_000);
    let iterations = arg("--iterations", 300) as usize;
    let reuse = std::env::args().any(|a| a == "--reuse");
    let data_dir = tempfile::tempdir()?;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if reuse => url,
        Ok(url) if url.starts_with("postgres") => {
            bench_support::prepare_postgres(&url).await?;
            url
        }
        Ok(url) if url.starts_with("sqlite://") => {
            let path = url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            url
        }
        _ => format!("sqlite://{}/forgehand.db", data_dir.path().display()),
    };
    let env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), url.clone()),
        ("FORGEHAND_ADMIN_TOKEN".to_owned(), BENCH_TOKEN.to_owned()),
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            data_dir.path().display().to_string(),
        ),
    ]);
    let toml = "[agents.claude]\nadapter = \"claude-code\"\nmax_parallel = 4\n\
                [agents.codex]\nadapter = \"codex\"\n[agents.gemini]\nadapter = \"gemini\"\n";
    let config = ServerConfig::from_toml(toml, &env).context("config")?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    println!(
        "backend: {:?}; filling {tickets} tickets, {runs} runs …",
        store.backend()
    );
    let start = Instant::now();
    let filled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets")
        .fetch_one(store.pool())
        .await?;
    if filled > 0 {
        anyhow::ensure!(
            reuse,
            "the database holds tickets: pass --reuse to keep them"
        );
        println!("reusing {filled} tickets already there");
    } else {
        fill(store.pool(), tickets, runs).await?;
    }
    if filled > 0 {
        // Filled and analysed by an earlier run.
    } else if url.starts_with("postgres") {
        // Identity columns were given explicit ids: move the sequences past them; then
        // statistics and the visibility map, as autovacuum keeps them on a live database.
        for table in ["repositories", "tickets", "runs", "config_versions"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            ))
            .execute(store.pool())
            .await?;
        }
        sqlx::query("VACUUM ANALYZE").execute(store.pool()).await?;
        // The counter tables took one update per ticket and run in the fill's one transaction,
        // leaving hundreds of dead row versions per live row (`board_filter_counts`: 554 pages
        // for 196 rows); a live server updates them a run at a time and prunes as it goes.
        // Compacted, so pages read them as a live server would.
        sqlx::query(COUNTER_TABLES_COMPACTED)
            .execute(store.pool())
            .await?;
    } else {
        sqlx::query("ANALYZE").execute(store.pool()).await?;
    }
    println!("filled in {:.1} s", start.elapsed().as_secs_f64());

    let app = App::new(config, store.clone(), Forges::default());
    // Only the HTTP side: no runner or inbox worker competes (the data is fake).
    let router = forgehand::web::router(forgehand::web::WebState {
        app: app.clone(),
        intake: forgehand::sync::intake::Intake::start(app.clone()).0,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future(),
    );

    // The dashboard and API need the admin token, as for everyone.
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {BENCH_TOKEN}"))?,
        )]))
        .build()?;
    let mut rng = Rng(42);
    let ticket_paths: Vec<String> = (0..200)
        .map(|_| {
            let repo = 1 + rng.below(REPOS);
            let number = 1 + rng.below(tickets / REPOS);
            format!("/tickets/github/bench/repo{repo}/{number}")
        })
        .collect();
    let mut results = Vec::new();
    results.push((
        "board",
        measure(
            &http,
            &base,
            "board (all repositories)",
            &["/board".to_owned()],
            iterations,
        )
        .await?,
    ));
    results.push((
        "board filtered",
        measure(
            &http,
            &base,
            "board (repo + agent filter)",
            &["/board?repo=github%3Abench%2Frepo2&agent=codex".to_owned()],
            iterations,
        )
        .await?,
    ));
    results.push((
        "ticket",
        measure(&http, &base, "ticket page", &ticket_paths, iterations).await?,
    ));
    let run_paths: Vec<String> = (0..100)
        .map(|_| format!("/runs/{}", 1 + rng.below(runs)))
        .collect();
    measure(&http, &base, "run page", &run_paths, iterations).await?;
    measure(&http, &base, "overview", &["/".to_owned()], iterations / 3).await?;
    measure(
        &http,
        &base,
        "workflows (config)",
        &["/repos/github/bench/repo1/config".to_owned()],
        iterations / 3,
    )
    .await?;
    measure(
        &http,
        &base,
        "activity",
        &["/activity".to_owned()],
        iterations / 3,
    )
    .await?;
    measure(
        &http,
        &base,
        "deliveries",
        &["/deliveries".to_owned()],
        iterations / 3,
    )
    .await?;
    measure(
        &http,
        &base,
        "agents",
        &["/agents".to_owned()],
        iterations / 3,
    )
    .await?;

    stop.cancel();
    let _ = server.await;
    store.close().await;
    let over: Vec<&str> = results
        .iter()
        .filter(|(_, (_, p99))| *p99 > Duration::from_millis(50))
        .map(|(name, _)| *name)
        .collect();
    if over.is_empty() {
        println!("target met: board and ticket page p99 under 50 ms");
    } else {
        println!("target missed (p99 ≥ 50 ms): {}", over.join(", "));
    }
    Ok(())
}
