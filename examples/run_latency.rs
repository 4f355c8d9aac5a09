//! Benchmark: label-to-agent-start latency and the orchestrator's memory per concurrent run.
//!
//! Runs the real server in-process (SQLite by default, or `DATABASE_URL`), a sandbox forge, and
//! a repository with a few thousand commits over `--files` files. For each of N tickets it
//! delivers a signed `issues.labeled` webhook and measures from the `202` to the moment the agent
//! process starts (the agent script records its start time); the next ticket is labelled only
//! once the previous run has finished (its issue moved to `agent:in-review`) and the worktree
//! pool is refilled, so each figure is an idle pipeline's. Then it keeps M agents running at once
//! and reads the server's resident memory per run in flight.
//!
//! With `--remote`, the server only coordinates (`[runner] enabled = false`) and the agents run
//! under a `forgehand runner` process on the same machine, over loopback HTTP: the figure then
//! includes the lease, the repository bundle and the runner's clone.
//!
//! cargo run --release --example run_latency -- --tickets 50 --concurrent 20 --commits 3000 --files 10000
//! cargo build --release --bin forgehand && cargo run --release --example run_latency -- --remote

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use forgehand::app::{App, Forges};
use forgehand::config::server::ServerConfig;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::forge::signature;
use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The admin token the benchmark server runs with.
const BENCH_TOKEN: &str = "bench-admin-token-0123456789";

#[derive(Parser)]
struct Args {
    /// Tickets labelled one after the other for the latency figures.
    #[arg(long, default_value_t = 50)]
    tickets: usize,
    /// Agents kept running at once for the memory figure.
    #[arg(long, default_value_t = 20)]
    concurrent: usize,
    /// Commits in the sample repository.
    #[arg(long, default_value_t = 3000)]
    commits: usize,
    /// Files in the sample repository (a worktree checks out every one of them).
    #[arg(long, default_value_t = 200)]
    files: usize,
    /// How the agent is confined: `bwrap` or `none`.
    #[arg(long, default_value = "bwrap")]
    sandbox: String,
    /// Run the agents under a `forgehand runner` process instead of the server's built-in runner.
    #[arg(long)]
    remote: bool,
    /// The `forgehand` binary for `--remote` (default: beside the examples' folder, as Cargo
    /// builds it).
    #[arg(long)]
    forgehand_bin: Option<std::path::PathBuf>,
    /// Log each phase's duration (spans closing, `RUST_LOG` filters; default `info`) to stderr.
    #[arg(long)]
    trace: bool,
}

const SECRET: &str = "bench";

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

