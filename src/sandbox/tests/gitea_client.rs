use super::{new_pull, populate, repo, start};
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::gitea::GiteaForge;
use crate::forge::{Forge, ForgeError, IssueState, PullState};

fn client(url: &str) -> GiteaForge {
    GiteaForge::new(url, Some("tea-token".to_owned())).expect("client builds")
}

#[tokio::test]
async fn reads_repository_and_pages_open_issues_without_pull_requests() {
    let (model, server) = start().await;
    let (pulls, closed) = populate(&model, 60);
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);

    let info = forge.repository(&repo).await.unwrap();
    assert_eq!(
        (info.default_branch.as_str(), info.clone_url.as_str()),
        ("main", "file:///srv/hello.git")
    );

    let issues = forge.open_issues(&repo).await.unwrap();
    assert_eq!(issues.len(), 60);
    assert!(
        issues
            .iter()
            .all(|i| !pulls.contains(&i.number) && i.number != closed)
    );
    assert!(
        issues
            .iter()
            .all(|i| i.labels == ["agent:todo"] && i.state == IssueState::Open)
    );

    let pages: Vec<_> = model
        .requests()
        .into_iter()
        .filter(|r| r.path == "/gitea/api/v1/repos/octo/hello/issues")
        .collect();
    assert_eq!(pages.len(), 2, "60 issues need two pages of 50");
    assert_eq!(pages[0].authorization.as_deref(), Some("token tea-token"));
}

#[tokio::test]
async fn reads_issue_comments_and_pull_request_states() {
    let (model, server) = start().await;
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    let issue = model.open_issue("octo/hello", "Fix it", "please", &["agent:todo"], "alice");
    model.add_comment("octo/hello", issue, "bob", "first");
    let open = model.open_pull("octo/hello", new_pull("open", "a"));
    let merged = model.open_pull("octo/hello", new_pull("merged", "b"));
    let closed = model.open_pull("octo/hello", new_pull("closed", "c"));
    model.merge_pull("octo/hello", merged);
    model.close_issue("octo/hello", closed);

    let snapshot = forge.issue(&repo, issue).await.unwrap();
    assert_eq!(
        (
            snapshot.title.as_str(),
            snapshot.body.as_str(),
            snapshot.author.as_str()
        ),
        ("Fix it", "please", "alice")
    );
    assert_eq!(snapshot.labels, ["agent:todo"]);

    let comments = forge.issue_comments(&repo, issue).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(
        (comments[0].author.as_str(), comments[0].body.as_str()),
        ("bob", "first")
    );

    let pull = forge.pull_request(&repo, open).await.unwrap();
    assert_eq!(
        (pull.state, pull.head_ref.as_str(), pull.head_sha.as_str()),
        (PullState::Open, "a", "a-sha")
    );
    assert_eq!(
        forge.pull_request(&repo, merged).await.unwrap().state,
        PullState::Merged
    );
    assert_eq!(
        forge.pull_request(&repo, closed).await.unwrap().state,
        PullState::Closed
    );
    assert!(matches!(
        forge.pull_request(&repo, issue).await,
        Err(ForgeError::NotFound(_))
    ));
    assert!(matches!(
        forge.issue(&repo, 77).await,
        Err(ForgeError::NotFound(_))
    ));
}

#[tokio::test]
async fn writes_labels_by_id_and_comments() {
    let (model, server) = start().await;
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    let issue = model.open_issue("octo/hello", "Fix it", "", &["agent:todo"], "alice");

    // `agent:done` does not exist on the repository yet: the client creates it.
    let labels = ["agent:done".to_owned()];
    forge.add_labels(&repo, issue, &labels).await.unwrap();
    forge
        .remove_label(&repo, issue, "agent:todo")
        .await
        .unwrap();
    assert_eq!(model.issue("octo/hello", issue).unwrap().labels, labels);
    assert!(
        model
            .labels("octo/hello")
            .iter()
            .any(|l| l.name == "agent:done")
    );
    forge
        .remove_label(&repo, issue, "never-existed")
        .await
        .unwrap();
    assert!(matches!(
        forge.remove_label(&repo, 99, "agent:done").await,
        Err(ForgeError::NotFound(_))
    ));

    let created_label = model
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path == "/gitea/api/v1/repos/octo/hello/labels");
    assert!(created_label);

    let id = forge
        .create_comment(&repo, issue, "Working on it")
        .await
        .unwrap();
    forge.update_comment(&repo, id, "Done").await.unwrap();
    let comments = model.comments("octo/hello", issue);
    assert_eq!((comments[0].id, comments[0].body.as_str()), (id, "Done"));
    assert!(matches!(
        forge.update_comment(&repo, 4242, "x").await,
        Err(ForgeError::NotFound(_))
    ));
}

