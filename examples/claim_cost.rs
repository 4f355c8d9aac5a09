//! What claim passes cost while tickets wait: a database with `--tickets` open tickets in a
//! status no workflow picks up (backlog), `--events` issue changes a second (each a newer
//! snapshot of a random ticket, as a webhook delivery mirrors it) and a claim pass every
//! 100 ms (the engine's fastest pace while webhooks flow), for `--seconds`.
//!
//! Two modes, same load: `every` evaluates every waiting ticket each pass (what each pass did
//! before passes tracked changes: `claim::claim_ready`), `changed` is the server's
//! `claim::Claimer`, which evaluates the tickets marked since its last pass.
//!
//! ```text
//! cargo run --release --example claim_cost -- --tickets 200 --events 20
//! cargo run --release --example claim_cost -- --tickets 200 --events 0
//! ```
//!
//! Prints, per mode: passes, tickets evaluated, and the process's CPU time (user + system) as
//! a share of one core.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use forgehand::app::{App, Forges};
use forgehand::config::repo::{content_hash, read_dir};
use forgehand::config::server::ServerConfig;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::engine::claim::{self, Claimer};
use forgehand::forge::{IssueSnapshot, IssueState, RepoInfo};
use forgehand::store::{Store, config_versions, repos, tickets};

const PASS_EVERY: Duration = Duration::from_millis(100);

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time this process used so far (user + system).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn snapshot(number: u64, version: i64) -> IssueSnapshot {
    IssueSnapshot {
        number,
        title: format!("Later {number}"),
        body: format!("Edit {version}"),
        state: IssueState::Open,
        labels: vec!["agent:backlog".to_owned()],
        author: "alice".to_owned(),
        html_url: String::new(),
        updated_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + version * 1000)
            .unwrap_or_default(),
        comments: None,
    }
}

/// A fresh database with the tickets; returns the app and the repository's id.
async fn setup(dir: &Path, tickets_n: u64) -> anyhow::Result<(App, i64)> {
    let url = format!("sqlite://{}/forgehand.db", dir.display());
    let env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), url),
        (
            "FORGEHAND_ADMIN_TOKEN".to_owned(),
            "bench-admin-token-0123456789".to_owned(),
        ),
        ("FORGEHAND_DATA_DIR".to_owned(), dir.display().to_string()),
    ]);
    let config = ServerConfig::from_toml("", &env).context("config")?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", "app"),
        default_branch: "main".to_owned(),
        clone_url: String::new(),
        html_url: String::new(),
    };
    let files = read_dir(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/basic"
    )))?;
    let repo_id = {
        let mut conn = store.pool().acquire().await?;
        let repo_id = repos::upsert(&mut conn, &info).await?;
        config_versions::insert(&mut conn, repo_id, "0000", &content_hash(&files), &files).await?;
        for number in 1..=tickets_n {
            tickets::mirror_issue(
                &mut conn,
                repo_id,
                &snapshot(number, 0),
                Some("backlog"),
                false,
                tickets::Source::Delivery,
            )
            .await?;
        }
        repo_id
    };
    Ok((App::new(config, store, Forges::default()), repo_id))
}

async fn measure(mode: &str, tickets_n: u64, events: u64, seconds: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (app, repo_id) = setup(dir.path(), tickets_n).await?;
    let mut claimer = Claimer::default();
    // The first pass after a start evaluates everything, in both modes: not measured.
    claimer.pass(&app).await?;
    let evaluated_before = app.metrics.claim_evaluations();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut passes = 0u64;
    let mut changes = 0u64;
    let mut next_event = Duration::ZERO;
    let event_gap = (events > 0).then(|| Duration::from_secs(1) / events as u32);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let pass_start = Instant::now();
        // The events due by now, as the inbox would mirror them.
        if let Some(gap) = event_gap {
            let mut conn = app.store.pool().acquire().await?;
            while next_event <= started.elapsed() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                changes += 1;
                let number = seed % tickets_n + 1;
                let issue = snapshot(number, changes as i64);
                tickets::mirror_issue(
                    &mut conn,
                    repo_id,
                    &issue,
                    Some("backlog"),
                    false,
                    tickets::Source::Delivery,
                )
                .await?;
                next_event += gap;
            }
        }
        match mode {
            "every" => {
                claim::claim_ready(&app).await?;
            }
            _ => {
                claimer.pass(&app).await?;
            }
        }
        passes += 1;
        if let Some(rest) = PASS_EVERY.checked_sub(pass_start.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    println!(
        "| {mode} | {tickets_n} | {events} | {passes} | {} | {:.1} % |",
        app.metrics.claim_evaluations() - evaluated_before,
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
    app.store.close().await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let tickets_n = arg("--tickets", 200).max(1);
    let events = arg("--events", 20);
    let seconds = arg("--seconds", 10);
    println!(
        "| passes evaluate | waiting tickets | events/s | passes | tickets evaluated | CPU (one core) |"
    );
    println!("|---|---|---|---|---|---|");
    for mode in ["every", "changed"] {
        measure(mode, tickets_n, events, seconds).await?;
    }
    Ok(())
}
