//! Hooks reported on the forge through the real clients against the sandbox: check runs with
//! conclusions and batched annotations (GitHub App), commit statuses (Gitea, GitHub token), the
//! overall `forgehand` check and the `forgehand/config` check of a broken tree.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use forgehand::config::repo::{self, Hook, OnFailure};
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::gitea::GiteaForge;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::forge::{CheckConclusion, Forge};
use forgehand::report::{self, OverallReport, Reporter};
use forgehand::run::hooks::{self, HookVars};
use forgehand::sandbox::{ForgeModel, SandboxServer, serve};

const TEST_KEY: &str = include_str!("../../src/sandbox/testdata/github-app-test-key.pem");
const DASHBOARD: &str = "http://forgehand.test/runs/7";

async fn sandbox() -> (ForgeModel, SandboxServer) {
    let model = ForgeModel::new();
    model.add_repo("octo", "hello", "main", "file:///srv/hello.git");
    let server = serve(model.clone()).await.unwrap();
    (model, server)
}

fn github_app(server: &SandboxServer) -> Arc<dyn Forge> {
    let auth = GithubAuth::App {
        app_id: 42,
        private_key_pem: TEST_KEY.to_owned(),
    };
    Arc::new(GithubForge::new(&server.github_api_url(), auth).unwrap())
}

fn github_token(server: &SandboxServer) -> Arc<dyn Forge> {
    Arc::new(GithubForge::new(&server.github_api_url(), GithubAuth::Token("t".into())).unwrap())
}

fn gitea(server: &SandboxServer) -> Arc<dyn Forge> {
    Arc::new(GiteaForge::new(&server.gitea_url(), Some("tea".into())).unwrap())
}

/// Hooks in `dir`, sandboxed as the server's default `[hooks]` settings say.
fn place(dir: &std::path::Path) -> forgehand::exec::Confinement {
    let settings = forgehand::config::server::HookSettings::default();
    forgehand::exec::Confinement::unhidden(&settings.confinement(), dir)
}

fn hook(name: &str, run: &str, on_failure: OnFailure) -> Hook {
    Hook {
        name: name.to_owned(),
        run: run.to_owned(),
        timeout: Duration::from_secs(30),
        on_failure,
    }
}

fn env(dir: &Path) -> Vec<(String, String)> {
    HookVars {
        stage: "on_complete".into(),
        worktree: dir.to_owned(),
        ..HookVars::default()
    }
    .env(&[("PATH".into(), "/usr/bin:/bin".into())])
}

fn stage() -> Vec<Hook> {
    let mut slow = hook("slow", "sleep 5", OnFailure::Block);
    slow.timeout = Duration::from_millis(200);
    vec![
        hook("fmt", "true", OnFailure::Block),
        hook(
            "tests",
            "echo 'src/lib.rs:4:2: error: boom'; exit 1",
            OnFailure::Block,
        ),
        hook("lint", "echo 'src/x.rs:3: bad'; false", OnFailure::Warn),
        slow,
    ]
}

