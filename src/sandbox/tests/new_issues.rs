//! `Forge::create_issue` through both real clients: the issue is opened with its labels, and
//! labels the repository lacks are created (Gitea refuses unknown label ids, so its client
//! creates them first).

use super::{repo, start};
use crate::domain::ForgeKind;
use crate::forge::Forge;
use crate::forge::gitea::GiteaForge;
use crate::forge::github::{GithubAuth, GithubForge};
use crate::forge::{ForgeError, IssueState};
use crate::sandbox::{GITEA_BOT_LOGIN, GITHUB_BOT_LOGIN};

#[tokio::test]
async fn github_opens_an_issue_with_labels() {
    let (model, server) = start().await;
    model.open_issue("octo/hello", "Existing", "", &[], "alice");
    let forge = GithubForge::new(&server.github_api_url(), GithubAuth::Token("t".into())).unwrap();
    let labels = vec!["agent:todo".to_owned(), "weekly chore".to_owned()];

    let number = forge
        .create_issue(&repo(ForgeKind::Github), "Update deps", "Run it.", &labels)
        .await
        .unwrap();
    assert_eq!(number, 2);
    let issue = model.issue("octo/hello", number).unwrap();
    assert_eq!(
        (issue.title.as_str(), issue.body.as_str(), issue.state),
        ("Update deps", "Run it.", IssueState::Open)
    );
    assert_eq!(issue.labels, labels);
    assert_eq!(issue.author, GITHUB_BOT_LOGIN);
    let request = model
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/github/repos/octo/hello/issues")
        .expect("one POST /issues");
    assert_eq!(request.authorization.as_deref(), Some("Bearer t"));

    let no_labels = forge
        .create_issue(&repo(ForgeKind::Github), "Bare", "", &[])
        .await
        .unwrap();
    assert!(
        model
            .issue("octo/hello", no_labels)
            .unwrap()
            .labels
            .is_empty()
    );

    let missing = crate::domain::RepoRef::new(ForgeKind::Github, "octo", "nope");
    let err = forge
        .create_issue(&missing, "x", "", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn gitea_opens_an_issue_with_label_ids_creating_missing_labels() {
    let (model, server) = start().await;
    let known = model.create_label("octo/hello", "agent:todo", "00ff00");
    let forge = GiteaForge::new(&server.gitea_url(), Some("tea".into())).unwrap();
    let labels = vec!["agent:todo".to_owned(), "chore".to_owned()];

    let number = forge
        .create_issue(&repo(ForgeKind::Gitea), "Rotate keys", "Monthly.", &labels)
        .await
        .unwrap();
    let issue = model.issue("octo/hello", number).unwrap();
    assert_eq!(issue.title, "Rotate keys");
    assert_eq!(issue.body, "Monthly.");
    assert_eq!(issue.labels, labels);
    assert_eq!(issue.author, GITEA_BOT_LOGIN);
    // The existing label was reused, the missing one created once.
    let repo_labels = model.labels("octo/hello");
    assert_eq!(repo_labels.len(), 2, "{repo_labels:?}");
    assert!(repo_labels.iter().any(|l| l.id == known.id));
    let posted = model
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/gitea/api/v1/repos/octo/hello/issues")
        .count();
    assert_eq!(posted, 1);

    let err = forge
        .create_issue(&repo(ForgeKind::Gitea), "  ", "", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::Api { status: 422, .. }),
        "{err:?}"
    );
}
