//! The intake's group commit on its own, with no server (so no inbox) running: on SQLite a
//! delivery is applied in the transaction that stores it, unless the inbox holds one stored
//! before it or applying it fails; on PostgreSQL it is always left to the inbox.

use std::collections::BTreeMap;

use forgehand::app::{App, Forges};
use forgehand::config::server::ServerConfig;
use forgehand::domain::ForgeKind;
use forgehand::store::Store;
use forgehand::store::deliveries::{self, NewDelivery};
use forgehand::sync::intake::Intake;
use tokio_util::sync::CancellationToken;

use crate::backend_tests;
use crate::harness::{ADMIN_TOKEN, Db, TestDb, fixture, wait_until};

backend_tests!(
    a_delivery_is_applied_as_it_is_stored_on_sqlite,
    a_delivery_whose_effects_cannot_be_stored_is_left_to_the_inbox,
    a_delivery_behind_one_the_inbox_holds_waits_its_turn,
);

/// An app and its intake, no server.
struct Bare {
    app: App,
    intake: Intake,
    db: TestDb,
    _dir: tempfile::TempDir,
}

impl Bare {
    async fn start(db: Db) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let test_db = TestDb::create(db, dir.path()).await;
        let env = BTreeMap::from([
            (
                "FORGEHAND_DATA_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
            ("DATABASE_URL".to_owned(), test_db.url.clone()),
            ("FORGEHAND_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        ]);
        let config = ServerConfig::from_toml("", &env).expect("test config");
        let store = Store::connect(&config.database_url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let app = App::new(config, store, Forges::new(None, None));
        let (intake, _writer) = Intake::start(app.clone());
        Self {
            app,
            intake,
            db: test_db,
            _dir: dir,
        }
    }

    /// Stores GitHub's `issues` `labeled` example as delivery `id`, through the intake.
    async fn store(&self, id: &str) {
        self.intake.store(labeled(id)).await.expect("stored");
    }

    async fn outcome(&self, id: &str) -> (String, i64) {
        sqlx::query_as("SELECT outcome, attempts FROM deliveries WHERE delivery_id = $1")
            .bind(id)
            .fetch_one(self.app.store.pool())
            .await
            .unwrap()
    }

    /// Repositories the applied deliveries mirrored.
    async fn repositories(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM repositories")
            .fetch_one(self.app.store.pool())
            .await
            .unwrap()
    }

    /// Runs the inbox until `ids` are processed.
    async fn drain(&self, ids: &[&str]) {
        let stop = CancellationToken::new();
        let inbox = tokio::spawn(forgehand::sync::inbox::run(self.app.clone(), stop.clone()));
        for id in ids {
            wait_until(&format!("{id} processed"), || async {
                self.outcome(id).await.0 == "processed"
            })
            .await;
        }
        stop.cancel();
        inbox.await.unwrap();
    }

    async fn finish(self) {
        self.app.store.close().await;
        self.db.drop_db().await;
    }
}

fn labeled(id: &str) -> NewDelivery {
    NewDelivery {
        forge: ForgeKind::Github,
        delivery_id: id.to_owned(),
        event: "issues".to_owned(),
        body: fixture("github/issues/labeled.payload.json"),
    }
}

async fn a_delivery_is_applied_as_it_is_stored_on_sqlite(db: Db) {
    let b = Bare::start(db).await;
    b.store("first").await;
    match db {
        Db::Sqlite => {
            assert_eq!(b.outcome("first").await, ("processed".to_owned(), 0));
            assert_eq!(b.repositories().await, 1, "its effects are stored");
        }
        Db::Postgres => {
            assert_eq!(b.outcome("first").await, ("pending".to_owned(), 0));
            assert_eq!(b.repositories().await, 0);
            b.drain(&["first"]).await;
        }
    }
    // The same delivery again is stored once and applied once.
    b.store("first").await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
        .fetch_one(b.app.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    b.finish().await;
}

async fn a_delivery_whose_effects_cannot_be_stored_is_left_to_the_inbox(db: Db) {
    let b = Bare::start(db).await;
    let rename = |from: &'static str, to: &'static str| {
        let pool = b.app.store.pool().clone();
        async move {
            sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    // Every applied delivery records its repository: applying fails, storing does not.
    rename("repositories", "repositories_away").await;
    b.store("first").await;
    assert_eq!(b.outcome("first").await, ("pending".to_owned(), 0));
    rename("repositories_away", "repositories").await;
    b.drain(&["first"]).await;
    assert_eq!(b.repositories().await, 1);
    b.finish().await;
}

async fn a_delivery_behind_one_the_inbox_holds_waits_its_turn(db: Db) {
    let b = Bare::start(db).await;
    // Stored as a replica's intake would have, or before a restart: pending in the inbox.
    let mut conn = b.app.store.write_conn().await.unwrap();
    deliveries::insert_batch(&mut conn, &[labeled("older")])
        .await
        .unwrap();
    drop(conn);
    b.store("newer").await;
    assert_eq!(b.outcome("older").await.0, "pending");
    assert_eq!(
        b.outcome("newer").await.0,
        "pending",
        "not ahead of the older one"
    );
    b.drain(&["older", "newer"]).await;
    // With the inbox empty again, the next one is applied as it is stored (on SQLite).
    b.store("next").await;
    let expected = if db == Db::Sqlite {
        "processed"
    } else {
        "pending"
    };
    assert_eq!(b.outcome("next").await.0, expected);
    b.finish().await;
}
