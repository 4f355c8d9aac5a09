//! Schedules (`.forgehand/schedules.yaml`): due schedules open an issue on the forge with the
//! configured labels, so the work enters the normal lifecycle through the issue's webhook.
//!
//! - **At most once per due time**, across restarts and replicas: a fire row is inserted before
//!   the forge is asked (the unique `(repo, name, due_at)` makes the insert the claim), then the
//!   issue number, or the error, is recorded. A failed fire is not retried: the issue may have
//!   been opened with only the answer lost.
//! - **Missed times run once**: the due time fired is the latest one at or before now since the
//!   last fire. A schedule seen for the first time starts its clock then: no fire for the past.
//! - **One scheduler**: on PostgreSQL the replica holding an advisory lock (on a connection of
//!   its own, for as long as it schedules) ticks; the others try again periodically. A SQLite
//!   database has one server.
//! - **Run now**: a manual fire, due now, opens the issue at once.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::repo::{Schedule, ScheduledIssue};
use crate::domain::RepoRef;
use crate::store::repos::{self, RepoRow};
use crate::store::schedules::{self, FireRow};
use crate::store::{StoreError, from_ms, locks, to_ms};

/// How often the scheduler looks for due schedules.
const TICK_INTERVAL: Duration = Duration::from_secs(15);
/// How often a replica that is not the scheduler tries to become it.
const LEAD_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// Fires listed per schedule in overviews.
const RECENT_FIRES: i64 = 5;

/// What time it is, so tests can move time themselves.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.lock() = now;
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.lock();
        *now += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{repo} has no schedule `{name}` in its active config")]
    UnknownSchedule { repo: RepoRef, name: String },
    #[error("no forge client is configured for {0}")]
    NoForge(RepoRef),
    #[error("schedule `{name}` of {repo} already fired for {due_at}")]
    AlreadyFired {
        repo: RepoRef,
        name: String,
        due_at: DateTime<Utc>,
    },
}

impl From<sqlx::Error> for ScheduleError {
    fn from(e: sqlx::Error) -> Self {
        ScheduleError::Store(e.into())
    }
}

/// One issue a schedule opened, or tried to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub repo: RepoRef,
    pub name: String,
    pub due_at: DateTime<Utc>,
    /// "Run now" rather than the cron expression.
    pub manual: bool,
    pub issue_number: Option<u64>,
    /// Why the forge did not open the issue.
    pub error: Option<String>,
}

/// The latest time a schedule is due in `(after, now]`, if any.
fn latest_due(
    schedule: &Schedule,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if now <= after {
        return None;
    }
    // Look back from now in doubling windows, so a server down for months does not walk every
    // minute of a per-minute schedule: only the window holding the latest due time is walked.
    let mut window = TimeDelta::minutes(1);
    loop {
        let start = now
            .checked_sub_signed(window)
            .map_or(after, |s| s.max(after));
        let mut found = None;
        let mut cursor = start;
        while let Some(next) = schedule.next_after(cursor) {
            if next > now {
                break;
            }
            found = Some(next);
            cursor = next;
        }
        if found.is_some() || start == after {
            return found;
        }
        window = window.checked_mul(2).unwrap_or(TimeDelta::MAX);
    }
}

/// One scheduler pass at `clock`'s time: every due schedule of every repository opens its
/// issue. Returns what fired.
pub async fn tick(app: &App, clock: &dyn Clock) -> Result<Vec<Fired>, ScheduleError> {
    let now = clock.now();
    let pool = app.store.pool();
    let mut fired = Vec::new();
    for repo in repos::all(pool).await? {
        if !app.config.allows(&repo.repo) {
            continue;
        }
        let config = {
            let mut conn = pool.acquire().await?;
            app.configs.get(&mut conn, repo.id).await?
        };
        for schedule in &config.schedules {
            match consider(app, &repo, schedule, now).await {
                Ok(Some(fire)) => fired.push(fire),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(repo = %repo.repo, schedule = %schedule.name, error = %e, "schedule failed")
                }
            }
        }
    }
    Ok(fired)
}

