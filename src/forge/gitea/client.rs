//! The Gitea/Forgejo REST client (`/api/v1`, token auth).
//!
//! HTTP goes through octocrab's raw request helpers: they are a plain JSON-over-HTTP(S) client
//! (hyper + rustls) that this crate already depends on, and reusing them keeps one HTTP stack.
//! Nothing GitHub-specific is used: the base URI is Gitea's API root and the Authorization header
//! is Gitea's `token <t>`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;

use crate::config::repo::MergeMethod;
use crate::config::repo::Permission;
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::guard::{Guard, GuardSettings};
use crate::forge::rest::{api_error, encode, path};
use crate::forge::text::clean;
use crate::forge::transport::{self, Credentials};
use crate::forge::{
    CheckRunRequest, CheckState, CommentSnapshot, CommitStatusRequest, Forge, ForgeError,
    GitCredential, IssueSnapshot, IssueState, NewPullRequest, PullSnapshot, PullState, RepoInfo,
    Review, ReviewComment, ReviewState,
};

/// Gitea's default `MAX_RESPONSE_ITEMS`, the largest page it serves unless configured otherwise.
const PAGE_LIMIT: usize = 50;

/// Most timeline pages read for one issue (comments count too: 5,000 entries).
const MAX_TIMELINE_PAGES: usize = 100;

/// Color of labels Forgehand creates because they are missing on the repository.
const NEW_LABEL_COLOR: &str = "#ededed";

/// Gitea has no draft flag: a title starting with one of its default `WORK_IN_PROGRESS_PREFIXES`
/// marks a pull request as work in progress. Forgehand writes the first one.
const WIP_PREFIXES: [&str; 2] = ["WIP:", "[WIP]"];

/// Whether Gitea treats a pull request with this title as work in progress (case-insensitive,
/// as Gitea compares).
fn is_wip(title: &str) -> bool {
    WIP_PREFIXES.iter().any(|prefix| {
        title
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    })
}

/// `title` marked as work in progress, unless it already is.
fn wip_title(title: &str) -> String {
    if is_wip(title) {
        title.to_owned()
    } else {
        format!("{} {title}", WIP_PREFIXES[0])
    }
}

/// [`Forge`] for Gitea and Forgejo.
pub struct GiteaForge {
    pub(super) http: Octocrab,
    token: Option<String>,
    guard: Guard,
}

