//! Registering and revoking runners on other machines: one implementation for the API and the
//! dashboard, so the name rule, the token's form and the wake-up after a revoke cannot differ.

use crate::app::App;
use crate::store::wakeups::Wake;
use crate::store::{StoreError, runners};

/// The longest runner name, in bytes.
pub const MAX_NAME: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("a runner's name has 1 to {MAX_NAME} characters")]
    BadName,
    #[error("no runner {0}")]
    NoSuchRunner(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RunnerError {
    fn from(e: sqlx::Error) -> Self {
        RunnerError::Store(e.into())
    }
}

/// A runner just registered: its token exists only here (the server keeps its hash). Not
/// `Debug`, so the token cannot slip into a log line.
pub struct Registered {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// Registers a runner named `name` (trimmed) with a fresh token.
pub async fn register(app: &App, name: &str) -> Result<Registered, RunnerError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(RunnerError::BadName);
    }
    // Told apart from run tokens (`fhr_`) by its prefix, so a leaked one is recognised.
    let (run_token, _) = crate::run::runner::new_token();
    let token = format!("fhn_{}", &run_token[4..]);
    let hash = crate::run::runner::hash_token(&token);
    let id = runners::create(app.store.pool(), name, &hash).await?;
    Ok(Registered {
        id,
        name: name.to_owned(),
        token,
    })
}

/// Revokes runner `id`'s token at once; the runs it held are requeued and the runner loop is
/// woken to hand them out again.
pub async fn revoke(app: &App, id: i64) -> Result<(), RunnerError> {
    let mut conn = app.store.pool().acquire().await?;
    if !runners::revoke(&mut conn, id).await? {
        return Err(RunnerError::NoSuchRunner(id));
    }
    app.wake(Wake::Runner);
    Ok(())
}
