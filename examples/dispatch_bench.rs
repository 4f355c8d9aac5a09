//! Benchmark: dispatch of queued runs to runners on other machines (docs/runners.md).
//!
//! Runs a coordinator-only server in-process (`[runner] enabled = false`; SQLite by default, or
//! `DATABASE_URL`) against the sandbox forge, registers `--runners` runners through the admin
//! API and lets each announce itself once (a claim needs a runner heard from). Then it opens
//! `--runs` labelled tickets and waits until every one has a queued run. Then every simulated
//! runner long-polls `POST lease` over HTTP (capacity 1) and, on each offer, ends the run at
//! once with `POST fail` (`retry: false`: no bundle, no push).
//!
//! Prints leases per second (offers ÷ time from the first lease request to the last offer) and
//! p50/p90/p99/max of queued → leased (the run's `created_at` to the offer's arrival).
//!
//! cargo run --release --example dispatch_bench -- --runs 1000 --runners 50

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/forgehand.db", dir.path().display()));
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

    // The queue: N labelled tickets, each claimed into a queued run.
    let t = Instant::now();
    for i in 0..args.runs {
        let n = model.open_issue(
            "bench/app",
            &format!("Task {i}"),
            "",
            &["agent:todo"],
            "alice",
        );
        let issue = model
            .issue("bench/app", n)
            .ok_or_else(|| anyhow::anyhow!("issue {n} vanished"))?;
        let body = json!({"action": "labeled", "repository": repository, "sender": {"login": "alice"},
            "issue": {"number": n, "title": issue.title, "body": "", "state": "open", "user": {"login": "alice"},
                "labels": [{"name": "agent:todo"}], "updated_at": issue.updated_at.to_rfc3339(), "html_url": ""}});
        post("issues", format!("label-{n}"), body).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
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
    println!(
        "{} runs queued in {:.1} s; {} runners leasing",
        args.runs,
        t.elapsed().as_secs_f64(),
        args.runners
    );

    // Dispatch: every runner leases and ends what it is offered until every run was offered.
    let offered = Arc::new(AtomicUsize::new(0));
    let started_ms = now_ms();
    let mut tasks = Vec::new();
    for token in tokens {
        let http = runner_http.clone();
        let base = base.clone();
        let offered = offered.clone();
        let total = args.runs;
        tasks.push(tokio::spawn(async move {
            let mut got: Vec<(i64, i64, f64, f64)> = Vec::new();
            while offered.load(Ordering::SeqCst) < total {
                let asked = Instant::now();
                let r = http
                    .post(format!("{base}/api/v1/runner/lease"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"labels": [], "capacity": 1, "version": "bench", "wait_ms": 1000}),
                    )
                    .send()
                    .await?;
                if r.status() == 204 {
                    continue;
                }
                anyhow::ensure!(r.status() == 200, "lease answered {}", r.status());
                let offer: Offer = r.json().await?;
                let arrived = now_ms();
                let lease_trip = asked.elapsed().as_secs_f64() * 1e3;
                offered.fetch_add(1, Ordering::SeqCst);
                let ending = Instant::now();
                let r = http
                    .post(format!("{base}/api/v1/runner/runs/{}/fail", offer.run_id))
                    .bearer_auth(&token)
                    .json(
                        &json!({"generation": offer.generation, "error": "bench", "retry": false}),
                    )
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "fail answered {}", r.status());
                got.push((
                    offer.run_id,
                    arrived,
                    lease_trip,
                    ending.elapsed().as_secs_f64() * 1e3,
                ));
            }
            Ok::<_, anyhow::Error>(got)
        }));
    }
    let mut arrivals: HashMap<i64, i64> = HashMap::new();
    let (mut lease_trips, mut fail_trips) = (Vec::new(), Vec::new());
    for task in tasks {
        let got = task.await??;
        for (run, at, lease_trip, fail_trip) in got {
            lease_trips.push(lease_trip);
            fail_trips.push(fail_trip);
            anyhow::ensure!(
                arrivals.insert(run, at).is_none(),
                "run {run} offered twice"
            );
        }
    }
    let created: Vec<(i64, i64)> = sqlx::query_as("SELECT id, created_at FROM runs")
        .fetch_all(reader.pool())
        .await?;
    let mut latencies: Vec<f64> = created
        .iter()
        .filter_map(|(id, at)| arrivals.get(id).map(|offer| (offer - at) as f64))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last_ms = arrivals.values().max().copied().unwrap_or_default();
    let window = Duration::from_millis((last_ms - started_ms).max(1) as u64);
    let backend = if database.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "{backend}: {} runs to {} runners: {:.0} leases/s; queued → leased p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        arrivals.len(),
        args.runners,
        arrivals.len() as f64 / window.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    lease_trips.sort_by(f64::total_cmp);
    fail_trips.sort_by(f64::total_cmp);
    println!(
        "  round trips: the lease that got an offer p50 {:.0} ms, p99 {:.0} ms; the fail p50 {:.0} ms, p99 {:.0} ms",
        percentile(&lease_trips, 0.5),
        percentile(&lease_trips, 0.99),
        percentile(&fail_trips, 0.5),
        percentile(&fail_trips, 0.99)
    );
    shutdown.cancel();
    server.await??;
    Ok(())
}