#[tokio::test]
async fn hooks_become_check_runs_with_their_conclusions() {
    let (model, server) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = RepoRef::new(ForgeKind::Github, "octo", "hello");
    let reporter = Reporter::new(github_app(&server), repo, "sha1", Some(DASHBOARD.into()));
    assert!(reporter.uses_check_runs());

    let results =
        hooks::run_stage_reported(&stage(), &place(dir.path()), &env(dir.path()), &reporter).await;
    assert_eq!(
        results.iter().map(|r| r.blocks()).collect::<Vec<_>>(),
        [false, true, false, true]
    );

    let runs = model.check_runs("sha1");
    let summary: Vec<(&str, &str, Option<&str>)> = runs
        .iter()
        .map(|r| (r.name.as_str(), r.status.as_str(), r.conclusion.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("forgehand/fmt", "completed", Some("success")),
            ("forgehand/tests", "completed", Some("failure")),
            ("forgehand/lint", "completed", Some("neutral")),
            ("forgehand/slow", "completed", Some("timed_out")),
        ]
    );
    assert!(
        runs.iter()
            .all(|r| r.details_url.as_deref() == Some(DASHBOARD))
    );
    let tests = &runs[1];
    assert_eq!(tests.output.title.as_deref(), Some("Failed (exit 1)"));
    assert!(
        tests
            .output
            .summary
            .as_ref()
            .unwrap()
            .starts_with("`forgehand/tests`: exit 1, ")
    );
    assert_eq!(
        tests.output.text.as_deref(),
        Some("```\nsrc/lib.rs:4:2: error: boom\n```")
    );
    let a = &tests.output.annotations;
    assert_eq!(a.len(), 1);
    assert_eq!(
        (
            a[0].path.as_str(),
            a[0].start_line,
            a[0].annotation_level.as_str()
        ),
        ("src/lib.rs", 4, "failure")
    );
    assert_eq!(a[0].message, "error: boom");
    let lint = &runs[2].output.annotations;
    assert_eq!(
        lint[0].annotation_level, "warning",
        "warn hooks annotate as warnings"
    );
    assert!(runs[0].output.annotations.is_empty());

    // queued → in_progress → completed: one create and two updates per hook.
    let requests = model.requests();
    let creates = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/check-runs"));
    assert_eq!(creates.count(), 4);
}

#[tokio::test]
async fn more_than_fifty_annotations_are_sent_in_batches() {
    let (model, server) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = RepoRef::new(ForgeKind::Github, "octo", "hello");
    let reporter = Reporter::new(github_app(&server), repo, "sha2", None);
    let noisy = hook(
        "clippy",
        "i=1; while [ $i -le 120 ]; do echo \"src/f$i.rs:$i: warning: w$i\"; i=$((i+1)); done; exit 1",
        OnFailure::Block,
    );
    let handle = reporter.start("clippy").await;
    let result = hooks::run_hook(&noisy, &place(dir.path()), &env(dir.path())).await;
    model.clear_requests();
    reporter.complete(&handle, &result).await;

    let id = handle.check_run_id.unwrap();
    let patches = model
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with(&format!("/check-runs/{id}")))
        .count();
    assert_eq!(patches, 3, "120 annotations go 50 + 50 + 20");
    let run = &model.check_runs("sha2")[0];
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.output.annotations.len(), 120);
    assert_eq!(run.output.annotations[119].path, "src/f120.rs");
    assert!(
        run.output
            .annotations
            .iter()
            .all(|a| a.annotation_level == "warning")
    );
}

#[tokio::test]
async fn gitea_and_token_auth_get_commit_statuses() {
    let (model, server) = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    for (forge, kind, sha) in [
        (gitea(&server), ForgeKind::Gitea, "tea-sha"),
        (github_token(&server), ForgeKind::Github, "gh-sha"),
    ] {
        let repo = RepoRef::new(kind, "octo", "hello");
        let reporter = Reporter::new(forge, repo, sha, Some(DASHBOARD.into()));
        assert!(!reporter.uses_check_runs());
        hooks::run_stage_reported(&stage(), &place(dir.path()), &env(dir.path()), &reporter).await;
        assert!(model.check_runs(sha).is_empty());

        let statuses = model.statuses(sha);
        assert!(
            statuses
                .iter()
                .all(|s| s.target_url.as_deref() == Some(DASHBOARD))
        );
        // pending (queued), pending (running), then the result, per hook.
        let fmt: Vec<&str> = statuses
            .iter()
            .filter(|s| s.context == "forgehand/fmt")
            .map(|s| s.state.as_str())
            .collect();
        assert_eq!(fmt, ["pending", "pending", "success"], "{kind}");
        let last = |context: &str| {
            statuses
                .iter()
                .rev()
                .find(|s| s.context == context)
                .unwrap()
                .clone()
        };
        let tests = last("forgehand/tests");
        assert_eq!(tests.state, "failure");
        assert!(tests.description.unwrap().starts_with("exit 1, "));
        let lint = last("forgehand/lint");
        let warning = if kind == ForgeKind::Gitea {
            "warning"
        } else {
            "success"
        };
        assert_eq!(lint.state, warning, "{kind}");
        assert!(lint.description.unwrap().ends_with("(warning only)"));
        assert_eq!(last("forgehand/slow").state, "failure");
    }

    // What a merge gate reads back.
    let tea = gitea(&server);
    let states = tea
        .check_states(&RepoRef::new(ForgeKind::Gitea, "octo", "hello"), "tea-sha")
        .await
        .unwrap();
    let failing: Vec<&str> = states
        .iter()
        .filter(|(_, s)| *s != forgehand::forge::CheckState::Success)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(failing, ["forgehand/slow", "forgehand/tests"]);
}

