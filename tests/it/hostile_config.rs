//! Repository content cannot hang the server: a pull request with an exponential template gets a
//! failing `forgehand/config` check while `/healthz` keeps answering, the result is recorded per
//! head and survives a restart, and `check-config` ends within seconds on the same tree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use forgehand::app::Forges;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::CommitStatus;
use forgehand::store::config_checks::{self, CheckOutcome};

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, fixture, wait_until};
use crate::scenario::{REPO, Scenario};

backend_tests!(
    exponential_template_fails_the_check_while_healthz_answers,
    a_started_check_is_not_rerun_at_once,
    oversized_and_deep_trees_are_rejected_with_file_and_line,
);

/// Each call doubles the work: 2^40 template calls, were it not for the limits.
const EXPONENTIAL: &str =
    "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}";

const AGENT: &str = "true\n";

fn workflow(harness: &str) -> String {
    format!("---\npickup: [todo]\nfinish: [in-review]\nagent: script\n---\n{harness}\n")
}

/// Delivers a GitHub `pull_request` hook for `branch` at `head` of `octo/app`.
async fn open_pull(s: &Scenario, number: u64, branch: &str, head: &str) {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/pull_request/opened.payload.json")).unwrap();
    v["repository"]["owner"]["login"] = "octo".into();
    v["repository"]["name"] = "app".into();
    v["repository"]["full_name"] = REPO.into();
    v["repository"]["clone_url"] = s.remote.clone_url().into();
    v["repository"]["default_branch"] = "main".into();
    v["number"] = number.into();
    v["pull_request"]["number"] = number.into();
    v["pull_request"]["head"]["ref"] = branch.into();
    v["pull_request"]["head"]["sha"] = head.into();
    v["pull_request"]["base"]["ref"] = "main".into();
    v["pull_request"]["updated_at"] = chrono::Utc::now().to_rfc3339().into();
    let body = serde_json::to_vec(&v).unwrap();
    let response = s
        .server
        .post_github("pull_request", &format!("pr-{number}-{head}"), &body)
        .await;
    assert_eq!(response.status(), 202);
}

fn config_statuses(s: &Scenario, sha: &str) -> Vec<CommitStatus> {
    s.model
        .statuses(sha)
        .into_iter()
        .filter(|st| st.context == "forgehand/config")
        .collect()
}

async fn repo_id(server: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT id FROM repositories WHERE owner = 'octo' AND name = 'app'")
        .fetch_one(server.app.store.pool())
        .await
        .unwrap()
}

async fn exponential_template_fails_the_check_while_healthz_answers(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow("Work on {{ ticket.title }}."), "").await;
    let head = s.remote.commit_on_branch(
        "fork/hostile",
        &[(
            ".forgehand/workflows/build.md",
            Some(&workflow(EXPONENTIAL)),
        )],
    );
    open_pull(&s, 50, "fork/hostile", &head).await;

    // `/healthz` answers promptly all along, until the check is reported.
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while config_statuses(&s, &head).is_empty() {
        assert!(Instant::now() < deadline, "no forgehand/config check");
        let response = health
            .get(format!("{}/healthz", s.server.base))
            .send()
            .await
            .expect("/healthz answers within 2 s during the check");
        assert!(response.status().is_success());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checks = config_statuses(&s, &head);
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0].state, "failure");
    assert!(
        checks[0]
            .description
            .as_deref()
            .unwrap_or_default()
            .starts_with(".forgehand/workflows/build.md:6: harness: invalid operation: recursion limit exceeded"),
        "{checks:#?}"
    );
    let id = repo_id(&s.server).await;
    let record = config_checks::get(s.server.app.store.pool(), id, &head)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(record.outcome, Some(CheckOutcome::Invalid));
    assert_eq!(record.attempts, 1);

    // A restart does not check this head again.
    let Scenario {
        server,
        model,
        remote: _remote,
        shared: _shared,
        _sandbox: sandbox,
    } = s;
    let toml = server.toml.clone();
    let (dir, test_db) = server.stop().await;
    model.clear_requests();
    let github = GithubForge::new(
        &sandbox.github_api_url(),
        GithubAuth::Token("ghp_secret_test".into()),
    )
    .unwrap();
    let options = Options {
        forges: Forges::new(Some(Arc::new(github)), None),
        ..Options::default()
    }
    .toml(&toml);
    let server = TestServer::start_on(dir, test_db, options).await;
    // Config sync passes run at start and every few seconds: give it two.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let record = config_checks::get(server.app.store.pool(), id, &head)
        .await
        .unwrap()
        .expect("still recorded");
    assert_eq!(record.attempts, 1, "checked again after the restart");
    let statuses = model
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/statuses/"))
        .count();
    assert_eq!(statuses, 0, "a status was posted again after the restart");
    server.finish().await;
}

