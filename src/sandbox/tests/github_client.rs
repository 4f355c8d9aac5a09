use super::{new_pull, populate, repo, start};
use crate::domain::ForgeKind;
use crate::forge::github::{GithubAuth, GithubForge};
use crate::forge::{Forge, ForgeError, IssueState, PullState};

const TEST_KEY: &str = include_str!("../testdata/github-app-test-key.pem");

fn token_client(url: &str) -> GithubForge {
    GithubForge::new(url, GithubAuth::Token("t0k".to_owned())).expect("client builds")
}

#[tokio::test]
async fn reads_repository_and_pages_open_issues_without_pull_requests() {
    let (model, server) = start().await;
    let (pulls, closed) = populate(&model, 130);
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);

    let info = forge.repository(&repo).await.unwrap();
    assert_eq!(info.default_branch, "main");
    assert_eq!(info.clone_url, "file:///srv/hello.git");

    let issues = forge.open_issues(&repo).await.unwrap();
    assert_eq!(issues.len(), 130);
    assert!(
        issues
            .iter()
            .all(|i| !pulls.contains(&i.number) && i.number != closed)
    );
    assert!(
        issues
            .iter()
            .all(|i| i.labels == ["agent:todo"] && i.author == "alice")
    );
    assert!(issues.iter().all(|i| i.state == IssueState::Open));

    let pages: Vec<_> = model
        .requests()
        .into_iter()
        .filter(|r| r.path == "/github/repos/octo/hello/issues")
        .collect();
    assert_eq!(pages.len(), 2, "134 open items need two pages of 100");
    assert!(pages[1].query.as_deref().unwrap().contains("page=2"));
    assert_eq!(pages[0].authorization.as_deref(), Some("Bearer t0k"));
}

