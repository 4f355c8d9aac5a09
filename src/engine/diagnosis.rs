//! Pickup diagnosis: why a ticket is (not) being picked up. The claimer decides with
//! [`evaluate`] and the API, the dashboard and the progress comment explain with [`diagnose`],
//! which calls the same function, so the explanation and the claim never disagree.

use std::sync::Arc;

use crate::app::App;
use crate::app::labeller_misses::Unknown;
use crate::config::repo::{RepoConfig, StatusDef, Workflow};
use crate::domain::RepoRef;
use crate::engine::claim_error::ClaimError;
use crate::engine::deps::{self, Blocker};
use crate::engine::labeller;
use crate::engine::trigger::{self, Verdict};
use crate::store::claim_marks;
use crate::store::pickup_waits;
use crate::store::runs::{self, InFlight};
use crate::store::tickets::ClaimCandidate;
use crate::store::{config_versions, costs, from_ms, now_ms};

/// Which concurrency limit holds a ticket back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `[limits] max_concurrent_runs` of the server.
    Server,
    /// `max_concurrent` in the repository's `config.yaml`.
    Repository,
    /// The workflow's `max_concurrent`.
    Workflow,
    /// The agent profile's `max_parallel`.
    AgentProfile,
}

/// Why a ticket is, or is not, being picked up.
#[derive(Clone, Debug)]
pub enum Reason {
    /// Nothing holds it back: the next claim pass takes it.
    Ready { workflow: String },
    /// The issue is closed (or gone).
    Closed,
    /// A run is queued or running.
    RunInFlight { run_id: i64, state: String },
    /// A retry waits out its backoff.
    Backoff {
        run_id: i64,
        attempt: i64,
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The issue carries no status label.
    NoStatus,
    /// The trigger policy refused who moved it (the label was or will be removed).
    PermissionDenied { actor: String, why: String },
    /// Who added the status label cannot be established, so the trigger policy cannot be
    /// applied (the label stays; the next claim pass tries again).
    LabellerUnknown { label: String, why: String },
    /// The repository has no config version yet.
    NoConfig,
    /// The repository's `.forgehand/` tree was rejected and no valid version exists.
    ConfigInvalid {
        commit_sha: String,
        errors: Vec<String>,
    },
    /// No workflow picks up this status.
    NoWorkflow { status: String },
    /// The ticket is past pickup (started, completed or canceled).
    NotPickupStatus { status: String, stage: String },
    /// The last run stopped and left the ticket where it was.
    Stopped {
        run_id: i64,
        error: String,
        pickup: Option<String>,
    },
    /// The workflow's agent profile is not in this server's config.
    AgentNotConfigured { agent: String },
    /// No runner has every label the workflow's `runs_on` asks for.
    NoRunner {
        runs_on: Vec<String>,
        labels: Vec<String>,
    },
    /// The ticket's runs spent its budget.
    BudgetExhausted { spent_usd: f64, budget_usd: f64 },
    /// Some issues it depends on are open.
    Blocked { blockers: Vec<Blocker> },
    /// A concurrency limit is reached.
    LimitReached {
        limit: Limit,
        max: u32,
        name: Option<String>,
    },
    /// The config has no started status after the pickup status.
    NoStartedStatus { status: String },
}

impl Reason {
    /// The code of [`Reason::LimitReached`]: waits that a run's end may release.
    pub const LIMIT_REACHED: &'static str = claim_marks::LIMIT_REACHED;
    /// The code of [`Reason::Blocked`]: waits that an issue's closing may release.
    pub const BLOCKED: &'static str = claim_marks::BLOCKED;

    pub fn code(&self) -> &'static str {
        match self {
            Reason::Ready { .. } => "ready",
            Reason::Closed => "closed",
            Reason::RunInFlight { .. } => "run_in_flight",
            Reason::Backoff { .. } => "backoff",
            Reason::NoStatus => "no_status",
            Reason::PermissionDenied { .. } => "permission_denied",
            Reason::LabellerUnknown { .. } => "labeller_unknown",
            Reason::NoConfig => "no_config",
            Reason::ConfigInvalid { .. } => "config_invalid",
            Reason::NoWorkflow { .. } => "no_workflow",
            Reason::NotPickupStatus { .. } => "not_pickup_status",
            Reason::Stopped { .. } => "stopped",
            Reason::AgentNotConfigured { .. } => "agent_not_configured",
            Reason::NoRunner { .. } => "no_runner",
            Reason::BudgetExhausted { .. } => "budget_exhausted",
            Reason::Blocked { .. } => Self::BLOCKED,
            Reason::LimitReached { .. } => Self::LIMIT_REACHED,
            Reason::NoStartedStatus { .. } => "no_started_status",
        }
    }

