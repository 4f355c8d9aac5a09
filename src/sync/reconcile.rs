//! Reconciliation: re-reading tickets from the forge API, so the mirror converges on the
//! forge's state whatever happened to the deliveries. Marked tickets are re-read as soon as
//! possible; every repository's open issues are re-read at start and at an interval.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::domain::RepoRef;
use crate::forge::{CommentSnapshot, Forge, ForgeError, IssueSnapshot};
use crate::store::{StoreError, WriteTx, now_ms, repos, tickets, to_ms};
use crate::sync::apply::mirror_issue;

const POLL: Duration = Duration::from_secs(5);
/// Marked tickets read per page; a pass walks every page.
const PAGE: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

pub async fn run(app: App, shutdown: CancellationToken) {
    let mut next_full = tokio::time::Instant::now();
    loop {
        let pass_started = tokio::time::Instant::now();
        if tokio::time::Instant::now() >= next_full {
            if let Err(e) = reconcile_all(&app).await {
                tracing::warn!(error = %e, "periodic reconcile failed");
            }
            next_full = tokio::time::Instant::now() + app.config.reconcile_interval;
        }
        if let Err(e) = reconcile_marked(&app).await {
            tracing::warn!(error = %e, "reconcile failed");
        }
        if !crate::app::next_pass(
            &app.signals.reconcile,
            POLL,
            crate::app::MIN_PASS_GAP,
            pass_started,
            &shutdown,
        )
        .await
        {
            return;
        }
    }
}

