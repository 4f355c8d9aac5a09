//! The sandbox forge's state: repositories with their issues, pull requests and labels,
//! comments, statuses, check runs and the request log, and the operations both API dialects
//! and the test-facing handle share.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::types::{
    CheckRun, CommitStatus, Label, LabelEvent, MergeRecord, Permission, PullReview, RecordedRequest,
};
use crate::forge::{IssueSnapshot, IssueState, PullState};

/// Color given to labels created implicitly (GitHub creates unknown labels on add).
pub(super) const DEFAULT_LABEL_COLOR: &str = "ededed";

/// Why the model refused an operation; handlers turn it into 404/422.
#[derive(Debug, thiserror::Error)]
pub(super) enum ModelError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The state moved on since the client looked (a merge of a stale head).
    #[error("{0}")]
    Conflict(String),
}

pub(super) type ModelResult<T> = Result<T, ModelError>;

impl State {
    /// The fault (status, message) to answer `method path` with, if one matches; a fault with a
    /// count is used up by it.
    pub(super) fn take_fault(&mut self, method: &str, path: &str) -> Option<(u16, String)> {
        let index = self
            .faults
            .iter()
            .position(|f| f.method == method && path.contains(&f.path_contains))?;
        let fault = &mut self.faults[index];
        let answer = (fault.status, fault.message.clone());
        match &mut fault.times {
            Some(1) | Some(0) => {
                self.faults.remove(index);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(answer)
    }
}

#[derive(Default)]
pub(super) struct State {
    /// Base of `html_url`s; set by `serve` so links point at the running server.
    pub(super) web_url: String,
    pub(super) repos: BTreeMap<String, Repo>,
    /// Comment ids are global on both forges (`/issues/comments/{id}` has no issue number).
    pub(super) comments: BTreeMap<u64, Comment>,
    pub(super) statuses: Vec<CommitStatus>,
    pub(super) check_runs: Vec<CheckRun>,
    pub(super) reviews: Vec<PullReview>,
    pub(super) line_comments: Vec<super::types::LineComment>,
    pub(super) merges: Vec<MergeRecord>,
    pub(super) requests: Vec<RecordedRequest>,
    /// Failures answered instead of matching requests, first match wins.
    pub(super) faults: Vec<super::types::Fault>,
    /// Slowness, hangs and rate limits, first match wins (checked after `faults`).
    pub(super) disruptions: Vec<super::disruption::Disruption>,
    /// Every label added or removed, oldest first (issue events, the timeline).
    pub(super) label_events: Vec<LabelEvent>,
    pub(super) tokens_issued: u64,
    /// Where changes are announced as webhook deliveries, when a target is set.
    pub(super) webhooks: Option<super::webhooks::Outbox>,
    /// The deliveries sent so far (and their answers), oldest first.
    pub(super) webhook_log: Vec<super::types::WebhookDelivery>,
    /// Deliveries queued but not yet answered (or given up on).
    pub(super) webhooks_pending: usize,
    /// Who the sandbox web page acts as.
    pub(super) ui_user: Option<String>,
    /// Gitea organisation labels by organisation.
    pub(super) org_labels: BTreeMap<String, Vec<Label>>,
    /// OAuth apps, codes and tokens of the sign-in flow.
    pub(super) oauth: super::oauth::OAuthState,
    /// GitHub Apps registered from manifests and what the installation holds.
    pub(super) apps: super::github_apps::Apps,
    /// Gitea webhooks created through the API.
    pub(super) gitea_hooks: Vec<super::gitea_hooks::GiteaHook>,
    next_id: u64,
}

pub(super) struct Repo {
    pub(super) id: u64,
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) default_branch: String,
    pub(super) clone_url: String,
    /// Issues and pull requests share one number space, as on both forges.
    pub(super) issues: BTreeMap<u64, Issue>,
    pub(super) labels: Vec<Label>,
    /// The owner's organisation labels (Gitea), usable on this repository's issues but not
    /// listed among its own labels.
    pub(super) org_labels: Vec<Label>,
    pub(super) permissions: BTreeMap<String, Permission>,
}

#[derive(Clone)]
pub(super) struct Issue {
    pub(super) id: u64,
    pub(super) number: u64,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) state: IssueState,
    /// Label names, in the order they were added.
    pub(super) labels: Vec<String>,
    pub(super) author: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) closed_at: Option<DateTime<Utc>>,
    pub(super) pull: Option<Pull>,
    /// Issues blocking this one (`owner/name`, number): Gitea's issue dependencies.
    pub(super) blocked_by: Vec<(String, u64)>,
}

