//! GitOps config sync from a real repository on disk, driven by push webhooks.

use forgehand::web::api::types::ConfigVersions;
use serde_json::json;

use crate::backend_tests;
use crate::gitrepo::GitRemote;
use crate::harness::{Db, TestServer, wait_until};

backend_tests!(
    pushes_to_the_default_branch_create_versions,
    invalid_push_keeps_the_active_version,
);

/// A GitHub `push` delivery as GitHub shapes it, for `octo/app` hosted at `clone_url`.
fn push_payload(clone_url: &str, git_ref: &str, after: &str, modified: &[&str]) -> Vec<u8> {
    let commit = json!({
        "id": after, "tree_id": after, "distinct": true, "message": "change",
        "timestamp": "2026-11-25T10:00:00Z", "url": "https://github.com/octo/app/commit/x",
        "author": {"name": "Test", "email": "test@example.com", "username": "tester"},
        "committer": {"name": "Test", "email": "test@example.com", "username": "tester"},
        "added": [], "removed": [], "modified": modified,
    });
    serde_json::to_vec(&json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000001",
        "after": after,
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": "https://github.com/octo/app/compare/a...b",
        "commits": [commit.clone()],
        "head_commit": commit,
        "repository": {
            "id": 42, "node_id": "R_1", "name": "app", "full_name": "octo/app", "private": false,
            "owner": {"login": "octo", "id": 1, "type": "Organization", "name": "octo"},
            "html_url": "https://github.com/octo/app",
            "clone_url": clone_url,
            "default_branch": "main", "master_branch": "main",
        },
        "pusher": {"name": "tester", "email": "test@example.com"},
        "sender": {"login": "tester", "id": 2, "type": "User"},
    }))
    .unwrap()
}

const VERSIONS: &str = "/api/v1/repos/github/octo/app/config-versions";

async fn versions(server: &TestServer) -> ConfigVersions {
    server.get_json(VERSIONS).await
}

async fn push(server: &TestServer, remote: &GitRemote, sha: &str, paths: &[&str]) {
    let body = push_payload(&remote.clone_url(), "refs/heads/main", sha, paths);
    let response = server
        .post_github("push", &format!("push-{sha}"), &body)
        .await;
    assert_eq!(response.status(), 202);
    server.drain_inbox().await;
}

async fn pushes_to_the_default_branch_create_versions(db: Db) {
    let remote = GitRemote::new();
    let first = remote.commit_example("basic");
    let server = TestServer::start(db).await;

    // The first push syncs the tree (the first sight of the repository asks for it too).
    push(&server, &remote, &first, &[".forgehand/config.yaml"]).await;
    wait_until("version 1", || async {
        versions(&server).await.active == Some(1)
    })
    .await;
    let v = versions(&server).await;
    assert_eq!(v.versions[0].commit_sha, first);
    assert_eq!(v.versions[0].number, 1);
    assert!(v.rejected.is_empty());

    // A push elsewhere, or one that does not touch .forgehand/, syncs nothing.
    let unrelated = remote.commit(&[("src/lib.rs", Some("// code\n"))], "code");
    push(&server, &remote, &unrelated, &["src/lib.rs"]).await;
    let body = push_payload(
        &remote.clone_url(),
        "refs/heads/feature",
        &unrelated,
        &[".forgehand/config.yaml"],
    );
    assert_eq!(
        server
            .post_github("push", "feature-push", &body)
            .await
            .status(),
        202
    );
    server.drain_inbox().await;

    // A content change makes version 2, with its files stored.
    let changed = remote.commit(
        &[(
            ".forgehand/skills/commit-style/SKILL.md",
            Some("---\nname: commit-style\ndescription: Conventional commits, always.\n---\nUse `feat:` and `fix:`.\n"),
        )],
        "tighten commit style",
    );
    push(
        &server,
        &remote,
        &changed,
        &[".forgehand/skills/commit-style/SKILL.md"],
    )
    .await;
    wait_until("version 2", || async {
        versions(&server).await.active == Some(2)
    })
    .await;
    let v = versions(&server).await;
    assert_eq!(v.versions.len(), 2);
    assert_eq!(v.versions[0].commit_sha, changed);
    assert_ne!(v.versions[0].content_hash, v.versions[1].content_hash);
    server.finish().await;
}

async fn invalid_push_keeps_the_active_version(db: Db) {
    let remote = GitRemote::new();
    let good = remote.commit_example("basic");
    let server = TestServer::start(db).await;
    push(&server, &remote, &good, &[".forgehand/config.yaml"]).await;
    wait_until("version 1", || async {
        versions(&server).await.active == Some(1)
    })
    .await;

    // Break the workflow: an unknown status in pickup and a template typo.
    let broken = remote.commit(
        &[(
            ".forgehand/workflows/fullstack.md",
            Some("---\npickup: [nowhere]\nfinish: [in-review]\nagent: claude\n---\nWork on {{ ticket.titel }}.\n"),
        )],
        "break it",
    );
    push(
        &server,
        &remote,
        &broken,
        &[".forgehand/workflows/fullstack.md"],
    )
    .await;
    wait_until("the rejection", || async {
        !versions(&server).await.rejected.is_empty()
    })
    .await;
    let v = versions(&server).await;
    assert_eq!(
        v.active,
        Some(1),
        "an invalid tree must not replace the active version"
    );
    assert_eq!(v.versions.len(), 1);
    let rejection = &v.rejected[0];
    assert_eq!(rejection.commit_sha, broken);
    let errors = &rejection.errors;
    let find = |needle: &str| {
        errors
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| panic!("no error mentioning {needle}: {errors:#?}"))
    };
    let pickup = find("nowhere");
    assert_eq!(pickup.file, ".forgehand/workflows/fullstack.md");
    assert_eq!(pickup.line, Some(2));
    let typo = find("titel");
    assert_eq!(typo.line, Some(6));

    // Restoring the active content changes nothing; a fixed, different tree is version 2.
    let restored = remote.commit_example("basic");
    push(
        &server,
        &remote,
        &restored,
        &[".forgehand/workflows/fullstack.md"],
    )
    .await;
    server.drain_inbox().await;
    assert_eq!(versions(&server).await.active, Some(1));
    let workflow = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/basic/.forgehand/workflows/fullstack.md"
    ))
    .unwrap();
    let fixed = remote.commit(
        &[(
            ".forgehand/workflows/fullstack.md",
            Some(&format!("{workflow}\nKeep the change small.\n")),
        )],
        "fix it",
    );
    push(
        &server,
        &remote,
        &fixed,
        &[".forgehand/workflows/fullstack.md"],
    )
    .await;
    wait_until("version 2", || async {
        versions(&server).await.active == Some(2)
    })
    .await;
    server.finish().await;
}
