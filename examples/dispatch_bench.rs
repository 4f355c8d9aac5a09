//! Benchmark: dispatch of queued runs to runners on other machines (docs/runners.md).
//!
//! Runs a coordinator-only server in-process (`[runner] enabled = false`; SQLite in a temporary
//! folder by default, or PostgreSQL at `DATABASE_URL`, whose database is dropped and recreated)
//! against the sandbox forge, registers `--runners` runners through the admin API and lets each
//! announce itself once (a claim needs a runner heard from). Then it opens `--runs` labelled
//! tickets and waits until every one has a queued run. Then every simulated runner long-polls
//! `POST lease` over HTTP (capacity 1, 25 s as `forgehand runner` does) and, on each offer, ends
//! the run at once with `POST fail` (`retry: false`: no bundle, no push).
//!
//! Three phases, each printed:
//! - **backlog**: the `--runs` queued runs drained: leases per second (offers ÷ time from the
//!   first lease request to the last offer) and queued → leased p50/p90/p99/max (the run's
//!   `created_at` to the offer's arrival, mostly time waiting in the queue);
//! - **idle**: `--idle-secs` with nothing queued and every runner waiting: lease answers per
//!   second and the process's CPU (what idle runners cost the server);
//! - **trickle**: `--trickle` tickets labelled one at a time, `--gap-ms` apart, while the
//!   runners wait: queued → leased of each (the dispatch latency itself).
//!
//! CPU is this process's (server, client, SQLite) and its git children's, from `getrusage`;
//! a PostgreSQL server's own is not in it.
//!
//! ```text
//! cargo run --release --example dispatch_bench -- --runs 1000 --runners 50
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/forgehand_dispatch \
//!     cargo run --release --example dispatch_bench -- --runs 1000 --runners 50
//! ```

mod bench_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use forgehand::app::{App, Forges};
use forgehand::config::server::ServerConfig;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::forge::signature;
use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::Store;
use forgehand::web::api::types::RunnerCreated;
use forgehand::web::api::types::runner::Offer;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const BENCH_TOKEN: &str = "bench-admin-token-0123456789";
const SECRET: &str = "bench";

