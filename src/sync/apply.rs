//! Turning one delivery into state. Handlers are level-triggered: they record what the event
//! says the world looks like now and mark the ticket for reconciliation, so duplicated,
//! reordered or lost deliveries converge.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::AnyConnection;

use crate::app::App;
use crate::config::repo::RepoConfig;
use crate::domain::ForgeKind;
use crate::forge::addressed::{self, Addressed};
use crate::forge::event::{ForgeEvent, LabelAdded, Parsed};
use crate::forge::{CommentSnapshot, IssueSnapshot, PullState, RepoInfo, gitea, github};
use crate::store::deliveries::{Outcome, PendingDelivery};
use crate::store::{
    StoreError, claim_marks, conversation, gates, pulls, repos, review_wake, ticket_history,
    tickets,
};
use crate::sync::{history, links};

/// What the deliveries applied in one transaction have written or read already: the
/// repositories upserted and their active configs. A batch of deliveries is mostly about one
/// repository, which then costs one upsert and one config read, not one each per delivery.
/// Valid only within the transaction (one that is undone takes its `Batch` with it).
#[derive(Default)]
pub struct Batch {
    repos: Vec<(RepoInfo, i64)>,
    configs: HashMap<i64, Arc<RepoConfig>>,
}

impl Batch {
    /// The repository's row id, upserted the first time this batch sees it as it is now.
    async fn repo_id(
        &mut self,
        conn: &mut AnyConnection,
        info: &RepoInfo,
    ) -> Result<i64, StoreError> {
        if let Some((_, id)) = self.repos.iter().find(|(seen, _)| seen == info) {
            return Ok(*id);
        }
        let id = repos::upsert(conn, info).await?;
        self.repos.push((info.clone(), id));
        Ok(id)
    }

    /// The repository's active config. Applying a delivery activates no config version, so
    /// it cannot change within the batch.
    async fn config(
        &mut self,
        app: &App,
        conn: &mut AnyConnection,
        repo_id: i64,
    ) -> Result<Arc<RepoConfig>, StoreError> {
        if let Some(config) = self.configs.get(&repo_id) {
            return Ok(config.clone());
        }
        let config = app.configs.get(conn, repo_id).await?;
        self.configs.insert(repo_id, config.clone());
        Ok(config)
    }

    /// Mirrors an issue snapshot a delivery carried, under the repository's active config.
    async fn mirror(
        &mut self,
        app: &App,
        conn: &mut AnyConnection,
        repo_id: i64,
        issue: &IssueSnapshot,
        deleted: bool,
    ) -> Result<tickets::Mirrored, StoreError> {
        let config = self.config(app, conn, repo_id).await?;
        mirror_with(
            &config,
            conn,
            repo_id,
            issue,
            deleted,
            tickets::Source::Delivery,
        )
        .await
    }
}