#[derive(Clone)]
pub(super) struct Pull {
    pub(super) head_ref: String,
    pub(super) head_sha: String,
    pub(super) base_ref: String,
    pub(super) merged_at: Option<DateTime<Utc>>,
    /// A GitHub draft (Gitea marks work in progress in the title instead).
    pub(super) draft: bool,
}

#[derive(Clone)]
pub(super) struct Comment {
    pub(super) id: u64,
    pub(super) repo: String,
    pub(super) issue: u64,
    pub(super) author: String,
    pub(super) body: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
}

/// Issue numbers named with a GitHub closing keyword in `body`: `Closes #1`, `fixes #2`,
/// `Resolved: #3` and the other forms of close, fix and resolve.
pub(super) fn closing_references(body: &str) -> Vec<u64> {
    const KEYWORDS: &[&str] = &[
        "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved",
    ];
    let words: Vec<&str> = body.split_whitespace().collect();
    let mut numbers = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0].trim_end_matches(':').to_ascii_lowercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        let reference = pair[1].trim_end_matches(['.', ',', ';', ')']);
        if let Some(n) = reference.strip_prefix('#').and_then(|n| n.parse().ok())
            && !numbers.contains(&n)
        {
            numbers.push(n);
        }
    }
    numbers
}

impl Issue {
    pub(super) fn pull_state(&self) -> PullState {
        match (&self.pull, self.state) {
            (
                Some(Pull {
                    merged_at: Some(_), ..
                }),
                _,
            ) => PullState::Merged,
            (_, IssueState::Open) => PullState::Open,
            (_, IssueState::Closed) => PullState::Closed,
        }
    }
}

impl Repo {
    pub(super) fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    pub(super) fn issue(&self, number: u64) -> ModelResult<&Issue> {
        self.issues
            .get(&number)
            .ok_or_else(|| ModelError::NotFound(format!("issue #{number}")))
    }

    pub(super) fn issue_mut(&mut self, number: u64) -> ModelResult<&mut Issue> {
        self.issues
            .get_mut(&number)
            .ok_or_else(|| ModelError::NotFound(format!("issue #{number}")))
    }

    pub(super) fn pull(&self, number: u64) -> ModelResult<&Issue> {
        self.issue(number)
            .ok()
            .filter(|issue| issue.pull.is_some())
            .ok_or_else(|| ModelError::NotFound(format!("pull request #{number}")))
    }

    /// A label usable on this repository's issues: its own first, then its organisation's.
    pub(super) fn label(&self, name: &str) -> Option<&Label> {
        self.usable_labels().find(|label| label.name == name)
    }

    pub(super) fn label_by_id(&self, id: u64) -> Option<&Label> {
        self.usable_labels().find(|label| label.id == id)
    }

    fn usable_labels(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter().chain(&self.org_labels)
    }

    /// The collaborator's role; the owner is admin, strangers have none.
    pub(super) fn permission(&self, login: &str) -> Option<Permission> {
        if login == self.owner {
            return Some(Permission::Admin);
        }
        self.permissions.get(login).copied()
    }

    fn next_number(&self) -> u64 {
        self.issues.keys().next_back().map_or(1, |n| n + 1)
    }
}

impl State {
    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn repo(&self, key: &str) -> ModelResult<&Repo> {
        self.repos
            .get(key)
            .ok_or_else(|| ModelError::NotFound(format!("repository {key}")))
    }

    pub(super) fn repo_mut(&mut self, key: &str) -> ModelResult<&mut Repo> {
        self.repos
            .get_mut(key)
            .ok_or_else(|| ModelError::NotFound(format!("repository {key}")))
    }

    pub(super) fn html_url(&self, repo: &str, kind: &str, number: u64) -> String {
        format!("{}/{repo}/{kind}/{number}", self.web_url)
    }