/// A bare repository with `commits` commits (via fast-import) and a `.forgehand/` tree.
fn make_repo(root: &Path, commits: usize, files: usize, workflow: &str) -> String {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "--initial-branch=main"]);
    let files = files.max(1);
    let mut stream = String::new();
    // The first commit adds every file; the others change one each.
    stream.push_str(
        "commit refs/heads/main\ncommitter B <b@example.com> 1699999999 +0000\ndata 5\nfiles\n",
    );
    for f in 0..files {
        let content = format!("file {f}\n");
        stream.push_str(&format!(
            "M 644 inline src/{}/file{f}.txt\ndata {}\n{content}\n",
            f % 100,
            content.len()
        ));
    }
    for i in 0..commits {
        let content = format!("line {i}\n");
        stream.push_str(&format!(
            // Commits to one branch in one stream chain up by themselves.
            "commit refs/heads/main\ncommitter B <b@example.com> {} +0000\ndata {}\nc{i}\nM 644 inline src/{}/file{}.txt\ndata {}\n{content}\n",
            1_700_000_000 + i,
            format!("c{i}").len(),
            (i % files) % 100,
            i % files,
            content.len()
        ));
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&work)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git(&work, &["checkout", "-q", "main"]);
    std::fs::create_dir_all(work.join(".forgehand/workflows")).unwrap();
    std::fs::write(work.join(".forgehand/workflows/bench.md"), workflow).unwrap();
    std::fs::write(work.join(".forgehand/config.yaml"), "max_concurrent: 200\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "forgehand config"]);
    git(root, &["clone", "-q", "--bare", "work", "origin.git"]);
    format!("file://{}", root.join("origin.git").display())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.trace {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let dir = tempfile::tempdir()?;
    // The agent's script and marks, apart from the data directory the sandbox hides.
    let tools = dir.path().join("agent");
    let marks = tools.join("marks");
    std::fs::create_dir_all(&marks)?;
    let workflow = "---\npickup: [todo]\nfinish: [in-review]\nagent: bench\nmax_turns: 1\ntimeout: 10m\nstall_timeout: 10m\n---\nDo {{ ticket.title }}\n";
    let t = Instant::now();
    let clone_url = make_repo(dir.path(), args.commits, args.files, workflow);
    println!(
        "repository with {} commits and {} files made in {:.1} s",
        args.commits,
        args.files,
        t.elapsed().as_secs_f64()
    );

    // For reference: what a worktree of this repository costs without the pool.
    let mut adds = Vec::new();
    for i in 0..3 {
        let path = dir.path().join(format!("reference-{i}"));
        let path = path.to_str().unwrap_or_default();
        let t = Instant::now();
        git(
            dir.path(),
            &[
                "--git-dir",
                "origin.git",
                "worktree",
                "add",
                "-q",
                "--detach",
                path,
                "main",
            ],
        );
        adds.push(t.elapsed().as_secs_f64() * 1e3);
        git(
            dir.path(),
            &[
                "--git-dir",
                "origin.git",
                "worktree",
                "remove",
                "--force",
                path,
            ],
        );
    }
    adds.sort_by(f64::total_cmp);
    println!(
        "git worktree add of this repository (no pool): median {:.0} ms of 3",
        adds[1]
    );

    // The agent: records when it started (ns since the epoch), then waits for `release`.
    let script = tools.join("agent.sh");
    std::fs::write(
        &script,
        "date +%s%N > \"$MARKS/start-$FORGEHAND_TICKET_NUMBER\"\nwhile [ ! -e \"$MARKS/release\" ]; do sleep 0.2; done\necho change >> bench.txt\n",
    )?;

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
        ("DATABASE_URL".to_owned(), database),
        ("FORGEHAND_ADMIN_TOKEN".to_owned(), BENCH_TOKEN.to_owned()),
        ("FORGEHAND_PUBLIC_URL".to_owned(), base.clone()),
        (
            "FORGEHAND_GITHUB_WEBHOOK_SECRET".to_owned(),
            SECRET.to_owned(),
        ),
    ]);
    let profile = format!(
        "[agents.bench]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{}\"]\nenv = {{ MARKS = \"{}\" }}\n\
         sandbox = \"{}\"\nsandbox_writable = [\"{}\"]\n",
        script.display(),
        marks.display(),
        args.sandbox,
        tools.display()
    );
    let coordinator = if args.remote {
        "[runner]\nenabled = false\n"
    } else {
        ""
    };
    let toml = format!("{profile}{coordinator}[limits]\nmax_concurrent_runs = 200\n");
    let config = ServerConfig::from_toml(&toml, &env)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let github = GithubForge::new(&sandbox.github_api_url(), GithubAuth::Token("bench".into()))?;
    let app = App::new(config, store, Forges::new(Some(Arc::new(github)), None));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(forgehand::server::run(app, listener, shutdown.clone()));
    // The dashboard and API need the admin token, as for everyone.
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {BENCH_TOKEN}"))?,
        )]))
        .build()?;
    let _runner = if args.remote {
        Some(start_runner(&args, &http, &base, dir.path(), &profile).await?)
    } else {
        None
    };
    let repository = json!({"name": "app", "full_name": "bench/app", "owner": {"login": "bench"},
        "default_branch": "main", "clone_url": clone_url, "html_url": "https://example.test/bench/app"});

    let post = |event: &'static str, id: String, body: serde_json::Value| {
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
    // The push that syncs the config, then wait for version 1.
    post("push", "push-1".into(), json!({"ref": "refs/heads/main", "after": "x", "commits": [{"id": "x", "added": [".forgehand/workflows/bench.md"], "removed": [], "modified": []}], "repository": repository})).await;
    let versions = format!("{base}/api/v1/repos/github/bench/app/config-versions");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http.get(&versions).send().await?;
        if r.status() == 200 && r.json::<serde_json::Value>().await?["active"] == 1 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "config never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let label = |n: u64| {
        let issue = model.issue("bench/app", n).unwrap();
        json!({"action": "labeled", "repository": repository, "sender": {"login": "alice"},
            "issue": {"number": n, "title": issue.title, "body": "", "state": "open", "user": {"login": "alice"},
                "labels": [{"name": "agent:todo"}], "updated_at": issue.updated_at.to_rfc3339(), "html_url": ""}})
    };
    let wait_start = |n: u64| {
        let path = marks.join(format!("start-{n}"));
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Ok(text) = std::fs::read_to_string(&path)
                    && let Ok(ns) = text.trim().parse::<i128>()
                {
                    return ns;
                }
                assert!(Instant::now() < deadline, "agent for #{n} never started");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    // Idle: the run finished (its issue moved on) and the worktree pool is full again.
    let pool = dir.path().join("data/worktrees/github/bench/app/.pool");
    let remote = args.remote;
    let wait_idle = |n: u64| {
        let model = model.clone();
        let pool = pool.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let done = model
                    .issue("bench/app", n)
                    .is_some_and(|i| i.labels.iter().any(|l| l == "agent:in-review"));
                let ready = std::fs::read_dir(&pool)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .filter(|e| e.path().extension().is_some_and(|x| x == "ready"))
                            .count()
                    })
                    .unwrap_or(0);
                // A remote run takes no worktree from the server's pool.
                if done && (remote || ready >= forgehand::run::worktree::pool::SIZE) {
                    return;
                }
                assert!(Instant::now() < deadline, "the run of #{n} never finished");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let now_ns = || chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as i128;

    // Latency: one ticket at a time, so each measures an idle pipeline.
    std::fs::write(marks.join("release"), "")?;
    let mut latencies = Vec::new();
    for i in 0..args.tickets {
        let n = model.open_issue(
            "bench/app",
            &format!("Task {i}"),
            "",
            &["agent:todo"],
            "alice",
        );
        let body = label(n);
        post("issues", format!("label-{n}"), body).await;
        let acked = now_ns();
        tracing::info!(number = n, "labelled: 202 received");
        let started = wait_start(n).await;
        latencies.push((started - acked) as f64 / 1e6);
        wait_idle(n).await;
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "label → agent start{} over {} tickets: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        if args.remote {
            " (remote runner on loopback)"
        } else {
            ""
        },
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );

    // Memory: M agents held running at once.
    std::fs::remove_file(marks.join("release"))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib();
    let mut held = Vec::new();
    for i in 0..args.concurrent {
        let n = model.open_issue(
            "bench/app",
            &format!("Held {i}"),
            "",
            &["agent:todo"],
            "alice",
        );
        post("issues", format!("label-{n}"), label(n)).await;
        held.push(n);
    }
    for n in &held {
        wait_start(*n).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = rss_kib();
    println!(
        "orchestrator memory: {} KiB idle, {} KiB with {} runs in flight: {:.2} MiB per run (agents' own memory excluded)",
        idle,
        busy,
        args.concurrent,
        (busy.saturating_sub(idle)) as f64 / 1024.0 / args.concurrent as f64
    );
    std::fs::write(marks.join("release"), "")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    shutdown.cancel();
    server.await??;
    Ok(())
}

