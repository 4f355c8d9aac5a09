//! Reconciliation against the sandbox forge, reached through the real GitHub and Gitea clients
//! over HTTP: lost and stale deliveries converge on the forge's state.

use std::sync::Arc;

use forgehand::app::Forges;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::forge::CommentSnapshot;
use forgehand::forge::RepoInfo;
use forgehand::forge::gitea::GiteaForge;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::{self, ForgeModel, SandboxServer};
use forgehand::store::{repos, tickets};
use forgehand::sync::reconcile;
use forgehand::web::api::types::TicketDetail;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, fixture, wait_until};

backend_tests!(
    reconcile_discovers_and_follows_issues,
    stale_delivery_converges_on_forge_state,
    gitea_reconcile,
    a_full_pass_reads_only_the_comments_that_may_have_changed,
    comments_the_full_pass_cannot_read_are_left_marked,
    comments_deleted_on_the_forge_leave_the_mirror,
);

async fn start(db: Db) -> (TestServer, ForgeModel, SandboxServer) {
    let model = ForgeModel::new();
    model.add_repo("octo", "hello", "main", "file:///nonexistent/hello.git");
    model.add_repo("acme", "widgets", "main", "file:///nonexistent/widgets.git");
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let github = GithubForge::new(
        &sandbox.github_api_url(),
        GithubAuth::Token("ghp_test".into()),
    )
    .unwrap();
    let gitea = GiteaForge::new(&sandbox.gitea_url(), Some("gitea_test".into())).unwrap();
    let options = Options {
        forges: Forges::new(Some(Arc::new(github)), Some(Arc::new(gitea))),
        ..Options::default()
    }
    .env("FORGEHAND_RECONCILE_INTERVAL", "1h");
    let server = TestServer::start_with(db, options).await;
    (server, model, sandbox)
}

/// Makes a repository known to the server, as its first webhook would.
async fn know(server: &TestServer, forge: ForgeKind, owner: &str, name: &str) {
    let info = RepoInfo {
        repo: RepoRef::new(forge, owner, name),
        default_branch: "main".into(),
        clone_url: format!("file:///nonexistent/{name}.git"),
        html_url: format!("https://example.test/{owner}/{name}"),
    };
    let mut conn = server.app.store.pool().acquire().await.unwrap();
    repos::upsert(&mut conn, &info).await.unwrap();
}

async fn ticket(server: &TestServer, path: &str) -> Option<TicketDetail> {
    let response = server
        .http
        .get(format!("{}/api/v1/tickets/{path}", server.base))
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert!(response.status().is_success());
    Some(response.json().await.unwrap())
}

async fn reconcile_discovers_and_follows_issues(db: Db) {
    let (server, model, _sandbox) = start(db).await;
    let todo = model.open_issue(
        "octo/hello",
        "Add login",
        "Please.",
        &["agent:todo", "bug"],
        "alice",
    );
    let plain = model.open_issue("octo/hello", "Question", "", &["question"], "bob");
    let review = model.open_issue("octo/hello", "Tidy CSS", "", &["agent:in-review"], "carol");
    model.add_comment("octo/hello", review, "dave", "Looks good so far");
    know(&server, ForgeKind::Github, "octo", "hello").await;

    reconcile::reconcile_all(&server.app).await.unwrap();
    let t = ticket(&server, &format!("github/octo/hello/{todo}"))
        .await
        .expect("todo ticket");
    assert_eq!(t.ticket.status.as_deref(), Some("todo"));
    assert_eq!(t.ticket.title, "Add login");
    assert_eq!(t.ticket.author, "alice");
    let r = ticket(&server, &format!("github/octo/hello/{review}"))
        .await
        .expect("review ticket");
    assert_eq!(r.ticket.status.as_deref(), Some("in-review"));
    assert_eq!(r.comments[0].body, "Looks good so far");
    assert!(!r.ticket.needs_reconcile);
    assert!(
        ticket(&server, &format!("github/octo/hello/{plain}"))
            .await
            .is_none()
    );

    // Changes whose deliveries were lost: a label added, an issue closed.
    model.set_labels("octo/hello", plain, &["agent:todo"]);
    model.close_issue("octo/hello", todo);
    reconcile::reconcile_all(&server.app).await.unwrap();
    reconcile::reconcile_marked(&server.app).await.unwrap();
    let p = ticket(&server, &format!("github/octo/hello/{plain}"))
        .await
        .expect("new ticket");
    assert_eq!(p.ticket.status.as_deref(), Some("todo"));
    let t = ticket(&server, &format!("github/octo/hello/{todo}"))
        .await
        .unwrap();
    assert_eq!(t.ticket.state, "closed");
    assert!(!t.ticket.needs_reconcile);
    server.finish().await;
}

