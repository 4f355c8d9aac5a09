//! The forge operations gates and merges need (check runs, commit statuses, reviews, check
//! states, merge), through both real clients against the sandbox.

use super::{new_pull, repo, start};
use crate::config::repo::MergeMethod;
use crate::domain::ForgeKind;
use crate::forge::gitea::GiteaForge;
use crate::forge::github::{GithubAuth, GithubForge};
use crate::forge::{
    Annotation, AnnotationLevel, CheckConclusion, CheckOutput, CheckRunRequest, CheckState,
    CheckStatus, CommitStatusRequest, Forge, ForgeError, IssueState, PullState, ReviewState,
    StatusState,
};

const TEST_KEY: &str = include_str!("../testdata/github-app-test-key.pem");

fn app_client(url: &str) -> GithubForge {
    let auth = GithubAuth::App {
        app_id: 42,
        private_key_pem: TEST_KEY.to_owned(),
    };
    GithubForge::new(url, auth).unwrap()
}

fn token_client(url: &str) -> GithubForge {
    GithubForge::new(url, GithubAuth::Token("t0k".to_owned())).unwrap()
}

fn gitea_client(url: &str) -> GiteaForge {
    GiteaForge::new(url, Some("tea-token".to_owned())).unwrap()
}

fn annotation(i: u32) -> Annotation {
    Annotation {
        path: format!("src/f{i}.rs"),
        line: i,
        column: i.is_multiple_of(2).then_some(3),
        level: AnnotationLevel::Failure,
        message: format!("problem {i}"),
    }
}

fn run(name: &str, status: CheckStatus) -> CheckRunRequest {
    CheckRunRequest {
        name: name.to_owned(),
        status,
        conclusion: None,
        details_url: Some("http://dash/runs/1".to_owned()),
        output: None,
    }
}

#[tokio::test]
async fn only_app_auth_supports_check_runs() {
    let (_model, server) = start().await;
    assert!(app_client(&server.github_api_url()).supports_check_runs());
    assert!(!token_client(&server.github_api_url()).supports_check_runs());
    let gitea = gitea_client(&server.gitea_url());
    assert!(!gitea.supports_check_runs());
    let refused = gitea
        .create_check_run(
            &repo(ForgeKind::Gitea),
            "abc",
            &run("x", CheckStatus::Queued),
        )
        .await;
    assert!(matches!(refused, Err(ForgeError::Unsupported(_))));
}

#[tokio::test]
async fn check_runs_are_created_updated_and_completed_with_batched_annotations() {
    let (model, server) = start().await;
    let forge = app_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);

    let id = forge
        .create_check_run(&repo, "sha1", &run("forgehand/tests", CheckStatus::Queued))
        .await
        .unwrap();
    assert_eq!(model.check_runs("sha1")[0].status, "queued");
    forge
        .update_check_run(&repo, id, &run("forgehand/tests", CheckStatus::InProgress))
        .await
        .unwrap();
    assert_eq!(model.check_runs("sha1")[0].status, "in_progress");

    model.clear_requests();
    let mut done = run("forgehand/tests", CheckStatus::Completed);
    done.conclusion = Some(CheckConclusion::Failure);
    done.output = Some(CheckOutput {
        title: "Failed (exit 1)".to_owned(),
        summary: "s".repeat(70_000),
        text: Some("```\nboom\n```".to_owned()),
        annotations: (1..=120).map(annotation).collect(),
    });
    forge.update_check_run(&repo, id, &done).await.unwrap();

    let patches = model
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with(&format!("/check-runs/{id}")))
        .count();
    assert_eq!(patches, 3, "120 annotations: 50 + 50 + 20");
    let runs = model.check_runs("sha1");
    assert_eq!(runs.len(), 1);
    let stored = &runs[0];
    assert_eq!(
        (stored.status.as_str(), stored.conclusion.as_deref()),
        ("completed", Some("failure"))
    );
    assert_eq!(stored.details_url.as_deref(), Some("http://dash/runs/1"));
    assert_eq!(stored.output.text.as_deref(), Some("```\nboom\n```"));
    assert_eq!(
        stored.output.summary.as_ref().unwrap().chars().count(),
        65535,
        "summaries are cut to GitHub's limit"
    );
    let annotations = &stored.output.annotations;
    assert_eq!(annotations.len(), 120);
    assert_eq!(annotations[119].path, "src/f120.rs");
    assert_eq!((annotations[1].start_line, annotations[1].end_line), (2, 2));
    assert_eq!(annotations[0].annotation_level, "failure");
}

