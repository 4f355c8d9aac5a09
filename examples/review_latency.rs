//! Benchmark: review-to-done latency (approval delivery → merged → `done`) and the forge
//! requests one ticket costs over its whole lifecycle (label → run → pull request → review →
//! merge → done).
//!
//! Runs the real server in-process (SQLite by default, or `DATABASE_URL`) against a sandbox
//! forge. Reviews are polled only every 10 minutes, so what moves a ticket is the
//! `pull_request_review` delivery. For each of N tickets, one after the other: a signed
//! `issues.labeled` delivery, wait for `in-review`, an approval on the forge and its delivery,
//! then the time from that delivery's `202` until the ticket reads `done`. The sandbox records
//! every API request, so the requests per ticket are counted from the label to `done`.
//!
//! cargo run --release --example review_latency -- --tickets 20

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use forgehand::app::{App, Forges};
use forgehand::config::server::ServerConfig;
use forgehand::forge::ReviewState;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::forge::signature;
use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BENCH_TOKEN: &str = "bench-admin-token-0123456789";
const SECRET: &str = "bench";
const REPO: &str = "bench/app";

#[derive(Parser)]
struct Args {
    /// Tickets taken through their lifecycle one after the other.
    #[arg(long, default_value_t = 20)]
    tickets: usize,
    /// How the agent is confined: `bwrap` or `none`.
    #[arg(long, default_value = "bwrap")]
    sandbox: String,
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "B")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "B")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// A bare repository with a `.forgehand/` tree; returns its clone URL.
fn make_repo(root: &Path, workflow: &str) -> String {
    let work = root.join("work");
    std::fs::create_dir_all(work.join(".forgehand/workflows")).unwrap();
    git(&work, &["init", "-q", "--initial-branch=main"]);
    std::fs::write(work.join(".forgehand/workflows/bench.md"), workflow).unwrap();
    std::fs::write(work.join(".forgehand/config.yaml"), "max_concurrent: 5\n").unwrap();
    std::fs::write(work.join("README.md"), "bench\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "forgehand config"]);
    git(root, &["clone", "-q", "--bare", "work", "origin.git"]);
    format!("file://{}", root.join("origin.git").display())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let tools = dir.path().join("agent");
    std::fs::create_dir_all(&tools)?;
    let workflow = "---\npickup: [todo]\nfinish: [in-review]\nagent: bench\nmax_turns: 1\n\
                    timeout: 10m\nstall_timeout: 10m\n\
                    merge: { approvals: 1, method: squash, auto: true }\n---\nDo {{ ticket.title }}\n";
    let clone_url = make_repo(dir.path(), workflow);
    let script = tools.join("agent.sh");
    std::fs::write(
        &script,
        "cat > /dev/null\necho change >> \"bench-$FORGEHAND_TICKET_NUMBER.txt\"\n",
    )?;

    let model = ForgeModel::new();
    model.add_repo("bench", "app", "main", &clone_url);
    model.set_permission(REPO, "alice", Permission::Write);
    let sandbox = sandbox::serve(model.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/forgehand.db", dir.path().display()));
    let env = BTreeMap::from([
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        ("DATABASE_URL".to_owned(), database),
        ("FORGEHAND_ADMIN_TOKEN".to_owned(), BENCH_TOKEN.to_owned()),
        ("FORGEHAND_PUBLIC_URL".to_owned(), base.clone()),
        (
            "FORGEHAND_GITHUB_WEBHOOK_SECRET".to_owned(),
            SECRET.to_owned(),
        ),
    ]);
    let toml = format!(
        "[agents.bench]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{}\"]\n\
         sandbox = \"{}\"\nsandbox_writable = [\"{}\"]\n[limits]\nreview_poll = \"10m\"\n",
        script.display(),
        args.sandbox,
        tools.display()
    );
    let config = ServerConfig::from_toml(&toml, &env)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let github = GithubForge::new(&sandbox.github_api_url(), GithubAuth::Token("bench".into()))?;
    let app = App::new(config, store, Forges::new(Some(Arc::new(github)), None));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(forgehand::server::run(app, listener, shutdown.clone()));
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {BENCH_TOKEN}"))?,
        )]))
        .build()?;
    let repository = json!({"name": "app", "full_name": REPO, "owner": {"login": "bench"},
        "default_branch": "main", "clone_url": clone_url, "html_url": "https://example.test/bench/app"});

    let post = |event: &'static str, id: String, body: Value| {
        let http = http.clone();
        let url = format!("{base}/webhooks/github");
        async move {
            let body = serde_json::to_vec(&body).unwrap();
            let sig = format!("sha256={}", signature::sign(SECRET.as_bytes(), &body));
            let r = http
                .post(url)
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", id)
                .header("X-Hub-Signature-256", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    };
    post("push", "push-1".into(), json!({"ref": "refs/heads/main", "after": "x", "commits": [{"id": "x", "added": [".forgehand/workflows/bench.md"], "removed": [], "modified": []}], "repository": repository})).await;
    let versions = format!("{base}/api/v1/repos/github/bench/app/config-versions");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http.get(&versions).send().await?;
        if r.status() == 200 && r.json::<Value>().await?["active"] == 1 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "config never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let ticket = |n: u64| {
        let http = http.clone();
        let url = format!("{base}/api/v1/tickets/github/bench/app/{n}");
        async move {
            match http.get(url).send().await {
                Ok(r) if r.status() == 200 => r.json::<Value>().await.unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
    };
    let wait_status = |n: u64, status: &'static str, poll: Duration| {
        let ticket = &ticket;
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let t = ticket(n).await;
                if t["status"] == status {
                    return t;
                }
                assert!(
                    Instant::now() < deadline,
                    "#{n} never reached {status}: {t}"
                );
                tokio::time::sleep(poll).await;
            }
        }
    };

    let mut latencies = Vec::new();
    let mut requests = Vec::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..args.tickets {
        let before = model.requests().len();
        let n = model.open_issue(REPO, &format!("Task {i}"), "", &["agent:todo"], "alice");
        let issue = model.issue(REPO, n).expect("just opened");
        post(
            "issues",
            format!("label-{n}"),
            json!({"action": "labeled", "repository": repository,
            "sender": {"login": "alice"}, "label": {"name": "agent:todo"},
            "issue": {"number": n, "title": issue.title, "body": "", "state": "open",
                "user": {"login": "alice"}, "labels": [{"name": "agent:todo"}],
                "updated_at": issue.updated_at.to_rfc3339(), "html_url": ""}}),
        )
        .await;
        let t = wait_status(n, "in-review", Duration::from_millis(20)).await;
        let pull = t["runs"][0]["pull_number"]
            .as_u64()
            .expect("a pull request");
        let head = model.pull(REPO, pull).expect("the pull request").head_sha;
        model.add_review_on(REPO, pull, ("alice", ReviewState::Approved, "LGTM"), &head);
        post(
            "pull_request_review",
            format!("review-{n}"),
            json!({"action": "submitted",
            "repository": repository, "sender": {"login": "alice"},
            "review": {"id": n, "state": "approved", "commit_id": head, "user": {"login": "alice"}},
            "pull_request": {"number": pull, "head": {"sha": head}}}),
        )
        .await;
        let acked = Instant::now();
        wait_status(n, "done", Duration::from_millis(2)).await;
        latencies.push(acked.elapsed().as_secs_f64() * 1000.0);
        let made = model.requests();
        requests.push(made.len() - before);
        for r in &made[before..] {
            *by_kind.entry(r.method.clone()).or_default() += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "approval delivery → done over {} tickets: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies.last().copied().unwrap_or_default()
    );
    requests.sort_unstable();
    let mean = requests.iter().sum::<usize>() as f64 / requests.len().max(1) as f64;
    println!(
        "forge requests per ticket (label → done): mean {mean:.1}, min {}, max {}; by method over all: {by_kind:?}",
        requests.first().copied().unwrap_or_default(),
        requests.last().copied().unwrap_or_default(),
    );
    shutdown.cancel();
    server.await??;
    Ok(())
}