/// Applies a delivery within the caller's transaction. Database errors are returned (the
/// delivery stays pending); everything about the payload itself becomes the outcome.
pub async fn apply(
    app: &App,
    conn: &mut AnyConnection,
    batch: &mut Batch,
    delivery: &PendingDelivery,
) -> Result<Outcome, StoreError> {
    let body = match &delivery.body {
        Ok(body) => body,
        // Retrying cannot mend the stored bytes: failed at once, with the reason.
        Err(corrupt) => return Ok(Outcome::Failed(corrupt.to_string())),
    };
    let parsed = match delivery.forge {
        ForgeKind::Github => github::payload::parse(&delivery.event, body),
        ForgeKind::Gitea => gitea::payload::parse(&delivery.event, body),
    };
    let event = match parsed {
        Ok(Parsed::Event(event)) => event,
        Ok(Parsed::Ignored(reason)) => return Ok(Outcome::Ignored(reason)),
        Err(e) => return Ok(Outcome::Failed(e.to_string())),
    };
    if let Some(repo) = event_repo(&event).filter(|r| !app.config.allows(&r.repo)) {
        return Ok(Outcome::Ignored(format!(
            "{} is not in the repository allowlist",
            repo.repo
        )));
    }
    match event {
        ForgeEvent::Ping { repo } => {
            if let Some(repo) = repo {
                batch.repo_id(conn, &repo).await?;
            }
        }
        ForgeEvent::Issue {
            repo,
            issue,
            deleted,
            labeled,
            unlabeled,
        } => {
            let repo_id = batch.repo_id(conn, &repo).await?;
            // A blocker's state is read from here on, not from an earlier forge answer.
            crate::forge::issue_cache::forget(&repo.repo, issue.number);
            if let tickets::Mirrored::Ticket {
                id,
                labeller_status,
            } = batch.mirror(app, conn, repo_id, &issue, deleted).await?
            {
                // Read for the mirror already: the batch's.
                let config = batch.config(app, conn, repo_id).await?;
                if let Some(added) = labeled {
                    history::label(conn, delivery, id, &added, true).await?;
                    let known = labeller_status.as_deref();
                    record_labeller(&config, conn, id, &issue, &added, known).await?;
                }
                if let Some(removed) = unlabeled {
                    history::label(conn, delivery, id, &removed, false).await?;
                }
            }
        }
        ForgeEvent::IssueTransferred {
            repo,
            number,
            to,
            issue,
        } => {
            let repo_id = batch.repo_id(conn, &repo).await?;
            let ticket: Option<i64> = tickets::id_of(&mut *conn, repo_id, number).await?;
            if let Some(id) = ticket {
                let reason = format!(
                    "the issue was transferred to {}/{}#{}",
                    to.repo.owner, to.repo.name, issue.number
                );
                tickets::mark_gone(&mut *conn, id, &reason, tickets::GoneBy::Delivery).await?;
            }
            // The ticket follows the issue: mirrored under its new number, it goes on there
            // (with its status label, when the new repository has it).
            if app.config.allows(&to.repo) {
                let to_id = batch.repo_id(conn, &to).await?;
                batch.mirror(app, conn, to_id, &issue, false).await?;
            }
        }
        ForgeEvent::IssueComment {
            repo,
            issue,
            comment,
            deleted,
            created,
        } => {
            let repo_id = batch.repo_id(conn, &repo).await?;
            batch.mirror(app, conn, repo_id, &issue, false).await?;
            if deleted {
                tickets::delete_comment(&mut *conn, repo_id, comment.id).await?;
            } else {
                tickets::upsert_comment(&mut *conn, repo_id, issue.number, &comment).await?;
            }
            if created {
                let url = format!("{}#issuecomment-{}", issue.html_url, comment.id);
                if let Some(asked) =
                    record_request(app, conn, repo_id, issue.number, &comment, &url).await?
                {
                    let ticket = tickets::id_of(&mut *conn, repo_id, issue.number).await?;
                    let tickets: Vec<i64> = ticket.into_iter().collect();
                    let at = crate::store::to_ms(comment.created_at);
                    history::commands(
                        conn,
                        &tickets,
                        &comment.author,
                        comment.id,
                        at,
                        &asked,
                        &url,
                    )
                    .await?;
                }
            }
        }
        ForgeEvent::PullComment {
            repo,
            number,
            comment,
            html_url,
        } => {
            let repo_id = batch.repo_id(conn, &repo).await?;
            let url = format!("{html_url}#issuecomment-{}", comment.id);
            let asked = record_request(app, conn, repo_id, number, &comment, &url).await?;
            if let Some(asked) = &asked {
                let tickets =
                    ticket_history::tickets_of_pulls(conn, repo_id, &[number], None).await?;
                let at = crate::store::to_ms(comment.created_at);
                history::commands(conn, &tickets, &comment.author, comment.id, at, asked, &url)
                    .await?;
            }
            // A mention is for the agent: the review pass reads it from the pull request.
            let woken = match asked {
                Some(ref addressed) if addressed.mention.is_some() => {
                    review_wake::wake(conn, repo_id, &[number], None).await?
                }
                _ => 0,
            };
            if asked.is_none() && woken == 0 {
                return Ok(Outcome::Ignored(
                    "the comment asks nothing of Forgehand".into(),
                ));
            }
        }
        ForgeEvent::PullRequest { repo, pull } => {
            let repo_id = batch.repo_id(conn, &repo).await?;
            let config = batch.config(app, conn, repo_id).await?;
            let closes = links::closed_issue(&pull, &config.branch_prefix);
            pulls::upsert(conn, repo_id, &pull, closes).await?;
            history::pull(conn, delivery, repo_id, &pull).await?;
            if let Some(number) = closes {
                tickets::mark_for_reconcile(&mut *conn, repo_id, number).await?;
            }
            // Merged or closed: the ticket concludes on the next pass, not the next poll.
            if pull.state != PullState::Open {
                review_wake::wake(conn, repo_id, &[pull.number], None).await?;
            }
        }
        ForgeEvent::PullActivity(activity) => {
            let repo_id = batch.repo_id(conn, &activity.repo).await?;
            if let (Some(check), Some(sha)) = (&activity.rerun_check, &activity.head_sha) {
                let forgotten = gates::forget_passes_on(&mut *conn, repo_id, sha).await?;
                tracing::info!(%check, sha, forgotten, "check re-requested: its gates run again");
            }
            history::activity(conn, delivery, repo_id, &activity).await?;
            let woken =
                review_wake::wake(conn, repo_id, &activity.pulls, activity.head_sha.as_deref())
                    .await?;
            if woken == 0 {
                return Ok(Outcome::Ignored(
                    "no ticket in review has this pull request".into(),
                ));
            }
        }
        ForgeEvent::Push {
            repo,
            git_ref,
            touches_forgehand,
            ..
        } => {
            let repo_id = batch.repo_id(conn, &repo).await?;
            let default_ref = format!("refs/heads/{}", repo.default_branch);
            if git_ref != default_ref {
                return Ok(Outcome::Ignored(format!(
                    "push to {git_ref}, not the default branch"
                )));
            }
            if !touches_forgehand {
                return Ok(Outcome::Ignored(
                    "push to the default branch does not touch .forgehand/".into(),
                ));
            }
            repos::request_sync(&mut *conn, repo_id).await?;
        }
        ForgeEvent::Label { repo } => {
            // A renamed or deleted label can change any ticket's status: re-read them all.
            let repo_id = batch.repo_id(conn, &repo).await?;
            tickets::mark_repo_for_reconcile(&mut *conn, repo_id).await?;
        }
        ForgeEvent::Installation { repos } => {
            // Repositories become known with their first event, which carries what an
            // installation payload lacks (default branch, clone URL).
            let names: Vec<String> = repos.iter().map(ToString::to_string).collect();
            tracing::info!(repositories = ?names, "installation changed");
        }
    }
    Ok(Outcome::Processed)
}