#[tokio::test]
async fn creating_with_many_annotations_sends_the_rest_as_updates() {
    let (model, server) = start().await;
    let forge = app_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let mut request = run("forgehand/config", CheckStatus::Completed);
    request.conclusion = Some(CheckConclusion::Success);
    request.output = Some(CheckOutput {
        title: "t".to_owned(),
        summary: "s".to_owned(),
        text: None,
        annotations: (1..=51).map(annotation).collect(),
    });
    forge
        .create_check_run(&repo, "sha2", &request)
        .await
        .unwrap();
    let stored = &model.check_runs("sha2")[0];
    assert_eq!(stored.conclusion.as_deref(), Some("success"));
    assert_eq!(stored.output.annotations.len(), 51);
}

#[tokio::test]
async fn commit_statuses_on_both_forges() {
    let (model, server) = start().await;
    let long = "x".repeat(300);
    let status = |state, description: &str| CommitStatusRequest {
        context: "forgehand/fmt".to_owned(),
        state,
        description: description.to_owned(),
        target_url: Some("http://dash/runs/2".to_owned()),
    };
    let github = token_client(&server.github_api_url());
    github
        .set_commit_status(
            &repo(ForgeKind::Github),
            "gh",
            &status(StatusState::Warning, &long),
        )
        .await
        .unwrap();
    let gitea = gitea_client(&server.gitea_url());
    gitea
        .set_commit_status(
            &repo(ForgeKind::Gitea),
            "gt",
            &status(StatusState::Warning, "w"),
        )
        .await
        .unwrap();

    let gh = &model.statuses("gh")[0];
    assert_eq!(gh.state, "success", "GitHub has no warning state");
    assert_eq!(gh.description.as_ref().unwrap().chars().count(), 140);
    assert_eq!(gh.target_url.as_deref(), Some("http://dash/runs/2"));
    let gt = &model.statuses("gt")[0];
    assert_eq!(
        (gt.state.as_str(), gt.context.as_str()),
        ("warning", "forgehand/fmt")
    );
}

