//! The sandbox forge's state and the test-facing handle to arrange and inspect it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::types::{CheckRun, CommitStatus, Label, NewPull, Permission, RecordedRequest, RepoKey};
use crate::forge::{CommentSnapshot, IssueSnapshot, IssueState, PullSnapshot, PullState};

/// Color given to labels created implicitly (GitHub creates unknown labels on add).
pub(super) const DEFAULT_LABEL_COLOR: &str = "ededed";

/// A cheaply cloneable handle on one in-memory forge; clones share the same state.
///
/// # Panics
/// The arranging methods (`set_*`, `open_*`, `create_label`, `close_issue`, `add_comment`,
/// `merge_pull`) panic when the repository or issue does not exist: that is a mistake in the
/// calling test or script, not input from the network. The HTTP API answers 404 instead.
#[derive(Clone, Default)]
pub struct ForgeModel {
    state: Arc<Mutex<State>>,
}

/// Why the model refused an operation; handlers turn it into 404/422.
#[derive(Debug, thiserror::Error)]
pub(super) enum ModelError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

pub(super) type ModelResult<T> = Result<T, ModelError>;

#[derive(Default)]
pub(super) struct State {
    /// Base of `html_url`s; set by `serve` so links point at the running server.
    pub(super) web_url: String,
    pub(super) repos: BTreeMap<String, Repo>,
    /// Comment ids are global on both forges (`/issues/comments/{id}` has no issue number).
    pub(super) comments: BTreeMap<u64, Comment>,
    pub(super) statuses: Vec<CommitStatus>,
    pub(super) check_runs: Vec<CheckRun>,
    pub(super) requests: Vec<RecordedRequest>,
    pub(super) tokens_issued: u64,
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
}

#[derive(Clone)]
pub(super) struct Pull {
    pub(super) head_ref: String,
    pub(super) head_sha: String,
    pub(super) base_ref: String,
    pub(super) merged_at: Option<DateTime<Utc>>,
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

    pub(super) fn label(&self, name: &str) -> Option<&Label> {
        self.labels.iter().find(|label| label.name == name)
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

    /// Adds labels by name to an issue, creating unknown ones like GitHub does.
    pub(super) fn add_labels(
        &mut self,
        repo: &str,
        number: u64,
        names: &[String],
    ) -> ModelResult<()> {
        self.repo(repo)?.issue(number)?;
        for name in names {
            self.ensure_label(repo, name, DEFAULT_LABEL_COLOR)?;
        }
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        for name in names {
            if !issue.labels.contains(name) {
                issue.labels.push(name.clone());
            }
        }
        issue.updated_at = Utc::now();
        Ok(())
    }

    pub(super) fn remove_label(&mut self, repo: &str, number: u64, name: &str) -> ModelResult<()> {
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        let before = issue.labels.len();
        issue.labels.retain(|label| label != name);
        if issue.labels.len() == before {
            return Err(ModelError::NotFound(format!("label {name} on #{number}")));
        }
        issue.updated_at = Utc::now();
        Ok(())
    }

    pub(super) fn set_issue_state(
        &mut self,
        repo: &str,
        number: u64,
        state: IssueState,
    ) -> ModelResult<()> {
        let issue = self.repo_mut(repo)?.issue_mut(number)?;
        if issue.state != state {
            let now = Utc::now();
            issue.state = state;
            issue.closed_at = (state == IssueState::Closed).then_some(now);
            issue.updated_at = now;
        }
        Ok(())
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
        let repo = self.repo_mut(repo)?;
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
            },
        );
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
        Ok(comment)
    }

    pub(super) fn update_comment(
        &mut self,
        repo: &str,
        id: u64,
        body: &str,
    ) -> ModelResult<Comment> {
        let comment = self
            .comments
            .get_mut(&id)
            .filter(|comment| comment.repo == repo)
            .ok_or_else(|| ModelError::NotFound(format!("comment {id}")))?;
        comment.body = body.to_owned();
        comment.updated_at = Utc::now();
        Ok(comment.clone())
    }

    pub(super) fn issue_comments(&self, repo: &str, number: u64) -> Vec<Comment> {
        self.comments
            .values()
            .filter(|comment| comment.repo == repo && comment.issue == number)
            .cloned()
            .collect()
    }

    pub(super) fn merge_pull(&mut self, repo: &str, number: u64) -> ModelResult<()> {
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
        issue.state = IssueState::Closed;
        issue.closed_at = Some(now);
        issue.updated_at = now;
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
        }
    }
}

