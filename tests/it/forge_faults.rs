//! A forge that hangs or rate-limits: every caller stays bounded in time, the rate limit is
//! honoured by all loops sharing the client (counted at the sandbox), and each case converges.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use forgehand::app::{App, Forges};
use forgehand::config::repo::ConfigFiles;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::engine::claim;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::forge::guard::GuardSettings;
use forgehand::forge::{Forge, ForgeError, RepoInfo};
use forgehand::sandbox::{self, Disruption, ForgeModel, Permission, SandboxServer, Trouble};
use forgehand::store::repos;
use forgehand::sync::config_sync;

use crate::backend_tests;
use crate::harness::{Db, Options, TestServer, mirror_labelled};

backend_tests!(
    hung_forge_leaves_every_caller_bounded,
    secondary_limit_holds_every_caller_until_retry_after,
    primary_limit_waits_for_its_reset,
);

const HUNG: &str = "octo/hung";
const TIMEOUT: Duration = Duration::from_secs(1);

struct Setup {
    server: TestServer,
    model: ForgeModel,
    forge: Arc<GithubForge>,
    _sandbox: SandboxServer,
}

/// A server whose GitHub client times out after [`TIMEOUT`], with one `agent:todo` ticket
/// (issue 1) in each of two repositories. The forge's `trouble` starts before the tickets are
/// there: the server's own claim pass must not get to them while the forge still answers.
async fn setup(db: Db, trouble: Option<Disruption>) -> Setup {
    let model = ForgeModel::new();
    for name in ["hung", "fine"] {
        model.add_repo("octo", name, "main", "file:///nonexistent");
        model.set_permission(&format!("octo/{name}"), "alice", Permission::Write);
    }
    if let Some(trouble) = trouble {
        model.disrupt(trouble);
    }
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let settings = GuardSettings {
        connect_timeout: TIMEOUT,
        request_timeout: TIMEOUT,
        write_spacing: Duration::ZERO,
    };
    let forge = Arc::new(
        GithubForge::with_settings(
            &sandbox.github_api_url(),
            GithubAuth::Token("ghp_faults".into()),
            settings,
        )
        .unwrap(),
    );
    let options = Options {
        forges: Forges::new(Some(forge.clone() as Arc<dyn Forge>), None),
        ..Options::default()
    }
    // An agent that never gets to run: the clone URL leads nowhere.
    .toml("[agents.script]\nadapter = \"command\"\ncommand = \"true\"\n");
    let server = TestServer::start_with(db, options).await;
    for name in ["hung", "fine"] {
        add_ticket(&server.app, &model, name).await;
    }
    Setup {
        server,
        model,
        forge,
        _sandbox: sandbox,
    }
}

async fn add_ticket(app: &App, model: &ForgeModel, name: &str) {
    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", name),
        default_branch: "main".into(),
        clone_url: "file:///nonexistent".into(),
        html_url: format!("https://example.test/octo/{name}"),
    };
    let mut conn = app.store.pool().acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    drop(conn);
    let files = ConfigFiles::from([
        (
            ".forgehand/config.yaml".to_owned(),
            b"max_concurrent: 5\n".to_vec(),
        ),
        (
            ".forgehand/workflows/w.md".to_owned(),
            b"---\npickup: [todo]\nfinish: [in-review]\nagent: script\n---\nDo it\n".to_vec(),
        ),
    ]);
    config_sync::store_tree(app, repo_id, "abc", &files)
        .await
        .unwrap();
    let number = model.open_issue(
        &format!("octo/{name}"),
        "Ticket",
        "",
        &["agent:todo"],
        "alice",
    );
    let mut conn = app.store.pool().acquire().await.unwrap();
    mirror_labelled(&mut conn, repo_id, number, "todo").await;
}

async fn runs_of(server: &TestServer, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM runs r JOIN tickets t ON t.id = r.ticket_id \
         JOIN repositories p ON p.id = t.repo_id WHERE p.name = $1",
    )
    .bind(name)
    .fetch_one(server.app.store.pool())
    .await
    .unwrap()
}