#[tokio::test]
async fn credentials_need_a_token() {
    let (model, server) = start().await;
    let repo = repo(ForgeKind::Gitea);
    let credential = client(&server.gitea_url())
        .git_credential(&repo)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.password, "tea-token");
    let anonymous = GiteaForge::new(&server.gitea_url(), None).unwrap();
    assert!(anonymous.git_credential(&repo).await.unwrap().is_none());
    anonymous.repository(&repo).await.unwrap();
    assert_eq!(model.requests().last().unwrap().authorization, None);
}

#[tokio::test]
async fn reads_collaborator_permissions() {
    use crate::config::repo::Permission as Level;
    use crate::sandbox::Permission;
    let (model, server) = start().await;
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    model.set_permission("octo/hello", "adam", Permission::Admin);
    model.set_permission("octo/hello", "mia", Permission::Maintain);
    model.set_permission("octo/hello", "tom", Permission::Triage);
    // Gitea knows owner, admin, write and read: maintain and triage fold into their neighbours.
    let expected = [
        ("octo", Some(Level::Admin)),
        ("adam", Some(Level::Admin)),
        ("mia", Some(Level::Write)),
        ("tom", Some(Level::Read)),
        ("stranger", None),
    ];
    for (login, level) in expected {
        assert_eq!(
            forge.permission(&repo, login).await.unwrap(),
            level,
            "{login}"
        );
    }
}

#[tokio::test]
async fn creates_finds_and_updates_pull_requests() {
    use crate::forge::NewPullRequest;
    let (model, server, disk) = super::start_on_disk().await;
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    let branch = "forgehand/2-fix-it";
    let first = disk.push(branch);

    // Ours is the oldest of many, so finding it takes more than one page.
    let new = NewPullRequest {
        title: "Fix it".into(),
        body: "Closes #2".into(),
        head: branch.into(),
        base: "main".into(),
        draft: true,
    };
    let created = forge.create_pull(&repo, &new).await.unwrap();
    for i in 0..55 {
        model.open_pull(
            "octo/hello",
            new_pull(&format!("other {i}"), &format!("o{i}")),
        );
    }
    // A closed pull request from the same branch does not count.
    let closed = model.open_pull("octo/hello", new_pull("old", branch));
    model.close_issue("octo/hello", closed);

    // Gitea has no draft flag: the title says "work in progress".
    assert_eq!(created.title, "WIP: Fix it");
    assert_eq!(
        (created.head_sha.as_str(), created.state),
        (first.as_str(), PullState::Open)
    );
    // Visible in the model (whose URLs are GitHub's shape).
    let seen = model.pull("octo/hello", created.number).unwrap();
    assert_eq!(
        (seen.title, seen.head_sha),
        (created.title.clone(), first.clone())
    );
    assert!(matches!(
        forge.create_pull(&repo, &new).await,
        Err(ForgeError::Api { status: 422, .. })
    ));

    model.clear_requests();
    let found = forge.find_open_pull(&repo, branch).await.unwrap().unwrap();
    assert_eq!(found.number, created.number);
    let pages = model
        .requests()
        .iter()
        .filter(|r| r.path == "/gitea/api/v1/repos/octo/hello/pulls")
        .count();
    assert_eq!(pages, 2);
    assert_eq!(
        forge.find_open_pull(&repo, "forgehand/2").await.unwrap(),
        None
    );

    // An update keeps the work-in-progress marker, and the head follows the branch.
    let second = disk.push(branch);
    forge
        .update_pull(
            &repo,
            created.number,
            "Fix it properly",
            "Closes #2\n\nMore",
        )
        .await
        .unwrap();
    let updated = model.pull("octo/hello", created.number).unwrap();
    assert_eq!(
        (
            updated.title.as_str(),
            updated.body.as_str(),
            updated.head_sha.as_str()
        ),
        ("WIP: Fix it properly", "Closes #2\n\nMore", second.as_str())
    );

    // A ready pull request stays ready.
    let ready_branch = "forgehand/3-ready";
    disk.push(ready_branch);
    let ready = NewPullRequest {
        title: "Ready".into(),
        head: ready_branch.into(),
        draft: false,
        ..new
    };
    let ready = forge.create_pull(&repo, &ready).await.unwrap();
    assert_eq!(ready.title, "Ready");
    forge
        .update_pull(&repo, ready.number, "Still ready", "")
        .await
        .unwrap();
    assert_eq!(
        model.pull("octo/hello", ready.number).unwrap().title,
        "Still ready"
    );

    model.merge_pull("octo/hello", created.number);
    assert_eq!(forge.find_open_pull(&repo, branch).await.unwrap(), None);
}