impl ForgeModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, even if a panicking test thread poisoned the lock: the model stays usable
    /// for the remaining assertions rather than cascading panics.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs an arranging operation; a refusal is a bug in the calling test or demo script.
    fn arrange<T>(&self, what: &str, f: impl FnOnce(&mut State) -> ModelResult<T>) -> T {
        match f(&mut self.lock()) {
            Ok(value) => value,
            Err(err) => panic!("sandbox forge: cannot {what}: {err}"),
        }
    }

    pub(super) fn set_web_url(&self, url: &str) {
        self.lock().web_url = url.trim_end_matches('/').to_owned();
    }

    /// Adds (or replaces) a repository. `clone_url` is what both APIs report, e.g. the
    /// `file://` URL of a bare repository on disk.
    pub fn add_repo(&self, owner: &str, name: &str, default_branch: &str, clone_url: &str) {
        let mut state = self.lock();
        let id = state.next_id();
        state.repos.insert(
            format!("{owner}/{name}"),
            Repo {
                id,
                owner: owner.to_owned(),
                name: name.to_owned(),
                default_branch: default_branch.to_owned(),
                clone_url: clone_url.to_owned(),
                issues: BTreeMap::new(),
                labels: Vec::new(),
                permissions: BTreeMap::new(),
            },
        );
    }

    pub fn set_clone_url(&self, repo: &(impl RepoKey + ?Sized), clone_url: &str) {
        let key = repo.repo_key();
        self.arrange("set clone url", |s| {
            s.repo_mut(&key)?.clone_url = clone_url.to_owned();
            Ok(())
        })
    }

    /// Opens an issue with the given labels (created on the repository if new); returns its number.
    pub fn open_issue(
        &self,
        repo: &(impl RepoKey + ?Sized),
        title: &str,
        body: &str,
        labels: &[&str],
        author: &str,
    ) -> u64 {
        let key = repo.repo_key();
        let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        self.arrange("open issue", |s| {
            let number = s.open_issue(&key, title, body, author, None)?;
            s.add_labels(&key, number, &labels)?;
            Ok(number)
        })
    }

    /// Replaces the labels of an issue or pull request.
    pub fn set_labels(&self, repo: &(impl RepoKey + ?Sized), number: u64, labels: &[&str]) {
        let key = repo.repo_key();
        let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        self.arrange("set labels", |s| {
            s.repo_mut(&key)?.issue_mut(number)?.labels.clear();
            s.add_labels(&key, number, &labels)
        })
    }

    /// Creates a repository label (or returns the existing one of that name).
    pub fn create_label(&self, repo: &(impl RepoKey + ?Sized), name: &str, color: &str) -> Label {
        let key = repo.repo_key();
        self.arrange("create label", |s| s.ensure_label(&key, name, color))
    }

    pub fn close_issue(&self, repo: &(impl RepoKey + ?Sized), number: u64) {
        let key = repo.repo_key();
        self.arrange("close issue", |s| {
            s.set_issue_state(&key, number, IssueState::Closed)
        })
    }

    pub fn reopen_issue(&self, repo: &(impl RepoKey + ?Sized), number: u64) {
        let key = repo.repo_key();
        self.arrange("reopen issue", |s| {
            s.set_issue_state(&key, number, IssueState::Open)
        })
    }

    /// Comments on an issue or pull request as `author`; returns the comment id.
    pub fn add_comment(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        author: &str,
        body: &str,
    ) -> u64 {
        let key = repo.repo_key();
        self.arrange("add comment", |s| {
            Ok(s.add_comment(&key, number, author, body)?.id)
        })
    }

    /// Opens a pull request; its number comes from the issue number space.
    pub fn open_pull(&self, repo: &(impl RepoKey + ?Sized), pull: NewPull) -> u64 {
        let key = repo.repo_key();
        let record = Pull {
            head_ref: pull.head_ref,
            head_sha: pull.head_sha,
            base_ref: pull.base_ref,
            merged_at: None,
        };
        self.arrange("open pull request", |s| {
            s.open_issue(&key, &pull.title, &pull.body, &pull.author, Some(record))
        })
    }

    /// Moves a pull request's head, as a push to its branch would.
    pub fn set_pull_head(&self, repo: &(impl RepoKey + ?Sized), number: u64, head_sha: &str) {
        let key = repo.repo_key();
        self.arrange("set pull request head", |s| {
            let issue = s.repo_mut(&key)?.issue_mut(number)?;
            let pull = issue
                .pull
                .as_mut()
                .ok_or_else(|| ModelError::NotFound(format!("pull request #{number}")))?;
            pull.head_sha = head_sha.to_owned();
            issue.updated_at = Utc::now();
            Ok(())
        })
    }

    /// Merges an open pull request: it becomes closed with `merged_at` set.
    pub fn merge_pull(&self, repo: &(impl RepoKey + ?Sized), number: u64) {
        let key = repo.repo_key();
        self.arrange("merge pull request", |s| s.merge_pull(&key, number))
    }

    pub fn set_permission(
        &self,
        repo: &(impl RepoKey + ?Sized),
        login: &str,
        permission: Permission,
    ) {
        let key = repo.repo_key();
        self.arrange("set permission", |s| {
            s.repo_mut(&key)?
                .permissions
                .insert(login.to_owned(), permission);
            Ok(())
        })
    }

    /// The issue (or pull request, seen as an issue) as the forge would report it.
    pub fn issue(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Option<IssueSnapshot> {
        let state = self.lock();
        let repo = state.repo(&repo.repo_key()).ok()?;
        let issue = repo.issue(number).ok()?;
        Some(state.issue_snapshot(repo, issue))
    }

    pub fn pull(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Option<PullSnapshot> {
        let state = self.lock();
        let repo = state.repo(&repo.repo_key()).ok()?;
        let issue = repo.pull(number).ok()?;
        let pull = issue.pull.as_ref()?;
        Some(PullSnapshot {
            number,
            title: issue.title.clone(),
            body: issue.body.clone(),
            state: issue.pull_state(),
            head_ref: pull.head_ref.clone(),
            head_sha: pull.head_sha.clone(),
            base_ref: pull.base_ref.clone(),
            author: issue.author.clone(),
            html_url: state.html_url(&repo.full_name(), "pull", number),
            updated_at: issue.updated_at,
        })
    }

    /// Comments of an issue or pull request, oldest first.
    pub fn comments(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Vec<CommentSnapshot> {
        self.lock()
            .issue_comments(&repo.repo_key(), number)
            .into_iter()
            .map(|c| CommentSnapshot {
                id: c.id,
                author: c.author,
                body: c.body,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect()
    }

    pub fn labels(&self, repo: &(impl RepoKey + ?Sized)) -> Vec<Label> {
        let state = self.lock();
        state
            .repo(&repo.repo_key())
            .map(|r| r.labels.clone())
            .unwrap_or_default()
    }

    pub fn permission(&self, repo: &(impl RepoKey + ?Sized), login: &str) -> Option<Permission> {
        let state = self.lock();
        state.repo(&repo.repo_key()).ok()?.permission(login)
    }

    /// Commit statuses posted for `sha` (any repository), oldest first.
    pub fn statuses(&self, sha: &str) -> Vec<CommitStatus> {
        let state = self.lock();
        state
            .statuses
            .iter()
            .filter(|s| s.sha == sha)
            .cloned()
            .collect()
    }

    /// Check runs created for `sha` (any repository), in creation order.
    pub fn check_runs(&self, sha: &str) -> Vec<CheckRun> {
        let state = self.lock();
        state
            .check_runs
            .iter()
            .filter(|c| c.head_sha == sha)
            .cloned()
            .collect()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}
