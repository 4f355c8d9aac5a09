//! Runners on other machines, through the runner protocol (`/api/v1/runner/…`) against a
//! coordinator-only server (`[runner] enabled = false`): the test plays the runner with git
//! and HTTP. Fenced leases (a stale generation is refused with 409), revoked tokens (401), and
//! the server's checks of the bundle it is handed (one branch, descending from the base, capped).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use forgehand::domain::agent_event::AgentEvent;
use forgehand::web::api::types::{self, runner::Offer};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::dashboard::{Browser, csrf_for};
use crate::harness::Db;
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    bundles_and_stale_requests_are_refused,
    lapsed_lease_goes_to_another_runner,
    a_canceled_remote_run_pushes_nothing,
    the_runners_page_creates_shows_and_revokes_runners
);

pub(crate) const COORDINATOR: &str =
    "[runner]\nenabled = false\nmax_bundle_bytes = 8192\n[limits]\nrun_lease = \"3s\"\n";

/// A runner as the server knows it: its id and token.
pub struct Runner {
    pub id: i64,
    pub token: String,
}

pub async fn register(s: &Scenario, name: &str) -> Runner {
    let r = s
        .server
        .http
        .post(format!("{}/api/v1/runners", s.server.base))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: types::RunnerCreated = r.json().await.unwrap();
    Runner {
        id: created.id,
        token: created.token,
    }
}

/// Without the admin token: only the runner's own.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub(crate) async fn lease(s: &Scenario, runner: &Runner, wait_ms: u64) -> reqwest::Response {
    client()
        .post(format!("{}/api/v1/runner/lease", s.server.base))
        .bearer_auth(&runner.token)
        .json(&json!({ "labels": [], "capacity": 1, "version": "test", "wait_ms": wait_ms }))
        .send()
        .await
        .unwrap()
}

/// Leases until a run comes (the claim happens once the runner was heard from).
pub(crate) async fn lease_run(s: &Scenario, runner: &Runner) -> Offer {
    for _ in 0..6 {
        let r = lease(s, runner, 10_000).await;
        assert_eq!(r.headers()["forgehand-runner-protocol"], "1");
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        assert_eq!(r.status(), 204);
    }
    panic!("no run was leased");
}

pub(crate) async fn post(
    s: &Scenario,
    runner: &Runner,
    path: &str,
    body: Value,
) -> reqwest::StatusCode {
    send(s, runner, path, body).await.status()
}