#[tokio::test]
async fn reads_who_last_added_a_label_from_every_page_of_the_timeline() {
    let (model, server) = start().await;
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    let n = model.open_issue("octo/hello", "Busy", "", &["agent:todo"], "alice");
    for i in 0..60 {
        model.add_comment("octo/hello", n, "mallory", &format!("ping {i}"));
    }
    model.set_labels("octo/hello", n, &[]);
    model.add_labels("octo/hello", n, &["agent:todo"], "bob");
    model.add_comment("octo/hello", n, "mallory", "later");

    model.clear_requests();
    let found = forge.labelled_by(&repo, n, "agent:todo").await.unwrap();
    assert_eq!(found.as_deref(), Some("bob"), "the latest addition counts");
    let pages = model
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/issues/{n}/timeline")))
        .count();
    assert_eq!(pages, 2, "64 entries: a full page of 50, then a short one");
    assert_eq!(
        forge.labelled_by(&repo, n, "agent:done").await.unwrap(),
        None
    );

    model.inject_fault(crate::sandbox::Fault {
        method: "GET".into(),
        path_contains: format!("/gitea/api/v1/repos/octo/hello/issues/{n}/timeline"),
        times: None,
        status: 404,
        message: "Not Found".into(),
    });
    let err = forge.labelled_by(&repo, n, "agent:todo").await.unwrap_err();
    assert!(matches!(err, ForgeError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn organisation_labels_are_used_not_duplicated() {
    let (model, server) = start().await;
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    let org_label = model.create_org_label("octo", "agent:in-progress", "00aa00");
    let n = model.open_issue("octo/hello", "Org labels", "", &[], "alice");

    forge
        .add_labels(&repo, n, &["agent:in-progress".to_owned()])
        .await
        .unwrap();
    let issue = forge.issue(&repo, n).await.unwrap();
    assert_eq!(issue.labels, vec!["agent:in-progress".to_owned()]);
    // The organisation's label was put on the issue; no repository copy was made.
    assert!(
        model
            .labels("octo/hello")
            .iter()
            .all(|l| l.name != "agent:in-progress"),
        "a repository label shadows the organisation's"
    );
    let added = model
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/issues/{n}/labels")))
        .count();
    assert_eq!(added, 1);

    forge
        .remove_label(&repo, n, "agent:in-progress")
        .await
        .unwrap();
    assert!(forge.issue(&repo, n).await.unwrap().labels.is_empty());
    assert!(
        model
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with(&format!("/labels/{}", org_label.id)))
    );
}

#[tokio::test]
async fn every_page_of_dependencies_is_read() {
    let (model, server) = start().await;
    model.add_repo("octo", "lib", "main", "file:///srv/lib.git");
    let forge = client(&server.gitea_url());
    let repo = repo(ForgeKind::Gitea);
    let blocked = model.open_issue("octo/hello", "Blocked", "", &[], "alice");
    // More blockers than Gitea's largest page (50); the last one in another repository.
    let mut expected = Vec::new();
    for i in 0..60 {
        let n = model.open_issue("octo/hello", &format!("Blocker {i}"), "", &[], "alice");
        model.add_blocker("octo/hello", blocked, "octo/hello", n);
        expected.push((repo.clone(), n));
    }
    let other = model.open_issue("octo/lib", "Elsewhere", "", &[], "alice");
    model.add_blocker("octo/hello", blocked, "octo/lib", other);
    expected.push((RepoRef::new(ForgeKind::Gitea, "octo", "lib"), other));

    let mut found = forge.blocked_by(&repo, blocked).await.unwrap();
    found.sort_by_key(|(r, n)| (r.to_string(), *n));
    expected.sort_by_key(|(r, n)| (r.to_string(), *n));
    assert_eq!(found, expected);
}

#[tokio::test]
async fn a_token_without_admin_is_told_what_permission_queries_need() {
    let (model, server) = start().await;
    let forge = client(&server.gitea_url());
    // What Gitea answers a token whose user is not an admin of the repository.
    model.inject_fault(crate::sandbox::Fault {
        method: "GET".into(),
        path_contains: "/collaborators/alice/permission".into(),
        status: 403,
        message: "Only admins can query all permissions, repo admins can query all repo \
                  permissions, collaborators can query only their own"
            .into(),
        times: None,
    });
    let err = forge
        .permission(&repo(ForgeKind::Gitea), "alice")
        .await
        .unwrap_err();
    let ForgeError::Auth(message) = err else {
        panic!("not an authorisation error: {err}");
    };
    assert!(message.contains("needs the admin role on"), "{message}");
}
