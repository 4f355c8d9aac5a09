//! Validation and harness rendering on a thread of their own, under a wall-clock limit, so
//! repository content never occupies the async runtime (health checks, webhooks and shutdown
//! keep answering) and a caller always gets an answer in bounded time.
//!
//! A plain thread rather than `spawn_blocking`: the runtime waits for blocking tasks when it
//! shuts down, but not for a thread, and the template limits end the thread soon after anyway.
//! At most [`SLOTS`] validations of untrusted trees run at once, including ones whose caller
//! gave up on them; a run's render does not queue behind them.

use std::time::Duration;

use tokio::sync::Semaphore;

use super::error::ValidationError;
use super::harness_context::HarnessContext;
use super::limits::TIME_LIMIT;
use super::repo_config::RepoConfig;
use super::workflow::Workflow;
use super::{ConfigFiles, tree};

/// Concurrent validation/render threads.
const SLOTS: usize = 2;
static THREADS: Semaphore = Semaphore::const_new(SLOTS);

/// Why guarded work gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("did not finish within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("stopped unexpectedly")]
    Crashed,
}

impl GuardError {
    /// The error as a validation error about the whole tree, for reports and records.
    pub fn to_validation_error(&self) -> ValidationError {
        ValidationError::new(
            tree::ROOT,
            None,
            format!("validation stopped: it {self} (templates or YAML too costly)"),
        )
    }
}

/// [`super::validate`] off the runtime, within [`TIME_LIMIT`] once one of the [`SLOTS`] is free.
pub async fn validate(
    files: ConfigFiles,
) -> Result<Result<RepoConfig, Vec<ValidationError>>, GuardError> {
    let slot = THREADS.acquire().await.map_err(|_| GuardError::Crashed)?;
    off_runtime(TIME_LIMIT, move || {
        let _slot = slot;
        super::validate(&files)
    })
    .await
}

/// [`super::validate`] on a thread of its own from synchronous code (the command line), within
/// [`TIME_LIMIT`]; on a timeout the thread is left to the process's exit.
pub fn validate_blocking(
    files: ConfigFiles,
) -> Result<Result<RepoConfig, Vec<ValidationError>>, GuardError> {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn(move || {
        let _ = tx.send(super::validate(&files));
    })?;
    rx.recv_timeout(TIME_LIMIT).map_err(|e| match e {
        std::sync::mpsc::RecvTimeoutError::Timeout => GuardError::TimedOut(TIME_LIMIT),
        std::sync::mpsc::RecvTimeoutError::Disconnected => GuardError::Crashed,
    })
}

/// [`super::render_harness`] off the runtime, within [`TIME_LIMIT`]; a timeout is an error on
/// the workflow's harness.
pub async fn render_harness(
    workflow: Workflow,
    ctx: HarnessContext,
) -> Result<String, ValidationError> {
    let (file, line) = (workflow.file.clone(), workflow.harness_line);
    off_runtime(TIME_LIMIT, move || super::render_harness(&workflow, &ctx))
        .await
        .unwrap_or_else(|e| {
            Err(ValidationError::new(
                file,
                Some(line),
                format!("harness: rendering {e}"),
            ))
        })
}

/// Runs `work` on a thread of its own; waits at most `limit` for it.
async fn off_runtime<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, GuardError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn(move || {
        let _ = tx.send(work());
    })?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(GuardError::Crashed),
        Err(_) => Err(GuardError::TimedOut(limit)),
    }
}

fn spawn(work: impl FnOnce() + Send + 'static) -> Result<(), GuardError> {
    std::thread::Builder::new()
        .name("forgehand-config".into())
        // Room for minijinja's recursion limit and serde's nesting limit with margin.
        .stack_size(8 * 1024 * 1024)
        .spawn(work)
        .map(drop)
        .map_err(|_| GuardError::Crashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_job_times_out_without_blocking_the_runtime() {
        let ticks = tokio::spawn(async {
            let mut n = 0u32;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                n += 1;
            }
            n
        });
        let started = std::time::Instant::now();
        let result = off_runtime(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(2));
        })
        .await;
        assert_eq!(
            result,
            Err(GuardError::TimedOut(Duration::from_millis(200)))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // On a single-threaded runtime, other tasks ran meanwhile.
        assert_eq!(ticks.await.expect("ticks"), 5);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_hang() {
        let result = off_runtime(Duration::from_secs(5), || -> u32 { panic!("boom") }).await;
        assert_eq!(result, Err(GuardError::Crashed));
    }

    #[test]
    fn timeout_reads_as_a_tree_error() {
        let e = GuardError::TimedOut(Duration::from_secs(5)).to_validation_error();
        assert_eq!(
            e.to_string(),
            ".forgehand: validation stopped: it did not finish within 5 s (templates or YAML too costly)"
        );
    }
}
