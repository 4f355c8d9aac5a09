use octocrab::Octocrab;
use serde_json::{Value, json};

use super::{new_pull, start};
use crate::sandbox::{Fault, ForgeModel, Permission, serve};

/// A bare JSON client for endpoints the forge clients do not call (yet).
fn http(base: &str) -> Octocrab {
    Octocrab::builder().base_uri(base).unwrap().build().unwrap()
}

async fn post(client: &Octocrab, route: &str, body: Value) -> Result<Value, octocrab::Error> {
    client.post(route, Some(&body)).await
}

fn status_code(err: octocrab::Error) -> u16 {
    match err {
        octocrab::Error::GitHub { source, .. } => source.status_code.as_u16(),
        other => panic!("expected an HTTP error, got {other}"),
    }
}

#[tokio::test]
async fn records_commit_statuses_from_both_dialects() {
    let (model, server) = start().await;
    let github = http(&server.github_api_url());
    let gitea = http(&format!("{}/api/v1", server.gitea_url()));
    let status =
        json!({ "state": "pending", "context": "forgehand/tests", "description": "running" });
    post(&github, "/repos/octo/hello/statuses/abc", status)
        .await
        .unwrap();
    let warning =
        json!({ "state": "warning", "context": "forgehand/lint", "target_url": "http://x" });
    let created = post(&gitea, "/repos/octo/hello/statuses/abc", warning)
        .await
        .unwrap();
    assert_eq!(created["status"], "warning");

    let statuses = model.statuses("abc");
    assert_eq!(statuses.len(), 2);
    assert_eq!(
        (statuses[0].context.as_str(), statuses[0].state.as_str()),
        ("forgehand/tests", "pending")
    );
    assert_eq!(statuses[1].target_url.as_deref(), Some("http://x"));

    let invalid = post(
        &github,
        "/repos/octo/hello/statuses/abc",
        json!({ "state": "warning" }),
    )
    .await;
    assert_eq!(
        status_code(invalid.unwrap_err()),
        422,
        "GitHub has no `warning` state"
    );
    let listed: Vec<Value> = gitea
        .get("/repos/octo/hello/commits/abc/statuses", None::<&()>)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn check_runs_are_created_updated_and_listed() {
    let (model, server) = start().await;
    let github = http(&server.github_api_url());
    let created = post(
        &github,
        "/repos/octo/hello/check-runs",
        json!({ "name": "forgehand/tests", "head_sha": "abc", "status": "in_progress" }),
    )
    .await
    .unwrap();
    let id = created["id"].as_u64().unwrap();
    let route = format!("/repos/octo/hello/check-runs/{id}");

    let incomplete: Result<Value, _> = github
        .patch(&route, Some(&json!({ "status": "completed" })))
        .await;
    assert_eq!(
        status_code(incomplete.unwrap_err()),
        422,
        "completed needs a conclusion"
    );
    let annotation = json!({ "path": "src/lib.rs", "start_line": 3, "end_line": 3, "annotation_level": "failure", "message": "boom" });
    let update = json!({ "conclusion": "failure", "output": { "title": "1 failed", "summary": "tests failed", "annotations": [annotation] } });
    let _: Value = github.patch(&route, Some(&update)).await.unwrap();

    let runs = model.check_runs("abc");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("failure"))
    );
    assert_eq!(run.output.summary.as_deref(), Some("tests failed"));
    assert_eq!(run.output.annotations[0].message, "boom");
    assert!(run.completed_at.is_some());

    let listed: Value = github
        .get("/repos/octo/hello/commits/abc/check-runs", None::<&()>)
        .await
        .unwrap();
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["check_runs"][0]["conclusion"], "failure");
}

#[tokio::test]
async fn reports_collaborator_permissions() {
    let (model, server) = start().await;
    model.set_permission("octo/hello", "carol", Permission::Maintain);
    let github = http(&server.github_api_url());
    let gitea = http(&format!("{}/api/v1", server.gitea_url()));

    let carol: Value = github
        .get(
            "/repos/octo/hello/collaborators/carol/permission",
            None::<&()>,
        )
        .await
        .unwrap();
    assert_eq!(
        (carol["permission"].as_str(), carol["role_name"].as_str()),
        (Some("write"), Some("maintain"))
    );
    let owner: Value = github
        .get(
            "/repos/octo/hello/collaborators/octo/permission",
            None::<&()>,
        )
        .await
        .unwrap();
    assert_eq!(owner["role_name"], "admin");
    let stranger: Value = github
        .get(
            "/repos/octo/hello/collaborators/mallory/permission",
            None::<&()>,
        )
        .await
        .unwrap();
    assert_eq!(stranger["permission"], "none");
    let on_gitea: Value = gitea
        .get(
            "/repos/octo/hello/collaborators/carol/permission",
            None::<&()>,
        )
        .await
        .unwrap();
    assert_eq!(on_gitea["permission"], "write");
}