/// Fires `schedule` if a due time passed since its last fire.
async fn consider(
    app: &App,
    repo: &RepoRow,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Option<Fired>, ScheduleError> {
    let name = &schedule.name;
    // Most passes find nothing due: decide that without a write transaction.
    if let Some(state) = schedules::state(app.store.pool(), repo.id, name).await?
        && latest_due(schedule, from_ms(state.baseline()), now).is_none()
    {
        return Ok(None);
    }
    if app.forges.get(repo.repo.forge).is_none() {
        // Nothing could open the issue; the due time stays unclaimed for when one can.
        tracing::debug!(repo = %repo.repo, schedule = %name, "no forge client for a due schedule");
        return Ok(None);
    }
    let mut tx = app.store.begin_write().await?;
    let state = schedules::lock_state(&mut tx, repo.id, name, to_ms(now)).await?;
    let Some(due) = latest_due(schedule, from_ms(state.baseline()), now) else {
        tx.commit().await?;
        return Ok(None);
    };
    let claimed = schedules::claim(&mut tx, repo.id, name, to_ms(due), to_ms(now), false).await?;
    let Some(fire_id) = claimed else {
        tx.commit().await?;
        return Ok(None);
    };
    schedules::advance(&mut tx, repo.id, name, to_ms(due)).await?;
    tx.commit().await?;
    tracing::info!(repo = %repo.repo, schedule = %name, due = %due, "schedule due");
    Ok(Some(
        open_issue(app, repo, name, &schedule.issue, fire_id, due, false).await?,
    ))
}

/// Opens the schedule's issue at once ("run now"): a manual fire due at `clock`'s time. It
/// does not move the schedule's clock: the next scheduled time still fires.
pub async fn run_now(
    app: &App,
    repo: &RepoRow,
    name: &str,
    clock: &dyn Clock,
) -> Result<Fired, ScheduleError> {
    let config = {
        let mut conn = app.store.pool().acquire().await?;
        app.configs.get(&mut conn, repo.id).await?
    };
    let schedule = config
        .schedules
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ScheduleError::UnknownSchedule {
            repo: repo.repo.clone(),
            name: name.to_owned(),
        })?;
    if app.forges.get(repo.repo.forge).is_none() {
        return Err(ScheduleError::NoForge(repo.repo.clone()));
    }
    let now = clock.now();
    let mut conn = app.store.pool().acquire().await?;
    let claimed = schedules::claim(&mut conn, repo.id, name, to_ms(now), to_ms(now), true).await?;
    drop(conn);
    let Some(fire_id) = claimed else {
        return Err(ScheduleError::AlreadyFired {
            repo: repo.repo.clone(),
            name: name.to_owned(),
            due_at: now,
        });
    };
    tracing::info!(repo = %repo.repo, schedule = %name, "schedule run by hand");
    open_issue(app, repo, name, &schedule.issue, fire_id, now, true).await
}

/// Asks the forge for the issue of a claimed fire and records the outcome.
async fn open_issue(
    app: &App,
    repo: &RepoRow,
    name: &str,
    issue: &ScheduledIssue,
    fire_id: i64,
    due_at: DateTime<Utc>,
    manual: bool,
) -> Result<Fired, ScheduleError> {
    let result = match app.forges.get(repo.repo.forge) {
        Some(forge) => forge
            .create_issue(&repo.repo, &issue.title, &issue.body, &issue.labels)
            .await
            .map_err(|e| e.to_string()),
        None => Err(ScheduleError::NoForge(repo.repo.clone()).to_string()),
    };
    let pool = app.store.pool();
    let (issue_number, error) = match result {
        Ok(number) => {
            schedules::record_issue(pool, fire_id, number).await?;
            tracing::info!(repo = %repo.repo, schedule = %name, number, "schedule opened an issue");
            (Some(number), None)
        }
        Err(error) => {
            schedules::record_error(pool, fire_id, &error).await?;
            tracing::warn!(repo = %repo.repo, schedule = %name, %error, "schedule could not open its issue");
            (None, Some(error))
        }
    };
    Ok(Fired {
        repo: repo.repo.clone(),
        name: name.to_owned(),
        due_at,
        manual,
        issue_number,
        error,
    })
}

/// A schedule as the API and the dashboard show it.
#[derive(Clone, Debug)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub issue: ScheduledIssue,
    /// The next scheduled time after now.
    pub next_at: Option<DateTime<Utc>>,
    /// Newest first.
    pub recent_fires: Vec<FireRow>,
}

