//! The test-facing handle to arrange and inspect the sandbox forge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;

use super::records::{ModelError, ModelResult, Pull, Repo, State};
use super::types::{
    CheckRun, CommitStatus, Fault, Label, LabelEvent, MergeRecord, NewPull, Permission, PullReview,
    RecordedRequest, RepoKey, WebhookDelivery,
};
use crate::forge::{CommentSnapshot, IssueSnapshot, IssueState, PullSnapshot};

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
        let org_labels = state.org_labels.get(owner).cloned().unwrap_or_default();
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
                org_labels,
                permissions: BTreeMap::new(),
            },
        );
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
            s.add_labels(&key, number, &labels, author)?;
            Ok(number)
        })
    }

    /// Records that `blocker` (another issue, possibly in another repository) blocks `number`,
    /// as Gitea's issue dependencies do.
    pub fn add_blocker(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        blocker_repo: &(impl RepoKey + ?Sized),
        blocker: u64,
    ) {
        let (key, blocker_key) = (repo.repo_key(), blocker_repo.repo_key());
        self.arrange("add blocker", |s| {
            s.repo(&blocker_key)?.issue(blocker)?;
            s.repo_mut(&key)?
                .issue_mut(number)?
                .blocked_by
                .push((blocker_key.clone(), blocker));
            Ok(())
        })
    }

    /// Adds labels to an issue or pull request as `actor` (the webhook's `sender`).
    pub fn add_labels(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        labels: &[&str],
        actor: &str,
    ) {
        let key = repo.repo_key();
        let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        self.arrange("add labels", |s| s.add_labels(&key, number, &labels, actor))
    }

    /// Replaces the labels of an issue or pull request.
    pub fn set_labels(&self, repo: &(impl RepoKey + ?Sized), number: u64, labels: &[&str]) {
        let key = repo.repo_key();
        let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        self.arrange("set labels", |s| {
            let actor = s.owner_of(&key)?;
            s.replace_labels(&key, number, &labels, &actor)
        })
    }

    /// Creates a repository label (or returns the existing one of that name).
    pub fn create_label(&self, repo: &(impl RepoKey + ?Sized), name: &str, color: &str) -> Label {
        let key = repo.repo_key();
        self.arrange("create label", |s| s.ensure_label(&key, name, color))
    }

    /// Creates a Gitea organisation label on `org`, usable on every repository it owns.
    pub fn create_org_label(&self, org: &str, name: &str, color: &str) -> Label {
        self.arrange("create organisation label", |s| {
            let label = Label {
                id: s.next_id(),
                name: name.to_owned(),
                color: color.trim_start_matches('#').to_owned(),
            };
            s.org_labels
                .entry(org.to_owned())
                .or_default()
                .push(label.clone());
            for repo in s.repos.values_mut().filter(|r| r.owner == org) {
                repo.org_labels.push(label.clone());
            }
            Ok(label)
        })
    }

    pub fn close_issue(&self, repo: &(impl RepoKey + ?Sized), number: u64) {
        let key = repo.repo_key();
        self.arrange("close issue", |s| {
            let actor = s.owner_of(&key)?;
            s.set_issue_state(&key, number, IssueState::Closed, &actor)
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

    /// Makes an issue's comments older by `by`, as if written that long ago.
    pub fn backdate_comments(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        by: chrono::Duration,
    ) {
        self.lock().backdate_comments(&repo.repo_key(), number, by);
    }

    /// Deletes comment `id` as `actor`.
    pub fn delete_comment(&self, repo: &(impl RepoKey + ?Sized), id: u64, actor: &str) {
        let key = repo.repo_key();
        self.arrange("delete comment", |s| s.delete_comment(&key, id, actor))
    }

    /// Opens a pull request; its number comes from the issue number space.
    pub fn open_pull(&self, repo: &(impl RepoKey + ?Sized), pull: NewPull) -> u64 {
        let key = repo.repo_key();
        let record = Pull {
            head_ref: pull.head_ref,
            head_sha: pull.head_sha,
            base_ref: pull.base_ref,
            merged_at: None,
            draft: false,
        };
        self.arrange("open pull request", |s| {
            s.open_issue(&key, &pull.title, &pull.body, &pull.author, Some(record))
        })
    }

    /// Whether a pull request is a (GitHub) draft.
    pub fn pull_is_draft(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Option<bool> {
        let state = self.lock();
        let issue = state.repo(&repo.repo_key()).ok()?.pull(number).ok()?;
        issue.pull.as_ref().map(|p| p.draft)
    }

    /// Moves a pull request's head, as a push to its branch would. (For a repository on disk
    /// whose branch exists, reads follow the branch instead.)
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
        self.arrange("merge pull request", |s| {
            let actor = s.owner_of(&key)?;
            s.merge_pull(&key, number, &actor)
        })
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

    /// The pull request as the forge would report it. An open pull request of a repository on
    /// disk has its head where its branch now points there, as if the forge had seen the push.
    pub fn pull(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Option<PullSnapshot> {
        let key = repo.repo_key();
        super::git::refresh_pull_head_blocking(self, &key, number);
        let state = self.lock();
        let repo = state.repo(&key).ok()?;
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

    /// Reviews a pull request as `author`, on its current head; returns the review id.
    pub fn add_review(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        author: &str,
        state: crate::forge::ReviewState,
        body: &str,
    ) -> u64 {
        let key = repo.repo_key();
        super::git::refresh_pull_head_blocking(self, &key, number);
        self.arrange("add review", |s| {
            s.add_review(&key, number, author, state, body, None)
        })
    }

    /// Reviews a pull request as `author` on `commit`, which need not be its head (GitHub's
    /// `commit_id` when creating a review; a review given before a later push looks the same).
    pub fn add_review_on(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        review: (&str, crate::forge::ReviewState, &str),
        commit: &str,
    ) -> u64 {
        let key = repo.repo_key();
        let (author, state, body) = review;
        self.arrange("add review", |s| {
            s.add_review(&key, number, author, state, body, Some(commit))
        })
    }

    /// Comments on line `line` of `path` in a pull request's diff as `author` (a review of
    /// its own, as on both forges); returns the comment id.
    pub fn add_line_comment(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
        author: &str,
        (path, line): (&str, u64),
        body: &str,
    ) -> u64 {
        let key = repo.repo_key();
        super::git::refresh_pull_head_blocking(self, &key, number);
        self.arrange("add line comment", |s| {
            s.add_line_comment(&key, number, author, (path, line), body, None)
        })
    }

    /// Line comments of a pull request, oldest first.
    pub fn line_comments(
        &self,
        repo: &(impl RepoKey + ?Sized),
        number: u64,
    ) -> Vec<super::types::LineComment> {
        self.lock().pull_line_comments(&repo.repo_key(), number)
    }

    /// Reviews of a pull request, oldest first.
    pub fn reviews(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Vec<PullReview> {
        self.lock().pull_reviews(&repo.repo_key(), number)
    }

    /// Answers matching API requests with a failure from now on (see [`Fault`]).
    pub fn inject_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Troubles matching API requests from now on: latency, hangs, rate limits (see
    /// [`super::Disruption`]).
    pub fn disrupt(&self, disruption: super::Disruption) {
        self.lock().disruptions.push(disruption);
    }

    /// How many requests with this method (`*`: any) and a path containing `path_contains`
    /// the sandbox received, disrupted or refused ones included.
    pub fn request_count(&self, method: &str, path_contains: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| (method == "*" || r.method == method) && r.path.contains(path_contains))
            .count()
    }

    /// Merges done through the APIs (not [`ForgeModel::merge_pull`]), oldest first.
    pub fn merges(&self) -> Vec<MergeRecord> {
        self.lock().merges.clone()
    }

    /// Announces every later change to an issue or pull request (opened, edited, labeled,
    /// unlabeled, closed, reopened, merged, commented) as a signed GitHub-style webhook delivery
    /// POSTed to `url` (an `http://` URL, e.g. a Forgehand server's `/webhooks/github`), sent in
    /// order, in the background. Replaces any earlier target. Needs a Tokio runtime.
    pub fn set_webhook(&self, url: &str, secret: &str) -> Result<(), url::ParseError> {
        let url = url::Url::parse(url)?;
        let outbox = super::webhooks::start(Arc::downgrade(&self.state), url, secret.as_bytes());
        self.lock().webhooks = Some(outbox);
        Ok(())
    }

    /// Stops sending webhook deliveries (those already queued are still sent).
    pub fn clear_webhook(&self) {
        self.lock().webhooks = None;
    }

    /// The webhook deliveries sent so far (the last thousand), oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().webhook_log.clone()
    }

    /// Waits until every queued webhook delivery has been answered or given up on.
    pub async fn webhooks_settled(&self) {
        while self.lock().webhooks_pending > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Who the sandbox web page acts as (labels, comments, merges); the repository owner when
    /// unset.
    pub fn set_web_user(&self, login: &str) {
        self.lock().ui_user = Some(login.to_owned());
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// GitHub Apps registered through the manifest flow, oldest first.
    pub fn github_apps(&self) -> Vec<super::SandboxApp> {
        self.lock().apps.created.clone()
    }

    /// What the GitHub App installation holds from now on: `(permission, read|write)` pairs and
    /// the events it is subscribed to.
    pub fn set_installation_grants(&self, permissions: &[(&str, &str)], events: &[&str]) {
        self.lock().apps.grant(permissions, events);
    }

    /// Makes every manifest code issued so far `by` older (an hour expires it).
    pub fn age_manifest_codes(&self, by: chrono::Duration) {
        self.lock().apps.age_codes(by);
    }

    /// Gitea webhooks created through the API, oldest first.
    pub fn gitea_hooks(&self) -> Vec<super::GiteaHook> {
        self.lock().gitea_hooks.clone()
    }

    /// The labels added to and removed from an issue, with who did it, oldest first.
    pub fn label_events(&self, repo: &(impl RepoKey + ?Sized), number: u64) -> Vec<LabelEvent> {
        self.lock().issue_label_events(&repo.repo_key(), number)
    }
}