#[derive(Parser)]
struct Args {
    /// Runs queued before the runners start leasing.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Simulated runners, each of capacity 1.
    #[arg(long, default_value_t = 50)]
    runners: usize,
    /// Seconds with nothing queued, every runner waiting, after the backlog.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Tickets labelled one at a time after the idle phase.
    #[arg(long, default_value_t = 100)]
    trickle: usize,
    /// Milliseconds between two trickled tickets.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "B")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "B")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .status()?;
    anyhow::ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

/// A bare repository with one commit carrying the workflow.
fn make_repo(root: &Path, workflow: &str) -> anyhow::Result<String> {
    let work = root.join("work");
    std::fs::create_dir_all(work.join(".forgehand/workflows"))?;
    git(&work, &["init", "-q", "--initial-branch=main"])?;
    std::fs::write(work.join("README.md"), "bench\n")?;
    std::fs::write(work.join(".forgehand/workflows/bench.md"), workflow)?;
    std::fs::write(
        work.join(".forgehand/config.yaml"),
        "max_concurrent: 100000\n",
    )?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-qm", "forgehand config"])?;
    git(root, &["clone", "-q", "--bare", "work", "origin.git"])?;
    Ok(format!("file://{}", root.join("origin.git").display()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// CPU time of this process (server, client, SQLite) and of its children that ended (git).
fn cpu_time() -> Duration {
    let of = |who| {
        // SAFETY: `getrusage` fills the struct it is given and reads nothing else.
        let usage = unsafe {
            let mut usage = std::mem::zeroed::<libc::rusage>();
            libc::getrusage(who, &mut usage);
            usage
        };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        time(usage.ru_utime) + time(usage.ru_stime)
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// What the simulated runners saw, shared by their tasks.
#[derive(Default)]
struct Seen {
    offered: AtomicUsize,
    /// Lease requests answered 204 (nothing within the wait).
    empty: AtomicUsize,
    stop: AtomicBool,
    /// Run id → when its offer arrived (ms).
    arrivals: Mutex<HashMap<i64, i64>>,
    /// Round trips (ms) of the lease requests that got an offer, and of the `fail`s.
    lease_trips: Mutex<Vec<f64>>,
    fail_trips: Mutex<Vec<f64>>,
}

/// One simulated runner: leases, ends each offer at once with `fail`, until told to stop.
async fn simulate(
    http: reqwest::Client,
    base: String,
    token: String,
    seen: Arc<Seen>,
) -> anyhow::Result<()> {
    while !seen.stop.load(Ordering::SeqCst) {
        let asked = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/runner/lease"))
            .bearer_auth(&token)
            .json(&json!({"labels": [], "capacity": 1, "version": "bench", "wait_ms": 25_000}))
            .send()
            .await;
        let r = match r {
            Ok(r) => r,
            // The server stopped under a waiting request.
            Err(_) if seen.stop.load(Ordering::SeqCst) => break,
            Err(e) => return Err(e.into()),
        };
        if r.status() == 204 {
            seen.empty.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        anyhow::ensure!(r.status() == 200, "lease answered {}", r.status());
        let offer: Offer = r.json().await?;
        let arrived = now_ms();
        let lease_trip = asked.elapsed().as_secs_f64() * 1e3;
        let ending = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/runner/runs/{}/fail", offer.run_id))
            .bearer_auth(&token)
            .json(&json!({"generation": offer.generation, "error": "bench", "retry": false}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "fail answered {}", r.status());
        let fail_trip = ending.elapsed().as_secs_f64() * 1e3;
        let twice = lock(&seen.arrivals).insert(offer.run_id, arrived).is_some();
        anyhow::ensure!(!twice, "run {} offered twice", offer.run_id);
        lock(&seen.lease_trips).push(lease_trip);
        lock(&seen.fail_trips).push(fail_trip);
        seen.offered.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `n` offers in all arrived.
async fn offers(seen: &Seen, n: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while seen.offered.load(Ordering::SeqCst) < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} runs offered",
            seen.offered.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// p50/p90/p99/max of queued → leased of `runs` (id → created_at).
fn queued_to_leased(seen: &Seen, runs: &[(i64, i64)]) -> String {
    let arrivals = lock(&seen.arrivals);
    let mut latencies: Vec<f64> = runs
        .iter()
        .filter_map(|(id, at)| arrivals.get(id).map(|offer| (offer - at) as f64))
        .collect();
    latencies.sort_by(f64::total_cmp);
    format!(
        "queued → leased p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let workflow = "---\npickup: [todo]\nfinish: [in-review]\nagent: bench\nmax_turns: 1\n---\nDo {{ ticket.title }}\n";
    let clone_url = make_repo(dir.path(), workflow)?;

    let model = ForgeModel::new();
    model.add_repo("bench", "app", "main", &clone_url);
    model.set_permission("bench/app", "alice", Permission::Write);
    let sandbox = sandbox::serve(model.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let database = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            bench_support::prepare_postgres(&url).await?;
            url
        }
        _ => format!("sqlite://{}/forgehand.db", dir.path().display()),
    };
    let env = std::collections::BTreeMap::from([
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        ("DATABASE_URL".to_owned(), database.clone()),
        ("FORGEHAND_ADMIN_TOKEN".to_owned(), BENCH_TOKEN.to_owned()),
        ("FORGEHAND_PUBLIC_URL".to_owned(), base.clone()),
        (
            "FORGEHAND_GITHUB_WEBHOOK_SECRET".to_owned(),
            SECRET.to_owned(),
        ),
    ]);
    let toml = "[agents.bench]\nadapter = \"command\"\ncommand = \"true\"\n\
                [runner]\nenabled = false\n[limits]\nmax_concurrent_runs = 100000\n";
    let config = ServerConfig::from_toml(toml, &env)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    // The bench's own connection, to count queued runs and read their creation times.
    let reader = Store::connect(&config.database_url).await?;
    let github = GithubForge::new(&sandbox.github_api_url(), GithubAuth::Token("bench".into()))?;
    let app = App::new(config, store, Forges::new(Some(Arc::new(github)), None));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(forgehand::server::run(app, listener, shutdown.clone()));
    let admin = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {BENCH_TOKEN}"))?,
        )]))
        .build()?;
    let repository = json!({"name": "app", "full_name": "bench/app", "owner": {"login": "bench"},
        "default_branch": "main", "clone_url": clone_url, "html_url": "https://example.test/bench/app"});
    let post = |event: &'static str, id: String, body: serde_json::Value| {
        let http = admin.clone();
        let url = format!("{base}/webhooks/github");
        async move {
            let body = serde_json::to_vec(&body)?;
            let sig = format!("sha256={}", signature::sign(SECRET.as_bytes(), &body));
            let r = http
                .post(url)
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", id)
                .header("X-Hub-Signature-256", sig)
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 202, "webhook answered {}", r.status());
            Ok(())
        }
    };
    post("push", "push-1".into(), json!({"ref": "refs/heads/main", "after": "x", "commits": [{"id": "x", "added": [".forgehand/workflows/bench.md"], "removed": [], "modified": []}], "repository": repository})).await?;
    let versions = format!("{base}/api/v1/repos/github/bench/app/config-versions");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = admin.get(&versions).send().await?;
        if r.status() == 200 && r.json::<serde_json::Value>().await?["active"] == 1 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "config never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The runners: registered, and heard from once (a claim counts on a live runner).
    let runner_http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.runners)
        .build()?;
    let lease_url = format!("{base}/api/v1/runner/lease");
    let mut tokens = Vec::new();
    for i in 0..args.runners {
        let created: RunnerCreated = admin
            .post(format!("{base}/api/v1/runners"))
            .json(&json!({ "name": format!("bench-{i}") }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let r = runner_http
            .post(&lease_url)
            .bearer_auth(&created.token)
            .json(&json!({"labels": [], "capacity": 1, "version": "bench", "wait_ms": 0}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 204, "announce answered {}", r.status());
        tokens.push(created.token);
    }

    // Labels a new ticket: the server claims it into a queued run.
    let label = |i: usize| {
        let n = model.open_issue(
            "bench/app",
            &format!("Task {i}"),
            "",
            &["agent:todo"],
            "alice",
        );
        let issue = model.issue("bench/app", n);
        let post = &post;
        let repository = &repository;
        async move {
            let issue = issue.ok_or_else(|| anyhow::anyhow!("issue {n} vanished"))?;
            let body = json!({"action": "labeled", "repository": repository, "sender": {"login": "alice"},
                "issue": {"number": n, "title": issue.title, "body": "", "state": "open", "user": {"login": "alice"},
                    "labels": [{"name": "agent:todo"}], "updated_at": issue.updated_at.to_rfc3339(), "html_url": ""}});
            post("issues", format!("label-{n}"), body).await
        }
    };
    let queued_runs = || async {
        let runs: Vec<(i64, i64)> = sqlx::query_as("SELECT id, created_at FROM runs ORDER BY id")
            .fetch_all(reader.pool())
            .await?;
        Ok::<_, anyhow::Error>(runs)
    };

    // The backlog: N labelled tickets, each claimed into a queued run.
    let t = Instant::now();
    for i in 0..args.runs {
        label(i).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE state = 'queued'")
            .fetch_one(reader.pool())
            .await?;
        if queued as usize >= args.runs {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {queued} runs queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backend = if database.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "{backend}: {} runs queued in {:.1} s; {} runners leasing",
        args.runs,
        t.elapsed().as_secs_f64(),
        args.runners
    );

    // Backlog: every runner leases and ends what it is offered until every run was offered.
    let seen = Arc::new(Seen::default());
    let started_ms = now_ms();
    let cpu = cpu_time();
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            tokio::spawn(simulate(
                runner_http.clone(),
                base.clone(),
                token,
                seen.clone(),
            ))
        })
        .collect();
    offers(&seen, args.runs, Duration::from_secs(1800)).await?;
    let cpu = cpu_time().saturating_sub(cpu);
    let backlog = queued_runs().await?;
    let last_ms = lock(&seen.arrivals)
        .values()
        .max()
        .copied()
        .unwrap_or_default();
    let window = Duration::from_millis((last_ms - started_ms).max(1) as u64);
    println!(
        "backlog: {} runs to {} runners: {:.1} leases/s; {}; CPU {:.1} ms per lease (and fail)",
        args.runs,
        args.runners,
        args.runs as f64 / window.as_secs_f64(),
        queued_to_leased(&seen, &backlog),
        cpu.as_secs_f64() * 1e3 / args.runs.max(1) as f64
    );
    let trips = |m: &Mutex<Vec<f64>>| {
        let mut v = lock(m).clone();
        v.sort_by(f64::total_cmp);
        format!(
            "p50 {:.0} ms, p99 {:.0} ms",
            percentile(&v, 0.5),
            percentile(&v, 0.99)
        )
    };
    println!(
        "  round trips: the lease that got an offer {}; the fail {}",
        trips(&seen.lease_trips),
        trips(&seen.fail_trips)
    );

    // Idle: nothing queued, every runner waiting.
    if args.idle_secs > 0 {
        // The last fails' wake-ups (claim passes, the forge's labels) settle first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (empty, cpu) = (seen.empty.load(Ordering::SeqCst), cpu_time());
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let cpu = cpu_time().saturating_sub(cpu);
        let answers = seen.empty.load(Ordering::SeqCst) - empty;
        println!(
            "idle: {} runners waiting {} s: {:.1} lease answers/s, CPU {:.0} ms/s",
            args.runners,
            args.idle_secs,
            answers as f64 / args.idle_secs as f64,
            cpu.as_secs_f64() * 1e3 / args.idle_secs as f64
        );
    }

    // Trickle: one ticket at a time while the runners wait.
    if args.trickle > 0 {
        let before = lock(&seen.arrivals).len();
        for i in 0..args.trickle {
            label(args.runs + i).await?;
            tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        }
        offers(&seen, before + args.trickle, Duration::from_secs(600)).await?;
        let trickled: Vec<(i64, i64)> = queued_runs()
            .await?
            .into_iter()
            .filter(|(id, _)| !backlog.iter().any(|(b, _)| b == id))
            .collect();
        println!(
            "trickle: {} tickets {} ms apart, runners waiting: {}",
            trickled.len(),
            args.gap_ms,
            queued_to_leased(&seen, &trickled)
        );
    }

    seen.stop.store(true, Ordering::SeqCst);
    shutdown.cancel();
    server.await??;
    for task in tasks {
        task.await??;
    }
    Ok(())
}
