//! Line comments through both real clients: listed with their place in the diff, answered in
//! their thread, and the forges' refusals (an unknown comment, a reply to a reply).

use super::{new_pull, repo, start};
use crate::domain::ForgeKind;
use crate::forge::gitea::GiteaForge;
use crate::forge::github::{GithubAuth, GithubForge};
use crate::forge::{Forge, ForgeError};

#[tokio::test]
async fn github_lists_line_comments_and_replies_in_their_thread() {
    let (model, server) = start().await;
    let forge = GithubForge::new(&server.github_api_url(), GithubAuth::Token("t0k".into()))
        .expect("client builds");
    let repo = repo(ForgeKind::Github);
    let pull = model.open_pull("octo/hello", new_pull("Fix", "fix"));
    let first = model.add_line_comment("octo/hello", pull, "alice", ("src/a.rs", 4), "Why?");

    let comments = forge.review_comments(&repo, pull).await.unwrap();
    assert_eq!(comments.len(), 1);
    let c = &comments[0];
    assert_eq!((c.id, c.author.as_str()), (first, "alice"));
    assert_eq!((c.path.as_str(), c.line), ("src/a.rs", Some(4)));
    assert!(
        c.diff_hunk.starts_with("@@ -4,1 +4,1 @@"),
        "{}",
        c.diff_hunk
    );
    assert!(c.html_url.ends_with(&format!("#discussion_r{first}")));

    forge
        .reply_review_comment(&repo, pull, c, "Fixed.")
        .await
        .unwrap();
    let comments = forge.review_comments(&repo, pull).await.unwrap();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[1].in_reply_to, Some(first));
    assert_eq!(comments[1].author, "forgehand[bot]");
    // A reply to the reply goes to the thread's first comment, as GitHub wants.
    forge
        .reply_review_comment(&repo, pull, &comments[1], "Again.")
        .await
        .unwrap();
    let thread = model.line_comments("octo/hello", pull);
    assert!(thread[1..].iter().all(|c| c.in_reply_to == Some(first)));

    // An unknown comment is a 404.
    let mut gone = c.clone();
    gone.id = 999_999;
    let err = forge
        .reply_review_comment(&repo, pull, &gone, "?")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::NotFound(_) | ForgeError::Api { status: 404, .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn gitea_lists_line_comments_per_review_and_answers_on_the_same_line() {
    let (model, server) = start().await;
    let forge =
        GiteaForge::new(&server.gitea_url(), Some("tea-token".to_owned())).expect("client builds");
    let repo = repo(ForgeKind::Gitea);
    let pull = model.open_pull("octo/hello", new_pull("Fix", "fix"));
    model.add_line_comment("octo/hello", pull, "alice", ("src/a.rs", 4), "Why?");
    model.add_line_comment("octo/hello", pull, "bob", ("src/b.rs", 9), "And this?");

    let comments = forge.review_comments(&repo, pull).await.unwrap();
    let places: Vec<_> = comments
        .iter()
        .map(|c| (c.author.as_str(), c.path.as_str(), c.line))
        .collect();
    assert_eq!(
        places,
        [("alice", "src/a.rs", Some(4)), ("bob", "src/b.rs", Some(9))]
    );

    forge
        .reply_review_comment(&repo, pull, &comments[0], "Fixed.")
        .await
        .unwrap();
    let comments = forge.review_comments(&repo, pull).await.unwrap();
    assert_eq!(comments.len(), 3);
    let reply = comments.iter().find(|c| c.body == "Fixed.").unwrap();
    assert_eq!(
        (reply.author.as_str(), reply.path.as_str(), reply.line),
        ("forgehand", "src/a.rs", Some(4))
    );

    // A pull request that does not exist is a 404.
    let err = forge.review_comments(&repo, 4242).await.unwrap_err();
    assert!(
        matches!(
            err,
            ForgeError::NotFound(_) | ForgeError::Api { status: 404, .. }
        ),
        "{err:?}"
    );
}