/// Posts a request the server must accept; returns its answer.
pub(crate) async fn post_ok<T: serde::de::DeserializeOwned>(
    s: &Scenario,
    runner: &Runner,
    path: &str,
    body: Value,
) -> T {
    let r = send(s, runner, path, body).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

pub(crate) async fn send(
    s: &Scenario,
    runner: &Runner,
    path: &str,
    body: Value,
) -> reqwest::Response {
    client()
        .post(format!("{}/api/v1/runner/runs/{path}", s.server.base))
        .bearer_auth(&runner.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn finish(
    s: &Scenario,
    runner: &Runner,
    run: i64,
    generation: i64,
    bundle: Vec<u8>,
) -> reqwest::Response {
    client()
        .post(format!(
            "{}/api/v1/runner/runs/{run}/finish?generation={generation}&summary=Done",
            s.server.base
        ))
        .bearer_auth(&runner.token)
        .body(bundle)
        .send()
        .await
        .unwrap()
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Runner",
            "-c",
            "user.email=runner@example.invalid",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What a runner does with its lease: fetches the repository bundle, checks out the base on
/// the ticket's branch. The checkout's folder.
pub(crate) async fn check_out(s: &Scenario, runner: &Runner, offer: &Offer, dir: &Path) {
    let (run, generation) = (offer.run_id, offer.generation);
    let url = |generation: i64| {
        format!(
            "{}/api/v1/runner/runs/{run}/repository?generation={generation}",
            s.server.base
        )
    };
    let stale = client()
        .get(url(generation + 1))
        .bearer_auth(&runner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let r = client()
        .get(url(generation))
        .bearer_auth(&runner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let bundle = dir.join("base.bundle");
    std::fs::write(&bundle, r.bytes().await.unwrap()).unwrap();
    let work = dir.join("work");
    git(dir, &["clone", "--quiet", bundle.to_str().unwrap(), "work"]);
    git(
        &work,
        &["checkout", "--quiet", "-b", &offer.branch, &offer.base],
    );
}

/// Commits `files` in the checkout and bundles `reference` (what the base lacks).
pub(crate) fn commit_and_bundle(
    dir: &Path,
    files: &[(&str, &str)],
    reference: &str,
    base: &str,
) -> Vec<u8> {
    let work = dir.join("work");
    for (path, text) in files {
        std::fs::write(work.join(path), text).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "agent work"]);
    bundle_of(dir, reference, &format!("^{base}"))
}

pub(crate) fn bundle_of(dir: &Path, reference: &str, exclude: &str) -> Vec<u8> {
    let out = dir.join("out.bundle");
    let _ = std::fs::remove_file(&out);
    git(
        &dir.join("work"),
        &[
            "bundle",
            "create",
            "--quiet",
            out.to_str().unwrap(),
            reference,
            exclude,
        ],
    );
    std::fs::read(out).unwrap()
}

/// A coordinator, one runner it has heard from, and the run of a labelled ticket leased to it.
pub(crate) async fn one_leased_run(db: Db) -> (Scenario, Runner, u64, Offer) {
    let s = Scenario::start(db, "true\n", &workflow(HARNESS, ""), COORDINATOR).await;
    let runner = register(&s, "remote-1").await;
    // Heard from: a claim may count on it.
    assert_eq!(lease(&s, &runner, 0).await.status(), 204);
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let offer = lease_run(&s, &runner).await;
    (s, runner, n, offer)
}

async fn bundles_and_stale_requests_are_refused(db: Db) {
    let (s, runner, n, offer) = one_leased_run(db).await;
    let (run, generation) = (offer.run_id, offer.generation);
    assert_eq!(u64::try_from(offer.number).ok(), Some(n));
    assert!(offer.prompt.contains("Add a greeting"), "{offer:?}");
    let stale = json!({ "generation": generation + 1 });
    assert_eq!(
        post(&s, &runner, &format!("{run}/heartbeat"), stale).await,
        409
    );
    let fresh = json!({ "generation": generation });
    let renewed: types::runner::Renewed =
        post_ok(&s, &runner, &format!("{run}/heartbeat"), fresh).await;
    assert!(renewed.renewed && !renewed.cancel, "{renewed:?}");
    let message = json!({ "kind": "message", "role": "assistant", "text": "working" });
    let batch =
        |generation: i64| json!({ "generation": generation, "turn": 1, "events": [message] });
    assert_eq!(
        post(&s, &runner, &format!("{run}/events"), batch(generation + 1)).await,
        409
    );
    let appended: types::runner::EventsAppended =
        post_ok(&s, &runner, &format!("{run}/events"), batch(generation)).await;
    let events: Vec<types::RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{run}/events"))
        .await;
    // The batch's one event is the run's last, at the sequence number the answer gave.
    let working = events
        .iter()
        .find(|e| matches!(&e.event, AgentEvent::Message { text, .. } if text == "working"));
    assert_eq!(
        working.map(|e| e.seq),
        Some(appended.last_seq),
        "{events:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    check_out(&s, &runner, &offer, dir.path()).await;
    let (branch, base) = (offer.branch.clone(), offer.base.clone());
    let good = commit_and_bundle(dir.path(), &[("hello.txt", "hello\n")], &branch, &base);

    // Another branch than the ticket's.
    let work = dir.path().join("work");
    git(&work, &["branch", "other"]);
    let other = bundle_of(dir.path(), "refs/heads/other", &format!("^{base}"));
    let r = finish(&s, &runner, run, generation, other).await;
    assert_eq!(r.status(), 400, "{:?}", r.text().await);
    // Rewritten history: the ticket's branch on a new root, not descending from the base.
    let fresh_repo = dir.path().join("fresh");
    std::fs::create_dir(&fresh_repo).unwrap();
    git(&fresh_repo, &["init", "--quiet"]);
    std::fs::write(fresh_repo.join("hello.txt"), "rewritten\n").unwrap();
    git(&fresh_repo, &["add", "-A"]);
    git(&fresh_repo, &["commit", "--quiet", "-m", "a new root"]);
    git(&fresh_repo, &["branch", "-M", &branch]);
    let out = dir.path().join("rewritten.bundle");
    git(
        &fresh_repo,
        &[
            "bundle",
            "create",
            "--quiet",
            out.to_str().unwrap(),
            &branch,
        ],
    );
    let r = finish(&s, &runner, run, generation, std::fs::read(out).unwrap()).await;
    assert_eq!(r.status(), 400, "{:?}", r.text().await);
    // A refused bundle's objects never reach the mirror every ticket of the repository shares.
    let rewritten = git_out(&fresh_repo, &["rev-parse", "HEAD"]);
    assert!(
        !in_mirror(&s, &rewritten),
        "a refused bundle's commit is in the mirror"
    );
    // Over the cap.
    let noise: String = (0..20_000u32)
        .map(|i| format!("{:x}", i.wrapping_mul(2_654_435_761)))
        .collect();
    let big = commit_and_bundle(dir.path(), &[("noise.txt", &noise)], &branch, &base);
    assert!(big.len() > 8192, "{}", big.len());
    assert_eq!(
        finish(&s, &runner, run, generation, big).await.status(),
        413
    );
    // A stale generation, with a good bundle.
    assert_eq!(
        finish(&s, &runner, run, generation + 1, good.clone())
            .await
            .status(),
        409
    );
    assert_eq!(
        s.file_on(&branch, "hello.txt"),
        None,
        "nothing was pushed yet"
    );

    let r = finish(&s, &runner, run, generation, good).await;
    assert_eq!(r.status(), 200);
    let finished: types::runner::Finished = r.json().await.unwrap();
    assert_eq!(finished.run, run);
    let pull = finished.pull.expect("a pull request");
    assert!(s.model.pull(REPO, pull).is_some());
    assert_eq!(s.file_on(&branch, "hello.txt").as_deref(), Some("hello\n"));
    assert_eq!(s.file_on(&branch, "noise.txt"), None);
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(
        ticket.runs[0].state,
        types::RunState::Succeeded,
        "{ticket:?}"
    );
    // The lease ended with the run: what the runner sends now is refused.
    let fresh = json!({ "generation": generation });
    assert_eq!(
        post(&s, &runner, &format!("{run}/heartbeat"), fresh).await,
        409
    );
    s.finish().await;
}

async fn lapsed_lease_goes_to_another_runner(db: Db) {
    let s = Scenario::start(db, "true\n", &workflow(HARNESS, ""), COORDINATOR).await;
    let (a, b) = (register(&s, "a").await, register(&s, "b").await);
    assert_eq!(lease(&s, &a, 0).await.status(), 204);
    let n = s
        .open_labelled("Add a greeting", &["agent:todo"], "alice")
        .await;
    let first = lease_run(&s, &a).await;
    let dir_a = tempfile::tempdir().unwrap();
    check_out(&s, &a, &first, dir_a.path()).await;
    let (branch, base) = (first.branch.clone(), first.base.clone());
    let late = commit_and_bundle(dir_a.path(), &[("late.txt", "late\n")], &branch, &base);

    // A stops renewing (paused, partitioned): after the lease the run goes to B.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = lease_run(&s, &b).await;
    assert_eq!(second.run_id, first.run_id);
    let run = second.run_id;
    let (g1, g2) = (first.generation, second.generation);
    assert!(g2 > g1, "{g1} {g2}");
    // A comes back: its heartbeat and its finish are refused, nothing of it is pushed.
    assert_eq!(
        post(
            &s,
            &a,
            &format!("{run}/heartbeat"),
            json!({ "generation": g1 })
        )
        .await,
        409
    );
    assert_eq!(finish(&s, &a, run, g1, late).await.status(), 409);
    assert_eq!(s.file_on(&branch, "late.txt"), None);

    let dir_b = tempfile::tempdir().unwrap();
    check_out(&s, &b, &second, dir_b.path()).await;
    let good = commit_and_bundle(dir_b.path(), &[("hello.txt", "from b\n")], &branch, &base);
    assert_eq!(finish(&s, &b, run, g2, good).await.status(), 200);
    s.wait_status(n, "in-review").await;
    assert_eq!(s.file_on(&branch, "late.txt"), None);
    assert_eq!(s.file_on(&branch, "hello.txt").as_deref(), Some("from b\n"));

    // A revoked token is refused at once.
    let revoke = s
        .server
        .http
        .post(format!("{}/api/v1/runners/{}/revoke", s.server.base, a.id))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(lease(&s, &a, 0).await.status(), 401);
    assert_eq!(lease(&s, &b, 0).await.status(), 204);
    let list: Vec<types::Runner> = s.server.get_json("/api/v1/runners").await;
    let listed: Vec<(i64, bool)> = list
        .iter()
        .map(|r| (r.id, r.revoked_at.is_none()))
        .collect();
    assert!(
        listed.contains(&(a.id, false)) && listed.contains(&(b.id, true)),
        "{list:?}"
    );
    s.finish().await;
}

/// Whether the repository's mirror on the server has `sha`.
fn in_mirror(s: &Scenario, sha: &str) -> bool {
    let mirror = s
        .server
        .app
        .config
        .data_dir
        .join("mirrors/github/octo/app.git");
    assert!(mirror.join("objects").is_dir(), "{}", mirror.display());
    Command::new("git")
        .arg("--git-dir")
        .arg(&mirror)
        .args(["cat-file", "-e", sha])
        .status()
        .unwrap()
        .success()
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn a_canceled_remote_run_pushes_nothing(db: Db) {
    let (s, runner, n, offer) = one_leased_run(db).await;
    let (run, generation) = (offer.run_id, offer.generation);
    let dir = tempfile::tempdir().unwrap();
    check_out(&s, &runner, &offer, dir.path()).await;
    let (branch, base) = (offer.branch.clone(), offer.base.clone());
    let good = commit_and_bundle(dir.path(), &[("hello.txt", "hello\n")], &branch, &base);

    let cancel = s
        .server
        .http
        .post(format!("{}/api/v1/runs/{run}/cancel", s.server.base))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "{}", cancel.status());
    // The runner hears of it at its next heartbeat (409: stop the agent); the run ends canceled.
    assert_eq!(
        post(
            &s,
            &runner,
            &format!("{run}/heartbeat"),
            json!({ "generation": generation })
        )
        .await,
        409
    );
    // Its finish, and a fail asking for a retry, change nothing.
    assert_eq!(
        finish(&s, &runner, run, generation, good).await.status(),
        409
    );
    assert_eq!(
        post(
            &s,
            &runner,
            &format!("{run}/fail"),
            json!({ "generation": generation, "error": "x", "retry": true })
        )
        .await,
        409
    );
    assert_eq!(s.file_on(&branch, "hello.txt"), None, "nothing was pushed");
    let run_now: types::Run = s.server.get_json(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(run_now.state, types::RunState::Canceled, "{run_now:?}");
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs.len(), 1, "no new attempt: {ticket:?}");
    s.finish().await;
}

/// The token the runners page shows once, after "Create runner".
fn shown_token(html: &str) -> String {
    let start = html
        .find("id=\"runner-token\">")
        .map(|at| at + "id=\"runner-token\">".len())
        .unwrap_or_else(|| panic!("no token shown: {html}"));
    let rest = &html[start..];
    rest[..rest.find('<').unwrap()].to_owned()
}

async fn the_runners_page_creates_shows_and_revokes_runners(db: Db) {
    let s = Scenario::start(db, "true\n", &workflow(HARNESS, ""), COORDINATOR).await;
    let b = Browser::signed_in(&s.server).await;
    let page = b.page("/runners").await;
    assert!(page.contains("No runner is registered"), "{page}");
    assert!(page.contains("id=\"create-runner\""), "{page}");

    // Without the form's token: refused, nothing registered.
    let refused = b.post("/runners", &[("name", "sneaky")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let listed: Vec<types::Runner> = s.server.get_json("/api/v1/runners").await;
    assert!(listed.is_empty(), "{listed:?}");

    let csrf = csrf_for(&page, "/runners");
    let created = b
        .post("/runners", &[("csrf", &csrf), ("name", "gpu <box>")])
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.cache_control.as_deref(), Some("no-store"));
    let token = shown_token(&created.body);
    assert!(token.starts_with("fhn_"), "{token}");
    assert!(
        created.body.contains("gpu &#60;box&#62;"),
        "{}",
        created.body
    );
    let listed: Vec<types::Runner> = s.server.get_json("/api/v1/runners").await;
    let id = listed[0].id;
    // Shown once: the page itself never carries it.
    let page = b.page("/runners").await;
    assert!(!page.contains(&token));

    // The token shown works for the runner protocol.
    let runner = Runner { id, token };
    let announced = client()
        .post(format!("{}/api/v1/runner/lease", s.server.base))
        .bearer_auth(&runner.token)
        .json(
            &json!({ "labels": ["linux", "gpu"], "capacity": 3, "version": "9.8.7", "wait_ms": 0 }),
        )
        .send()
        .await
        .unwrap();
    assert!(
        [200, 204].contains(&announced.status().as_u16()),
        "{announced:?}"
    );
    let page = b.page("/runners").await;
    for shown in [
        "linux, gpu",
        "<td>3</td>",
        "9.8.7",
        "badge succeeded\">active",
    ] {
        assert!(page.contains(shown), "{shown} missing: {page}");
    }
    assert!(
        !page.contains("<td class=\"small\">—</td>"),
        "no last contact: {page}"
    );

    // A run it holds is linked from its row.
    s.open_labelled("Remote work", &["agent:todo"], "alice")
        .await;
    let offer = lease_run(&s, &runner).await;
    let run = offer.run_id;
    let page = b.page("/runners").await;
    assert!(page.contains(&format!("href=\"/runs/{run}\"")), "{page}");

    let revoke = format!("/runners/{id}/revoke");
    let done = b
        .post(&revoke, &[("csrf", &csrf_for(&page, &revoke))])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location.unwrap().starts_with("/runners?notice="));
    assert_eq!(lease(&s, &runner, 0).await.status(), 401);
    let page = b.page("/runners").await;
    assert!(page.contains("badge failed\">revoked"), "{page}");
    assert!(!page.contains(&format!("action=\"{revoke}\"")), "{page}");
    assert!(!page.contains(&format!("href=\"/runs/{run}\"")), "{page}");

    let audit: Vec<types::AuditEntry> = s.server.get_json("/api/v1/audit").await;
    let runner_entries: Vec<(&str, &str, &str)> = audit
        .iter()
        .filter(|e| e.target_kind == "runner")
        .map(|e| (e.action.as_str(), e.target.as_str(), e.outcome.as_str()))
        .collect();
    let target = id.to_string();
    assert_eq!(
        runner_entries,
        [
            ("revoke runner", target.as_str(), "revoked"),
            ("create runner", target.as_str(), "created"),
        ]
    );
    s.finish().await;
}