#[tokio::test]
async fn reads_issue_comments_and_pull_request_states() {
    let (model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let issue = model.open_issue(
        "octo/hello",
        "Fix it",
        "please",
        &["agent:todo", "bug"],
        "alice",
    );
    for i in 0..105 {
        model.add_comment("octo/hello", issue, "bob", &format!("comment {i}"));
    }
    let open = model.open_pull("octo/hello", new_pull("open", "a"));
    let merged = model.open_pull("octo/hello", new_pull("merged", "b"));
    let closed = model.open_pull("octo/hello", new_pull("closed", "c"));
    model.merge_pull("octo/hello", merged);
    model.close_issue("octo/hello", closed);

    let snapshot = forge.issue(&repo, issue).await.unwrap();
    assert_eq!(Some(snapshot.clone()), model.issue("octo/hello", issue));
    assert_eq!(snapshot.labels, ["agent:todo", "bug"]);
    assert!(snapshot.html_url.ends_with("/octo/hello/issues/1"));

    let comments = forge.issue_comments(&repo, issue).await.unwrap();
    assert_eq!(comments.len(), 105);
    assert_eq!(comments[104].body, "comment 104");
    assert_eq!(comments[0].author, "bob");

    let pull = forge.pull_request(&repo, open).await.unwrap();
    assert_eq!(
        (pull.state, pull.head_ref.as_str(), pull.head_sha.as_str()),
        (PullState::Open, "a", "a-sha")
    );
    assert_eq!(pull.base_ref, "main");
    assert_eq!(
        forge.pull_request(&repo, merged).await.unwrap().state,
        PullState::Merged
    );
    assert_eq!(
        forge.pull_request(&repo, closed).await.unwrap().state,
        PullState::Closed
    );
}

#[tokio::test]
async fn writes_labels_and_comments() {
    let (model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let issue = model.open_issue("octo/hello", "Fix it", "", &["agent:todo"], "alice");

    let labels = ["agent:in-progress".to_owned(), "needs review".to_owned()];
    forge.add_labels(&repo, issue, &labels).await.unwrap();
    forge
        .remove_label(&repo, issue, "agent:todo")
        .await
        .unwrap();
    assert_eq!(model.issue("octo/hello", issue).unwrap().labels, labels);
    // Removing a label the issue does not carry is not an error; a missing issue is.
    forge
        .remove_label(&repo, issue, "agent:todo")
        .await
        .unwrap();
    let missing = forge.remove_label(&repo, 999, "agent:todo").await;
    assert!(
        matches!(missing, Err(ForgeError::NotFound(_))),
        "{missing:?}"
    );

    let id = forge
        .create_comment(&repo, issue, "Working on it")
        .await
        .unwrap();
    forge.update_comment(&repo, id, "Done").await.unwrap();
    let comments = model.comments("octo/hello", issue);
    assert_eq!(comments.len(), 1);
    assert_eq!((comments[0].id, comments[0].body.as_str()), (id, "Done"));
    assert_eq!(comments[0].author, crate::sandbox::GITHUB_BOT_LOGIN);
}

#[tokio::test]
async fn maps_missing_things_to_not_found() {
    let (model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let issue = model.open_issue("octo/hello", "Not a PR", "", &[], "alice");
    let other = crate::domain::RepoRef::new(ForgeKind::Github, "octo", "nope");

    assert!(matches!(
        forge.repository(&other).await,
        Err(ForgeError::NotFound(_))
    ));
    assert!(matches!(
        forge.issue(&repo, 42).await,
        Err(ForgeError::NotFound(_))
    ));
    assert!(matches!(
        forge.pull_request(&repo, issue).await,
        Err(ForgeError::NotFound(_))
    ));
    assert!(matches!(
        forge.update_comment(&repo, 4242, "x").await,
        Err(ForgeError::NotFound(_))
    ));
}

#[tokio::test]
async fn token_auth_credential() {
    let (_model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let credential = forge
        .git_credential(&repo(ForgeKind::Github))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (credential.username.as_str(), credential.password.as_str()),
        ("x-access-token", "t0k")
    );
}

#[tokio::test]
async fn app_auth_uses_installation_tokens() {
    let (model, server) = start().await;
    let issue = model.open_issue("octo/hello", "Fix it", "", &[], "alice");
    let auth = GithubAuth::App {
        app_id: 42,
        private_key_pem: TEST_KEY.to_owned(),
    };
    let forge = GithubForge::new(&server.github_api_url(), auth).unwrap();
    let repo = repo(ForgeKind::Github);

    forge.issue(&repo, issue).await.unwrap();
    forge.issue(&repo, issue).await.unwrap();
    let credential = forge.git_credential(&repo).await.unwrap().unwrap();
    assert_eq!(credential.username, "x-access-token");
    assert_eq!(
        credential.password, "ghs_sandbox1",
        "the cached installation token is reused"
    );

    let requests = model.requests();
    let seen: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/github/repos/octo/hello/installation"),
            ("POST", "/github/app/installations/1/access_tokens"),
            ("GET", "/github/repos/octo/hello/issues/1"),
            ("GET", "/github/repos/octo/hello/issues/1"),
        ],
        "installation looked up once, one token minted"
    );
    for app_call in &requests[..2] {
        let jwt = app_call
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap();
        assert_eq!(
            jwt.split('.').count(),
            3,
            "a JWT signed with the App key: {jwt}"
        );
    }
    for api_call in &requests[2..] {
        assert_eq!(
            api_call.authorization.as_deref(),
            Some("Bearer ghs_sandbox1")
        );
    }
}

#[test]
fn rejects_an_invalid_app_key() {
    let auth = GithubAuth::App {
        app_id: 1,
        private_key_pem: "not a key".to_owned(),
    };
    let built = GithubForge::new("https://api.github.com", auth);
    assert!(matches!(built, Err(ForgeError::Auth(_))));
}

#[tokio::test]
async fn reads_collaborator_permissions_by_role() {
    use crate::config::repo::Permission as Level;
    use crate::sandbox::Permission;
    let (model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    for (login, permission) in [
        ("mia", Permission::Maintain),
        ("tom", Permission::Triage),
        ("wes", Permission::Write),
        ("rae", Permission::Read),
    ] {
        model.set_permission("octo/hello", login, permission);
    }
    // `role_name` tells maintain and triage apart where the legacy field folds them.
    let expected = [
        ("octo", Some(Level::Admin)),
        ("mia", Some(Level::Maintain)),
        ("tom", Some(Level::Triage)),
        ("wes", Some(Level::Write)),
        ("rae", Some(Level::Read)),
        ("stranger", None),
    ];
    for (login, level) in expected {
        assert_eq!(
            forge.permission(&repo, login).await.unwrap(),
            level,
            "{login}"
        );
    }
    let asked = model
        .requests()
        .into_iter()
        .any(|r| r.path == "/github/repos/octo/hello/collaborators/mia/permission");
    assert!(asked);
}

#[tokio::test]
async fn creates_finds_and_updates_pull_requests() {
    use crate::forge::NewPullRequest;
    let (model, server, disk) = super::start_on_disk().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let branch = "forgehand/1-fix-it";
    let first = disk.push(branch);

    assert_eq!(forge.find_open_pull(&repo, branch).await.unwrap(), None);
    let new = NewPullRequest {
        title: "Fix it".into(),
        body: "Closes #1".into(),
        head: branch.into(),
        base: "main".into(),
        draft: true,
    };
    let created = forge.create_pull(&repo, &new).await.unwrap();
    assert_eq!(
        (
            created.title.as_str(),
            created.head_ref.as_str(),
            created.head_sha.as_str(),
            created.base_ref.as_str(),
            created.state
        ),
        ("Fix it", branch, first.as_str(), "main", PullState::Open)
    );
    assert_eq!(
        model.pull("octo/hello", created.number),
        Some(created.clone())
    );
    assert_eq!(
        model.pull_is_draft("octo/hello", created.number),
        Some(true)
    );
    // A second one for the same branch is refused, as GitHub does.
    assert!(matches!(
        forge.create_pull(&repo, &new).await,
        Err(ForgeError::Api { status: 422, .. })
    ));

    // Found by its branch, and only by it; the query names the owner and encodes the branch.
    let found = forge.find_open_pull(&repo, branch).await.unwrap().unwrap();
    assert_eq!(found.number, created.number);
    assert_eq!(
        forge.find_open_pull(&repo, "forgehand/1").await.unwrap(),
        None
    );
    let query = model
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/github/repos/octo/hello/pulls" && r.method == "GET")
        .and_then(|r| r.query)
        .unwrap();
    assert!(query.contains("head=octo:forgehand%2F1"), "{query}");

    // A later push moves the head; the update replaces title and body.
    let second = disk.push(branch);
    forge
        .update_pull(
            &repo,
            created.number,
            "Fix it properly",
            "Closes #1\n\nMore",
        )
        .await
        .unwrap();
    let updated = forge.pull_request(&repo, created.number).await.unwrap();
    assert_eq!(
        (
            updated.title.as_str(),
            updated.body.as_str(),
            updated.head_sha.as_str()
        ),
        ("Fix it properly", "Closes #1\n\nMore", second.as_str())
    );
    assert_eq!(
        model.pull_is_draft("octo/hello", created.number),
        Some(true)
    );

    // Merged (or closed) pull requests are not open ones.
    model.merge_pull("octo/hello", created.number);
    assert_eq!(forge.find_open_pull(&repo, branch).await.unwrap(), None);
    assert!(matches!(
        forge.update_pull(&repo, 999, "x", "y").await,
        Err(ForgeError::NotFound(_))
    ));
}

/// An issue whose status label was added, removed and added again, by two people, after 250
/// other label changes: three pages of events, the latest addition on the last.
fn relabelled_issue(model: &crate::sandbox::ForgeModel) -> u64 {
    let n = model.open_issue("octo/hello", "Busy", "", &["agent:todo"], "alice");
    for i in 0..125 {
        let label = format!("noise-{i}");
        model.add_labels("octo/hello", n, &[label.as_str()], "mallory");
    }
    model.set_labels("octo/hello", n, &["agent:todo"]);
    model.set_labels("octo/hello", n, &[]);
    model.add_labels("octo/hello", n, &["agent:todo"], "bob");
    n
}

#[tokio::test]
async fn reads_who_last_added_a_label_from_the_last_pages_of_events() {
    let (model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let n = relabelled_issue(&model);
    assert!(model.label_events("octo/hello", n).len() > 250);

    model.clear_requests();
    let found = forge.labelled_by(&repo, n, "agent:todo").await.unwrap();
    assert_eq!(found.as_deref(), Some("bob"), "the latest addition counts");
    let pages: Vec<String> = model
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/issues/{n}/events")))
        .filter_map(|r| r.query.clone())
        .collect();
    assert_eq!(
        pages,
        ["per_page=100&page=1", "per_page=100&page=3"],
        "the first page for the Link header, then back from the last"
    );

    // A label that was never added, and an issue without events.
    assert_eq!(
        forge.labelled_by(&repo, n, "agent:done").await.unwrap(),
        None
    );
    let quiet = model.open_issue("octo/hello", "Quiet", "", &[], "alice");
    assert_eq!(
        forge.labelled_by(&repo, quiet, "agent:todo").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn refused_events_are_an_error_not_an_answer() {
    let (model, server) = start().await;
    let forge = token_client(&server.github_api_url());
    let repo = repo(ForgeKind::Github);
    let n = model.open_issue("octo/hello", "Hidden", "", &["agent:todo"], "alice");
    let fault = |status: u16, message: &str| crate::sandbox::Fault {
        method: "GET".into(),
        path_contains: format!("/github/repos/octo/hello/issues/{n}/events"),
        times: None,
        status,
        message: message.into(),
    };
    model.inject_fault(fault(403, "Resource not accessible by integration"));
    let err = forge.labelled_by(&repo, n, "agent:todo").await.unwrap_err();
    assert!(matches!(err, ForgeError::Api { status: 403, .. }), "{err}");
    model.clear_faults();
    model.inject_fault(fault(404, "Not Found"));
    let err = forge.labelled_by(&repo, n, "agent:todo").await.unwrap_err();
    assert!(matches!(err, ForgeError::NotFound(_)), "{err}");
}