    /// Reasons that keep a ticket waiting in its pickup status: posted in the progress
    /// comment when they last.
    pub fn waits_at_pickup(&self) -> bool {
        matches!(
            self,
            Reason::AgentNotConfigured { .. }
                | Reason::LabellerUnknown { .. }
                | Reason::NoRunner { .. }
                | Reason::BudgetExhausted { .. }
                | Reason::Blocked { .. }
                | Reason::LimitReached { .. }
                | Reason::NoStartedStatus { .. }
        )
    }

    /// One sentence for people.
    pub fn message(&self) -> String {
        match self {
            Reason::Ready { workflow } => {
                format!("ready: workflow `{workflow}` picks it up at the next claim pass")
            }
            Reason::Closed => "the issue is closed".into(),
            Reason::RunInFlight { run_id, state } => format!("run #{run_id} is {state}"),
            Reason::Backoff {
                run_id,
                attempt,
                until,
            } => format!(
                "attempt {attempt} (run #{run_id}) waits to retry until {}",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            Reason::NoStatus => "the issue has no status label".into(),
            Reason::PermissionDenied { why, .. } => {
                format!("the trigger policy refused the status change: {why}")
            }
            Reason::LabellerUnknown { label, why } => {
                format!("who added `{label}` cannot be established: {why}")
            }
            Reason::NoConfig => {
                "the repository has no `.forgehand/` config on its default branch yet".into()
            }
            Reason::ConfigInvalid { commit_sha, errors } => format!(
                "the repository's config is invalid (commit {}, {} error{}: {}) and no valid \
                 version exists",
                &commit_sha[..commit_sha.len().min(7)],
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors.first().map(String::as_str).unwrap_or("")
            ),
            Reason::NoWorkflow { status } => format!("no workflow picks up status `{status}`"),
            Reason::NotPickupStatus { status, stage } => {
                format!("status `{status}` is not a pickup status (it is {stage})")
            }
            Reason::Stopped {
                run_id,
                error,
                pickup,
            } => {
                let again = pickup
                    .as_ref()
                    .map(|p| format!("; move it back to `{p}` to try again"))
                    .unwrap_or_default();
                format!("run #{run_id} stopped: {error}{again}")
            }
            Reason::AgentNotConfigured { agent } => {
                format!("agent profile `{agent}` is not configured on this server")
            }
            Reason::NoRunner { runs_on, labels } => format!(
                "no runner has the labels [{}] (the built-in runner has [{}])",
                runs_on.join(", "),
                labels.join(", ")
            ),
            Reason::BudgetExhausted {
                spent_usd,
                budget_usd,
            } => format!(
                "budget exhausted: ${spent_usd:.2} spent of the ticket's ${budget_usd:.2} budget"
            ),
            Reason::Blocked { blockers } => {
                let open: Vec<String> = blockers
                    .iter()
                    .filter(|b| b.state.blocks())
                    .map(|b| format!("{} ({})", b.reference, b.state.as_str()))
                    .collect();
                format!("blocked by {}", open.join(", "))
            }
            Reason::LimitReached { limit, max, name } => match (limit, name) {
                (Limit::Server, _) => format!("server limit reached ({max} runs)"),
                (Limit::Repository, _) => format!("repository limit reached ({max} runs)"),
                (Limit::Workflow, name) => format!(
                    "workflow `{}` limit reached ({max} runs)",
                    name.as_deref().unwrap_or_default()
                ),
                (Limit::AgentProfile, name) => format!(
                    "agent `{}` limit reached ({max} runs)",
                    name.as_deref().unwrap_or_default()
                ),
            },
            Reason::NoStartedStatus { status } => {
                format!("the config has no started status after `{status}`")
            }
        }
    }
}

/// A ticket's diagnosis (the API answers it as `web::api::types::Diagnosis`).
#[derive(Clone, Debug)]
pub struct Diagnosis {
    /// `forge:owner/name#number`
    pub ticket: String,
    /// Whether the next claim pass picks it up.
    pub ready: bool,
    pub message: String,
    pub reason: Reason,
    /// Since when it has been waiting in its pickup status, when it is.
    pub waiting_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a claim needs once nothing holds the ticket back.
pub struct Claimable {
    pub version: i64,
    pub config: Arc<RepoConfig>,
    pub workflow: Workflow,
    pub started: StatusDef,
}

pub enum Evaluation {
    Claimable(Box<Claimable>),
    Not(Reason),
}

/// Whether a candidate (open, with a status, no run in flight) can be claimed now, and if not
/// why. The claimer's only decision function.
pub async fn evaluate(
    app: &App,
    candidate: &ClaimCandidate,
    counts: &InFlight,
) -> Result<Evaluation, ClaimError> {
    let pool = app.store.pool();
    let Some((version, config)) = config_of(app, candidate).await? else {
        return Ok(Evaluation::Not(no_config(app, candidate.repo_id).await?));
    };
    let Some(workflow) = config.workflow_for_pickup(&candidate.status) else {
        return Ok(Evaluation::Not(not_pickup(app, candidate, &config).await?));
    };
    let labeller = match labeller::establish(app, candidate, &config).await? {
        Ok(labeller) => labeller,
        Err(Unknown { label, why }) => {
            return Ok(Evaluation::Not(Reason::LabellerUnknown { label, why }));
        }
    };
    // Forgehand's own moves need no one's permission; everyone else's are checked.
    if let Some(actor) = labeller.login()
        && !opened_by_schedule(app, candidate, actor).await?
    {
        let Some(forge) = app.forges.get(candidate.repo.forge) else {
            return Ok(Evaluation::Not(Reason::LabellerUnknown {
                label: config
                    .status_by_name(&candidate.status)
                    .map_or_else(|| candidate.status.clone(), |s| s.label.clone()),
                why: format!(
                    "no {} API client is configured to check @{actor}'s permission",
                    candidate.repo.forge
                ),
            }));
        };
        let verdict = trigger::check(
            forge.as_ref(),
            &app.permissions,
            &candidate.repo,
            &config.triggers,
            actor,
        )
        .await?;
        if let Verdict::Denied(why) = verdict {
            return Ok(Evaluation::Not(Reason::PermissionDenied {
                actor: actor.to_owned(),
                why,
            }));
        }
    }
    if !app.config.agents.contains_key(&workflow.agent) {
        return Ok(Evaluation::Not(Reason::AgentNotConfigured {
            agent: workflow.agent.clone(),
        }));
    }
    let labels = &app.config.runner.labels;
    let fits = |labels: &[String]| workflow.runs_on.iter().all(|l| labels.contains(l));
    let built_in = app.config.runner.enabled && fits(labels);
    if !built_in && !remote_runner_fits(pool, &fits).await? {
        return Ok(Evaluation::Not(Reason::NoRunner {
            runs_on: workflow.runs_on.clone(),
            labels: labels.clone(),
        }));
    }
    if let Some(budget) = workflow.budget_usd {
        let spent = costs::ticket_spent(pool, candidate.id, None).await?;
        if spent >= budget {
            return Ok(Evaluation::Not(Reason::BudgetExhausted {
                spent_usd: spent,
                budget_usd: budget,
            }));
        }
    }
    let body = pickup_waits::body(pool, candidate.id).await?;
    // Written in the body or linked on the forge.
    let blockers = deps::blockers(app, &candidate.repo, candidate.number, &body, 0).await?;
    if blockers.iter().any(|b| b.state.blocks()) {
        return Ok(Evaluation::Not(Reason::Blocked { blockers }));
    }
    if let Some(reason) = over_limit(app, candidate, &config, workflow, counts) {
        return Ok(Evaluation::Not(reason));
    }
    let Some(started) = config.started_status_after(&candidate.status).cloned() else {
        return Ok(Evaluation::Not(Reason::NoStartedStatus {
            status: candidate.status.clone(),
        }));
    };
    Ok(Evaluation::Claimable(Box::new(Claimable {
        version,
        workflow: workflow.clone(),
        config,
        started,
    })))
}

/// The config version the ticket is pinned to, or the active one (from the cache).
async fn config_of(
    app: &App,
    candidate: &ClaimCandidate,
) -> Result<Option<(i64, std::sync::Arc<RepoConfig>)>, ClaimError> {
    let mut conn = app.store.pool().acquire().await?;
    Ok(app
        .configs
        .for_ticket(&mut conn, candidate.repo_id, candidate.pinned_version)
        .await?)
}

/// Which limit holds the ticket back, judged on the limits alone (its config and pickup
/// workflow from the cache, no forge call); `None` also when its config or workflow is gone,
/// which the full evaluation explains.
pub(crate) async fn still_over_limit(
    app: &App,
    candidate: &ClaimCandidate,
    counts: &InFlight,
) -> Result<Option<Reason>, ClaimError> {
    let Some((_, config)) = config_of(app, candidate).await? else {
        return Ok(None);
    };
    Ok(config
        .workflow_for_pickup(&candidate.status)
        .and_then(|workflow| over_limit(app, candidate, &config, workflow, counts)))
}

/// Which limit holds the ticket back, if any.
pub(crate) fn over_limit(
    app: &App,
    candidate: &ClaimCandidate,
    config: &RepoConfig,
    workflow: &Workflow,
    counts: &InFlight,
) -> Option<Reason> {
    let server_max = app.config.limits.max_concurrent_runs;
    if counts.total >= i64::from(server_max) {
        return Some(Reason::LimitReached {
            limit: Limit::Server,
            max: server_max,
            name: None,
        });
    }
    let repo_count = counts.by_repo.get(&candidate.repo_id).copied().unwrap_or(0);
    if repo_count >= i64::from(config.max_concurrent) {
        return Some(Reason::LimitReached {
            limit: Limit::Repository,
            max: config.max_concurrent,
            name: Some(candidate.repo.full_name()),
        });
    }
    if let Some(max) = workflow.max_concurrent {
        let n = counts
            .by_workflow
            .get(&(candidate.repo_id, workflow.name.clone()))
            .copied()
            .unwrap_or(0);
        if n >= i64::from(max) {
            return Some(Reason::LimitReached {
                limit: Limit::Workflow,
                max,
                name: Some(workflow.name.clone()),
            });
        }
    }
    if let Some(max) = app
        .config
        .agents
        .get(&workflow.agent)
        .and_then(|p| p.max_parallel)
    {
        let n = counts.by_agent.get(&workflow.agent).copied().unwrap_or(0);
        if n >= i64::from(max) {
            return Some(Reason::LimitReached {
                limit: Limit::AgentProfile,
                max,
                name: Some(workflow.agent.clone()),
            });
        }
    }
    None
}

/// No config version: invalid when a rejected tree is all there is.
async fn no_config(app: &App, repo_id: i64) -> Result<Reason, ClaimError> {
    let rejected = config_versions::rejections(app.store.pool(), repo_id, 1).await?;
    Ok(match rejected.into_iter().next() {
        Some(r) => Reason::ConfigInvalid {
            commit_sha: r.commit_sha,
            errors: r
                .errors
                .iter()
                .map(|e| match e.line {
                    Some(line) => format!("{}:{line}: {}", e.file, e.message),
                    None => format!("{}: {}", e.file, e.message),
                })
                .collect(),
        },
        None => Reason::NoConfig,
    })
}

/// A status no workflow picks up: past pickup, stopped by its last run, or simply unhandled.
async fn not_pickup(
    app: &App,
    candidate: &ClaimCandidate,
    config: &RepoConfig,
) -> Result<Reason, ClaimError> {
    let pool = app.store.pool();
    let status = &candidate.status;
    if let Some(last) = pickup_waits::last_run(pool, candidate.id).await?
        && last.state == "failed"
        && last.started_status == *status
    {
        let workflow = config.workflow_by_name(&last.workflow);
        if let Some(budget) = workflow.and_then(|w| w.budget_usd) {
            let spent = costs::ticket_spent(pool, candidate.id, None).await?;
            if spent >= budget {
                return Ok(Reason::BudgetExhausted {
                    spent_usd: spent,
                    budget_usd: budget,
                });
            }
        }
        return Ok(Reason::Stopped {
            run_id: last.id,
            error: last
                .error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("failed")
                .to_owned(),
            pickup: workflow.and_then(|w| w.pickup.first().cloned()),
        });
    }
    Ok(match config.status_by_name(status).map(|s| s.stage) {
        Some(
            stage @ (crate::config::repo::Stage::Started
            | crate::config::repo::Stage::Completed
            | crate::config::repo::Stage::Canceled),
        ) => Reason::NotPickupStatus {
            status: status.clone(),
            stage: stage.as_str().to_owned(),
        },
        _ => Reason::NoWorkflow {
            status: status.clone(),
        },
    })
}

/// Why the ticket is (not) being picked up, now.
pub async fn diagnose(app: &App, ticket_id: i64) -> Result<Option<Diagnosis>, ClaimError> {
    let pool = app.store.pool();
    let Some(t) = pickup_waits::facts(pool, ticket_id).await? else {
        return Ok(None);
    };
    let reason = if !t.open {
        Reason::Closed
    } else if let Some(run) = runs::in_flight(pool, ticket_id).await? {
        if run.state == runs::RunState::Queued && run.not_before > now_ms() {
            Reason::Backoff {
                run_id: run.id,
                attempt: run.attempt,
                until: from_ms(run.not_before),
            }
        } else {
            Reason::RunInFlight {
                run_id: run.id,
                state: run.state.as_str().to_owned(),
            }
        }
    } else if t.status.is_none() {
        match pickup_waits::refusal(pool, ticket_id).await? {
            Some(r) => Reason::PermissionDenied {
                actor: r.actor,
                why: r.reason,
            },
            None => Reason::NoStatus,
        }
    } else {
        let counts = runs::in_flight_counts(pool).await?;
        match evaluate(app, &t.candidate, &counts).await? {
            Evaluation::Claimable(c) => Reason::Ready {
                workflow: c.workflow.name.clone(),
            },
            Evaluation::Not(reason) => reason,
        }
    };
    let waiting_since = if reason.waits_at_pickup() {
        pickup_waits::wait(pool, ticket_id)
            .await?
            .map(|w| from_ms(w.since))
    } else {
        None
    };
    Ok(Some(Diagnosis {
        ticket: format!("{}#{}", t.candidate.repo, t.candidate.number),
        ready: matches!(reason, Reason::Ready { .. }),
        message: reason.message(),
        reason,
        waiting_since,
    }))
}

/// The dependency chain of a ticket (blockers, their blockers, a few levels).
pub async fn chain(
    app: &App,
    repo: &RepoRef,
    number: u64,
    body: &str,
) -> Result<Vec<Blocker>, ClaimError> {
    Ok(deps::blockers(app, repo, number, body, deps::CHAIN_DEPTH - 1).await?)
}

/// An issue a schedule opened, still as Forgehand opened it: the schedule was reviewed as code
/// on the default branch, so its labels need no one's permission. A later change by someone
/// else is checked as usual.
async fn opened_by_schedule(
    app: &App,
    candidate: &ClaimCandidate,
    actor: &str,
) -> Result<bool, crate::store::StoreError> {
    if actor != candidate.author {
        return Ok(false);
    }
    Ok(crate::store::schedules::fire_for_issue(
        app.store.pool(),
        candidate.repo_id,
        candidate.number,
    )
    .await?
    .is_some())
}

/// Runners on other machines heard from within this long count as present for claims.
const RUNNER_PRESENT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Whether a runner on another machine, heard from lately and not revoked, has the labels.
async fn remote_runner_fits(
    pool: &sqlx::AnyPool,
    fits: &impl Fn(&[String]) -> bool,
) -> Result<bool, crate::store::StoreError> {
    let since = crate::store::now_ms()
        .saturating_sub(i64::try_from(RUNNER_PRESENT.as_millis()).unwrap_or(i64::MAX));
    let sets = crate::store::runners::live_label_sets(pool, since).await?;
    Ok(sets.iter().any(|labels| fits(labels)))
}
