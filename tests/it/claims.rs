//! Claimers racing: several servers on one database never claim a ticket twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use forgehand::app::{App, Forges};
use forgehand::config::repo::ConfigFiles;
use forgehand::config::server::ServerConfig;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::engine::claim;
use forgehand::forge::RepoInfo;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::{Store, repos};
use forgehand::sync::config_sync;

use crate::backend_tests;
use crate::harness::{Db, TestDb, mirror_labelled};

backend_tests!(racing_claimers_claim_each_ticket_once);

const TICKETS: u64 = 40;

async fn app_on(url: &str, data_dir: &std::path::Path, forge_url: &str) -> App {
    let env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), url.to_owned()),
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        ),
    ]);
    let toml = "[agents.script]\nadapter = \"command\"\ncommand = \"true\"\n[limits]\nmax_concurrent_runs = 1000\n";
    let config = ServerConfig::from_toml(toml, &env).unwrap();
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    // The claimers read who labelled each ticket, and their permission, from the forge.
    let github = GithubForge::new(forge_url, GithubAuth::Token("ghp_race".into())).unwrap();
    App::new(config, store, Forges::new(Some(Arc::new(github)), None))
}

async fn racing_claimers_claim_each_ticket_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(db, dir.path()).await;
    let model = ForgeModel::new();
    model.add_repo("octo", "race", "main", "file:///nonexistent");
    model.set_permission("octo/race", "alice", Permission::Write);
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let first = app_on(&test_db.url, dir.path(), &sandbox.github_api_url()).await;
    let second = app_on(&test_db.url, dir.path(), &sandbox.github_api_url()).await;

    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", "race"),
        default_branch: "main".into(),
        clone_url: "file:///nonexistent".into(),
        html_url: "https://example.test/octo/race".into(),
    };
    let mut conn = first.store.pool().acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    drop(conn);
    let files = ConfigFiles::from([
        (".forgehand/config.yaml".to_owned(), b"max_concurrent: 1000\n".to_vec()),
        (
            ".forgehand/workflows/w.md".to_owned(),
            b"---\npickup: [todo]\nfinish: [in-review]\nagent: script\n---\nDo {{ ticket.title }}\n".to_vec(),
        ),
    ]);
    config_sync::store_tree(&first, repo_id, "abc", &files)
        .await
        .unwrap();
    for number in 1..=TICKETS {
        let opened = model.open_issue("octo/race", "Ticket", "", &["agent:todo"], "alice");
        assert_eq!(opened, number);
        let mut conn = first.store.pool().acquire().await.unwrap();
        mirror_labelled(&mut conn, repo_id, number, "todo").await;
    }

    // Both claim at once, a few rounds each.
    let race = |app: App| async move {
        let mut claimed = Vec::new();
        for _ in 0..3 {
            claimed.extend(claim::claim_ready(&app).await.unwrap());
        }
        claimed
    };
    let (a, b) = tokio::join!(
        tokio::spawn(race(first.clone())),
        tokio::spawn(race(second.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.len() + b.len(),
        TICKETS as usize,
        "every ticket claimed exactly once ({} + {})",
        a.len(),
        b.len()
    );

    let per_ticket: Vec<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM runs GROUP BY ticket_id")
        .fetch_all(first.store.pool())
        .await
        .unwrap();
    assert_eq!(per_ticket.len(), TICKETS as usize);
    assert!(per_ticket.iter().all(|n| *n == 1), "{per_ticket:?}");
    let pinned: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets WHERE pinned_version = 1 AND status = 'in-progress'",
    )
    .fetch_one(first.store.pool())
    .await
    .unwrap();
    assert_eq!(pinned, TICKETS as i64);
    first.store.close().await;
    second.store.close().await;
    test_db.drop_db().await;
}