/// Re-reads every ticket marked for reconciliation; returns how many were handled. One
/// ticket's failure is logged and leaves it marked, to be tried again after a backoff
/// ([`retry_backoff`]), without holding up the tickets after it. An issue the forge says is
/// gone (`410` deleted, `301` transferred) makes its ticket deleted, which cancels its run. A
/// ticket whose forge has no API client configured stays marked.
pub async fn reconcile_marked(app: &App) -> Result<usize, ReconcileError> {
    let mut handled = 0;
    let mut after = 0;
    loop {
        let page = tickets::to_reconcile(app.store.pool(), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.ticket_id;
        let full = page.len() as i64 == PAGE;
        for marked in page {
            let Some(forge) = app.forges.get(marked.repo.forge) else {
                continue;
            };
            let (repo, number) = (&marked.repo, marked.number);
            match reconcile_ticket(app, forge.as_ref(), marked.repo_id, repo, number).await {
                Ok(()) => handled += 1,
                Err(ReconcileError::Forge(ForgeError::NotFound(_))) => {
                    // Also what a token that lost access sees: not proof of a deletion.
                    tracing::info!(%repo, number, "issue no longer exists on the forge");
                    tickets::clear_reconcile(app.store.pool(), marked.repo_id, number).await?;
                    handled += 1;
                }
                Err(ReconcileError::Forge(e)) if let Some(reason) = gone(&e) => {
                    tracing::info!(%repo, number, %reason, "the ticket's issue is gone");
                    tickets::mark_gone(
                        app.store.pool(),
                        marked.ticket_id,
                        &reason,
                        tickets::GoneBy::Read,
                    )
                    .await?;
                    // The engine loop cancels the ticket's run.
                    app.signals.claim.notify_one();
                    handled += 1;
                }
                Err(e) => {
                    let mut conn = app.store.pool().acquire().await.map_err(StoreError::from)?;
                    let attempts =
                        tickets::reconcile_failed(&mut conn, marked.ticket_id, retry_backoff)
                            .await?;
                    tracing::warn!(%repo, number, attempts, error = %e, "reconciling the ticket failed; retrying later")
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(handled)
}

/// The wait after a ticket's `attempts`-th failed re-read: 5 s doubling to at most 10 minutes
/// (the full pass re-reads open issues anyway).
pub fn retry_backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    Duration::from_secs(5u64 << exp).min(Duration::from_secs(600))
}

/// Why the forge's answer means the issue left its repository for good, when it does: GitHub
/// answers `410 Gone` for a deleted issue and `301 Moved Permanently` for a transferred one.
pub fn gone(e: &ForgeError) -> Option<String> {
    match e {
        ForgeError::Api { status: 410, .. } => {
            Some("the issue was deleted on the forge (410 Gone)".to_owned())
        }
        ForgeError::Api { status: 301, .. } => Some(
            "the issue was transferred to another repository (301 Moved Permanently)".to_owned(),
        ),
        _ => None,
    }
}

async fn reconcile_ticket(
    app: &App,
    forge: &dyn Forge,
    repo_id: i64,
    repo: &RepoRef,
    number: u64,
) -> Result<(), ReconcileError> {
    let issue = forge.issue(repo, number).await?;
    let asked = now_ms();
    let comments = forge.issue_comments(repo, number).await?;
    let mut tx = app.store.begin_write().await?;
    mirror_issue(app, &mut tx, repo_id, &issue, false, tickets::Source::Read).await?;
    store_comments(&mut tx, repo_id, number, &comments, asked).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// How old a mirrored comment must be (by the forge's clock, against the time its issue's
/// comments were asked for) before a listing that lacks it deletes it. A comment's delivery
/// marks its ticket for a re-read within a second, and the forge's listing may not show the
/// comment yet: younger comments are kept whatever the listing says.
const LISTING_LAG: i64 = 120_000;

/// Stores an issue's comments as the forge listed them (the listing was `asked` for at this
/// time), and clears its mark. A mirrored comment the listing lacks was deleted on the forge
/// with its delivery lost: it leaves the mirror, or an agent would still be given it; unless it
/// is younger than [`LISTING_LAG`].
async fn store_comments(
    tx: &mut WriteTx,
    repo_id: i64,
    number: u64,
    comments: &[CommentSnapshot],
    asked: i64,
) -> Result<(), StoreError> {
    for comment in comments {
        tickets::upsert_comment(&mut **tx, repo_id, number, comment).await?;
    }
    let listed: HashSet<u64> = comments.iter().map(|c| c.id).collect();
    let held = tickets::comment_ids(&mut **tx, repo_id, number, asked - LISTING_LAG).await?;
    for &gone in held.iter().filter(|id| !listed.contains(id)) {
        tracing::info!(
            repo_id,
            number,
            comment = gone,
            "a comment was deleted on the forge"
        );
        tickets::delete_comment(&mut **tx, repo_id, gone).await?;
    }
    tickets::clear_reconcile(&mut **tx, repo_id, number).await
}

/// Re-reads the open issues of every known repository whose forge has an API client: issues
/// with a status label become or update tickets; tickets no longer open are marked to be
/// re-read one by one.
/// Times a repository's pass is run again when PostgreSQL picks it as a deadlock victim.
const VICTIM_RETRIES: u32 = 3;

pub async fn reconcile_all(app: &App) -> Result<(), ReconcileError> {
    for repo in repos::all(app.store.pool()).await? {
        if !app.config.allows(&repo.repo) {
            continue;
        }
        let Some(forge) = app.forges.get(repo.repo.forge) else {
            continue;
        };
        // A deadlock or serialization victim (PostgreSQL, racing the inbox over the same
        // tickets) is run again at once rather than left to the next full pass.
        let mut victims = 0;
        loop {
            match reconcile_repo(app, forge.as_ref(), repo.id, &repo.repo).await {
                Err(ReconcileError::Store(e)) if e.is_retryable() && victims < VICTIM_RETRIES => {
                    victims += 1;
                }
                Err(e) => {
                    tracing::warn!(repo = %repo.repo, error = %e, "reconciling repository failed");
                    break;
                }
                Ok(()) => break,
            }
        }
    }
    Ok(())
}

/// Whether the forge's listing says an issue's comments may differ from the mirror's: it is
/// not an open ticket yet, it changed since the mirror's snapshot (a new comment moves an
/// issue's `updated_at` on GitHub), or the forge counts another number of comments (a comment
/// added or deleted, on either forge). Reading the comments of every open ticket at every
/// pass cost one request per ticket and pass: at the default 5-minute interval, 2,000 open
/// tickets alone were 24,000 requests an hour, beyond GitHub's 5,000 an installation.
fn comments_may_have_changed(known: Option<&tickets::OpenTicket>, issue: &IssueSnapshot) -> bool {
    let Some(known) = known else { return true };
    to_ms(issue.updated_at) > known.forge_updated_ms || issue.comments != Some(known.comments)
}

async fn reconcile_repo(
    app: &App,
    forge: &dyn Forge,
    repo_id: i64,
    repo: &RepoRef,
) -> Result<(), ReconcileError> {
    let open = forge.open_issues(repo).await?;
    let mut stale_comments = Vec::new();
    let mut tx = app.store.begin_write().await?;
    let known: HashMap<u64, tickets::OpenTicket> = tickets::open_tickets(&mut *tx, repo_id)
        .await?
        .into_iter()
        .map(|t| (t.number, t))
        .collect();
    for issue in &open {
        // Compared before the snapshot is mirrored, which moves `forge_updated_at`.
        let stale = comments_may_have_changed(known.get(&issue.number), issue);
        if let tickets::Mirrored::Ticket { .. } =
            mirror_issue(app, &mut tx, repo_id, issue, false, tickets::Source::Read).await?
            && stale
        {
            stale_comments.push(issue.number);
        }
    }
    // Tickets that left the open list (closed, transferred, deleted) are re-read one by one.
    let listed: HashSet<u64> = open.iter().map(|i| i.number).collect();
    for number in known.keys().filter(|n| !listed.contains(n)) {
        tickets::mark_for_reconcile(&mut *tx, repo_id, *number).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;

    // The issues were just read; only the comments that may have changed are missing.
    for (i, &number) in stale_comments.iter().enumerate() {
        let asked = now_ms();
        let comments = match forge.issue_comments(repo, number).await {
            Ok(comments) => comments,
            Err(e) => {
                // The mirror moved on without them: what is left is re-read one by one, with
                // the marked tickets' backoff, or the next pass would see nothing to read.
                for &left in &stale_comments[i..] {
                    tickets::mark_for_reconcile(app.store.pool(), repo_id, left).await?;
                }
                return Err(e.into());
            }
        };
        let mut tx = app.store.begin_write().await?;
        store_comments(&mut tx, repo_id, number, &comments, asked).await?;
        tx.commit().await.map_err(StoreError::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::forge::IssueState;

    fn listed(updated_ms: i64, comments: Option<u64>) -> IssueSnapshot {
        IssueSnapshot {
            number: 7,
            title: "Add login".into(),
            body: String::new(),
            state: IssueState::Open,
            labels: vec!["agent:todo".into()],
            author: "alice".into(),
            html_url: String::new(),
            updated_at: DateTime::<Utc>::from_timestamp_millis(updated_ms).unwrap_or_default(),
            comments,
        }
    }

    fn known(forge_updated_ms: i64, comments: u64) -> tickets::OpenTicket {
        tickets::OpenTicket {
            number: 7,
            forge_updated_ms,
            comments,
        }
    }

    #[test]
    fn comments_are_read_when_the_listing_says_they_may_have_changed() {
        let mirrored = known(1_000, 2);
        // Nothing moved: no read.
        assert!(!comments_may_have_changed(
            Some(&mirrored),
            &listed(1_000, Some(2))
        ));
        // Forgehand's own change is newer than the forge's snapshot: still nothing to read.
        assert!(!comments_may_have_changed(
            Some(&known(5_000, 2)),
            &listed(1_000, Some(2))
        ));
        // Not a ticket yet, or not open in the mirror.
        assert!(comments_may_have_changed(None, &listed(1_000, Some(2))));
        // The issue changed since (a comment, or an edit GitHub counts as a change).
        assert!(comments_may_have_changed(
            Some(&mirrored),
            &listed(1_001, Some(2))
        ));
        // A comment added or deleted whose `updated_at` did not move (clock skew, Gitea).
        assert!(comments_may_have_changed(
            Some(&mirrored),
            &listed(1_000, Some(3))
        ));
        assert!(comments_may_have_changed(
            Some(&mirrored),
            &listed(1_000, Some(1))
        ));
        // A listing without a count cannot rule anything out.
        assert!(comments_may_have_changed(
            Some(&mirrored),
            &listed(1_000, None)
        ));
    }
}