/// The schedules of `repo`'s active config with their next times and latest fires.
pub async fn overview(
    app: &App,
    repo: &RepoRow,
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleView>, ScheduleError> {
    let pool = app.store.pool();
    let config = {
        let mut conn = pool.acquire().await?;
        app.configs.get(&mut conn, repo.id).await?
    };
    let mut out = Vec::with_capacity(config.schedules.len());
    for schedule in &config.schedules {
        out.push(ScheduleView {
            name: schedule.name.clone(),
            cron: schedule.cron.clone(),
            timezone: schedule.timezone.clone(),
            issue: schedule.issue.clone(),
            next_at: schedule.next_after(now),
            recent_fires: schedules::recent(pool, repo.id, &schedule.name, RECENT_FIRES).await?,
        });
    }
    Ok(out)
}

/// The right to schedule (see [`locks::SchedulerLock`]).
pub struct Leadership {
    lock: locks::SchedulerLock,
}

impl Leadership {
    /// Takes the scheduler's lock if no other replica holds it.
    pub async fn try_acquire(app: &App) -> Result<Option<Self>, ScheduleError> {
        Ok(
            locks::SchedulerLock::try_acquire(&app.store, &app.config.database_url)
                .await?
                .map(|lock| Self { lock }),
        )
    }

    /// Whether the lock is still held: its connection still answers.
    pub async fn still_held(&mut self) -> bool {
        self.lock.still_held().await
    }

    /// Gives the lock up, so another replica can take it at once.
    pub async fn release(self) {
        self.lock.release().await
    }
}

/// The scheduler task: become the scheduler (retrying while another replica is), then
/// [`tick`] with the system clock every [`TICK_INTERVAL`] until `shutdown`.
pub async fn run(app: App, shutdown: CancellationToken) {
    let clock = SystemClock;
    loop {
        let mut lead = loop {
            match Leadership::try_acquire(&app).await {
                Ok(Some(lead)) => break lead,
                Ok(None) => tracing::debug!("another replica runs the scheduler"),
                Err(e) => tracing::warn!(error = %e, "cannot take the scheduler lock"),
            }
            tokio::select! {
                _ = tokio::time::sleep(LEAD_RETRY_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        };
        tracing::debug!("running the scheduler");
        loop {
            if !lead.still_held().await {
                tracing::warn!("lost the scheduler lock's connection; taking it again");
                break;
            }
            if let Err(e) = tick(&app, &clock).await {
                tracing::warn!(error = %e, "scheduler pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK_INTERVAL) => {}
                _ = shutdown.cancelled() => {
                    lead.release().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str) -> Schedule {
        Schedule {
            name: "s".into(),
            cron: cron.into(),
            timezone: "UTC".into(),
            issue: ScheduledIssue {
                title: "t".into(),
                body: String::new(),
                labels: Vec::new(),
            },
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid time")
    }

    #[test]
    fn latest_due_is_the_last_time_in_the_interval() {
        let hourly = schedule("0 * * * *");
        assert_eq!(
            latest_due(
                &hourly,
                at("2030-01-01T00:30:00Z"),
                at("2030-01-01T03:10:00Z")
            ),
            Some(at("2030-01-01T03:00:00Z"))
        );
        // Exclusive start, inclusive end.
        assert_eq!(
            latest_due(
                &hourly,
                at("2030-01-01T03:00:00Z"),
                at("2030-01-01T03:59:59Z")
            ),
            None
        );
        assert_eq!(
            latest_due(
                &hourly,
                at("2030-01-01T02:00:00Z"),
                at("2030-01-01T03:00:00Z")
            ),
            Some(at("2030-01-01T03:00:00Z"))
        );
        assert_eq!(
            latest_due(
                &hourly,
                at("2030-01-01T05:00:00Z"),
                at("2030-01-01T04:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn latest_due_after_a_long_outage_does_not_walk_every_time() {
        let every_second = schedule("* * * * * *");
        let start = std::time::Instant::now();
        assert_eq!(
            latest_due(
                &every_second,
                at("2020-01-01T00:00:00Z"),
                at("2030-01-01T12:00:00Z")
            ),
            Some(at("2030-01-01T12:00:00Z"))
        );
        let yearly = schedule("0 9 1 1 *");
        assert_eq!(
            latest_due(
                &yearly,
                at("2020-06-01T00:00:00Z"),
                at("2029-06-01T00:00:00Z")
            ),
            Some(at("2029-01-01T09:00:00Z"))
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::new(at("2030-01-01T00:00:00Z"));
        clock.advance(TimeDelta::minutes(90));
        assert_eq!(clock.now(), at("2030-01-01T01:30:00Z"));
        clock.set(at("2031-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2031-01-01T00:00:00Z"));
    }
}
