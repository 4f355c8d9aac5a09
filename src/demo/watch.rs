//! Watching the demo from the server's database: the config sync at start, then the tickets'
//! statuses, runs and pull requests, printed as they change.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Demo, FINISH_STATUS, REPO, fail};
use crate::engine::diagnosis::{self, Diagnosis, Reason};
use crate::store::runs::{self, RunRow};
use crate::store::{config_versions, repos, tickets};

const POLL: Duration = Duration::from_millis(250);

/// What became of the demo issue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The ticket's status when the demo ended.
    pub status: Option<String>,
    /// The pull request the agent's run opened.
    pub pull: Option<u64>,
    /// The run that opened it.
    pub run_id: Option<i64>,
}

/// Waits until the server has synced the sample repository's `.forgehand/` tree.
pub(super) async fn config_synced(demo: &Demo, timeout: Duration) -> anyhow::Result<()> {
    let pool = demo.app.store.pool();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(repo) = repos::find(pool, &Demo::repo_ref()).await? {
            if config_versions::active(pool, repo.id).await?.is_some() {
                return Ok(());
            }
            if let Some(error) = repo.sync_error {
                return fail(format!(
                    "the sample repository's config did not sync: {error}"
                ));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return fail(format!(
                "the server did not sync {REPO}'s config within {timeout:?} (did the sandbox's \
                 webhook reach it?)"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Prints what happens to the repository's tickets until cancelled.
pub(super) async fn forever(demo: &Demo, print: bool) -> anyhow::Result<()> {
    let mut progress = Progress::default();
    loop {
        if let Err(e) = progress.poll(demo, print).await {
            tracing::warn!(error = %e, "demo: cannot read the tickets");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the demo issue is `in-review` with a pull request "Closes #N" on the sandbox.
pub(super) async fn until_in_review(
    demo: &Demo,
    timeout: Duration,
    print: bool,
) -> anyhow::Result<Outcome> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut progress = Progress::default();
    loop {
        progress.poll(demo, print).await?;
        if let Some(outcome) = progress.done(demo) {
            if print {
                println!(
                    "done: #{} is `{FINISH_STATUS}` with pull request #{} — see {}/",
                    demo.issue,
                    outcome.pull.unwrap_or_default(),
                    demo.sandbox_url
                );
            }
            return Ok(outcome);
        }
        if let Some(why) = progress.stuck(demo).await? {
            let events = match why.reason {
                Reason::Stopped { run_id, .. } => {
                    format!(
                        " (its events: {}/api/v1/runs/{run_id}/events)",
                        demo.server_url
                    )
                }
                _ => String::new(),
            };
            return fail(format!(
                "#{} will not reach `{FINISH_STATUS}`: {}{events}",
                demo.issue, why.message
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            let state = progress.tickets.get(&(demo.issue as i64));
            return fail(format!(
                "#{} did not reach `{FINISH_STATUS}` with a pull request within {timeout:?} (last \
                 seen: {state:?})",
                demo.issue
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Clone, Debug, Default)]
struct TicketSeen {
    id: i64,
    status: Option<String>,
    runs: BTreeMap<i64, (String, Option<i64>)>,
}

#[derive(Default)]
struct Progress {
    tickets: BTreeMap<i64, TicketSeen>,
}

impl Progress {
    async fn poll(&mut self, demo: &Demo, print: bool) -> anyhow::Result<()> {
        let pool = demo.app.store.pool();
        let Some(repo) = repos::find(pool, &Demo::repo_ref()).await? else {
            return Ok(());
        };
        let filter = tickets::TicketFilter {
            repo_id: Some(repo.id),
            status: None,
        };
        for ticket in tickets::list(pool, &filter, 0, 100).await? {
            let runs = runs::for_ticket(pool, ticket.id).await?;
            let seen = self.tickets.entry(ticket.number).or_default();
            seen.id = ticket.id;
            let n = ticket.number;
            if seen.status != ticket.status {
                if print {
                    println!(
                        "#{n} {:?}: status {} → {}",
                        ticket.title,
                        seen.status.as_deref().unwrap_or("none"),
                        ticket.status.as_deref().unwrap_or("none")
                    );
                }
                seen.status = ticket.status.clone();
            }
            for run in &runs {
                report_run(demo, n, seen, run, print);
            }
        }
        Ok(())
    }

    /// The ticket's diagnosis (the API's) when it says the ticket is stuck: nothing will move
    /// it on without a person, so waiting longer is pointless.
    async fn stuck(&self, demo: &Demo) -> anyhow::Result<Option<Diagnosis>> {
        let Some(seen) = self.tickets.get(&(demo.issue as i64)) else {
            return Ok(None);
        };
        let Some(diagnosis) = diagnosis::diagnose(&demo.app, seen.id).await? else {
            return Ok(None);
        };
        Ok(ends_here(&diagnosis.reason).then_some(diagnosis))
    }

    fn done(&self, demo: &Demo) -> Option<Outcome> {
        let seen = self.tickets.get(&(demo.issue as i64))?;
        if seen.status.as_deref() != Some(FINISH_STATUS) {
            return None;
        }
        let (run_id, pull) = seen
            .runs
            .iter()
            .rev()
            .find_map(|(id, (_, pull))| pull.map(|p| (*id, p as u64)))?;
        let on_forge = demo.model.pull(REPO, pull)?;
        on_forge
            .body
            .contains(&format!("Closes #{}", demo.issue))
            .then(|| Outcome {
                status: seen.status.clone(),
                pull: Some(pull),
                run_id: Some(run_id),
            })
    }
}

/// Reasons that hold until a person acts. Not: a run in flight or waiting to retry, a
/// concurrency limit, a label not yet seen (the webhook may still be on its way).
fn ends_here(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::Closed
            | Reason::Stopped { .. }
            | Reason::PermissionDenied { .. }
            | Reason::ConfigInvalid { .. }
            | Reason::NoWorkflow { .. }
            | Reason::AgentNotConfigured { .. }
            | Reason::NoRunner { .. }
            | Reason::BudgetExhausted { .. }
            | Reason::NoStartedStatus { .. }
    )
}

fn report_run(demo: &Demo, n: i64, seen: &mut TicketSeen, run: &RunRow, print: bool) {
    let state = run.state.as_str().to_owned();
    let previous = seen.runs.get(&run.id).cloned();
    let url = format!("{}/api/v1/runs/{}/events", demo.server_url, run.id);
    if print {
        match &previous {
            None => println!("#{n}: run {} {state} — events: {url}", run.id),
            Some((old, _)) if *old != state => {
                let error = run
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                println!("#{n}: run {} {old} → {state}{error}", run.id);
            }
            _ => {}
        }
        if let Some(pull) = run.pull_number
            && previous.as_ref().and_then(|(_, p)| *p).is_none()
        {
            println!(
                "#{n}: pull request #{pull} opened — {}/{REPO}/pull/{pull}",
                demo.sandbox_url
            );
        }
    }
    seen.runs.insert(run.id, (state, run.pull_number));
}