impl GiteaForge {
    /// A client for the instance at `base_url` (e.g. `https://gitea.example.com`), with an access
    /// token, or anonymous (public repositories, read only) without one; default timeouts.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ForgeError> {
        Self::with_settings(base_url, token, GuardSettings::default())
    }

    /// [`GiteaForge::new`] with the timeouts and write spacing given.
    pub fn with_settings(
        base_url: &str,
        token: Option<String>,
        settings: GuardSettings,
    ) -> Result<Self, ForgeError> {
        let api = format!("{}/api/v1", base_url.trim_end_matches('/'));
        let guard = Guard::new(ForgeKind::Gitea, settings);
        let header = Credentials::Header(token.as_ref().map(|t| format!("token {t}")));
        let http = transport::build(&api, header, &guard)?;
        Ok(Self { http, token, guard })
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        route: &str,
        what: &str,
    ) -> Result<T, ForgeError> {
        self.http
            .get::<T, _, ()>(route, None)
            .await
            .map_err(|err| api_error(err, what))
    }

    /// One page of a listing and the total Gitea reports in `X-Total-Count`, if it does.
    async fn get_page<T: DeserializeOwned>(
        &self,
        route: &str,
        what: &str,
    ) -> Result<(Vec<T>, Option<usize>), ForgeError> {
        let response = self
            .http
            ._get(route)
            .await
            .map_err(|err| api_error(err, what))?;
        let response = octocrab::map_github_error(response)
            .await
            .map_err(|err| api_error(err, what))?;
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = self
            .http
            .body_to_string(response)
            .await
            .map_err(|err| api_error(err, what))?;
        let items = serde_json::from_str(&body).map_err(|err| ForgeError::Decode {
            what: what.to_owned(),
            message: err.to_string(),
        })?;
        Ok((items, total))
    }

    /// Every item of a paged listing. Stops at the reported total when Gitea sends one (an
    /// instance with a smaller `MAX_RESPONSE_ITEMS` serves short pages that are not the last),
    /// otherwise at the first short page.
    async fn get_all<T: DeserializeOwned>(
        &self,
        route: &str,
        what: &str,
    ) -> Result<Vec<T>, ForgeError> {
        let separator = if route.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1.. {
            let paged = format!("{route}{separator}limit={PAGE_LIMIT}&page={page}");
            let (batch, total): (Vec<T>, _) = self.get_page(&paged, what).await?;
            let count = batch.len();
            items.extend(batch);
            let done = match total {
                Some(total) => items.len() >= total || count == 0,
                None => count < PAGE_LIMIT,
            };
            if done {
                break;
            }
        }
        Ok(items)
    }

    /// The ids of `names` among the repository's labels and its organisation's; missing ones
    /// are created on the repository when `create` is set (GitHub creates unknown labels on
    /// add, Gitea refuses them), else skipped.
    async fn label_ids(
        &self,
        repo: &RepoRef,
        names: &[String],
        create: bool,
    ) -> Result<Vec<u64>, ForgeError> {
        let what = format!("labels of {repo}");
        let route = format!("/repos/{}/labels", path(repo));
        let own = self.get_all::<Label>(&route, &what).await?;
        let org = self.org_labels(repo).await?;
        // A repository's own label wins over an organisation label of the same name.
        let known: HashMap<String, u64> = org
            .into_iter()
            .chain(own)
            .map(|label| (label.name, label.id))
            .collect();
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            match known.get(name) {
                Some(id) => ids.push(*id),
                None if create => ids.push(self.create_label(repo, name).await?),
                None => {}
            }
        }
        Ok(ids)
    }

    /// The labels of the repository's owner when it is an organisation (Gitea answers 404 for
    /// a user).
    async fn org_labels(&self, repo: &RepoRef) -> Result<Vec<Label>, ForgeError> {
        let route = format!("/orgs/{}/labels", encode(&repo.owner));
        let what = format!("labels of organisation {}", repo.owner);
        match self.get_all::<Label>(&route, &what).await {
            Err(ForgeError::NotFound(_)) => Ok(Vec::new()),
            found => found,
        }
    }

    async fn create_label(&self, repo: &RepoRef, name: &str) -> Result<u64, ForgeError> {
        let route = format!("/repos/{}/labels", path(repo));
        let what = format!("new label `{name}` on {repo}");
        let body = json!({ "name": name, "color": NEW_LABEL_COLOR });
        let created: Label = self
            .http
            .post(&route, Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(created.id)
    }
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Repository {
    default_branch: String,
    clone_url: String,
    html_url: String,
}

#[derive(Deserialize)]
struct Label {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    labels: Option<Vec<Label>>,
    user: Option<User>,
    html_url: String,
    updated_at: DateTime<Utc>,
    /// The issue's comment count.
    #[serde(default)]
    comments: Option<u64>,
    /// Non-null on pull requests seen through the issues API.
    #[serde(default)]
    pull_request: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    user: Option<User>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    #[serde(default)]
    sha: Option<String>,
    /// `null` when the head repository (a fork) was deleted.
    #[serde(default)]
    repo: Option<BranchRepo>,
}

#[derive(Deserialize)]
struct BranchRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct CollaboratorPermission {
    /// `owner`, `admin`, `write`, `read` or `none`.
    permission: String,
}

impl CollaboratorPermission {
    fn level(&self) -> Result<Option<Permission>, String> {
        match self.permission.as_str() {
            "owner" | "admin" => Ok(Some(Permission::Admin)),
            "write" => Ok(Some(Permission::Write)),
            "read" => Ok(Some(Permission::Read)),
            "none" => Ok(None),
            other => Err(format!("unknown permission `{other}`")),
        }
    }
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    merged: bool,
    merged_at: Option<DateTime<Utc>>,
    head: Branch,
    base: Branch,
    user: Option<User>,
    html_url: String,
    updated_at: DateTime<Utc>,
}

/// One entry of an issue's timeline (Gitea's `TimelineComment`); only label changes are read.
#[derive(Deserialize)]
struct TimelineEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    label: Option<Label>,
    /// `"1"` when the label was added, empty when removed.
    #[serde(default)]
    body: Option<String>,
}

