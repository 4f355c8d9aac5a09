//! The demo end to end in `--auto` mode: sandbox forge, sample repository, scripted agent and the
//! real server, connected only by the sandbox's webhooks.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::tickets;

fn options() -> DemoOptions {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    DemoOptions {
        listen: any_port,
        sandbox_listen: any_port,
        dir: None,
        auto: true,
        timeout: Duration::from_secs(60),
        step_delay: Duration::ZERO,
        print: false,
        ..DemoOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_demo_ends_in_review_with_a_pull_request() {
    let outcome = run(options(), CancellationToken::new())
        .await
        .expect("the demo reaches in-review");
    assert_eq!(outcome.status.as_deref(), Some(FINISH_STATUS));
    assert!(outcome.pull.is_some());
    assert!(outcome.run_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelling_the_demo_issue_runs_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let options = DemoOptions {
        dir: Some(data.clone()),
        ..options()
    };
    let demo = Demo::start(&options).await.expect("the demo starts");
    assert_eq!(demo.issue, 1);
    // What the person clicks: the page's "add label agent:todo" button.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/", demo.sandbox_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(ISSUE_TITLE), "{page}");
    assert!(page.contains("Sandbox forge"), "{page}");
    let clicked = http
        .post(format!("{}/ui/{REPO}/1/label-todo", demo.sandbox_url))
        .form(&[("back", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status(), 303);

    let outcome = watch::until_in_review(&demo, Duration::from_secs(60), false)
        .await
        .expect("in review");
    let pull_number = outcome.pull.unwrap();

    // On the sandbox forge: the pull request closes the issue, and the labels followed.
    let pull = demo
        .model
        .pull(REPO, pull_number)
        .expect("the pull request");
    assert!(pull.body.contains("Closes #1"), "{}", pull.body);
    assert_eq!(pull.base_ref, "main");
    assert!(
        pull.head_ref.starts_with("forgehand/1-"),
        "{}",
        pull.head_ref
    );
    let issue = demo.model.issue(REPO, 1).unwrap();
    assert!(
        issue.labels.contains(&"agent:in-review".to_owned()),
        "{:?}",
        issue.labels
    );
    // The trigger was the demo user's label, delivered by webhook.
    let deliveries = demo.model.webhook_deliveries();
    assert!(
        deliveries.iter().any(|d| d.action == "labeled"
            && d.payload["label"]["name"] == PICKUP_LABEL
            && d.payload["sender"]["login"] == DEMO_USER
            && d.status == Some(202)),
        "{deliveries:#?}"
    );

    // In Forgehand: the ticket is in review, pinned to config v1.
    let pool = demo.app.store.pool();
    let repo = crate::store::repos::find(pool, &Demo::repo_ref())
        .await
        .unwrap()
        .unwrap();
    // The mirror converges on the forge's labels (webhooks for Forgehand's own label moves may
    // still be arriving), so wait for it rather than read it once.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ticket = loop {
        let ticket = tickets::get(pool, repo.id, 1).await.unwrap().unwrap();
        if ticket.status.as_deref() == Some(FINISH_STATUS) || std::time::Instant::now() > deadline {
            break ticket;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ticket.status.as_deref(), Some(FINISH_STATUS));
    assert_eq!(ticket.pinned_version, Some(1));

    // The agent's edit was pushed to the sample repository's branch.
    let remote = data.join("remote").join("hello.git");
    let readme = std::process::Command::new("git")
        .arg("-C")
        .arg(&remote)
        .args(["show", &format!("{}:README.md", pull.head_ref)])
        .output()
        .unwrap();
    let readme = String::from_utf8_lossy(&readme.stdout);
    assert!(
        readme.contains("Hello from the Forgehand demo agent!"),
        "{readme}"
    );

    let pool = crate::run::worktree::pool::dir_for(&crate::run::cleanup::worktree_path(
        &demo.app,
        &Demo::repo_ref(),
        0,
    ))
    .unwrap();
    demo.stop().await;
    assert!(data.exists(), "a --dir is kept");
    // The run started a fill of the worktree pool; a stopped server has finished it, so no
    // checkout is left half made (nor written into a directory being deleted).
    let entries: Vec<String> = std::fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let ready = entries.iter().filter(|n| n.ends_with(".ready")).count();
    assert_eq!(
        (ready, entries.len()),
        (
            crate::run::worktree::pool::SIZE,
            2 * crate::run::worktree::pool::SIZE
        ),
        "{entries:?}"
    );
    // A later demo may reuse its own directory.
    repo::prepare_dir(&data).unwrap();
}

#[test]
fn a_foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let err = repo::prepare_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not made by"), "{err}");
    assert!(dir.path().join("precious.txt").exists());
}

#[test]
fn the_sample_config_is_valid() {
    let files: Vec<(String, String)> = REPO_FILES
        .iter()
        .filter(|(path, _)| path.starts_with(".forgehand/"))
        .map(|(path, text)| {
            (
                path.trim_start_matches(".forgehand/").to_owned(),
                (*text).to_owned(),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in &files {
        let file = dir.path().join(".forgehand").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let tree = crate::config::repo::read_dir(dir.path()).unwrap();
    let config = crate::config::repo::validate(&tree).expect("valid");
    assert_eq!(config.workflows.len(), 1);
}
