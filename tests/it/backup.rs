//! `forgehand backup`: a copy of a SQLite database taken while another process writes to it is
//! the database as of one commit, and a backup never overwrites a file.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use forgehand::store::Store;

/// Rows per write transaction: a consistent copy holds whole batches only.
const BATCH: i64 = 25;

fn backup(data_dir: &std::path::Path, to: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("backup")
        .arg(to)
        .env("FORGEHAND_DATA_DIR", data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("FORGEHAND_CONFIG")
        .output()
        .unwrap()
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_is_a_consistent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/forgehand.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query("CREATE TABLE load (batch INTEGER NOT NULL, n INTEGER NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writer = {
        let (store, stop, committed) = (store.clone(), stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut batch = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let mut tx = store.pool().begin().await.unwrap();
                for n in 0..BATCH {
                    sqlx::query("INSERT INTO load (batch, n) VALUES ($1, $2)")
                        .bind(batch)
                        .bind(n)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
                batch += 1;
                committed.store(batch * BATCH, Ordering::SeqCst);
            }
        })
    };
    // Let the load get going, then back up in another process while it writes.
    while committed.load(Ordering::SeqCst) < 20 * BATCH {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = committed.load(Ordering::SeqCst);
    let copy = dir.path().join("copy.db");
    let out = {
        let (data, copy) = (dir.path().to_owned(), copy.clone());
        tokio::task::spawn_blocking(move || backup(&data, &copy))
            .await
            .unwrap()
    };
    let after = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(after > before, "no write happened during the backup");

    let restored = Store::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(restored.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let rows = count(&restored, "SELECT COUNT(*) FROM load").await;
    // A committed point: whole batches, numbered 0.. without a gap, between what was committed
    // when the backup started and when it ended.
    assert_eq!(
        rows % BATCH,
        0,
        "a transaction was copied in part: {rows} rows"
    );
    assert!(
        (before..=after).contains(&rows),
        "{rows} rows, committed {before}..{after}"
    );
    let partial = count(
        &restored,
        "SELECT COUNT(*) FROM (SELECT batch FROM load GROUP BY batch HAVING COUNT(*) <> 25) AS p",
    )
    .await;
    assert_eq!(partial, 0);
    let highest = count(&restored, "SELECT COALESCE(MAX(batch), -1) FROM load").await;
    assert_eq!((highest + 1) * BATCH, rows, "batches are missing");
    // The copy is a working Forgehand database: its migrations are all there.
    let migrations = "SELECT COUNT(*) FROM _sqlx_migrations";
    assert_eq!(
        count(&restored, migrations).await,
        count(&store, migrations).await
    );
    restored.migrate().await.unwrap();
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("precious.db");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = backup(dir.path(), &existing);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
}

#[test]
fn postgres_is_sent_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("backup")
        .arg(dir.path().join("x.db"))
        .env("FORGEHAND_DATA_DIR", dir.path())
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!dir.path().join("x.db").exists());
}
