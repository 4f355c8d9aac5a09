//! Schedules: due schedules open one issue per due time on the sandbox forge (through the real
//! clients), with a clock the tests move; racing schedulers open one; missed times run once;
//! "run now" through the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use forgehand::app::{App, Forges};
use forgehand::config::repo::{self, ConfigFiles};
use forgehand::config::server::ServerConfig;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::engine::schedule::{self, Clock, Leadership, ManualClock};
use forgehand::forge::RepoInfo;
use forgehand::forge::gitea::GiteaForge;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::{self, ForgeModel, SandboxServer};
use forgehand::store::{Backend, Store, repos, schedules};
use forgehand::sync::config_sync;
use forgehand::web::api::types::{Fired, Schedules, TicketDetail};

use crate::backend_tests;
use crate::harness::{Db, GITHUB_SECRET, Options, TestDb, TestServer, wait_until};

backend_tests!(
    fires_once_per_due_time_and_once_after_downtime,
    racing_schedulers_open_one_issue,
    run_now_through_the_api,
    scheduled_issue_is_picked_up,
);

const SCHEDULES: &str = "schedules:
  - name: hourly
    cron: \"0 * * * *\"
    issue:
      title: Hourly chores
      body: Sweep the floor.
      labels: [agent:todo, chore]
  - name: weekly
    cron: \"0 9 * * 1\"
    timezone: Europe/Berlin
    issue: { title: Weekly deps, labels: [agent:todo] }
";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn sandbox_forges(sandbox: &SandboxServer) -> Forges {
    let github = GithubForge::new(
        &sandbox.github_api_url(),
        GithubAuth::Token("ghp_test".into()),
    )
    .unwrap();
    let gitea = GiteaForge::new(&sandbox.gitea_url(), Some("gitea_test".into())).unwrap();
    Forges::new(Some(Arc::new(github)), Some(Arc::new(gitea)))
}

/// An `App` on the test database without a server (so no background scheduler runs).
async fn app_on(url: &str, data_dir: &std::path::Path, forges: Forges) -> App {
    let env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), url.to_owned()),
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        ),
    ]);
    let config = ServerConfig::from_toml("", &env).unwrap();
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    App::new(config, store, forges)
}

/// Makes `octo/hello` known with `SCHEDULES` as its active config; returns its id.
async fn with_schedules(app: &App, forge: ForgeKind) -> i64 {
    let info = RepoInfo {
        repo: RepoRef::new(forge, "octo", "hello"),
        default_branch: "main".into(),
        clone_url: "file:///nonexistent/hello.git".into(),
        html_url: "https://example.test/octo/hello".into(),
    };
    let mut conn = app.store.pool().acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    drop(conn);
    let files = ConfigFiles::from([(
        ".forgehand/schedules.yaml".to_owned(),
        SCHEDULES.as_bytes().to_vec(),
    )]);
    config_sync::store_tree(app, repo_id, "abc123", &files)
        .await
        .unwrap();
    repo_id
}

fn sandbox_model() -> ForgeModel {
    let model = ForgeModel::new();
    model.add_repo("octo", "hello", "main", "file:///nonexistent/hello.git");
    model
}

fn issue_count(model: &ForgeModel) -> usize {
    (1..=50)
        .filter(|n| model.issue("octo/hello", *n).is_some())
        .count()
}

async fn fires_once_per_due_time_and_once_after_downtime(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(db, dir.path()).await;
    let model = sandbox_model();
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let app = app_on(&test_db.url, dir.path(), sandbox_forges(&sandbox)).await;
    let repo_id = with_schedules(&app, ForgeKind::Github).await;

    // First sight of the schedules: their clocks start now, nothing fires for the past.
    let clock = ManualClock::new(at("2030-01-07T08:30:00Z"));
    assert!(schedule::tick(&app, &clock).await.unwrap().is_empty());
    clock.advance(TimeDelta::minutes(20));
    assert!(schedule::tick(&app, &clock).await.unwrap().is_empty());

    // Past 09:00: the hourly schedule fires once (and the weekly one, 09:00 in Berlin, was
    // 08:00 UTC: before the clock started).
    clock.set(at("2030-01-07T09:00:05Z"));
    let fired = schedule::tick(&app, &clock).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].name, "hourly");
    assert_eq!(fired[0].due_at, at("2030-01-07T09:00:00Z"));
    assert!(!fired[0].manual);
    let number = fired[0].issue_number.expect("an issue");
    let issue = model.issue("octo/hello", number).unwrap();
    assert_eq!(issue.title, "Hourly chores");
    assert_eq!(issue.body, "Sweep the floor.");
    assert_eq!(issue.labels, ["agent:todo", "chore"]);

    // Ticking again at the same or a later time before the next due time opens nothing.
    assert!(schedule::tick(&app, &clock).await.unwrap().is_empty());
    clock.advance(TimeDelta::minutes(30));
    assert!(schedule::tick(&app, &clock).await.unwrap().is_empty());
    assert_eq!(issue_count(&model), 1);

    // "Down" across 10:00, 11:00 and 12:00 (a restart: a new App on the same database):
    // exactly one fire, for the latest due time.
    app.store.close().await;
    let app = app_on(&test_db.url, dir.path(), sandbox_forges(&sandbox)).await;
    clock.set(at("2030-01-07T12:10:00Z"));
    let fired = schedule::tick(&app, &clock).await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].due_at, at("2030-01-07T12:00:00Z"));
    assert!(schedule::tick(&app, &clock).await.unwrap().is_empty());
    assert_eq!(issue_count(&model), 2);

    // The next Monday 09:00 Berlin (08:00 UTC) fires the weekly one too.
    clock.set(at("2030-01-14T08:00:00Z"));
    let mut fired = schedule::tick(&app, &clock).await.unwrap();
    fired.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<(&str, DateTime<Utc>)> =
        fired.iter().map(|f| (f.name.as_str(), f.due_at)).collect();
    assert_eq!(
        names,
        [
            ("hourly", at("2030-01-14T08:00:00Z")),
            ("weekly", at("2030-01-14T08:00:00Z"))
        ]
    );
    let weekly = model
        .issue("octo/hello", fired[1].issue_number.unwrap())
        .unwrap();
    assert_eq!(weekly.labels, ["agent:todo"]);

    let stored = schedules::all_for_repo(app.store.pool(), repo_id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|f| f.issue_number.is_some() && f.error.is_none())
    );
    app.store.close().await;
    test_db.drop_db().await;
}

