//! After a run pushed: one reply in each thread whose comment the run was given, linking the
//! commit that answers it. Best effort: a reply the forge refuses is logged (and stays marked
//! unanswered), never a reason to fail the run.

use crate::app::App;
use crate::run::context::RunContext;
use crate::store::conversation::{self, Given, Kind};

/// Marks Forgehand's replies, so they are never read as a request to it.
pub const REPLY_MARKER: &str = "<!-- forgehand:reply -->";

/// Answers every comment given to the run and not answered yet.
pub async fn answer(app: &App, ctx: &RunContext, pull: u64, sha: &str) {
    let repo = &ctx.repo.repo;
    let Some(forge) = app.forges.get(repo.forge) else {
        return;
    };
    let given = match app.store.pool().acquire().await {
        Ok(mut conn) => conversation::given_to(&mut conn, ctx.run.id, true).await,
        Err(e) => Err(e.into()),
    };
    let given = match given {
        Ok(given) => given,
        Err(e) => {
            tracing::warn!(run = ctx.run.id, error = %e, "cannot read the comments to answer");
            return;
        }
    };
    let commit = format!(
        "[{}]({}/commit/{sha})",
        &sha[..sha.len().min(7)],
        ctx.repo.html_url.trim_end_matches('/')
    );
    for g in &given {
        let sent = match g.kind {
            Kind::Line => {
                let body = format!("Addressed in {commit}. {REPLY_MARKER}");
                forge
                    .reply_review_comment(repo, pull, &g.comment, &body)
                    .await
            }
            Kind::Conversation => forge
                .create_comment(repo, pull, &conversation_reply(g, &commit))
                .await
                .map(|_| ()),
        };
        match sent {
            Ok(()) => {
                if let Err(e) = conversation::mark_replied(app.store.pool(), ctx.run.id, g).await {
                    tracing::warn!(run = ctx.run.id, error = %e, "cannot record a reply");
                }
            }
            Err(e) => {
                tracing::warn!(run = ctx.run.id, comment = g.comment.id, error = %e, "cannot reply to a comment")
            }
        }
    }
}

/// A reply in the pull request's conversation: who asked, a link to what they said, the commit.
fn conversation_reply(g: &Given, commit: &str) -> String {
    let link = if g.comment.html_url.is_empty() {
        "your comment".to_owned()
    } else {
        format!("[your comment]({})", g.comment.html_url)
    };
    format!(
        "@{} {link} is addressed in {commit}. {REPLY_MARKER}",
        g.comment.author
    )
}