#[tokio::test]
async fn check_states_take_the_latest_per_name() {
    let (_model, server) = start().await;
    let app = app_client(&server.github_api_url());
    let gh = repo(ForgeKind::Github);
    let status = |context: &str, state| CommitStatusRequest {
        context: context.to_owned(),
        state,
        description: String::new(),
        target_url: None,
    };
    app.set_commit_status(&gh, "s", &status("ci/lint", StatusState::Failure))
        .await
        .unwrap();
    app.set_commit_status(&gh, "s", &status("ci/lint", StatusState::Success))
        .await
        .unwrap();
    app.set_commit_status(&gh, "s", &status("ci/build", StatusState::Pending))
        .await
        .unwrap();
    let id = app
        .create_check_run(&gh, "s", &run("forgehand/tests", CheckStatus::InProgress))
        .await
        .unwrap();
    let mut neutral = run("forgehand/audit", CheckStatus::Completed);
    neutral.conclusion = Some(CheckConclusion::Neutral);
    app.create_check_run(&gh, "s", &neutral).await.unwrap();
    let mut timed_out = run("forgehand/slow", CheckStatus::Completed);
    timed_out.conclusion = Some(CheckConclusion::TimedOut);
    app.create_check_run(&gh, "s", &timed_out).await.unwrap();

    let states = app.check_states(&gh, "s").await.unwrap();
    assert_eq!(
        states,
        [
            ("ci/build".to_owned(), CheckState::Pending),
            ("ci/lint".to_owned(), CheckState::Success),
            ("forgehand/audit".to_owned(), CheckState::Success),
            ("forgehand/slow".to_owned(), CheckState::Failure),
            ("forgehand/tests".to_owned(), CheckState::Pending),
        ]
    );
    let mut passed = run("forgehand/tests", CheckStatus::Completed);
    passed.conclusion = Some(CheckConclusion::Success);
    app.update_check_run(&gh, id, &passed).await.unwrap();
    let states = app.check_states(&gh, "s").await.unwrap();
    assert!(states.contains(&("forgehand/tests".to_owned(), CheckState::Success)));

    let gitea = gitea_client(&server.gitea_url());
    let gt = repo(ForgeKind::Gitea);
    // More than one page of statuses (Gitea pages by 50).
    for i in 0..55 {
        let state = if i == 54 {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        gitea
            .set_commit_status(&gt, "t", &status("forgehand/tests", state))
            .await
            .unwrap();
    }
    gitea
        .set_commit_status(&gt, "t", &status("forgehand/audit", StatusState::Warning))
        .await
        .unwrap();
    gitea
        .set_commit_status(&gt, "t", &status("forgehand/fmt", StatusState::Error))
        .await
        .unwrap();
    assert_eq!(
        gitea.check_states(&gt, "t").await.unwrap(),
        [
            ("forgehand/audit".to_owned(), CheckState::Success),
            ("forgehand/fmt".to_owned(), CheckState::Failure),
            ("forgehand/tests".to_owned(), CheckState::Success),
        ]
    );
}

#[tokio::test]
async fn reviews_on_both_forges() {
    let (model, server) = start().await;
    let number = model.open_pull("octo/hello", new_pull("PR", "feature"));
    model.add_review("octo/hello", number, "bob", ReviewState::Commented, "hm");
    model.add_review(
        "octo/hello",
        number,
        "carol",
        ReviewState::ChangesRequested,
        "please fix",
    );
    model.add_review("octo/hello", number, "dave", ReviewState::Dismissed, "");
    model.add_review(
        "octo/hello",
        number,
        "carol",
        ReviewState::Approved,
        "now ok",
    );
    let expected = [
        ("bob", ReviewState::Commented, "hm"),
        ("carol", ReviewState::ChangesRequested, "please fix"),
        ("dave", ReviewState::Dismissed, ""),
        ("carol", ReviewState::Approved, "now ok"),
    ];
    let github = token_client(&server.github_api_url());
    let gitea = gitea_client(&server.gitea_url());
    for (forge, kind) in [
        (&github as &dyn Forge, ForgeKind::Github),
        (&gitea as &dyn Forge, ForgeKind::Gitea),
    ] {
        let reviews = forge.reviews(&repo(kind), number).await.unwrap();
        let short: Vec<_> = reviews
            .iter()
            .map(|r| (r.author.as_str(), r.state, r.body.as_str()))
            .collect();
        assert_eq!(short, expected, "{kind}");
        assert!(
            reviews
                .iter()
                .all(|r| r.commit_id.as_deref() == Some("feature-sha"))
        );
        assert!(reviews.iter().all(|r| r.submitted_at.is_some()));
    }
    assert!(matches!(
        github.reviews(&repo(ForgeKind::Github), 999).await,
        Err(ForgeError::NotFound(_))
    ));
}

#[tokio::test]
async fn merging_closes_the_linked_issue_and_checks_the_head() {
    let (model, server) = start().await;
    for (kind, method, expected) in [
        (ForgeKind::Github, MergeMethod::Squash, "squash"),
        (ForgeKind::Gitea, MergeMethod::Rebase, "rebase"),
    ] {
        let issue = model.open_issue("octo/hello", "Fix it", "", &["agent:in-review"], "alice");
        let mut pull = new_pull("PR", &format!("branch-{kind}"));
        pull.body = format!("Closes #{issue}");
        let number = model.open_pull("octo/hello", pull);
        let forge: Box<dyn Forge> = match kind {
            ForgeKind::Github => Box::new(token_client(&server.github_api_url())),
            ForgeKind::Gitea => Box::new(gitea_client(&server.gitea_url())),
        };
        let repo = repo(kind);

        // Each forge's own answer to a head that moved.
        let stale = forge.merge_pull(&repo, number, method, "old-sha").await;
        let said = match kind {
            ForgeKind::Github => "Head branch was modified. Review and try the merge again.",
            ForgeKind::Gitea => "head out of date",
        };
        assert!(
            matches!(&stale, Err(ForgeError::Api { status: 409, message, .. }) if message.contains(said)),
            "{kind}: {stale:?}"
        );
        assert_eq!(
            model.pull("octo/hello", number).unwrap().state,
            PullState::Open
        );

        let head = format!("branch-{kind}-sha");
        forge
            .merge_pull(&repo, number, method, &head)
            .await
            .unwrap();
        assert_eq!(
            model.pull("octo/hello", number).unwrap().state,
            PullState::Merged
        );
        assert_eq!(
            model.issue("octo/hello", issue).unwrap().state,
            IssueState::Closed
        );
        let merge = model.merges().pop().unwrap();
        assert_eq!(
            (merge.number, merge.method.as_deref(), merge.sha.as_deref()),
            (number, Some(expected), Some(head.as_str()))
        );

        let again = forge.merge_pull(&repo, number, method, &head).await;
        assert!(
            again.is_err(),
            "{kind}: a merged pull request cannot merge again"
        );
    }
}