impl TimelineEntry {
    fn adds(&self, label: &str) -> bool {
        self.kind == "label"
            && self.body.as_deref() == Some("1")
            && self.label.as_ref().is_some_and(|l| l.name == label)
    }
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

fn login(user: Option<User>) -> String {
    // Gitea reports deleted accounts as "Ghost".
    user.map_or_else(|| "Ghost".to_owned(), |u| u.login)
}

impl Issue {
    fn snapshot(self) -> IssueSnapshot {
        IssueSnapshot {
            number: self.number,
            title: clean(self.title),
            body: clean(self.body.unwrap_or_default()),
            state: if self.state == "open" {
                IssueState::Open
            } else {
                IssueState::Closed
            },
            labels: self
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.name)
                .collect(),
            author: login(self.user),
            html_url: self.html_url,
            updated_at: self.updated_at,
            comments: self.comments,
        }
    }
}

impl Pull {
    fn snapshot(self) -> PullSnapshot {
        let state =
            PullState::from_forge(self.state == "open", self.merged, self.merged_at.is_some());
        PullSnapshot {
            number: self.number,
            title: clean(self.title),
            body: clean(self.body.unwrap_or_default()),
            state,
            head_ref: self.head.name,
            head_sha: self.head.sha.unwrap_or_default(),
            base_ref: self.base.name,
            author: login(self.user),
            html_url: self.html_url,
            updated_at: self.updated_at,
        }
    }
}