#[tokio::test]
async fn pulls_created_over_the_api_take_their_head_from_the_bare_repository() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("hello.git");
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    git(&["init", "-q", "-b", "main", "work"]);
    git(&[
        "-C",
        "work",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "init",
    ]);
    git(&[
        "-C",
        "work",
        "push",
        "-q",
        bare.to_str().unwrap(),
        "main:forgehand/1-fix",
    ]);

    let model = ForgeModel::new();
    let clone_url = url::Url::from_file_path(&bare).unwrap().to_string();
    model.add_repo("octo", "hello", "main", &clone_url);
    let server = serve(model.clone()).await.unwrap();
    let github = http(&server.github_api_url());
    let body =
        json!({ "title": "Fix", "head": "forgehand/1-fix", "base": "main", "body": "Closes #1" });
    let created = post(&github, "/repos/octo/hello/pulls", body)
        .await
        .unwrap();
    let number = created["number"].as_u64().unwrap();
    let sha = created["head"]["sha"].as_str().unwrap();
    assert_eq!(sha.len(), 40);
    assert_eq!(model.pull("octo/hello", number).unwrap().head_sha, sha);

    let gitea = http(&format!("{}/api/v1", server.gitea_url()));
    let listed: Vec<Value> = gitea
        .get("/repos/octo/hello/pulls?state=open", None::<&()>)
        .await
        .unwrap();
    assert_eq!(listed[0]["head"]["sha"], sha);
}

#[tokio::test]
async fn unknown_routes_answer_json_404_and_the_server_stops() {
    let (model, server) = start().await;
    model.open_pull("octo/hello", new_pull("p", "b"));
    let client = http(&server.base_url());
    let missing: Result<Value, _> = client.get("/github/nothing/here", None::<&()>).await;
    match missing.unwrap_err() {
        octocrab::Error::GitHub { source, .. } => {
            assert_eq!(source.status_code.as_u16(), 404);
            assert_eq!(source.message, "Not Found");
        }
        other => panic!("unexpected {other}"),
    }
    let url = server.github_api_url();
    server.shutdown().await;
    let after: Result<Value, _> = http(&url).get("/repos/octo/hello", None::<&()>).await;
    assert!(after.is_err());
}

#[tokio::test]
async fn injected_faults_answer_instead_of_the_api() {
    let (model, server) = start().await;
    let github = http(&server.github_api_url());
    let status = json!({ "state": "success", "context": "ci" });
    model.inject_fault(Fault {
        method: "POST".into(),
        path_contains: "/statuses/".into(),
        status: 503,
        message: "Service Unavailable".into(),
        times: Some(2),
    });
    for _ in 0..2 {
        let failed = post(&github, "/repos/octo/hello/statuses/abc", status.clone()).await;
        assert_eq!(status_code(failed.unwrap_err()), 503);
    }
    // Used up: served again, and only the served request left a record.
    post(&github, "/repos/octo/hello/statuses/abc", status.clone())
        .await
        .unwrap();
    assert_eq!(model.statuses("abc").len(), 1);
    assert_eq!(model.requests().len(), 3, "every request is in the log");

    model.inject_fault(Fault {
        method: "POST".into(),
        path_contains: "/statuses/".into(),
        status: 500,
        message: "boom".into(),
        times: None,
    });
    for _ in 0..3 {
        let failed = post(&github, "/repos/octo/hello/statuses/abc", status.clone()).await;
        assert_eq!(status_code(failed.unwrap_err()), 500);
    }
    model.clear_faults();
    post(&github, "/repos/octo/hello/statuses/abc", status)
        .await
        .unwrap();
    assert_eq!(model.statuses("abc").len(), 2);
}

#[tokio::test]
async fn gitea_reviews_of_an_earlier_commit_are_stale() {
    let (model, server) = start().await;
    let gitea = http(&format!("{}/api/v1", server.gitea_url()));
    let number = model.open_pull("octo/hello", new_pull("PR", "feature"));
    let approve = crate::forge::ReviewState::Approved;
    model.add_review("octo/hello", number, "carol", approve, "first");
    model.set_pull_head("octo/hello", number, "pushed-sha");
    model.add_review("octo/hello", number, "dave", approve, "second");
    model.add_review_on(
        "octo/hello",
        number,
        ("erin", approve, "old"),
        "feature-sha",
    );
    let reviews: Vec<Value> = gitea
        .get(
            format!("/repos/octo/hello/pulls/{number}/reviews"),
            None::<&()>,
        )
        .await
        .unwrap();
    let seen: Vec<(&str, &str, bool)> = reviews
        .iter()
        .map(|r| {
            (
                r["user"]["login"].as_str().unwrap(),
                r["commit_id"].as_str().unwrap(),
                r["stale"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("carol", "feature-sha", true),
            ("dave", "pushed-sha", false),
            ("erin", "feature-sha", true),
        ]
    );
}
