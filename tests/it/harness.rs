//! Runs the real server in-process on a random port, against SQLite in a temporary directory
//! or a fresh PostgreSQL database, and talks to it over real HTTP.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use forgehand::app::{App, Forges};
use forgehand::config::admin_token;
use forgehand::config::server::ServerConfig;
use forgehand::forge::signature;
use forgehand::store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const GITHUB_SECRET: &str = "github-test-secret";
pub const GITEA_SECRET: &str = "gitea-test-secret";
/// The admin token test servers run with unless a test sets its own; `TestServer::http` sends it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `backend_tests!(name, body_fn)` makes `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Db::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(()) = $crate::harness::postgres_available().await {
                        super::$name($crate::harness::Db::Postgres).await;
                    }
                }
            }
        )*
    };
}

fn admin_url() -> String {
    std::env::var("FORGEHAND_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `Some` when PostgreSQL answers. Without it the test says it was skipped, unless
/// `FORGEHAND_REQUIRE_POSTGRES=1` (as in CI), which makes its absence a failure.
pub async fn postgres_available() -> Option<()> {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(&admin_url()).await {
        Ok(conn) => {
            let _ = conn.close().await;
            Some(())
        }
        Err(e) => {
            if std::env::var("FORGEHAND_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is required (FORGEHAND_REQUIRE_POSTGRES=1) but not reachable: {e}"
                );
            }
            eprintln!("SKIPPED: PostgreSQL not reachable at {} ({e})", admin_url());
            None
        }
    }
}

/// A database for one test: a SQLite file in the data dir, or a new PostgreSQL database that
/// is dropped afterwards.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn create(db: Db, data_dir: &std::path::Path) -> Self {
        match db {
            Db::Sqlite => Self {
                url: format!("sqlite://{}/forgehand.db", data_dir.display()),
                pg_name: None,
            },
            Db::Postgres => {
                use sqlx::Connection;
                static COUNTER: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "forgehand_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    chrono::Utc::now().timestamp_micros() % 1_000_000
                );
                let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin_url()).unwrap();
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// The same database for another replica; dropping it stays the first one's job.
    pub fn sharing(&self) -> Self {
        Self {
            url: self.url.clone(),
            pg_name: None,
        }
    }

    pub async fn drop_db(&self) {
        if let Some(name) = &self.pg_name {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// A running server under test.
pub struct TestServer {
    pub base: String,
    /// The `forgehand.toml` it runs with, for a restart.
    pub toml: String,
    pub app: App,
    pub data_dir: tempfile::TempDir,
    pub db: TestDb,
    /// Sends the server's admin token with every request.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// How to start a server: extra environment settings and forge clients.
#[derive(Default)]
pub struct Options {
    pub env: BTreeMap<String, String>,
    pub forges: Forges,
    /// `forgehand.toml` text (agent profiles, limits).
    pub toml: String,
    /// Configure no admin token, so the server generates one into its data directory.
    pub generate_admin_token: bool,
}

impl Options {
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    pub fn toml(mut self, text: &str) -> Self {
        self.toml = text.to_owned();
        self
    }

    pub fn generate_admin_token(mut self) -> Self {
        self.generate_admin_token = true;
        self
    }
}

impl TestServer {
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, Options::default()).await
    }

    pub async fn start_with(db: Db, options: Options) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let db = TestDb::create(db, data_dir.path()).await;
        Self::start_on(data_dir, db, options).await
    }

    /// Starts a server on an existing data directory and database (a restart).
    pub async fn start_on(data_dir: tempfile::TempDir, db: TestDb, options: Options) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        let mut env = BTreeMap::from([
            (
                "FORGEHAND_DATA_DIR".to_owned(),
                data_dir.path().display().to_string(),
            ),
            ("DATABASE_URL".to_owned(), db.url.clone()),
            (
                "FORGEHAND_GITHUB_WEBHOOK_SECRET".to_owned(),
                GITHUB_SECRET.to_owned(),
            ),
            (
                "FORGEHAND_GITEA_WEBHOOK_SECRET".to_owned(),
                GITEA_SECRET.to_owned(),
            ),
        ]);
        // Bound first, so links and the agents' callback URL point at this server.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        env.insert("FORGEHAND_PUBLIC_URL".to_owned(), base.clone());
        if !options.generate_admin_token {
            env.insert("FORGEHAND_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned());
        }
        env.extend(options.env);
        let toml = options.toml.clone();
        let mut config = ServerConfig::from_toml(&options.toml, &env).expect("test config");
        // As `serve` does before it listens.
        admin_token::ensure(&mut config).expect("admin token");
        let token = config.admin_token.clone().expect("an admin token");
        let mut auth =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).unwrap();
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .default_headers(reqwest::header::HeaderMap::from_iter([(
                reqwest::header::AUTHORIZATION,
                auth,
            )]))
            .build()
            .unwrap();
        let store = Store::connect(&config.database_url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let app = App::new(config, store, options.forges);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(forgehand::server::run(
            app.clone(),
            listener,
            shutdown.clone(),
        ));
        Self {
            base,
            toml,
            app,
            data_dir,
            db,
            http,
            shutdown,
            task: Some(task),
        }
    }

    /// Graceful stop; returns what a restart needs.
    pub async fn stop(mut self) -> (tempfile::TempDir, TestDb) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        (self.data_dir, self.db)
    }

    /// Stops and drops the test database.
    pub async fn finish(self) {
        let (_dir, db) = self.stop().await;
        db.drop_db().await;
    }

    pub async fn post_github(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
        let sig = format!("sha256={}", signature::sign(GITHUB_SECRET.as_bytes(), body));
        self.http
            .post(format!("{}/webhooks/github", self.base))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", sig)
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Posts as Gitea (`forgejo = false`) or Forgejo (its own header names).
    pub async fn post_gitea(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        forgejo: bool,
    ) -> reqwest::Response {
        let sig = signature::sign(GITEA_SECRET.as_bytes(), body);
        let prefix = if forgejo { "X-Forgejo" } else { "X-Gitea" };
        self.http
            .post(format!("{}/webhooks/gitea", self.base))
            .header(format!("{prefix}-Event"), event)
            .header(format!("{prefix}-Delivery"), delivery)
            .header(format!("{prefix}-Signature"), sig)
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Signs in to the dashboard with the admin token, as a browser would; returns the
    /// `Cookie` header value of the session.
    pub async fn sign_in(&self) -> String {
        let token = self.app.config.admin_token.clone().expect("an admin token");
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/login", self.base))
            .form(&[("token", token.expose()), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "sign-in failed");
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|c| c.to_str().ok())
            .find(|c| c.starts_with("forgehand_session="))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned()
    }

    /// GETs `path` and decodes the answer into the API's own response type (or a `Value` for
    /// a payload the API returns as it was stored).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let body = self.get_text(path).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e} in {body}"))
    }

    /// GETs `path` (a page, `/metrics`…) and returns the body of its successful answer.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// Waits until every stored delivery is processed.
    pub async fn drain_inbox(&self) {
        wait_until("inbox drained", || async {
            let (pending, _) = forgehand::store::deliveries::backlog(self.app.store.pool())
                .await
                .unwrap();
            pending == 0
        })
        .await;
    }
}

/// Mirrors open issue `number`, labelled `agent:{status}`, straight into the store as its
/// delivery would (so it is marked to be re-read); the forge is not asked.
pub async fn mirror_labelled(
    conn: &mut sqlx::AnyConnection,
    repo_id: i64,
    number: u64,
    status: &str,
) {
    let issue = forgehand::forge::IssueSnapshot {
        number,
        title: format!("Ticket {number}"),
        body: String::new(),
        state: forgehand::forge::IssueState::Open,
        labels: vec![format!("agent:{status}")],
        author: "alice".into(),
        html_url: String::new(),
        updated_at: chrono::Utc::now(),
        comments: None,
    };
    let source = forgehand::store::tickets::Source::Delivery;
    forgehand::store::tickets::mirror_issue(conn, repo_id, &issue, Some(status), false, source)
        .await
        .unwrap();
}

/// Polls `check` until it holds, for at most 60 seconds (CI runs many servers on 2 cores).
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(wait_for(check).await, "timed out waiting for {what}");
}

/// As [`wait_until`]; on a timeout the message also says what `explain` finds (the state the
/// test waited on), so a failure in CI can be read without running it again.
pub async fn wait_until_explained<F, Fut, E, EFut>(what: &str, check: F, explain: E)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
    E: FnOnce() -> EFut,
    EFut: std::future::Future<Output = String>,
{
    if !wait_for(check).await {
        panic!("timed out waiting for {what}; {}", explain().await);
    }
}

/// Whether `check` held within a minute.
async fn wait_for<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    true
}

/// An event's `kind` as the API names it (`tool_call`, `hook`…).
pub fn event_kind(event: &forgehand::domain::agent_event::AgentEvent) -> String {
    let value = serde_json::to_value(event).expect("an event serializes");
    value["kind"].as_str().expect("a kind").to_owned()
}

/// A diagnosis' `code` as the API names it (`blocked`, `no_runner`…).
pub fn code_of(d: &forgehand::web::api::types::Diagnosis) -> String {
    let value = serde_json::to_value(&d.reason).expect("a reason serializes");
    value["code"].as_str().expect("a code").to_owned()
}

pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Every fixture file (relative path, bytes) under a folder, sorted.
pub fn fixtures_in(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(&root)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(&root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}
