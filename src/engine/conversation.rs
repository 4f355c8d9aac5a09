//! Pull request comments that ask the agent for more, found on a review pass: line comments,
//! and conversation comments addressed to Forgehand, by people the trigger policy allows.
//! Each is handed to the agent once; Forgehand's own comments and the agent's never count.

use crate::app::App;
use crate::config::repo::RepoConfig;
use crate::engine::merge::MergeError;
use crate::engine::trigger::{self, Verdict};
use crate::forge::{CommentSnapshot, Forge, PullSnapshot, ReviewComment, addressed};
use crate::run::replies::REPLY_MARKER;
use crate::store::conversation::{self, Given, Kind};
use crate::store::tickets::InReview;

/// Comments that are Forgehand's own: its progress comment and its replies carry a marker.
fn is_own(body: &str, author: &str, config: &RepoConfig, pull: &PullSnapshot) -> bool {
    body.contains("<!-- forgehand:")
        || body.contains(REPLY_MARKER)
        || author == pull.author
        || author.eq_ignore_ascii_case(&config.triggers.mention)
}

/// The comments on the ticket's pull request not handed to the agent yet that it should get,
/// oldest first.
pub async fn new_comments(
    app: &App,
    forge: &dyn Forge,
    t: &InReview,
    config: &RepoConfig,
    pull: &PullSnapshot,
) -> Result<Vec<Given>, MergeError> {
    let mut candidates: Vec<Given> = forge
        .review_comments(&t.repo, pull.number)
        .await?
        .into_iter()
        .map(|comment| Given {
            kind: Kind::Line,
            comment,
        })
        .collect();
    let mention = &config.triggers.mention;
    candidates.extend(
        forge
            .issue_comments(&t.repo, pull.number)
            .await?
            .into_iter()
            .filter_map(|c| {
                let asked = addressed::parse(&c.body, mention).mention?;
                Some(Given {
                    kind: Kind::Conversation,
                    comment: from_conversation(c, asked, &pull.html_url),
                })
            }),
    );
    let mut wanted = Vec::new();
    let pool = app.store.pool();
    for given in candidates {
        let c = &given.comment;
        if is_own(&c.body, &c.author, config, pull) || c.body.trim().is_empty() {
            continue;
        }
        if conversation::known(pool, t.ticket_id, given.kind, c.id).await? {
            continue;
        }
        let verdict = trigger::check(
            forge,
            &app.permissions,
            &t.repo,
            &config.triggers,
            &c.author,
        )
        .await?;
        match verdict {
            Verdict::Allowed => wanted.push(given),
            Verdict::Denied(why) => {
                tracing::debug!(repo = %t.repo, comment = c.id, %why, "comment not for the agent")
            }
        }
    }
    wanted.sort_by_key(|g| (g.comment.created_at, g.comment.id));
    Ok(wanted)
}

/// A conversation comment in the shape of a line comment with no place in the diff; `asked`
/// is its text without command lines.
fn from_conversation(c: CommentSnapshot, asked: String, pull_url: &str) -> ReviewComment {
    ReviewComment {
        id: c.id,
        author: c.author,
        body: asked,
        path: String::new(),
        line: None,
        diff_hunk: String::new(),
        in_reply_to: None,
        created_at: c.created_at,
        html_url: format!("{pull_url}#issuecomment-{}", c.id),
    }
}