fn event_repo(event: &ForgeEvent) -> Option<&RepoInfo> {
    match event {
        ForgeEvent::Ping { repo } => repo.as_ref(),
        ForgeEvent::Issue { repo, .. }
        | ForgeEvent::IssueTransferred { repo, .. }
        | ForgeEvent::PullActivity(crate::forge::event::PullActivity { repo, .. })
        | ForgeEvent::IssueComment { repo, .. }
        | ForgeEvent::PullComment { repo, .. }
        | ForgeEvent::PullRequest { repo, .. }
        | ForgeEvent::Push { repo, .. }
        | ForgeEvent::Label { repo } => Some(repo),
        ForgeEvent::Installation { .. } => None,
    }
}

/// Records what a new comment asks of Forgehand (commands, a mention), once per comment: a
/// delivery that comes twice finds it recorded. Returns what it asks, `None` for nothing (or
/// for Forgehand's own comments).
async fn record_request(
    app: &App,
    conn: &mut AnyConnection,
    repo_id: i64,
    number: u64,
    comment: &CommentSnapshot,
    html_url: &str,
) -> Result<Option<Addressed>, StoreError> {
    let config = app.configs.get(conn, repo_id).await?;
    let mention = &config.triggers.mention;
    let own =
        comment.body.contains("<!-- forgehand:") || comment.author.eq_ignore_ascii_case(mention);
    let asked = addressed::parse(&comment.body, mention);
    if own || asked.is_empty() {
        return Ok(None);
    }
    let request = conversation::Request {
        repo_id,
        forge_id: comment.id,
        issue_number: number,
        author: comment.author.clone(),
        body: comment.body.clone(),
        html_url: html_url.to_owned(),
    };
    let created = crate::store::to_ms(comment.created_at);
    // The claim loop, woken once the batch commits, acts on it.
    conversation::record_request(&mut *conn, &request, created).await?;
    Ok(Some(asked))
}

/// A `labeled` delivery names who added one label: when that label is the status label of the
/// snapshot, that person moved the ticket into its status. Any other delivery's sender did
/// something else (assigned, edited, another label) and is no labeller.
async fn record_labeller(
    config: &RepoConfig,
    conn: &mut AnyConnection,
    ticket_id: i64,
    issue: &IssueSnapshot,
    added: &LabelAdded,
    known: Option<&str>,
) -> Result<(), StoreError> {
    let Some(status) = config.status_of(&issue.labels) else {
        return Ok(());
    };
    // Recorded already (a redelivery, or the label added again): the update would keep it.
    if status.label != added.label || known == Some(status.name.as_str()) {
        return Ok(());
    }
    tickets::record_delivered_labeller(&mut *conn, ticket_id, &status.name, &added.by, issue).await
}

/// Mirrors an issue with its status read through the repository's active config.
pub async fn mirror_issue(
    app: &App,
    conn: &mut AnyConnection,
    repo_id: i64,
    issue: &IssueSnapshot,
    deleted: bool,
    source: tickets::Source,
) -> Result<tickets::Mirrored, StoreError> {
    let config = app.configs.get(conn, repo_id).await?;
    mirror_with(&config, conn, repo_id, issue, deleted, source).await
}

/// [`mirror_issue`] with the repository's config already read.
async fn mirror_with(
    config: &RepoConfig,
    conn: &mut AnyConnection,
    repo_id: i64,
    issue: &IssueSnapshot,
    deleted: bool,
    source: tickets::Source,
) -> Result<tickets::Mirrored, StoreError> {
    let status = config.status_of(&issue.labels).map(|s| s.name.as_str());
    let mirrored = tickets::mirror_issue(conn, repo_id, issue, status, deleted, source).await?;
    // A closed issue may be what a waiting ticket depends on.
    if deleted || issue.state == crate::forge::IssueState::Closed {
        claim_marks::mark_waiting(&mut *conn, claim_marks::BLOCKED).await?;
    }
    Ok(mirrored)
}