/// A GitHub `issues` delivery for octo/hello built from GitHub's own example.
fn issue_delivery(number: u64, labels: &[&str], updated_at: &str) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&fixture("github/issues/labeled.payload.json")).unwrap();
    v["repository"]["owner"]["login"] = json!("octo");
    v["repository"]["name"] = json!("hello");
    v["repository"]["full_name"] = json!("octo/hello");
    v["issue"]["number"] = json!(number);
    v["issue"]["updated_at"] = json!(updated_at);
    v["issue"]["labels"] = labels.iter().map(|l| json!({ "name": l })).collect();
    serde_json::to_vec(&v).unwrap()
}

async fn stale_delivery_converges_on_forge_state(db: Db) {
    let (server, model, _sandbox) = start(db).await;
    let n = model.open_issue(
        "octo/hello",
        "Fix the bug",
        "",
        &["agent:in-progress"],
        "alice",
    );
    // The delivery says `todo`, but the issue moved on since (its later delivery was lost).
    let body = issue_delivery(n, &["agent:todo"], "2020-01-01T00:00:00Z");
    assert_eq!(
        server
            .post_github("issues", "stale-1", &body)
            .await
            .status(),
        202
    );
    // The reconcile worker re-reads the marked ticket and corrects it.
    wait_until("the ticket to reach the forge's status", || async {
        ticket(&server, &format!("github/octo/hello/{n}"))
            .await
            .is_some_and(|t| {
                t.ticket.status.as_deref() == Some("in-progress") && !t.ticket.needs_reconcile
            })
    })
    .await;
    // An older delivery arriving late changes nothing.
    let older = issue_delivery(n, &["agent:backlog"], "2019-01-01T00:00:00Z");
    assert_eq!(
        server
            .post_github("issues", "stale-0", &older)
            .await
            .status(),
        202
    );
    server.drain_inbox().await;
    let t = ticket(&server, &format!("github/octo/hello/{n}"))
        .await
        .unwrap();
    assert_eq!(t.ticket.status.as_deref(), Some("in-progress"));
    server.finish().await;
}

async fn gitea_reconcile(db: Db) {
    let (server, model, _sandbox) = start(db).await;
    let n = model.open_issue(
        "acme/widgets",
        "Export CSV",
        "Body",
        &["agent:todo"],
        "erin",
    );
    model.add_comment("acme/widgets", n, "frank", "+1");
    know(&server, ForgeKind::Gitea, "acme", "widgets").await;
    reconcile::reconcile_all(&server.app).await.unwrap();
    let t = ticket(&server, &format!("gitea/acme/widgets/{n}"))
        .await
        .expect("ticket");
    assert_eq!(t.ticket.status.as_deref(), Some("todo"));
    assert_eq!(t.comments[0].author, "frank");

    model.set_labels("acme/widgets", n, &["agent:done"]);
    reconcile::reconcile_all(&server.app).await.unwrap();
    let t = ticket(&server, &format!("gitea/acme/widgets/{n}"))
        .await
        .unwrap();
    assert_eq!(t.ticket.status.as_deref(), Some("done"));
    server.finish().await;
}

/// The full pass lists open issues (one request per 100) and reads the comments only of the
/// tickets whose listing moved: unchanged tickets cost no request and are not left marked for
/// a second read, while a comment whose delivery was lost still reaches the mirror.
async fn a_full_pass_reads_only_the_comments_that_may_have_changed(db: Db) {
    let (server, model, _sandbox) = start(db).await;
    let mut numbers = Vec::new();
    for i in 0..5 {
        let n = model.open_issue(
            "octo/hello",
            &format!("Task {i}"),
            "",
            &["agent:in-review"],
            "alice",
        );
        model.add_comment("octo/hello", n, "dave", &format!("Note on {i}"));
        numbers.push(n);
    }
    know(&server, ForgeKind::Github, "octo", "hello").await;
    let comment_reads = || model.request_count("GET", "/comments");

    // The mirror had none of them: each one's comments are read.
    reconcile::reconcile_all(&server.app).await.unwrap();
    // The server's own first full pass may have overlapped this one; it is over once the
    // sandbox hears nothing more.
    loop {
        let heard = model.requests().len();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if model.requests().len() == heard {
            break;
        }
    }
    let read: std::collections::BTreeSet<String> = model
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/comments"))
        .map(|r| r.path)
        .collect();
    assert_eq!(read.len(), numbers.len(), "{read:?}");
    for n in &numbers {
        let t = ticket(&server, &format!("github/octo/hello/{n}"))
            .await
            .unwrap();
        assert_eq!(t.comments.len(), 1, "#{n}");
        assert!(
            !t.ticket.needs_reconcile,
            "#{n} is left marked for a second read"
        );
    }

    // Nothing changed on the forge: the listing alone, no comments, nothing marked.
    model.clear_requests();
    reconcile::reconcile_all(&server.app).await.unwrap();
    assert_eq!(
        model.request_count("GET", "/issues"),
        1,
        "the listing, nothing else"
    );
    assert_eq!(comment_reads(), 0);
    assert_eq!(reconcile::reconcile_marked(&server.app).await.unwrap(), 0);

    // A comment whose delivery was lost: that ticket's comments are read, the others' not.
    let busy = numbers[2];
    model.add_comment("octo/hello", busy, "erin", "One more thing");
    model.clear_requests();
    reconcile::reconcile_all(&server.app).await.unwrap();
    assert_eq!(comment_reads(), 1);
    assert_eq!(
        model.request_count("GET", &format!("/issues/{busy}/comments")),
        1
    );
    let t = ticket(&server, &format!("github/octo/hello/{busy}"))
        .await
        .unwrap();
    let bodies: Vec<&str> = t.comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, ["Note on 2", "One more thing"]);
    assert!(!t.ticket.needs_reconcile);
    server.finish().await;
}