#[async_trait]
impl Forge for GiteaForge {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Gitea
    }

    async fn repository(&self, repo: &RepoRef) -> Result<RepoInfo, ForgeError> {
        let route = format!("/repos/{}", path(repo));
        let found: Repository = self.get(&route, &format!("repository {repo}")).await?;
        Ok(RepoInfo {
            repo: repo.clone(),
            default_branch: found.default_branch,
            clone_url: found.clone_url,
            html_url: found.html_url,
        })
    }

    async fn open_issues(&self, repo: &RepoRef) -> Result<Vec<IssueSnapshot>, ForgeError> {
        let route = format!("/repos/{}/issues?state=open&type=issues", path(repo));
        let issues: Vec<Issue> = self
            .get_all(&route, &format!("open issues of {repo}"))
            .await?;
        // `type=issues` already excludes pull requests; the filter guards against servers
        // that ignore the parameter.
        Ok(issues
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .map(Issue::snapshot)
            .collect())
    }

    async fn blocked_by(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<(RepoRef, u64)>, ForgeError> {
        let route = format!("/repos/{}/issues/{number}/dependencies", path(repo));
        let what = format!("dependencies of {repo}#{number}");
        // Paged like every listing: an issue may have more blockers than one page holds.
        let issues: Vec<serde_json::Value> = match self.get_all(&route, &what).await {
            Ok(issues) => issues,
            // Not on this forge (version), or dependencies switched off.
            Err(ForgeError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(issues
            .iter()
            .filter_map(|v| {
                let number = v.get("number")?.as_u64()?;
                let r = v.get("repository")?;
                let owner = r.get("owner")?.as_str()?;
                let name = r.get("name")?.as_str()?;
                Some((RepoRef::new(repo.forge, owner, name), number))
            })
            .collect())
    }

    async fn issue(&self, repo: &RepoRef, number: u64) -> Result<IssueSnapshot, ForgeError> {
        let route = format!("/repos/{}/issues/{number}", path(repo));
        let issue: Issue = self.get(&route, &format!("issue {repo}#{number}")).await?;
        Ok(issue.snapshot())
    }

    async fn issue_comments(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<CommentSnapshot>, ForgeError> {
        // Gitea returns all comments of an issue at once; this endpoint is not paged.
        let route = format!("/repos/{}/issues/{number}/comments", path(repo));
        let comments: Vec<Comment> = self
            .get(&route, &format!("comments of {repo}#{number}"))
            .await?;
        Ok(comments
            .into_iter()
            .map(|c| CommentSnapshot {
                id: c.id,
                author: login(c.user),
                body: clean(c.body.unwrap_or_default()),
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect())
    }

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullSnapshot, ForgeError> {
        let route = format!("/repos/{}/pulls/{number}", path(repo));
        let pull: Pull = self
            .get(&route, &format!("pull request {repo}#{number}"))
            .await?;
        Ok(pull.snapshot())
    }

    async fn git_credential(&self, _repo: &RepoRef) -> Result<Option<GitCredential>, ForgeError> {
        // Gitea takes an access token as the basic-auth password; the username is not checked
        // against the token's owner.
        Ok(self.token.as_ref().map(|token| GitCredential {
            username: "forgehand".to_owned(),
            password: token.clone(),
        }))
    }

    async fn add_labels(
        &self,
        repo: &RepoRef,
        number: u64,
        labels: &[String],
    ) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        // Label ids rather than names: names are only accepted since Gitea 1.19.
        let ids = self.label_ids(repo, labels, true).await?;
        let route = format!("/repos/{}/issues/{number}/labels", path(repo));
        let what = format!("labels of {repo}#{number}");
        let _: IgnoredAny = self
            .http
            .post(&route, Some(&json!({ "labels": ids })))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn remove_label(
        &self,
        repo: &RepoRef,
        number: u64,
        label: &str,
    ) -> Result<(), ForgeError> {
        let ids = self.label_ids(repo, &[label.to_owned()], false).await?;
        let Some(id) = ids.first() else {
            // No such label on the repository, so not on the issue either: nothing to remove,
            // provided the issue exists.
            return self.issue(repo, number).await.map(|_| ());
        };
        let route = format!("/repos/{}/issues/{number}/labels/{id}", path(repo));
        let what = format!("label `{label}` of {repo}#{number}");
        // Gitea answers 204 with no body, which the typed helpers would fail to parse.
        let response = self
            .http
            ._delete(route.as_str(), None::<&()>)
            .await
            .map_err(|err| api_error(err, &what))?;
        octocrab::map_github_error(response)
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn create_issue(
        &self,
        repo: &RepoRef,
        title: &str,
        body: &str,
        labels: &[String],
    ) -> Result<u64, ForgeError> {
        #[derive(Deserialize)]
        struct CreatedIssue {
            number: u64,
        }
        // Label ids, created when missing: Gitea refuses unknown labels (and names before 1.19).
        let ids = if labels.is_empty() {
            Vec::new()
        } else {
            self.label_ids(repo, labels, true).await?
        };
        let route = format!("/repos/{}/issues", path(repo));
        let what = format!("new issue on {repo}");
        let created: CreatedIssue = self
            .http
            .post(
                &route,
                Some(&json!({ "title": title, "body": body, "labels": ids })),
            )
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(created.number)
    }

    async fn create_comment(
        &self,
        repo: &RepoRef,
        number: u64,
        body: &str,
    ) -> Result<u64, ForgeError> {
        let route = format!("/repos/{}/issues/{number}/comments", path(repo));
        let what = format!("new comment on {repo}#{number}");
        let created: Created = self
            .http
            .post(&route, Some(&json!({ "body": body })))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(created.id)
    }

    async fn update_comment(
        &self,
        repo: &RepoRef,
        comment_id: u64,
        body: &str,
    ) -> Result<(), ForgeError> {
        let route = format!("/repos/{}/issues/comments/{comment_id}", path(repo));
        let what = format!("comment {comment_id} on {repo}");
        let _: IgnoredAny = self
            .http
            .patch(&route, Some(&json!({ "body": body })))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn labelled_by(
        &self,
        repo: &RepoRef,
        number: u64,
        label: &str,
    ) -> Result<Option<String>, ForgeError> {
        // The timeline comes oldest first, and its `X-Total-Count` counts only the page served
        // (Gitea 1.22), so every page is read, up to an empty one or one shorter than the
        // first (an instance may serve fewer than asked).
        let what = format!("timeline of {repo}#{number}");
        let mut latest = None;
        let mut page_size = None;
        for page in 1..=MAX_TIMELINE_PAGES {
            let route = format!(
                "/repos/{}/issues/{number}/timeline?limit={PAGE_LIMIT}&page={page}",
                path(repo)
            );
            let (batch, _): (Vec<TimelineEntry>, _) = self.get_page(&route, &what).await?;
            let count = batch.len();
            if let Some(found) = batch.into_iter().rev().find(|e| e.adds(label)) {
                latest = Some(login(found.user));
            }
            let size = *page_size.get_or_insert(count);
            if count == 0 || count < size {
                return Ok(latest);
            }
        }
        Err(ForgeError::Decode {
            what,
            message: format!("more than {MAX_TIMELINE_PAGES} pages"),
        })
    }

    async fn permission(
        &self,
        repo: &RepoRef,
        login: &str,
    ) -> Result<Option<Permission>, ForgeError> {
        let route = format!(
            "/repos/{}/collaborators/{}/permission",
            path(repo),
            encode(login)
        );
        let what = format!("permission of `{login}` on {repo}");
        let found: CollaboratorPermission = match self.get(&route, &what).await {
            Ok(found) => found,
            // Gitea answers 404 for an unknown user; one that cannot be seen has no
            // permission either, which is the safe answer for a trigger check.
            Err(ForgeError::NotFound(_)) => return Ok(None),
            // Gitea shows others' permissions only to a repository admin (or site admin).
            Err(ForgeError::Api { status: 403, .. }) => {
                return Err(ForgeError::Auth(format!(
                    "Gitea refused to show the permission of `{login}` on {repo}: it answers \
                     permission queries only to a repository admin, so the user of \
                     FORGEHAND_GITEA_TOKEN needs the admin role on {repo} (or its organisation)"
                )));
            }
            Err(err) => return Err(err),
        };
        found
            .level()
            .map_err(|message| ForgeError::Decode { what, message })
    }

    async fn find_open_pull(
        &self,
        repo: &RepoRef,
        branch: &str,
    ) -> Result<Option<PullSnapshot>, ForgeError> {
        // Gitea's listing cannot filter by head branch: read the open ones and pick.
        let route = format!("/repos/{}/pulls?state=open", path(repo));
        let what = format!("open pull requests of {repo}");
        let pulls: Vec<Pull> = self.get_all(&route, &what).await?;
        let full_name = repo.full_name();
        Ok(pulls
            .into_iter()
            .filter(|p| p.state == "open" && !p.merged && p.head.name == branch)
            .find(|p| {
                p.head
                    .repo
                    .as_ref()
                    .is_none_or(|r| r.full_name.eq_ignore_ascii_case(&full_name))
            })
            .map(Pull::snapshot))
    }

    async fn create_pull(
        &self,
        repo: &RepoRef,
        pull: &NewPullRequest,
    ) -> Result<PullSnapshot, ForgeError> {
        let route = format!("/repos/{}/pulls", path(repo));
        let what = format!("new pull request on {repo} from `{}`", pull.head);
        let title = if pull.draft {
            wip_title(&pull.title)
        } else {
            pull.title.clone()
        };
        let body = json!({
            "title": title,
            "body": pull.body,
            "head": pull.head,
            "base": pull.base,
        });
        let created: Pull = self
            .http
            .post(&route, Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(created.snapshot())
    }

    async fn update_pull(
        &self,
        repo: &RepoRef,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<(), ForgeError> {
        // The draft state lives in the title on Gitea: keep a work-in-progress pull request one.
        let current = self.pull_request(repo, number).await?;
        let title = if is_wip(&current.title) {
            wip_title(title)
        } else {
            title.to_owned()
        };
        let route = format!("/repos/{}/pulls/{number}", path(repo));
        let what = format!("pull request {repo}#{number}");
        let _: IgnoredAny = self
            .http
            .patch(&route, Some(&json!({ "title": title, "body": body })))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    fn supports_check_runs(&self) -> bool {
        false
    }

    fn health(&self) -> Option<crate::forge::health::ForgeHealth> {
        Some(self.guard.health())
    }

    async fn create_check_run(
        &self,
        repo: &RepoRef,
        _head_sha: &str,
        _run: &CheckRunRequest,
    ) -> Result<u64, ForgeError> {
        Err(no_check_runs(repo))
    }

    async fn update_check_run(
        &self,
        repo: &RepoRef,
        _id: u64,
        _run: &CheckRunRequest,
    ) -> Result<(), ForgeError> {
        Err(no_check_runs(repo))
    }

    async fn set_commit_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &CommitStatusRequest,
    ) -> Result<(), ForgeError> {
        let route = format!("/repos/{}/statuses/{}", path(repo), encode(sha));
        let what = format!("commit status `{}` on {repo}@{sha}", status.context);
        let mut body = json!({
            "state": status.state.as_str(),
            "context": status.context,
            "description": status.description_trimmed(),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        let _: IgnoredAny = self
            .http
            .post(&route, Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn reviews(&self, repo: &RepoRef, number: u64) -> Result<Vec<Review>, ForgeError> {
        let route = format!("/repos/{}/pulls/{number}/reviews", path(repo));
        let what = format!("reviews of {repo}#{number}");
        let reviews: Vec<PullReview> = self.get_all(&route, &what).await?;
        Ok(reviews.into_iter().filter_map(PullReview::review).collect())
    }

    async fn review_comments(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<ReviewComment>, ForgeError> {
        // Gitea lists line comments per review only.
        let route = format!("/repos/{}/pulls/{number}/reviews", path(repo));
        let what = format!("review comments of {repo}#{number}");
        let reviews: Vec<ReviewId> = self.get_all(&route, &what).await?;
        let mut comments = Vec::new();
        for review in reviews.into_iter().filter(|r| r.comments_count > 0) {
            let route = format!(
                "/repos/{}/pulls/{number}/reviews/{}/comments",
                path(repo),
                review.id
            );
            let batch: Vec<LineComment> = self.get(&route, &what).await?;
            comments.extend(batch.into_iter().map(LineComment::comment));
        }
        comments.sort_by_key(|c| (c.created_at, c.id));
        Ok(comments)
    }

    async fn reply_review_comment(
        &self,
        repo: &RepoRef,
        number: u64,
        to: &ReviewComment,
        body: &str,
    ) -> Result<(), ForgeError> {
        // Gitea has no replies: a comment on the same line joins that line's conversation.
        let route = format!("/repos/{}/pulls/{number}/reviews", path(repo));
        let what = format!("reply to review comment {} on {repo}#{number}", to.id);
        let request = json!({
            "event": "COMMENT",
            "body": "",
            "comments": [{
                "path": to.path,
                "body": body,
                "new_position": to.line.unwrap_or(0),
            }],
        });
        let _: IgnoredAny = self
            .http
            .post(&route, Some(&request))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn check_states(
        &self,
        repo: &RepoRef,
        sha: &str,
    ) -> Result<Vec<(String, CheckState)>, ForgeError> {
        let route = format!("/repos/{}/commits/{}/statuses", path(repo), encode(sha));
        let what = format!("commit statuses of {repo}@{sha}");
        let statuses: Vec<StatusEntry> = self.get_all(&route, &what).await?;
        // The latest (highest id) per context, whatever order the listing has.
        let mut latest: HashMap<String, (u64, CheckState)> = HashMap::new();
        for status in statuses {
            let newer = latest
                .get(&status.context)
                .is_none_or(|(id, _)| *id < status.id);
            if newer {
                let state = status_state(status.state());
                latest.insert(status.context, (status.id, state));
            }
        }
        let mut states: Vec<(String, CheckState)> = latest
            .into_iter()
            .map(|(context, (_, state))| (context, state))
            .collect();
        states.sort();
        Ok(states)
    }

    async fn merge_pull(
        &self,
        repo: &RepoRef,
        number: u64,
        method: MergeMethod,
        sha: &str,
    ) -> Result<(), ForgeError> {
        let route = format!("/repos/{}/pulls/{number}/merge", path(repo));
        let what = format!("merge of {repo}#{number}");
        let style = match method {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        };
        // `head_commit_id` makes Gitea refuse the merge when the head moved since `sha`. The
        // style goes under both spellings: Gitea 1.22's API description requires `Do`, later
        // ones `do` (Gitea itself matches either, as Go's JSON decoding ignores case).
        let body = merge_body(style, sha);
        // Gitea answers 200 with an empty body (405 when it cannot merge).
        let response = self
            .http
            ._post(route.as_str(), Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        octocrab::map_github_error(response)
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }
}

fn merge_body(style: &str, sha: &str) -> serde_json::Value {
    json!({ "Do": style, "do": style, "head_commit_id": sha })
}

fn no_check_runs(repo: &RepoRef) -> ForgeError {
    ForgeError::Unsupported(format!(
        "check runs on {repo}: Gitea/Forgejo has commit statuses only"
    ))
}

/// A commit status as a gate sees it: Gitea's `warning` does not block.
fn status_state(state: &str) -> CheckState {
    match state {
        "success" | "warning" => CheckState::Success,
        "pending" => CheckState::Pending,
        _ => CheckState::Failure,
    }
}

#[derive(Deserialize)]
struct StatusEntry {
    id: u64,
    /// Gitea answers `status`; older versions wrote `state`.
    #[serde(alias = "state")]
    status: String,
    context: String,
}

impl StatusEntry {
    fn state(&self) -> &str {
        &self.status
    }
}

/// A review as far as finding its line comments goes.
#[derive(Deserialize)]
struct ReviewId {
    id: u64,
    #[serde(default)]
    comments_count: u64,
}

/// A review comment as Gitea lists it (`PullReviewComment`).
#[derive(Deserialize)]
struct LineComment {
    id: u64,
    user: Option<User>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    path: String,
    /// The line in the new file; `original_position` when the comment is on the old side.
    #[serde(default)]
    position: u64,
    #[serde(default)]
    original_position: u64,
    #[serde(default)]
    diff_hunk: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    html_url: String,
}

impl LineComment {
    fn comment(self) -> ReviewComment {
        let line = [self.position, self.original_position]
            .into_iter()
            .find(|l| *l > 0);
        ReviewComment {
            id: self.id,
            author: login(self.user),
            body: clean(self.body),
            path: self.path,
            line,
            diff_hunk: clean(self.diff_hunk),
            in_reply_to: None,
            created_at: self.created_at,
            html_url: self.html_url,
        }
    }
}

#[derive(Deserialize)]
struct PullReview {
    user: Option<User>,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    dismissed: bool,
    #[serde(default)]
    submitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    commit_id: Option<String>,
}

impl PullReview {
    /// `None` for review requests (`REQUEST_REVIEW`) and states Gitea may add later.
    fn review(self) -> Option<Review> {
        let state = match self.state.as_str() {
            _ if self.dismissed => ReviewState::Dismissed,
            "APPROVED" => ReviewState::Approved,
            "REQUEST_CHANGES" => ReviewState::ChangesRequested,
            "COMMENT" => ReviewState::Commented,
            "PENDING" => ReviewState::Pending,
            _ => return None,
        };
        Some(Review {
            author: login(self.user),
            state,
            body: clean(self.body.unwrap_or_default()),
            submitted_at: self.submitted_at,
            commit_id: self.commit_id.filter(|c| !c.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_style_goes_under_both_spellings() {
        let body = merge_body("squash", "abc");
        assert_eq!(body["Do"], "squash");
        assert_eq!(body["do"], "squash");
        assert_eq!(body["head_commit_id"], "abc");
    }

    #[test]
    fn work_in_progress_titles() {
        assert!(is_wip("WIP: fix it"));
        assert!(is_wip("wip: fix it"));
        assert!(is_wip("[WIP] fix it"));
        assert!(!is_wip("Fix WIP: it"));
        assert!(!is_wip("Wi"));
        assert!(!is_wip("éé"));
        assert_eq!(wip_title("Fix it"), "WIP: Fix it");
        assert_eq!(wip_title("[wip] Fix it"), "[wip] Fix it");
    }
}