    /// Creates a repository label if it does not exist yet, returning it.
    pub(super) fn ensure_label(
        &mut self,
        repo: &str,
        name: &str,
        color: &str,
    ) -> ModelResult<Label> {
        if let Some(label) = self.repo(repo)?.label(name) {
            return Ok(label.clone());
        }
        let label = Label {
            id: self.next_id(),
            name: name.to_owned(),
            color: color.trim_start_matches('#').to_owned(),
        };
        self.repo_mut(repo)?.labels.push(label.clone());
        Ok(label)
    }

    /// Adds labels by name to an issue, creating unknown ones like GitHub does. `actor` is the
    /// `sender` of the `labeled` deliveries, one per label newly added.
    pub(super) fn add_labels(
        &mut self,
        repo: &str,
        number: u64,
        names: &[String],
        actor: &str,
    ) -> ModelResult<()> {
        self.repo(repo)?.issue(number)?;
        for name in names {
            self.ensure_label(repo, name, DEFAULT_LABEL_COLOR)?;
        }
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        let mut added = Vec::new();
        for name in names {
            if !issue.labels.contains(name) {
                issue.labels.push(name.clone());
                added.push(name.clone());
            }
        }
        issue.updated_at = Utc::now();
        for name in &added {
            self.record_label_event(repo, number, name, actor, true);
            self.announce_issue(repo, number, "labeled", actor, Some(name));
        }
        Ok(())
    }

    /// Makes `names` the issue's labels: the others are removed, the new ones added.
    pub(super) fn replace_labels(
        &mut self,
        repo: &str,
        number: u64,
        names: &[String],
        actor: &str,
    ) -> ModelResult<()> {
        let current = self.repo(repo)?.issue(number)?.labels.clone();
        for name in current.iter().filter(|l| !names.contains(l)) {
            self.remove_label(repo, number, name, actor)?;
        }
        self.add_labels(repo, number, names, actor)
    }

    pub(super) fn remove_label(
        &mut self,
        repo: &str,
        number: u64,
        name: &str,
        actor: &str,
    ) -> ModelResult<()> {
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        let before = issue.labels.len();
        issue.labels.retain(|label| label != name);
        if issue.labels.len() == before {
            return Err(ModelError::NotFound(format!("label {name} on #{number}")));
        }
        issue.updated_at = Utc::now();
        self.record_label_event(repo, number, name, actor, false);
        self.announce_issue(repo, number, "unlabeled", actor, Some(name));
        Ok(())
    }

    fn record_label_event(
        &mut self,
        repo: &str,
        number: u64,
        label: &str,
        actor: &str,
        added: bool,
    ) {
        let id = self.next_id();
        self.label_events.push(LabelEvent {
            id,
            repo: repo.to_owned(),
            number,
            label: label.to_owned(),
            actor: actor.to_owned(),
            added,
            created_at: Utc::now(),
        });
    }

    pub(super) fn issue_label_events(&self, repo: &str, number: u64) -> Vec<LabelEvent> {
        self.label_events
            .iter()
            .filter(|e| e.repo == repo && e.number == number)
            .cloned()
            .collect()
    }

    pub(super) fn set_issue_state(
        &mut self,
        repo: &str,
        number: u64,
        state: IssueState,
        actor: &str,
    ) -> ModelResult<()> {
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        if issue.state != state {
            let now = Utc::now();
            issue.state = state;
            issue.closed_at = (state == IssueState::Closed).then_some(now);
            issue.updated_at = now;
            let action = match state {
                IssueState::Open => "reopened",
                IssueState::Closed => "closed",
            };
            self.announce_issue(repo, number, action, actor, None);
        }
        Ok(())
    }

    /// The repository owner: who arranging calls act as when they name nobody.
    pub(super) fn owner_of(&self, repo: &str) -> ModelResult<String> {
        Ok(self.repo(repo)?.owner.clone())
    }

    pub(super) fn open_issue(
        &mut self,
        repo: &str,
        title: &str,
        body: &str,
        author: &str,
        pull: Option<Pull>,
    ) -> ModelResult<u64> {
        let id = self.next_id();
        let key = repo;
        let repo = self.repo_mut(key)?;
        let number = repo.next_number();
        let now = Utc::now();
        repo.issues.insert(
            number,
            Issue {
                id,
                number,
                title: title.to_owned(),
                body: body.to_owned(),
                state: IssueState::Open,
                labels: Vec::new(),
                author: author.to_owned(),
                created_at: now,
                updated_at: now,
                closed_at: None,
                pull,
                blocked_by: Vec::new(),
            },
        );
        self.announce_issue(key, number, "opened", author, None);
        Ok(number)
    }