/// Sends a GET with a deadline far above the forge timeout: an answer in time is the point.
async fn get_within(server: &TestServer, path: &str) -> (u16, String) {
    let response = tokio::time::timeout(
        Duration::from_secs(15),
        server.http.get(format!("{}{path}", server.base)).send(),
    )
    .await
    .unwrap_or_else(|_| panic!("{path} did not answer"))
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn hung_forge_leaves_every_caller_bounded(db: Db) {
    let s = setup(
        db,
        Some(Disruption {
            method: "*".into(),
            path_contains: format!("/repos/{HUNG}/"),
            trouble: Trouble::Hang,
            times: None,
        }),
    )
    .await;
    // The pass itself returns, and the other repository's ticket is claimed.
    tokio::time::timeout(Duration::from_secs(20), claim::claim_ready(&s.server.app))
        .await
        .expect("the claim pass returns although the forge hangs")
        .unwrap();
    assert_eq!(runs_of(&s.server, "fine").await, 1);
    assert_eq!(runs_of(&s.server, "hung").await, 0);
    assert!(s.model.request_count("*", &format!("/repos/{HUNG}/")) > 0);

    let (status, _) = get_within(&s.server, "/api/v1/tickets/github/octo/hung/1/diagnosis").await;
    assert!(status < 600, "the diagnosis answers ({status})");
    let (status, _) = get_within(&s.server, "/tickets/github/octo/hung/1").await;
    assert!(status < 600, "the ticket page answers ({status})");
    // Still ready: the forge's trouble is detail, not unreadiness.
    let (status, body) = get_within(&s.server, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready"), "{body}");
    assert!(body.contains("forge github: failing since"), "{body}");
    let (_, metrics) = get_within(&s.server, "/metrics").await;
    assert!(
        metrics.contains("forgehand_forge_requests_total{forge=\"github\",route=\"")
            && metrics.contains("status=\"timeout\"}"),
        "{metrics}"
    );
    let (_, overview) = get_within(&s.server, "/").await;
    assert!(overview.contains("id=\"forge-github\""), "{overview}");

    let direct = tokio::time::timeout(
        Duration::from_secs(10),
        s.forge
            .issue(&RepoRef::new(ForgeKind::Github, "octo", "hung"), 1),
    )
    .await
    .expect("bounded");
    assert!(
        matches!(direct, Err(ForgeError::Timeout { .. })),
        "{direct:?}"
    );
    s.server.finish().await;
}

async fn secondary_limit_holds_every_caller_until_retry_after(db: Db) {
    let s = setup(
        db,
        Some(Disruption {
            method: "*".into(),
            path_contains: "/repos/".into(),
            trouble: Trouble::SecondaryLimit {
                status: 403,
                retry_after: 60,
            },
            times: None,
        }),
    )
    .await;
    let fine = RepoRef::new(ForgeKind::Github, "octo", "fine");
    // Claim passes, reads and writes, as the server's loops would make them, for a while (the
    // count below includes the server's own since its start).
    for _ in 0..10 {
        let _ = claim::claim_ready(&s.server.app).await.unwrap();
        let read = s.forge.issue(&fine, 1).await;
        assert!(
            matches!(read, Err(ForgeError::RateLimited { .. })),
            "{read:?}"
        );
        let write = s.forge.create_comment(&fine, 1, "hello").await;
        match write {
            Err(ForgeError::RateLimited { until }) => {
                let wait = until - Utc::now();
                assert!(wait > chrono::Duration::seconds(50), "{wait}");
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = s.model.request_count("*", "/repos/");
    assert!(
        (1..=3).contains(&sent),
        "{sent} requests while told to wait 60 s"
    );
    assert_eq!(runs_of(&s.server, "fine").await, 0);
    s.server.finish().await;

    // The same with a short Retry-After: after it, requests go out again and succeed.
    let s = setup(db, None).await;
    s.model.disrupt(Disruption {
        method: "*".into(),
        path_contains: "/repos/".into(),
        trouble: Trouble::SecondaryLimit {
            status: 429,
            retry_after: 1,
        },
        times: Some(1),
    });
    s.model.clear_requests();
    let mut attempts = 0;
    let issue = loop {
        attempts += 1;
        assert!(attempts < 100, "never converged");
        match s.forge.issue(&fine, 1).await {
            Ok(issue) => break issue,
            Err(ForgeError::RateLimited { .. }) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert_eq!(issue.number, 1);
    // The refusal, ours after it, and what the server's own loops sent meanwhile.
    let sent = s.model.request_count("*", "/repos/");
    assert!((2..=6).contains(&sent), "{sent} requests to get one answer");
    s.server.finish().await;
}

async fn primary_limit_waits_for_its_reset(db: Db) {
    let s = setup(db, None).await;
    let fine = RepoRef::new(ForgeKind::Github, "octo", "fine");
    // A reset already past (a stale header): a moment's wait, then on.
    for reset in [
        Utc::now() - chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::seconds(2),
    ] {
        s.model.disrupt(Disruption {
            method: "*".into(),
            path_contains: "/repos/".into(),
            trouble: Trouble::PrimaryLimit { reset },
            times: Some(1),
        });
        s.model.clear_requests();
        let mut held = 0;
        // What reached the forge when the hold began: nothing more may (the server's own
        // loops share the client) until it ends.
        let mut at_hold = None;
        loop {
            match s.forge.issue(&fine, 1).await {
                Ok(_) => break,
                Err(ForgeError::RateLimited { until }) => {
                    assert!(until > Utc::now() - chrono::Duration::seconds(1), "{until}");
                    let sent = s.model.request_count("*", "/repos/");
                    let before = *at_hold.get_or_insert(sent);
                    if Utc::now() + chrono::Duration::milliseconds(300) < until {
                        assert_eq!(sent, before, "requests sent while held (reset {reset})");
                    }
                    held += 1;
                    assert!(held < 200, "never converged");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(held >= 2, "held back while limited ({held})");
        let sent = s.model.request_count("*", "/repos/");
        assert!(
            sent <= 6,
            "{sent} requests to get one answer (reset {reset})"
        );
    }
    let (_, body) = get_within(&s.server, "/readyz").await;
    assert!(body.contains("forge github: answering"), "{body}");
    s.server.finish().await;
}