/// The runner process, killed when the benchmark ends.
struct RunnerProcess(std::process::Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Registers a runner through the admin API, starts `forgehand runner` with the agent's
/// profile, and waits until the server heard from it (a claim counts on that).
async fn start_runner(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    dir: &Path,
    profile: &str,
) -> anyhow::Result<RunnerProcess> {
    let created: forgehand::web::api::types::RunnerCreated = http
        .post(format!("{base}/api/v1/runners"))
        .json(&json!({"name": "bench-runner"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let config = dir.join("runner.toml");
    std::fs::write(&config, profile)?;
    let bin = match &args.forgehand_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("forgehand"))
            .ok_or_else(|| anyhow::anyhow!("no folder above the example's binary"))?,
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it (cargo build --release --bin forgehand) or pass --forgehand-bin",
        bin.display()
    );
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["runner", "--server", base, "--capacity"])
        .arg((args.concurrent + 1).to_string())
        .arg("--dir")
        .arg(dir.join("runner"))
        .args(["--sandbox", &args.sandbox])
        .env("FORGEHAND_RUNNER_TOKEN", &created.token)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let runner = RunnerProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: Vec<forgehand::web::api::types::Runner> = http
            .get(format!("{base}/api/v1/runners"))
            .send()
            .await?
            .json()
            .await?;
        if list.iter().any(|r| r.last_contact.is_some()) {
            return Ok(runner);
        }
        anyhow::ensure!(Instant::now() < deadline, "the runner never called in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
