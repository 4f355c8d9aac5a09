//! Replicas on one PostgreSQL database: every limit holds across them, the same deliveries
//! sent to both are stored once without errors, and one replica's wake-ups reach the other.
//! (Replicas need PostgreSQL: these tests run on it only.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use forgehand::app::{App, Forges};
use forgehand::config::repo::ConfigFiles;
use forgehand::config::server::ServerConfig;
use forgehand::domain::{ForgeKind, RepoRef};
use forgehand::engine::claim;
use forgehand::forge::RepoInfo;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::{self, ForgeModel, Permission};
use forgehand::store::wakeups::Wake;
use forgehand::store::{Store, repos, tickets};
use forgehand::sync::config_sync;

use crate::harness::{Db, Options, TestDb, TestServer, mirror_labelled, postgres_available};

const TICKETS: u64 = 100;

/// A replica without its HTTP server or loops: the tests drive its claim passes themselves.
async fn replica(url: &str, forge_url: &str, toml: &str) -> (App, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let env = BTreeMap::from([
        ("DATABASE_URL".to_owned(), url.to_owned()),
        (
            "FORGEHAND_DATA_DIR".to_owned(),
            data_dir.path().display().to_string(),
        ),
    ]);
    let config = ServerConfig::from_toml(toml, &env).unwrap();
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let github = GithubForge::new(forge_url, GithubAuth::Token("ghp_replica".into())).unwrap();
    (
        App::new(config, store, Forges::new(Some(Arc::new(github)), None)),
        data_dir,
    )
}

