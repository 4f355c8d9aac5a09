//! Database access. One schema, two backends (SQLite embedded by default, PostgreSQL for
//! scale-out) behind sqlx's `Any` driver: queries use `$N` placeholders, which both accept.

pub(crate) mod active_config;
pub(crate) mod audit;
pub mod backup;
pub(crate) mod claim_marks;
pub(crate) mod columns;
pub mod config_checks;
pub mod config_versions;
pub(crate) mod conversation;
pub mod costs;
pub mod dashboard;
pub mod deliveries;
pub(crate) mod dispatch;
pub(crate) mod gates;
pub(crate) mod live;
pub(crate) mod locks;
pub(crate) mod payload;
pub(crate) mod pickup_waits;
pub(crate) mod pulls;
pub mod repos;
pub(crate) mod review_wake;
pub(crate) mod run_list;
pub(crate) mod run_log;
pub(crate) mod runners;
pub mod runs;
pub mod schedules;
pub(crate) mod sessions;
pub(crate) mod ticket_history;
pub mod tickets;
pub mod wakeups;
pub(crate) mod write_turn;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The SQLite write-ahead log after a checkpoint, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wal {
    /// Pages in the WAL file.
    pub frames: i64,
    /// Of which copied into the database.
    pub copied: i64,
    /// Whether the checkpoint could not finish (a reader or writer was in the way): a
    /// truncation that was busy truncated nothing.
    pub busy: bool,
}

/// A connection pool and which backend it talks to.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Serializes this process's SQLite write transactions (see [`Store::begin_write`]).
    writer: write_turn::WriteTurns,
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`). A SQLite file and its directory are
    /// created when missing, in WAL mode.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = match backend {
            Backend::Sqlite => {
                // WAL lets readers run beside the one writer. `synchronous` stays FULL (the
                // default): a delivery is on disk before its 202.
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    // A connection to a file in this process cannot go stale; the ping before
                    // each checkout was one more round trip to SQLite's connection thread for
                    // every statement run on the pool.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA busy_timeout = 10000")
                                .execute(&mut *conn)
                                .await?;
                            // Checkpoints run in the background (`checkpoint`), not inside
                            // whichever commit crosses the threshold: a webhook's 202 must not
                            // wait for the WAL to be copied into the database.
                            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                                .execute(&mut *conn)
                                .await?;
                            // When a write restarts a fully checkpointed WAL, its file is cut
                            // back to 4 MiB: the WAL grown under a burst does not stay that size.
                            sqlx::query("PRAGMA journal_size_limit = 4194304")
                                .execute(&mut *conn)
                                .await?;
                            // 8 MiB of page cache per connection (the default is 2 MiB): one
                            // board view touches ~700 distinct pages (cards, their latest runs),
                            // which 2 MiB cannot hold, so every view read ~640 pages back
                            // through read(). At most 64 MiB for the 8 connections.
                            sqlx::query("PRAGMA cache_size = -8192")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                pool
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Self {
            pool,
            backend,
            writer: write_turn::WriteTurns::default(),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers and every migration this binary knows is applied.
    pub async fn ready(&self) -> Result<bool, StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await?;
        Ok(applied as usize >= self.migrator().iter().count())
    }

    /// Copies the SQLite WAL into the database file without blocking writers. Returns what the
    /// WAL holds (`None` on PostgreSQL, or when the database is not in WAL mode). Run
    /// periodically by the server.
    pub async fn checkpoint(&self) -> Result<Option<Wal>, StoreError> {
        self.wal_checkpoint("PASSIVE").await
    }

    /// Copies what is left of the WAL and truncates its file to nothing, waiting for readers
    /// (and holding writers meanwhile): for when the load has passed, so a WAL grown under a
    /// burst gives its disk back.
    pub async fn truncate_wal(&self) -> Result<Option<Wal>, StoreError> {
        self.wal_checkpoint("TRUNCATE").await
    }

    async fn wal_checkpoint(&self, mode: &str) -> Result<Option<Wal>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        // (busy, frames in the WAL, frames copied)
        let (busy, frames, copied): (i64, i64, i64) =
            sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
                .fetch_one(&self.pool)
                .await?;
        Ok((frames >= 0).then_some(Wal {
            frames,
            copied,
            busy: busy != 0,
        }))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure the SQLite file's directory exists and asks sqlx to create the file.
fn prepare_sqlite(url: &str) -> Result<String, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(if rest.contains("mode=") {
        url.to_owned()
    } else if rest.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

impl StoreError {
    /// A PostgreSQL deadlock (`40P01`) or serialization failure (`40001`): the transaction was
    /// chosen as the victim and can be run again as it was.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Sqlx(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

/// Milliseconds since the Unix epoch: how times are stored.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn to_ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Store {
    /// A transaction that will write. SQLite takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so a read-then-write transaction cannot fail on a snapshot another writer made stale; and
    /// this process's SQLite writers queue on a fair in-process lock first, because SQLite's own
    /// busy handler polls with sleeps of up to 100 ms and lets a waiter lose the race again and
    /// again (hundreds of milliseconds for a webhook's 202 under load).
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let guard = self.writer.take().await;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    backend: self.backend,
                    _turn: Some(guard),
                }
            }
            Backend::Postgres => WriteTx {
                tx: self.pool.begin().await?,
                backend: self.backend,
                _turn: None,
            },
        })
    }

    /// Whether a writer of this process waits for SQLite's write turn (never on PostgreSQL,
    /// whose writers do not take turns): a long write transaction ends early when one does.
    pub fn writer_waiting(&self) -> bool {
        self.backend == Backend::Sqlite && self.writer.contended()
    }

    /// A connection for one write statement outside a transaction, in this process's SQLite
    /// write turn (see [`Store::begin_write`]). Without the turn, a statement waiting for
    /// SQLite's write lock polls in its busy handler and lost the race to the webhook intake
    /// for seconds on end.
    pub async fn write_conn(&self) -> Result<WriteConn, StoreError> {
        let turn = match self.backend {
            Backend::Sqlite => Some(self.writer.take().await),
            Backend::Postgres => None,
        };
        Ok(WriteConn {
            conn: self.pool.acquire().await?,
            _turn: turn,
        })
    }

    /// `UPDATE {table} SET {set} WHERE {filter}`, `$1` bound to `now`, for a maintenance write
    /// that usually changes nothing: the rows are looked for first on the pool, and only when
    /// one matches is the update run, in the write turn ([`Store::write_conn`]). Returns the
    /// rows updated.
    pub(crate) async fn update_if_any(
        &self,
        table: &str,
        set: &str,
        filter: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let any: Option<i64> =
            sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE {filter} LIMIT 1"))
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        if any.is_none() {
            return Ok(0);
        }
        let done = sqlx::query(&format!("UPDATE {table} SET {set} WHERE {filter}"))
            .bind(now)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected())
    }
}

/// A pooled connection holding the SQLite write turn (see [`Store::write_conn`]).
pub struct WriteConn {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    _turn: Option<write_turn::Turn>,
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// A write transaction (see [`Store::begin_write`]); derefs to the connection. It knows its
/// backend, so the store functions that take one pick their own SQL dialect.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    _turn: Option<write_turn::Turn>,
}

impl WriteTx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Undoes the transaction and gives up the write turn.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
