//! Nothing acknowledged is lost: deliveries stored but not processed before a stop or a kill
//! are processed after the restart.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forgehand::domain::ForgeKind;
use forgehand::store::deliveries::{self, NewDelivery};
use forgehand::web::api::types::{DeliveryPage, TicketDetail};

use crate::backend_tests;
use crate::harness::{Db, GITHUB_SECRET, Options, TestDb, TestServer, fixture, wait_until};

backend_tests!(
    stored_deliveries_survive_a_stop,
    killed_server_loses_no_acknowledged_delivery
);

async fn stored_deliveries_survive_a_stop(db: Db) {
    let server = TestServer::start(db).await;
    let (data_dir, test_db) = server.stop().await;

    // What a crash between storing and processing leaves behind: pending rows.
    {
        let store = forgehand::store::Store::connect(&test_db.url)
            .await
            .unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let batch = vec![NewDelivery {
            forge: ForgeKind::Gitea,
            delivery_id: "before-crash".into(),
            event: "issues".into(),
            body: fixture("gitea/issues.label_updated.json"),
        }];
        assert_eq!(
            deliveries::insert_batch(&mut conn, &batch)
                .await
                .unwrap()
                .len(),
            1
        );
        drop(conn);
        let (pending, _) = deliveries::backlog(store.pool()).await.unwrap();
        assert_eq!(pending, 1);
        store.close().await;
    }

    let server = TestServer::start_on(data_dir, test_db, Options::default()).await;
    server.drain_inbox().await;
    let ticket: TicketDetail = server
        .get_json("/api/v1/tickets/gitea/acme/widgets/17")
        .await;
    assert_eq!(ticket.ticket.status.as_deref(), Some("todo"));
    server.finish().await;
}

fn spawn_binary(data_dir: &std::path::Path, db_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FORGEHAND_DATA_DIR", data_dir)
        .env("DATABASE_URL", db_url)
        .env("FORGEHAND_LISTEN", format!("127.0.0.1:{port}"))
        .env("FORGEHAND_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the forgehand binary starts")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    wait_until("the server to be ready", || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
}

async fn killed_server_loses_no_acknowledged_delivery(db: Db) {
    let data_dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(db, data_dir.path()).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = spawn_binary(data_dir.path(), &test_db.url, port);
    wait_ready(&http, &base).await;

    // Many deliveries in flight, then SIGKILL in the middle of them.
    let body = fixture("github/issues/labeled.payload.json");
    let sig = format!(
        "sha256={}",
        forgehand::forge::signature::sign(GITHUB_SECRET.as_bytes(), &body)
    );
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..400 {
        let (http, base, body, sig) = (http.clone(), base.clone(), body.clone(), sig.clone());
        let acks = acks.clone();
        sends.spawn(async move {
            let response = http
                .post(format!("{base}/webhooks/github"))
                .header("X-GitHub-Event", "issues")
                .header("X-GitHub-Delivery", format!("kill-{i}"))
                .header("X-Hub-Signature-256", sig)
                .body(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            let status = response.map(|r| r.status().as_u16()).ok();
            if status == Some(202) {
                acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (i, status)
        });
    }
    wait_until("the first acknowledgements", || async {
        acks.load(std::sync::atomic::Ordering::SeqCst) >= 100
    })
    .await;
    child.kill().unwrap();
    let mut acknowledged = BTreeSet::new();
    while let Some(result) = sends.join_next().await {
        if let (i, Some(202)) = result.unwrap() {
            acknowledged.insert(format!("kill-{i}"));
        }
    }
    let _ = child.wait();
    assert!(
        !acknowledged.is_empty(),
        "some deliveries should have been acknowledged"
    );

    let mut child = spawn_binary(data_dir.path(), &test_db.url, port);
    wait_ready(&http, &base).await;
    // No token configured: the server generated one into its data directory.
    let token = std::fs::read_to_string(data_dir.path().join("admin-token")).unwrap();
    let store = forgehand::store::Store::connect(&test_db.url)
        .await
        .unwrap();
    wait_until("the inbox to drain after restart", || async {
        deliveries::backlog(store.pool()).await.unwrap().0 == 0
    })
    .await;
    let mut stored = BTreeSet::new();
    let mut before = None::<i64>;
    loop {
        let url = match before {
            Some(b) => format!("{base}/api/v1/deliveries?per_page=100&before={b}"),
            None => format!("{base}/api/v1/deliveries?per_page=100"),
        };
        let page: DeliveryPage = http
            .get(url)
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for d in page.items {
            assert_eq!(d.outcome, "processed", "{d:?}");
            stored.insert(d.delivery_id);
        }
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    child.kill().unwrap();
    let _ = child.wait();
    store.close().await;
    test_db.drop_db().await;
}