#[tokio::test]
async fn the_overall_check_carries_the_run_facts() {
    let (model, server) = sandbox().await;
    let repo = RepoRef::new(ForgeKind::Github, "octo", "hello");
    let report = OverallReport {
        conclusion: CheckConclusion::Success,
        headline: "Ready for review".into(),
        config_version: Some(3),
        config_sha: Some("0123456789abcdef".into()),
        turns: 2,
        tokens: 4321,
        cost_usd: 0.5,
        details: Some("- ✔ fmt\n- ✔ tests".into()),
    };
    Reporter::new(
        github_app(&server),
        repo.clone(),
        "sha3",
        Some(DASHBOARD.into()),
    )
    .overall(&report)
    .await;
    let run = &model.check_runs("sha3")[0];
    assert_eq!(
        (run.name.as_str(), run.conclusion.as_deref()),
        ("forgehand", Some("success"))
    );
    let summary = run.output.summary.as_deref().unwrap();
    assert!(
        summary.contains("config v3 (0123456) · 2 turns · 4321 tokens · $0.50"),
        "{summary}"
    );
    assert!(summary.contains(DASHBOARD), "{summary}");

    Reporter::new(gitea(&server), repo, "sha4", None)
        .overall(&report)
        .await;
    let status = &model.statuses("sha4")[0];
    assert_eq!(
        (status.context.as_str(), status.state.as_str()),
        ("forgehand", "success")
    );
}

#[tokio::test]
async fn a_broken_config_gets_a_failing_config_check_with_file_line_annotations() {
    let (model, server) = sandbox().await;
    let broken = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/broken");
    let errors = repo::validate(&repo::read_dir(&broken).unwrap()).unwrap_err();
    assert!(errors.iter().any(|e| e.line.is_some()));

    let github = RepoRef::new(ForgeKind::Github, "octo", "hello");
    let app = github_app(&server);
    report::report_config(app.as_ref(), &github, "bad", Some(DASHBOARD), Err(&errors))
        .await
        .unwrap();
    let run = &model.check_runs("bad")[0];
    assert_eq!(
        (run.name.as_str(), run.conclusion.as_deref()),
        ("forgehand/config", Some("failure"))
    );
    let annotations = &run.output.annotations;
    assert_eq!(annotations.len(), errors.len());
    for (a, e) in annotations.iter().zip(&errors) {
        assert_eq!(a.path, e.file);
        assert_eq!(a.start_line, u64::from(e.line.unwrap_or(1)));
        assert_eq!(a.message, e.message);
        assert_eq!(a.annotation_level, "failure");
    }
    assert!(
        run.output
            .summary
            .as_deref()
            .unwrap()
            .contains(&errors[0].to_string())
    );

    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/basic");
    assert!(repo::validate(&repo::read_dir(&good).unwrap()).is_ok());
    report::report_config(app.as_ref(), &github, "good", None, Ok(()))
        .await
        .unwrap();
    assert_eq!(
        model.check_runs("good")[0].conclusion.as_deref(),
        Some("success")
    );

    let tea = RepoRef::new(ForgeKind::Gitea, "octo", "hello");
    report::report_config(
        gitea(&server).as_ref(),
        &tea,
        "bad",
        Some(DASHBOARD),
        Err(&errors),
    )
    .await
    .unwrap();
    let status = &model.statuses("bad")[0];
    assert_eq!(
        (status.context.as_str(), status.state.as_str()),
        ("forgehand/config", "failure")
    );
    assert!(
        status
            .description
            .as_deref()
            .unwrap()
            .starts_with(".forgehand/")
    );
}