async fn racing_schedulers_open_one_issue(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(db, dir.path()).await;
    let model = sandbox_model();
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let first = app_on(&test_db.url, dir.path(), sandbox_forges(&sandbox)).await;
    let second = app_on(&test_db.url, dir.path(), sandbox_forges(&sandbox)).await;
    with_schedules(&first, ForgeKind::Gitea).await;

    let clock = Arc::new(ManualClock::new(at("2030-03-05T05:30:00Z")));
    // Both see the schedules for the first time at once: one clock start, no fire.
    let race = |app: App, clock: Arc<ManualClock>| async move {
        let mut fired = Vec::new();
        for _ in 0..5 {
            fired.extend(schedule::tick(&app, clock.as_ref()).await.unwrap());
        }
        fired
    };
    let (a, b) = tokio::join!(
        tokio::spawn(race(first.clone(), clock.clone())),
        tokio::spawn(race(second.clone(), clock.clone()))
    );
    assert!(a.unwrap().is_empty() && b.unwrap().is_empty());

    for round in 0..3 {
        clock.advance(TimeDelta::hours(1));
        let (a, b) = tokio::join!(
            tokio::spawn(race(first.clone(), clock.clone())),
            tokio::spawn(race(second.clone(), clock.clone()))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.len() + b.len(),
            1,
            "round {round}: one fire in all ({a:?} / {b:?})"
        );
        assert_eq!(issue_count(&model), round + 1);
    }
    let labels = model.issue("octo/hello", 1).unwrap().labels;
    assert_eq!(labels, ["agent:todo", "chore"], "Gitea labels by id");

    // Only one replica at a time holds the scheduler's lock on PostgreSQL.
    let lead = Leadership::try_acquire(&first).await.unwrap();
    assert!(lead.is_some());
    let other = Leadership::try_acquire(&second).await.unwrap();
    match first.store.backend() {
        Backend::Postgres => {
            assert!(other.is_none(), "the lock is taken");
            lead.unwrap().release().await;
            let now_mine = Leadership::try_acquire(&second).await.unwrap();
            assert!(now_mine.is_some(), "released, so another replica takes it");
            now_mine.unwrap().release().await;
        }
        Backend::Sqlite => assert!(other.is_some(), "a SQLite server is alone"),
    }
    first.store.close().await;
    second.store.close().await;
    test_db.drop_db().await;
}