async fn a_started_check_is_not_rerun_at_once(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow("Work on {{ ticket.title }}."), "").await;
    let head = s.remote.commit_on_branch(
        "broken",
        &[(
            ".forgehand/workflows/build.md",
            Some(&workflow("{{ nope }}")),
        )],
    );
    let id = repo_id(&s.server).await;
    // What a crash in the middle of a check leaves: an attempt started, never finished.
    config_checks::start_attempt(s.server.app.store.pool(), id, &head, 0)
        .await
        .unwrap();
    open_pull(&s, 51, "broken", &head).await;
    s.server.drain_inbox().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(config_statuses(&s, &head).is_empty(), "retried at once");
    let record = config_checks::get(s.server.app.store.pool(), id, &head)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.attempts, 1);
    assert_eq!(record.outcome, None);

    // Another head is checked, once.
    let other = s.remote.commit_on_branch(
        "broken-too",
        &[(
            ".forgehand/workflows/build.md",
            Some(&workflow("{{ nope2 }}")),
        )],
    );
    open_pull(&s, 52, "broken-too", &other).await;
    // The status is posted first, the outcome recorded right after it.
    wait_until("the other head's check and its record", || async {
        !config_statuses(&s, &other).is_empty()
            && config_checks::get(s.server.app.store.pool(), id, &other)
                .await
                .unwrap()
                .is_some_and(|r| r.outcome.is_some())
    })
    .await;
    let record = config_checks::get(s.server.app.store.pool(), id, &other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.outcome, Some(CheckOutcome::Invalid));
    s.finish().await;
}

async fn oversized_and_deep_trees_are_rejected_with_file_and_line(db: Db) {
    let s = Scenario::start(db, AGENT, &workflow("Work on {{ ticket.title }}."), "").await;
    let deep = format!(
        "max_concurrent: 5\nbranch_prefix: {}x{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let big = format!("{}{}", workflow("Big."), "x".repeat(2 * 1024 * 1024));
    let deep_head = s
        .remote
        .commit_on_branch("deep", &[(".forgehand/config.yaml", Some(&deep))]);
    let big_head = s
        .remote
        .commit_on_branch("big", &[(".forgehand/workflows/build.md", Some(&big))]);
    open_pull(&s, 53, "deep", &deep_head).await;
    open_pull(&s, 54, "big", &big_head).await;
    wait_until("both checks", || async {
        !config_statuses(&s, &deep_head).is_empty() && !config_statuses(&s, &big_head).is_empty()
    })
    .await;
    let deep_check = &config_statuses(&s, &deep_head)[0];
    assert_eq!(deep_check.state, "failure");
    assert_eq!(
        deep_check.description.as_deref(),
        Some(".forgehand/config.yaml:2: YAML nests deeper than 32 levels")
    );
    let big_check = &config_statuses(&s, &big_head)[0];
    assert_eq!(big_check.state, "failure");
    assert!(
        big_check
            .description
            .as_deref()
            .unwrap_or_default()
            .starts_with(".forgehand/workflows/build.md:1: file is 2097"),
        "{big_check:?}"
    );
    s.finish().await;
}
