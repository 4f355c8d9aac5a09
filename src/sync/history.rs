//! What an applied delivery adds to its tickets' history (the ticket page's timeline). Each row
//! is keyed by the forge's delivery id (or, for a pull request's state, by the state), so a
//! redelivery or a retried batch adds no second row.

use sqlx::AnyConnection;

use crate::forge::addressed::Addressed;
use crate::forge::event::{LabelAdded, PullActivity, Reported};
use crate::forge::{PullSnapshot, PullState};
use crate::store::StoreError;
use crate::store::deliveries::PendingDelivery;
use crate::store::ticket_history::{self, Kind, NewEntry};

/// A label added (`added`) or removed on the ticket, by whom.
pub async fn label(
    conn: &mut AnyConnection,
    delivery: &PendingDelivery,
    ticket_id: i64,
    change: &LabelAdded,
    added: bool,
) -> Result<(), StoreError> {
    let source = format!("{}:label", delivery.delivery_id);
    let entry = NewEntry {
        at: delivery.received_at,
        kind: Kind::Label,
        actor: &change.by,
        subject: &change.label,
        detail: if added { "added" } else { "removed" },
        url: None,
        source: &source,
    };
    ticket_history::record(conn, ticket_id, &entry).await?;
    Ok(())
}

/// A pull request seen in a state: once per state for each ticket it belongs to (a pull request
/// that is edited or pushed to stays `open` and adds nothing).
pub async fn pull(
    conn: &mut AnyConnection,
    delivery: &PendingDelivery,
    repo_id: i64,
    pull: &PullSnapshot,
) -> Result<(), StoreError> {
    let tickets = ticket_history::tickets_of_pulls(conn, repo_id, &[pull.number], None).await?;
    let state = match pull.state {
        PullState::Open => "opened",
        PullState::Merged => "merged",
        PullState::Closed => "closed",
    };
    let (subject, source) = (
        format!("#{}", pull.number),
        format!("pull:{}:{state}", pull.number),
    );
    // The author opened it; who merged or closed it the payload does not say in a field we read.
    let actor = if pull.state == PullState::Open {
        pull.author.as_str()
    } else {
        ""
    };
    let entry = NewEntry {
        at: delivery.received_at,
        kind: Kind::Pull,
        actor,
        subject: &subject,
        detail: state,
        url: Some(&pull.html_url),
        source: &source,
    };
    for ticket in tickets {
        ticket_history::record(conn, ticket, &entry).await?;
    }
    Ok(())
}

/// A review or a settled check on the tickets' pull requests.
pub async fn activity(
    conn: &mut AnyConnection,
    delivery: &PendingDelivery,
    repo_id: i64,
    activity: &PullActivity,
) -> Result<(), StoreError> {
    let Some(reported) = &activity.reported else {
        return Ok(());
    };
    let tickets = ticket_history::tickets_of_pulls(
        conn,
        repo_id,
        &activity.pulls,
        activity.head_sha.as_deref(),
    )
    .await?;
    let pulls: Vec<String> = activity.pulls.iter().map(|n| format!("#{n}")).collect();
    let subject = pulls.join(", ");
    let (kind, actor, subject, detail) = match reported {
        Reported::Review { reviewer, state } => (Kind::Review, reviewer.as_str(), &subject, state),
        Reported::Check { name, conclusion } => (Kind::Check, "", name, conclusion),
    };
    let source = format!("{}:{}", delivery.delivery_id, kind.as_str());
    let entry = NewEntry {
        at: delivery.received_at,
        kind,
        actor,
        subject,
        detail,
        url: None,
        source: &source,
    };
    for ticket in tickets {
        ticket_history::record(conn, ticket, &entry).await?;
    }
    Ok(())
}

/// The commands a new comment gives Forgehand (a mention alone is conversation, not a command).
pub async fn commands(
    conn: &mut AnyConnection,
    tickets: &[i64],
    author: &str,
    comment_id: u64,
    at: i64,
    asked: &Addressed,
    html_url: &str,
) -> Result<(), StoreError> {
    if asked.commands.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = asked.commands.iter().map(|c| c.name()).collect();
    let (subject, source) = (names.join(", "), format!("comment:{comment_id}:command"));
    let entry = NewEntry {
        at,
        kind: Kind::Command,
        actor: author,
        subject: &subject,
        detail: "",
        url: Some(html_url),
        source: &source,
    };
    for &ticket in tickets {
        ticket_history::record(conn, ticket, &entry).await?;
    }
    Ok(())
}