/// Two replicas claim 100 tickets labelled at once, several passes each, while the runs in
/// flight are sampled; no sample, and not the end state, may exceed `expected`, and the limit
/// is reached (the claims did happen).
async fn race_under_limit(repo_config: &str, toml: &str, expected: i64) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(Db::Postgres, dir.path()).await;
    let model = ForgeModel::new();
    model.add_repo("octo", "many", "main", "file:///nonexistent");
    model.set_permission("octo/many", "alice", Permission::Write);
    let forge = sandbox::serve(model.clone()).await.unwrap();
    let (first, _d1) = replica(&test_db.url, &forge.github_api_url(), toml).await;
    let (second, _d2) = replica(&test_db.url, &forge.github_api_url(), toml).await;

    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", "many"),
        default_branch: "main".into(),
        clone_url: "file:///nonexistent".into(),
        html_url: "https://example.test/octo/many".into(),
    };
    let mut conn = first.store.pool().acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    drop(conn);
    let files = ConfigFiles::from([
        (
            ".forgehand/config.yaml".to_owned(),
            repo_config.as_bytes().to_vec(),
        ),
        (
            ".forgehand/workflows/w.md".to_owned(),
            b"---\npickup: [todo]\nfinish: [in-review]\nagent: script\n---\nDo {{ ticket.title }}\n"
                .to_vec(),
        ),
    ]);
    config_sync::store_tree(&first, repo_id, "abc", &files)
        .await
        .unwrap();
    for number in 1..=TICKETS {
        let opened = model.open_issue("octo/many", "Ticket", "", &["agent:todo"], "alice");
        assert_eq!(opened, number);
        let mut conn = first.store.pool().acquire().await.unwrap();
        mirror_labelled(&mut conn, repo_id, number, "todo").await;
    }

    let in_flight = "SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')";
    let racing = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicI64::new(0));
    let sampler = {
        let (racing, most, pool) = (racing.clone(), most.clone(), first.store.pool().clone());
        tokio::spawn(async move {
            while racing.load(Ordering::SeqCst) {
                let n: i64 = sqlx::query_scalar(in_flight)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let passes = |app: App| async move {
        for _ in 0..3 {
            claim::claim_ready(&app).await.unwrap();
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(passes(first.clone())),
        tokio::spawn(passes(second.clone()))
    );
    a.unwrap();
    b.unwrap();
    racing.store(false, Ordering::SeqCst);
    sampler.await.unwrap();

    let end: i64 = sqlx::query_scalar(in_flight)
        .fetch_one(first.store.pool())
        .await
        .unwrap();
    assert_eq!(end, expected, "runs in flight after both replicas claimed");
    assert!(
        most.load(Ordering::SeqCst) <= expected,
        "a sample saw {} runs in flight, over the limit {expected}",
        most.load(Ordering::SeqCst)
    );
    first.store.close().await;
    second.store.close().await;
    test_db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hold_a_repository_limit() {
    if postgres_available().await.is_none() {
        return;
    }
    race_under_limit(
        "max_concurrent: 2\n",
        "[agents.script]\nadapter = \"command\"\ncommand = \"true\"\n\
         [limits]\nmax_concurrent_runs = 1000\n",
        2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hold_an_agent_limit() {
    if postgres_available().await.is_none() {
        return;
    }
    race_under_limit(
        "max_concurrent: 1000\n",
        "[agents.script]\nadapter = \"command\"\ncommand = \"true\"\nmax_parallel = 3\n\
         [limits]\nmax_concurrent_runs = 1000\n",
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_hold_the_server_limit() {
    if postgres_available().await.is_none() {
        return;
    }
    race_under_limit(
        "max_concurrent: 1000\n",
        "[agents.script]\nadapter = \"command\"\ncommand = \"true\"\n\
         [limits]\nmax_concurrent_runs = 4\n",
        4,
    )
    .await;
}

/// The same deliveries reach both replicas at once, in opposite orders and many in flight:
/// every answer is a 2xx and each delivery is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_deliveries_on_both_replicas_are_stored_once() {
    if postgres_available().await.is_none() {
        return;
    }
    const DELIVERIES: usize = 300;
    let first = TestServer::start(Db::Postgres).await;
    let second = TestServer::start_on(
        tempfile::tempdir().unwrap(),
        first.db.sharing(),
        Options::default(),
    )
    .await;
    let first = Arc::new(first);
    let second = Arc::new(second);
    let body = crate::harness::fixture("github/ping/payload.json");
    let ids: Vec<String> = (0..DELIVERIES)
        .map(|i| format!("replica-delivery-{i:04}"))
        .collect();
    let mut sends = tokio::task::JoinSet::new();
    for (server, reversed) in [(first.clone(), false), (second.clone(), true)] {
        let mut order = ids.clone();
        if reversed {
            order.reverse();
        }
        // Eight senders per replica, each taking every eighth delivery.
        for lane in 0..8 {
            let server = server.clone();
            let body = body.clone();
            let mine: Vec<String> = order.iter().skip(lane).step_by(8).cloned().collect();
            sends.spawn(async move {
                let mut statuses = Vec::new();
                for id in mine {
                    statuses.push(server.post_github("ping", &id, &body).await.status());
                }
                statuses
            });
        }
    }
    let mut answered = 0;
    while let Some(statuses) = sends.join_next().await {
        for status in statuses.unwrap() {
            assert!(status.is_success(), "a replica answered {status}");
            answered += 1;
        }
    }
    assert_eq!(answered, 2 * DELIVERIES);
    let (stored, distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT delivery_id) FROM deliveries \
         WHERE delivery_id LIKE 'replica-delivery-%'",
    )
    .fetch_one(first.app.store.pool())
    .await
    .unwrap();
    assert_eq!((stored, distinct), (DELIVERIES as i64, DELIVERIES as i64));

    let second = Arc::into_inner(second).expect("no sender holds the server");
    let first = Arc::into_inner(first).expect("no sender holds the server");
    second.stop().await;
    first.finish().await;
}

/// A wake-up raised on one replica reaches the other's loops through the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_reaches_the_other_replica() {
    if postgres_available().await.is_none() {
        return;
    }
    let first = TestServer::start(Db::Postgres).await;
    let second = TestServer::start_on(
        tempfile::tempdir().unwrap(),
        first.db.sharing(),
        Options::default(),
    )
    .await;
    // The listener connects in the background: wake until one arrives (each wake is sent
    // only by the first replica, so only the database can carry it to the second).
    let signals = second.app.signals.clone();
    let woken = async {
        loop {
            let notified = signals.cancel.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            first.app.wake(Wake::Cancel);
            if tokio::time::timeout(Duration::from_millis(500), notified)
                .await
                .is_ok()
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), woken)
        .await
        .expect("the second replica was woken by the first one's wake-up");
    second.stop().await;
    first.finish().await;
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

/// A replica cut off from the database mid-run (it can neither renew its lease nor give the
/// run back) loses the run to the other replica once the lease lapses; it stops its own agent,
/// so one agent works on the ticket, the survivor's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_replica_s_run_is_taken_over_after_its_lease() {
    use crate::scenario::{HARNESS, Scenario, workflow};
    if postgres_available().await.is_none() {
        return;
    }
    let marker = format!("fh-takeover-{}", std::process::id());
    let script = format!(
        "cat > /dev/null\necho started >> \"$SHARED/starts\"\nsh -c 'sleep 600; : {marker}'\n"
    );
    let lost = Scenario::start(
        Db::Postgres,
        &script,
        &workflow(HARNESS, ""),
        "[limits]\nrun_lease = \"3s\"\n",
    )
    .await;
    lost.open_labelled("Take me over", &["agent:todo"], "alice")
        .await;
    let starts = lost.shared_path("starts");
    let started = |n: usize| {
        let starts = starts.clone();
        move || {
            let starts = starts.clone();
            async move { std::fs::read_to_string(&starts).is_ok_and(|s| s.lines().count() >= n) }
        }
    };
    crate::harness::wait_until("the first replica's agent to start", started(1)).await;
    let pool = lost.server.app.store.pool().clone();
    let (run_id, first_owner): (i64, String) =
        sqlx::query_as("SELECT id, lease_owner FROM runs WHERE state = 'running'")
            .fetch_one(&pool)
            .await
            .unwrap();

    // The survivor joins, then the first replica loses its database.
    let survivor = TestServer::start_on(
        tempfile::tempdir().unwrap(),
        lost.server.db.sharing(),
        Options {
            forges: lost.server.app.forges.clone(),
            ..Options::default()
        }
        .toml(&lost.server.toml),
    )
    .await;
    lost.server.app.store.close().await;

    crate::harness::wait_until("the survivor to run the agent again", started(2)).await;
    let (state, owner): (String, Option<String>) =
        sqlx::query_as("SELECT state, lease_owner FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(survivor.app.store.pool())
            .await
            .unwrap();
    assert_eq!(state, "running", "the same run resumed");
    let owner = owner.expect("a lease owner");
    assert_ne!(owner, first_owner, "the run is the survivor's now");
    crate::harness::wait_until("the lost replica's agent to stop", || async {
        processes_with(&marker) == 1
    })
    .await;
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
        .fetch_one(survivor.app.store.pool())
        .await
        .unwrap();
    assert_eq!(runs, 1, "taken over, not run twice");

    survivor.stop().await;
    let Scenario { server, .. } = lost;
    let (_dir, db) = server.stop().await;
    db.drop_db().await;
    crate::harness::wait_until("no agent left", || async { processes_with(&marker) == 0 }).await;
}

/// The review poll is taken in the database: of two replicas asking at once, one polls; the
/// next poll is due only after `every`.
async fn the_review_poll_is_taken_once_per_interval(db: Db) {
    let server = TestServer::start(db).await;
    let other = Store::connect(&server.db.url).await.unwrap();
    let pool = server.app.store.pool();
    let info = RepoInfo {
        repo: RepoRef::new(ForgeKind::Github, "octo", "poll"),
        default_branch: "main".into(),
        clone_url: "file:///x".into(),
        html_url: "https://example.test".into(),
    };
    let mut conn = pool.acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    mirror_labelled(&mut conn, repo_id, 1, "todo").await;
    drop(conn);
    let ticket: i64 = sqlx::query_scalar("SELECT id FROM tickets WHERE number = 1")
        .fetch_one(pool)
        .await
        .unwrap();
    let now = 1_000_000_i64;
    let every = 30_000;
    let (a, b) = tokio::join!(
        tickets::take_review_poll(pool, ticket, now, every),
        tickets::take_review_poll(other.pool(), ticket, now, every)
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|t| **t).count(),
        1,
        "one replica polls"
    );
    assert!(
        !tickets::take_review_poll(other.pool(), ticket, now + every - 1, every)
            .await
            .unwrap()
    );
    assert!(
        tickets::take_review_poll(other.pool(), ticket, now + every, every)
            .await
            .unwrap()
    );
    other.close().await;
    server.finish().await;
}

crate::backend_tests!(the_review_poll_is_taken_once_per_interval);

/// Both replicas write the first progress comment of 40 tickets at once while the forge takes
/// its time to create comments: more writers than either pool has connections. Each ticket ends
/// with exactly one progress comment, and no writer waits for a connection held by another
/// (a holder of the cross-replica lock reads and writes on the lock's own connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_progress_comments_of_many_tickets_from_two_replicas() {
    use forgehand::report::progress;
    use forgehand::sandbox::{Disruption, Trouble};

    if postgres_available().await.is_none() {
        return;
    }
    const COUNT: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(Db::Postgres, dir.path()).await;
    let model = ForgeModel::new();
    model.add_repo("octo", "busy", "main", "file:///nonexistent");
    let forge = sandbox::serve(model.clone()).await.unwrap();
    let toml = "[agents.script]\nadapter = \"command\"\ncommand = \"true\"\n";
    let (first, _d1) = replica(&test_db.url, &forge.github_api_url(), toml).await;
    let (second, _d2) = replica(&test_db.url, &forge.github_api_url(), toml).await;
    let repo = RepoRef::new(ForgeKind::Github, "octo", "busy");
    let info = RepoInfo {
        repo: repo.clone(),
        default_branch: "main".into(),
        clone_url: "file:///nonexistent".into(),
        html_url: "https://example.test/octo/busy".into(),
    };
    let mut conn = first.store.pool().acquire().await.unwrap();
    let repo_id = repos::upsert(&mut conn, &info).await.unwrap();
    for number in 1..=COUNT {
        model.open_issue("octo/busy", "Ticket", "", &["agent:todo"], "alice");
        mirror_labelled(&mut conn, repo_id, number, "todo").await;
    }
    let ids: Vec<(i64, i64)> = sqlx::query_as("SELECT id, number FROM tickets")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(ids.len() as u64, COUNT);
    model.disrupt(Disruption {
        method: "POST".into(),
        path_contains: "/comments".into(),
        trouble: Trouble::Latency(Duration::from_millis(300)),
        times: None,
    });

    let mut writers = tokio::task::JoinSet::new();
    for (id, number) in ids {
        for app in [first.clone(), second.clone()] {
            let repo = repo.clone();
            writers.spawn(async move {
                progress::update(&app, id, &repo, number as u64, "Working on it.").await
            });
        }
    }
    let all = tokio::time::timeout(Duration::from_secs(120), writers.join_all())
        .await
        .expect("the writers finished (no one waits for ever for a connection)");
    for result in all {
        result.expect("every write went through");
    }
    for number in 1..=COUNT {
        let progress = model
            .comments("octo/busy", number)
            .into_iter()
            .filter(|c| c.body.contains("forgehand:progress"))
            .count();
        assert_eq!(
            progress, 1,
            "issue #{number} has {progress} progress comments"
        );
    }
    first.store.close().await;
    second.store.close().await;
    test_db.drop_db().await;
}