/// The forge refuses a ticket's comments during the full pass: the mirror has the issue
/// already, so the ticket is left marked and the marked re-read gets its comments later.
async fn comments_the_full_pass_cannot_read_are_left_marked(db: Db) {
    let (server, model, _sandbox) = start(db).await;
    let n = model.open_issue("octo/hello", "Busy", "", &["agent:in-review"], "alice");
    model.add_comment("octo/hello", n, "dave", "Still there?");
    know(&server, ForgeKind::Github, "octo", "hello").await;
    model.inject_fault(forgehand::sandbox::Fault {
        method: "GET".into(),
        path_contains: format!("/issues/{n}/comments"),
        status: 502,
        message: "Bad Gateway".into(),
        times: None,
    });
    // Logged, not returned: one repository's failure does not stop the others'.
    reconcile::reconcile_all(&server.app).await.unwrap();
    let t = ticket(&server, &format!("github/octo/hello/{n}"))
        .await
        .unwrap();
    assert_eq!(t.ticket.status.as_deref(), Some("in-review"));
    assert!(t.comments.is_empty());
    assert!(t.ticket.needs_reconcile, "left for the marked re-read");

    // The server's worker re-reads marked tickets (after its backoff, if it met the fault).
    model.clear_faults();
    wait_until("the comments to be read", || async {
        ticket(&server, &format!("github/octo/hello/{n}"))
            .await
            .is_some_and(|t| t.comments.len() == 1 && !t.ticket.needs_reconcile)
    })
    .await;
    server.finish().await;
}

/// The bodies of a ticket's mirrored comments, oldest first.
async fn comment_bodies(server: &TestServer, number: u64) -> Vec<String> {
    ticket(server, &format!("github/octo/hello/{number}"))
        .await
        .unwrap()
        .comments
        .into_iter()
        .map(|c| c.body)
        .collect()
}

/// Comments deleted on the forge whose `deleted` delivery was lost leave the mirror at the
/// ticket's next re-read, by the full pass (the forge's count went down) and by the marked
/// re-read every delivery causes; an agent is no longer given them. A comment younger than the
/// forge's listing may lag behind (just delivered, not listed yet) is kept.
async fn comments_deleted_on_the_forge_leave_the_mirror(db: Db) {
    let (server, model, _sandbox) = start(db).await;
    let n = model.open_issue("octo/hello", "Busy", "", &["agent:in-review"], "alice");
    let first = model.add_comment("octo/hello", n, "dave", "Drop the users table");
    let second = model.add_comment("octo/hello", n, "erin", "Ignore the tests");
    model.add_comment("octo/hello", n, "frank", "Use the new API");
    model.backdate_comments("octo/hello", n, chrono::Duration::minutes(10));
    know(&server, ForgeKind::Github, "octo", "hello").await;
    reconcile::reconcile_all(&server.app).await.unwrap();
    assert_eq!(comment_bodies(&server, n).await.len(), 3);

    // The full pass: the listing counts one comment fewer.
    model.delete_comment("octo/hello", second, "erin");
    reconcile::reconcile_all(&server.app).await.unwrap();
    assert_eq!(
        comment_bodies(&server, n).await,
        ["Drop the users table", "Use the new API"]
    );

    // The marked re-read, with a comment just delivered that the forge does not list yet.
    model.delete_comment("octo/hello", first, "dave");
    let repo = repos::find(
        server.app.store.pool(),
        &RepoRef::new(ForgeKind::Github, "octo", "hello"),
    )
    .await
    .unwrap()
    .unwrap();
    let delivered = CommentSnapshot {
        id: 987_654_321,
        author: "grace".into(),
        body: "Just delivered".into(),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    tickets::upsert_comment(server.app.store.pool(), repo.id, n, &delivered)
        .await
        .unwrap();
    tickets::mark_for_reconcile(server.app.store.pool(), repo.id, n)
        .await
        .unwrap();
    reconcile::reconcile_marked(&server.app).await.unwrap();
    // The server's own worker may be re-reading it too: wait for the one that commits last.
    wait_until("the deleted comment to leave the mirror", || async {
        comment_bodies(&server, n).await == ["Use the new API", "Just delivered"]
    })
    .await;
    server.finish().await;
}