    pub(super) fn add_comment(
        &mut self,
        repo: &str,
        number: u64,
        author: &str,
        body: &str,
    ) -> ModelResult<Comment> {
        let now = Utc::now();
        self.repo_mut(repo)?.issue_mut(number)?.updated_at = now;
        let comment = Comment {
            id: self.next_id(),
            repo: repo.to_owned(),
            issue: number,
            author: author.to_owned(),
            body: body.to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.comments.insert(comment.id, comment.clone());
        self.announce_comment(&comment, "created", author);
        Ok(comment)
    }

    pub(super) fn update_comment(
        &mut self,
        repo: &str,
        id: u64,
        body: &str,
        actor: &str,
    ) -> ModelResult<Comment> {
        let comment = self
            .comments
            .get_mut(&id)
            .filter(|comment| comment.repo == repo)
            .ok_or_else(|| ModelError::NotFound(format!("comment {id}")))?;
        comment.body = body.to_owned();
        comment.updated_at = Utc::now();
        let comment = comment.clone();
        self.announce_comment(&comment, "edited", actor);
        Ok(comment)
    }

    /// Moves the times of an issue's comments `by` into the past.
    pub(super) fn backdate_comments(&mut self, repo: &str, number: u64, by: chrono::Duration) {
        for comment in self.comments.values_mut() {
            if comment.repo == repo && comment.issue == number {
                comment.created_at -= by;
                comment.updated_at -= by;
            }
        }
    }

    /// Deletes a comment, as its author or a maintainer does on the forge (`issue_comment`
    /// `deleted` is announced).
    pub(super) fn delete_comment(&mut self, repo: &str, id: u64, actor: &str) -> ModelResult<()> {
        if self.comments.get(&id).is_none_or(|c| c.repo != repo) {
            return Err(ModelError::NotFound(format!("comment {id}")));
        }
        if let Some(comment) = self.comments.remove(&id) {
            self.announce_comment(&comment, "deleted", actor);
        }
        Ok(())
    }

    pub(super) fn issue_comments(&self, repo: &str, number: u64) -> Vec<Comment> {
        self.comments
            .values()
            .filter(|comment| comment.repo == repo && comment.issue == number)
            .cloned()
            .collect()
    }

    /// Refuses a second open pull request from `head` into `base`, as both forges do.
    pub(super) fn check_no_open_pull(&self, repo: &str, head: &str, base: &str) -> ModelResult<()> {
        let exists = self.repo(repo)?.issues.values().any(|issue| {
            issue.state == IssueState::Open
                && issue
                    .pull
                    .as_ref()
                    .is_some_and(|p| p.head_ref == head && p.base_ref == base)
        });
        if exists {
            return Err(ModelError::Invalid(format!(
                "a pull request already exists for {head} into {base}"
            )));
        }
        Ok(())
    }

    /// The heads of the open pull requests of `repo` (all, or only number `only`), to refresh
    /// from the repository on disk.
    pub(super) fn open_pull_heads(&self, repo: &str, only: Option<u64>) -> Vec<(u64, String)> {
        let Ok(repo) = self.repo(repo) else {
            return Vec::new();
        };
        repo.issues
            .values()
            .filter(|i| i.state == IssueState::Open && only.is_none_or(|n| n == i.number))
            .filter_map(|i| i.pull.as_ref().map(|p| (i.number, p.head_ref.clone())))
            .collect()
    }

    /// Records a branch's new head on an open pull request, as a push to it would.
    pub(super) fn move_pull_head(&mut self, repo: &str, number: u64, sha: &str) {
        let Ok(issue) = self.repo_mut(repo).and_then(|r| r.issue_mut(number)) else {
            return;
        };
        if issue.state != IssueState::Open {
            return;
        }
        if let Some(pull) = issue.pull.as_mut()
            && pull.head_sha != sha
        {
            pull.head_sha = sha.to_owned();
            issue.updated_at = Utc::now();
        }
    }

    pub(super) fn merge_pull(&mut self, repo: &str, number: u64, actor: &str) -> ModelResult<()> {
        let default_branch = self.repo(repo)?.default_branch.clone();
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        if issue.state == IssueState::Closed {
            return Err(ModelError::Invalid(format!(
                "pull request #{number} is closed"
            )));
        }
        let pull = issue
            .pull
            .as_mut()
            .ok_or_else(|| ModelError::NotFound(format!("pull request #{number}")))?;
        let now = Utc::now();
        pull.merged_at = Some(now);
        let into_default = pull.base_ref == default_branch;
        issue.state = IssueState::Closed;
        issue.closed_at = Some(now);
        issue.updated_at = now;
        let closes = if into_default {
            closing_references(&issue.body)
        } else {
            Vec::new()
        };
        self.announce_issue(repo, number, "closed", actor, None);
        // As on GitHub, merging into the default branch closes the issues the pull request's
        // description names with a closing keyword ("Closes #1").
        for target in closes {
            let is_open_issue = self
                .repo(repo)?
                .issue(target)
                .is_ok_and(|i| i.pull.is_none() && i.state == IssueState::Open);
            if is_open_issue {
                self.set_issue_state(repo, target, IssueState::Closed, actor)?;
            }
        }
        Ok(())
    }

    /// Records a review on an open or closed pull request, on `commit` (as GitHub's
    /// `commit_id` when creating a review) or else on its current head.
    pub(super) fn add_review(
        &mut self,
        repo: &str,
        number: u64,
        author: &str,
        state: crate::forge::ReviewState,
        body: &str,
        commit: Option<&str>,
    ) -> ModelResult<u64> {
        let issue = self.repo(repo)?.pull(number)?;
        let head = issue.pull.as_ref().map(|p| p.head_sha.clone());
        let commit_id = commit.map(str::to_owned).or(head).unwrap_or_default();
        let id = self.next_id();
        self.reviews.push(PullReview {
            id,
            repo: repo.to_owned(),
            number,
            author: author.to_owned(),
            state,
            body: body.to_owned(),
            commit_id,
            submitted_at: Utc::now(),
        });
        Ok(id)
    }

    pub(super) fn pull_reviews(&self, repo: &str, number: u64) -> Vec<PullReview> {
        self.reviews
            .iter()
            .filter(|r| r.repo == repo && r.number == number)
            .cloned()
            .collect()
    }

    /// A merge through an API: refused (`Conflict`) when `sha` is given and is not the head.
    pub(super) fn merge_pull_as(
        &mut self,
        repo: &str,
        number: u64,
        actor: &str,
        method: Option<String>,
        sha: Option<String>,
    ) -> ModelResult<()> {
        let head = self
            .repo(repo)?
            .pull(number)?
            .pull
            .as_ref()
            .map(|p| p.head_sha.clone())
            .unwrap_or_default();
        if let Some(expected) = sha.as_deref().filter(|s| !s.is_empty())
            && expected != head
        {
            // Each dialect answers with its forge's own message (see the handlers).
            return Err(ModelError::Conflict(format!(
                "the head is {head}, not {expected}"
            )));
        }
        self.merge_pull(repo, number, actor)?;
        self.merges.push(MergeRecord {
            repo: repo.to_owned(),
            number,
            method,
            sha,
        });
        Ok(())
    }

    pub(super) fn issue_snapshot(&self, repo: &Repo, issue: &Issue) -> IssueSnapshot {
        IssueSnapshot {
            number: issue.number,
            title: issue.title.clone(),
            body: issue.body.clone(),
            state: issue.state,
            labels: issue.labels.clone(),
            author: issue.author.clone(),
            html_url: self.html_url(&repo.full_name(), "issues", issue.number),
            updated_at: issue.updated_at,
            comments: Some(self.issue_comments(&repo.full_name(), issue.number).len() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::closing_references;

    #[test]
    fn finds_closing_keywords() {
        assert_eq!(closing_references("Closes #1"), [1]);
        assert_eq!(
            closing_references("Fixes #2, resolved: #3.\ncloses #2 and #4 see #5"),
            [2, 3]
        );
        assert!(closing_references("Refs #1; closes nothing").is_empty());
    }
}