async fn run_now_through_the_api(db: Db) {
    let model = sandbox_model();
    let sandbox = sandbox::serve(model.clone()).await.unwrap();
    let options = Options {
        forges: sandbox_forges(&sandbox),
        ..Options::default()
    };
    let server = TestServer::start_with(db, options).await;
    model
        .set_webhook(&format!("{}/webhooks/github", server.base), GITHUB_SECRET)
        .unwrap();
    with_schedules(&server.app, ForgeKind::Github).await;

    let listed: Schedules = server
        .get_json("/api/v1/repos/github/octo/hello/schedules")
        .await;
    assert_eq!(listed.repository, "github:octo/hello");
    assert_eq!(listed.schedules[0].name, "hourly");
    assert_eq!(listed.schedules[1].timezone, "Europe/Berlin");
    assert!(listed.schedules[0].next_at.is_some());
    assert!(listed.schedules[0].recent_fires.is_empty());

    let run = |name: &str| {
        server
            .http
            .post(format!(
                "{}/api/v1/repos/github/octo/hello/schedules/{name}/run",
                server.base
            ))
            .send()
    };
    let response = run("weekly").await.unwrap();
    assert_eq!(response.status(), 201);
    let fired: Fired = response.json().await.unwrap();
    assert!(fired.manual);
    let number = fired.issue_number.expect("issue number");
    let issue = model.issue("octo/hello", number).unwrap();
    assert_eq!(issue.title, "Weekly deps");
    assert_eq!(issue.labels, ["agent:todo"]);

    // The issue's webhook makes it a ticket, in the status its label says.
    wait_until("scheduled issue becomes a ticket", || async {
        let response = server
            .http
            .get(format!(
                "{}/api/v1/tickets/github/octo/hello/{number}",
                server.base
            ))
            .send()
            .await
            .unwrap();
        response.status().is_success()
            && response
                .json::<TicketDetail>()
                .await
                .unwrap()
                .ticket
                .status
                .as_deref()
                == Some("todo")
    })
    .await;

    let listed: Schedules = server
        .get_json("/api/v1/repos/github/octo/hello/schedules")
        .await;
    let fires = &listed.schedules[1].recent_fires;
    assert_eq!(fires.len(), 1, "{listed:?}");
    assert!(fires[0].manual);
    assert_eq!(fires[0].issue_number, Some(number));

    // "Run now" on the dashboard's workflows page: a CSRF-protected form.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let config_url = format!("{}/repos/github/octo/hello/config", server.base);
    let cookie = server.sign_in().await;
    let page = browser
        .get(&config_url)
        .header("Cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<h2>Schedules</h2>") && html.contains("Run now"));
    let action = "/repos/github/octo/hello/schedules/hourly/run";
    let form_at = html
        .find(&format!("action=\"{action}\""))
        .expect("a Run now form");
    let marker = "name=\"csrf\" value=\"";
    let token_at = form_at + html[form_at..].find(marker).unwrap() + marker.len();
    let token = &html[token_at..token_at + 64];
    let post = |csrf: String| {
        browser
            .post(format!("{}{action}", server.base))
            .header("Cookie", cookie.clone())
            .form(&[("csrf", csrf)])
            .send()
    };
    let forged = post("0".repeat(64)).await.unwrap();
    assert_eq!(forged.status(), 403);
    let before = issue_count(&model);
    let done = post(token.to_owned()).await.unwrap();
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/repos/github/octo/hello/config?notice="),
        "{location}"
    );
    assert_eq!(issue_count(&model), before + 1);
    let hourly = model.issue("octo/hello", before as u64 + 1).unwrap();
    assert_eq!(hourly.labels, ["agent:todo", "chore"]);
    let after = browser
        .get(format!("{}{location}", server.base))
        .header("Cookie", cookie.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("opened issue #"), "{after}");

    assert_eq!(run("nope").await.unwrap().status(), 404);
    let unknown_repo = server
        .http
        .post(format!(
            "{}/api/v1/repos/github/octo/missing/schedules/weekly/run",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_repo.status(), 404);
    model.clear_webhook();
    server.finish().await;
}

#[test]
fn bad_cron_is_a_file_line_error() {
    let files = ConfigFiles::from([(
        ".forgehand/schedules.yaml".to_owned(),
        b"schedules:\n  - name: nightly\n    cron: \"0 25 * * *\"\n    issue: { title: X }\n"
            .to_vec(),
    )]);
    let errors = repo::validate(&files).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with(".forgehand/schedules.yaml:3: schedule `nightly`: invalid cron"),
        "{text:?}"
    );
}

/// The clock trait is object safe and the system clock is the real time.
#[test]
fn system_clock_is_now() {
    let clock: &dyn Clock = &schedule::SystemClock;
    assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
}

/// The whole way: a schedule's issue, opened by Forgehand's own bot, is claimed like any other
/// ticket in a pickup status (the schedule was reviewed as code; its bot author is no trigger).
async fn scheduled_issue_is_picked_up(db: Db) {
    use crate::scenario::{HARNESS, Scenario, workflow};
    let schedules = "schedules:\n  - name: nightly\n    cron: \"0 3 * * *\"\n    issue: { title: Nightly sweep, labels: [agent:todo] }\n";
    let flow = workflow(HARNESS, "");
    let files = [
        (".forgehand/config.yaml", "max_concurrent: 5\n"),
        (".forgehand/workflows/build.md", flow.as_str()),
        (".forgehand/schedules.yaml", schedules),
    ];
    let s = Scenario::start_with_files(db, "cat > /dev/null\n", &files, "").await;
    let response = s
        .server
        .http
        .post(format!(
            "{}/api/v1/repos/github/octo/app/schedules/nightly/run",
            s.server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let fired: Fired = response.json().await.unwrap();
    let number = fired.issue_number.unwrap();
    s.deliver_issue(number, forgehand::sandbox::GITHUB_BOT_LOGIN, "opened")
        .await;
    let ticket = s.wait_status(number, "in-progress").await;
    assert_eq!(ticket.ticket.title, "Nightly sweep");
    s.finish().await;
}
