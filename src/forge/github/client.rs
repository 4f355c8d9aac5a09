//! The GitHub REST client, authenticated as a GitHub App (per-repository installation tokens) or
//! with a plain token.
//!
//! Responses are parsed into the small structs below rather than octocrab's models: GitHub adds
//! fields and enum values over time, and octocrab's models reject what they do not know.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octocrab::models::{AppId, InstallationId};
use octocrab::{Octocrab, secrecy::ExposeSecret};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::config::repo::MergeMethod;
use crate::config::repo::Permission;
use crate::domain::{ForgeKind, RepoRef};
use crate::forge::guard::{Guard, GuardSettings};
use crate::forge::rest::{api_error, encode, path};
use crate::forge::text::clean;
use crate::forge::transport::{self, Credentials};
use crate::forge::{
    Annotation, CHECK_ANNOTATIONS_PER_REQUEST, CHECK_TEXT_MAX, CheckRunRequest, CheckState,
    CheckStatus, CommentSnapshot, CommitStatusRequest, Forge, ForgeError, GitCredential,
    IssueSnapshot, IssueState, NewPullRequest, PullSnapshot, PullState, RepoInfo, Review,
    ReviewComment, ReviewState, StatusState, truncate_chars,
};

/// GitHub's largest page size for issue listings.
const PER_PAGE: usize = 100;

/// Most pages of an issue's events read back from the last one (a bound on what one issue's
/// history can cost; 100 events a page).
const MAX_EVENT_PAGES: u32 = 50;

/// How Forgehand authenticates to GitHub.
#[derive(Clone)]
pub enum GithubAuth {
    /// A personal or fine-grained access token.
    Token(String),
    /// A GitHub App; each repository is reached through the App's installation on it.
    App {
        app_id: u64,
        private_key_pem: String,
    },
}

impl std::fmt::Debug for GithubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GithubAuth::Token(_) => f.write_str("Token(<redacted>)"),
            GithubAuth::App { app_id, .. } => write!(f, "App {{ app_id: {app_id} }}"),
        }
    }
}

/// [`Forge`] for github.com and GitHub Enterprise.
pub struct GithubForge {
    auth: Auth,
    /// The layer all of this client's requests pass through (shared by its installations).
    guard: Guard,
}

enum Auth {
    Token {
        client: Arc<Octocrab>,
        token: String,
    },
    /// Boxed: the App state is much larger than a token client.
    App(Box<AppClients>),
}

/// The App-level client (JWT auth) and the per-installation clients made from it.
struct AppClients {
    app: Octocrab,
    /// `owner/name` → installation id, so the lookup happens once per repository.
    installations: Mutex<HashMap<String, u64>>,
    /// One client per installation: each caches and refreshes its own installation token, so
    /// the same `Arc` must be reused (cloning an `Octocrab` copies its token cache).
    clients: Mutex<HashMap<u64, Arc<Octocrab>>>,
}

impl GithubForge {
    /// A client for the REST API at `api_url` (`https://api.github.com`, or
    /// `https://<host>/api/v3` for GitHub Enterprise), with default timeouts and no write
    /// spacing.
    pub fn new(api_url: &str, auth: GithubAuth) -> Result<Self, ForgeError> {
        Self::with_settings(api_url, auth, GuardSettings::default())
    }

    /// [`GithubForge::new`] with the timeouts and write spacing given.
    pub fn with_settings(
        api_url: &str,
        auth: GithubAuth,
        settings: GuardSettings,
    ) -> Result<Self, ForgeError> {
        let base = api_url.trim_end_matches('/');
        let guard = Guard::new(ForgeKind::Github, settings);
        let auth = match auth {
            GithubAuth::Token(token) => {
                let header = Credentials::Header(Some(format!("Bearer {token}")));
                let client = transport::build(base, header, &guard)?;
                Auth::Token {
                    client: Arc::new(client),
                    token,
                }
            }
            GithubAuth::App {
                app_id,
                private_key_pem,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(
                    |err| ForgeError::Auth(format!("invalid GitHub App private key: {err}")),
                )?;
                let app_auth = octocrab::auth::AppAuth {
                    app_id: AppId(app_id),
                    key,
                };
                let app = transport::build(base, Credentials::App(app_auth), &guard)?;
                Auth::App(Box::new(AppClients {
                    app,
                    installations: Mutex::default(),
                    clients: Mutex::default(),
                }))
            }
        };
        Ok(Self { auth, guard })
    }

    /// The client that may act on `repo`.
    async fn client(&self, repo: &RepoRef) -> Result<Arc<Octocrab>, ForgeError> {
        match &self.auth {
            Auth::Token { client, .. } => Ok(client.clone()),
            Auth::App(app) => app.installation_client(repo).await,
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        repo: &RepoRef,
        route: String,
        what: &str,
    ) -> Result<T, ForgeError> {
        let client = self.client(repo).await?;
        client
            .get::<T, _, ()>(&route, None)
            .await
            .map_err(|err| api_error(err, what))
    }
}

impl GithubForge {
    /// The App's installations with the permissions and events each was granted
    /// (`GET /app/installations`, as the App); `None` with token authentication.
    pub async fn app_installations(
        &self,
    ) -> Result<Option<Vec<super::app::AppInstallation>>, ForgeError> {
        let Auth::App(app) = &self.auth else {
            return Ok(None);
        };
        let what = "the GitHub App's installations";
        app.app
            .get("/app/installations?per_page=100", None::<&()>)
            .await
            .map(Some)
            .map_err(|err| api_error(err, what))
    }
}

impl GithubForge {
    /// One page of a listing and the number of its last page, from the `Link` header's
    /// `rel="last"` (absent on the last page itself and when there is only one).
    async fn get_page<T: serde::de::DeserializeOwned>(
        &self,
        repo: &RepoRef,
        route: &str,
        what: &str,
    ) -> Result<(Vec<T>, Option<u32>), ForgeError> {
        let client = self.client(repo).await?;
        let response = client
            ._get(route)
            .await
            .map_err(|err| api_error(err, what))?;
        let response = octocrab::map_github_error(response)
            .await
            .map_err(|err| api_error(err, what))?;
        let last = response
            .headers()
            .get(axum::http::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(last_page);
        let body = client
            .body_to_string(response)
            .await
            .map_err(|err| api_error(err, what))?;
        let items = serde_json::from_str(&body).map_err(|err| ForgeError::Decode {
            what: what.to_owned(),
            message: err.to_string(),
        })?;
        Ok((items, last))
    }
}

/// The `page` of the `rel="last"` link of a `Link` header.
fn last_page(link: &str) -> Option<u32> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.split(';').any(|p| p.trim() == r#"rel="last""#) {
            return None;
        }
        let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let query = url.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("page="))
            .and_then(|n| n.parse().ok())
    })
}

impl AppClients {
    async fn installation_client(&self, repo: &RepoRef) -> Result<Arc<Octocrab>, ForgeError> {
        let id = self.installation_id(repo).await?;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&id) {
            return Ok(client.clone());
        }
        let client = self
            .app
            .installation(InstallationId(id))
            .map_err(|err| ForgeError::Auth(format!("GitHub App installation {id}: {err}")))?;
        let client = Arc::new(client);
        clients.insert(id, client.clone());
        Ok(client)
    }

    async fn installation_id(&self, repo: &RepoRef) -> Result<u64, ForgeError> {
        let key = repo.full_name();
        let cached = self
            .installations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
        if let Some(id) = cached {
            return Ok(id);
        }
        let route = format!("/repos/{}/installation", path(repo));
        let what = format!("GitHub App installation on {key}");
        let found: Installation = self
            .app
            .get(&route, None::<&()>)
            .await
            .map_err(|err| api_error(err, &what))?;
        self.installations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, found.id);
        Ok(found.id)
    }
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
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
    name: String,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: String,
    /// `null` when the issue has no description.
    body: Option<String>,
    state: String,
    #[serde(default)]
    labels: Vec<Label>,
    /// `null` for issues of deleted accounts ("ghost").
    user: Option<User>,
    html_url: String,
    updated_at: DateTime<Utc>,
    /// The issue's comment count.
    #[serde(default)]
    comments: Option<u64>,
    /// Present only on pull requests listed as issues; its content does not matter.
    pull_request: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    body: Option<String>,
    user: Option<User>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
    /// `null` when the head repository (a fork) was deleted.
    #[serde(default)]
    repo: Option<HeadRepo>,
}

#[derive(Deserialize)]
struct HeadRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct CollaboratorPermission {
    /// The legacy level: `admin`, `write`, `read` or `none` (maintain and triage folded in).
    permission: String,
    /// The precise role: `admin`, `maintain`, `write`, `triage`, `read`, or the name of a
    /// custom role (which says nothing we can compare, so the legacy level is used then).
    #[serde(default)]
    role_name: Option<String>,
}

#[derive(Deserialize)]
struct Base {
    #[serde(rename = "ref")]
    name: String,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    title: String,
    body: Option<String>,
    state: String,
    #[serde(default)]
    merged: bool,
    merged_at: Option<DateTime<Utc>>,
    head: Head,
    base: Base,
    user: Option<User>,
    html_url: String,
    updated_at: DateTime<Utc>,
}

/// One entry of an issue's events; only label additions are read.
#[derive(Deserialize)]
struct IssueEvent {
    event: String,
    /// `null` for deleted accounts ("ghost").
    #[serde(default)]
    actor: Option<User>,
    #[serde(default)]
    label: Option<Label>,
}

#[derive(Deserialize)]
struct CreatedComment {
    id: u64,
}

/// A permission level by GitHub's name for it; `None` for `none` and for names it does not know.
fn permission_level(name: &str) -> Option<Permission> {
    match name {
        "admin" => Some(Permission::Admin),
        "maintain" => Some(Permission::Maintain),
        "write" => Some(Permission::Write),
        "triage" => Some(Permission::Triage),
        "read" => Some(Permission::Read),
        _ => None,
    }
}

impl CollaboratorPermission {
    fn level(&self) -> Result<Option<Permission>, String> {
        if let Some(level) = self.role_name.as_deref().and_then(permission_level) {
            return Ok(Some(level));
        }
        match self.permission.as_str() {
            "none" => Ok(None),
            other => permission_level(other)
                .map(Some)
                .ok_or_else(|| format!("unknown permission `{other}`")),
        }
    }
}

fn login(user: Option<User>) -> String {
    user.map_or_else(|| "ghost".to_owned(), |u| u.login)
}

impl Issue {
    fn snapshot(self) -> IssueSnapshot {
        IssueSnapshot {
            number: self.number,
            title: clean(self.title),
            body: clean(self.body.unwrap_or_default()),
            // GitHub only knows open and closed; anything else is not open.
            state: if self.state == "open" {
                IssueState::Open
            } else {
                IssueState::Closed
            },
            labels: self.labels.into_iter().map(|l| l.name).collect(),
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
            head_sha: self.head.sha,
            base_ref: self.base.name,
            author: login(self.user),
            html_url: self.html_url,
            updated_at: self.updated_at,
        }
    }
}

#[async_trait]
impl Forge for GithubForge {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Github
    }

    async fn repository(&self, repo: &RepoRef) -> Result<RepoInfo, ForgeError> {
        let found: Repository = self
            .get(
                repo,
                format!("/repos/{}", path(repo)),
                &format!("repository {repo}"),
            )
            .await?;
        Ok(RepoInfo {
            repo: repo.clone(),
            default_branch: found.default_branch,
            clone_url: found.clone_url,
            html_url: found.html_url,
        })
    }

    async fn open_issues(&self, repo: &RepoRef) -> Result<Vec<IssueSnapshot>, ForgeError> {
        let mut issues = Vec::new();
        for page in 1.. {
            let route = format!(
                "/repos/{}/issues?state=open&per_page={PER_PAGE}&page={page}",
                path(repo)
            );
            let batch: Vec<Issue> = self
                .get(repo, route, &format!("open issues of {repo}"))
                .await?;
            // A short page is the last one; counted before pull requests are dropped.
            let last = batch.len() < PER_PAGE;
            issues.extend(
                batch
                    .into_iter()
                    .filter(|i| i.pull_request.is_none())
                    .map(Issue::snapshot),
            );
            if last {
                break;
            }
        }
        Ok(issues)
    }

    async fn blocked_by(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<(RepoRef, u64)>, ForgeError> {
        let route = format!(
            "/repos/{}/issues/{number}/dependencies/blocked_by?per_page=100",
            path(repo)
        );
        let what = format!("dependencies of {repo}#{number}");
        let issues: Vec<serde_json::Value> = match self.get(repo, route, &what).await {
            Ok(issues) => issues,
            // Not on this forge (version), or dependencies switched off.
            Err(ForgeError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(issues
            .iter()
            .filter_map(|v| {
                let number = v.get("number")?.as_u64()?;
                // `repository_url`: https://api.github.com/repos/<owner>/<name>
                let url = v.get("repository_url")?.as_str()?;
                let mut parts = url.rsplit('/');
                let name = parts.next()?;
                let owner = parts.next()?;
                Some((RepoRef::new(repo.forge, owner, name), number))
            })
            .collect())
    }

    async fn issue(&self, repo: &RepoRef, number: u64) -> Result<IssueSnapshot, ForgeError> {
        let route = format!("/repos/{}/issues/{number}", path(repo));
        let issue: Issue = self
            .get(repo, route, &format!("issue {repo}#{number}"))
            .await?;
        Ok(issue.snapshot())
    }

    async fn issue_comments(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<CommentSnapshot>, ForgeError> {
        let what = format!("comments of {repo}#{number}");
        let mut comments = Vec::new();
        for page in 1.. {
            let route = format!(
                "/repos/{}/issues/{number}/comments?per_page={PER_PAGE}&page={page}",
                path(repo)
            );
            let batch: Vec<Comment> = self.get(repo, route, &what).await?;
            let last = batch.len() < PER_PAGE;
            comments.extend(batch.into_iter().map(|c| CommentSnapshot {
                id: c.id,
                author: login(c.user),
                body: clean(c.body.unwrap_or_default()),
                created_at: c.created_at,
                updated_at: c.updated_at,
            }));
            if last {
                break;
            }
        }
        Ok(comments)
    }

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullSnapshot, ForgeError> {
        let route = format!("/repos/{}/pulls/{number}", path(repo));
        let pull: Pull = self
            .get(repo, route, &format!("pull request {repo}#{number}"))
            .await?;
        Ok(pull.snapshot())
    }

    async fn git_credential(&self, repo: &RepoRef) -> Result<Option<GitCredential>, ForgeError> {
        // GitHub accepts any username with a token as password; `x-access-token` is the
        // documented one for installation tokens.
        let password = match &self.auth {
            Auth::Token { token, .. } => token.clone(),
            Auth::App(app) => {
                // The cached installation client reuses its token until shortly before expiry
                // instead of minting one per git operation.
                let client = app.installation_client(repo).await?;
                let token = client
                    .installation_token()
                    .await
                    .map_err(|err| api_error(err, &format!("installation token for {repo}")))?;
                token.expose_secret().to_owned()
            }
        };
        Ok(Some(GitCredential {
            username: "x-access-token".to_owned(),
            password,
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
        let route = format!("/repos/{}/issues/{number}/labels", path(repo));
        let what = format!("labels of {repo}#{number}");
        let client = self.client(repo).await?;
        // GitHub creates labels the repository does not have yet.
        let _: Vec<IgnoredAny> = client
            .post(&route, Some(&json!({ "labels": labels })))
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
        let route = format!(
            "/repos/{}/issues/{number}/labels/{}",
            path(repo),
            encode(label)
        );
        let what = format!("label `{label}` of {repo}#{number}");
        let client = self.client(repo).await?;
        match client.delete::<IgnoredAny, _, ()>(&route, None).await {
            Ok(_) => Ok(()),
            // GitHub answers 404 both for a missing issue and for a label the issue does not
            // carry. Removing an absent label is what the caller wanted anyway, so only a
            // missing issue is an error.
            Err(err) => match api_error(err, &what) {
                ForgeError::NotFound(_) => self.issue(repo, number).await.map(|_| ()),
                other => Err(other),
            },
        }
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
        let route = format!("/repos/{}/issues", path(repo));
        let client = self.client(repo).await?;
        // GitHub creates labels the repository does not have yet.
        let created: CreatedIssue = client
            .post(
                &route,
                Some(&json!({ "title": title, "body": body, "labels": labels })),
            )
            .await
            .map_err(|err| api_error(err, &format!("new issue on {repo}")))?;
        Ok(created.number)
    }

    async fn create_comment(
        &self,
        repo: &RepoRef,
        number: u64,
        body: &str,
    ) -> Result<u64, ForgeError> {
        let route = format!("/repos/{}/issues/{number}/comments", path(repo));
        let client = self.client(repo).await?;
        let created: CreatedComment = client
            .post(&route, Some(&json!({ "body": body })))
            .await
            .map_err(|err| api_error(err, &format!("new comment on {repo}#{number}")))?;
        Ok(created.id)
    }

    async fn update_comment(
        &self,
        repo: &RepoRef,
        comment_id: u64,
        body: &str,
    ) -> Result<(), ForgeError> {
        let route = format!("/repos/{}/issues/comments/{comment_id}", path(repo));
        let client = self.client(repo).await?;
        let _: IgnoredAny = client
            .patch(&route, Some(&json!({ "body": body })))
            .await
            .map_err(|err| api_error(err, &format!("comment {comment_id} on {repo}")))?;
        Ok(())
    }

    async fn labelled_by(
        &self,
        repo: &RepoRef,
        number: u64,
        label: &str,
    ) -> Result<Option<String>, ForgeError> {
        // Events come oldest first: the first page says how many there are, then the pages
        // are read from the last one back until the label's latest `labeled` event shows.
        let what = format!("issue events of {repo}#{number}");
        let route = |page: u32| {
            format!(
                "/repos/{}/issues/{number}/events?per_page={PER_PAGE}&page={page}",
                path(repo)
            )
        };
        let latest = |events: Vec<IssueEvent>| {
            events
                .into_iter()
                .rev()
                .find(|e| e.event == "labeled" && e.label.as_ref().is_some_and(|l| l.name == label))
                .map(|e| login(e.actor))
        };
        let (first, last): (Vec<IssueEvent>, _) = self.get_page(repo, &route(1), &what).await?;
        let Some(last) = last.filter(|last| *last > 1) else {
            return Ok(latest(first));
        };
        for page in (2..=last).rev().take(MAX_EVENT_PAGES as usize) {
            let (events, _) = self.get_page(repo, &route(page), &what).await?;
            if let Some(found) = latest(events) {
                return Ok(Some(found));
            }
        }
        if last > MAX_EVENT_PAGES + 1 {
            return Err(ForgeError::Decode {
                what,
                message: format!("{last} pages, more than the {MAX_EVENT_PAGES} read back"),
            });
        }
        Ok(latest(first))
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
        let found: CollaboratorPermission = match self.get(repo, route, &what).await {
            Ok(found) => found,
            // GitHub answers 404 for a login that is not a user; one that cannot be seen has
            // no permission either, which is the safe answer for a trigger check.
            Err(ForgeError::NotFound(_)) => return Ok(None),
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
        // `head=owner:branch` narrows the listing to the repository owner's branch; the
        // filter below also drops a same-named branch of another repository of that owner.
        let route = format!(
            "/repos/{}/pulls?state=open&head={}:{}&per_page={PER_PAGE}",
            path(repo),
            encode(&repo.owner),
            encode(branch)
        );
        let what = format!("open pull requests of {repo} from `{branch}`");
        let pulls: Vec<Pull> = self.get(repo, route, &what).await?;
        let full_name = repo.full_name();
        Ok(pulls
            .into_iter()
            .filter(|p| p.state == "open" && p.head.name == branch)
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
        let client = self.client(repo).await?;
        let body = json!({
            "title": pull.title,
            "body": pull.body,
            "head": pull.head,
            "base": pull.base,
            "draft": pull.draft,
        });
        let created: Pull = client
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
        let route = format!("/repos/{}/pulls/{number}", path(repo));
        let what = format!("pull request {repo}#{number}");
        let client = self.client(repo).await?;
        let _: IgnoredAny = client
            .patch(&route, Some(&json!({ "title": title, "body": body })))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    fn supports_check_runs(&self) -> bool {
        matches!(self.auth, Auth::App(_))
    }

    fn health(&self) -> Option<crate::forge::health::ForgeHealth> {
        Some(self.guard.health())
    }

    async fn create_check_run(
        &self,
        repo: &RepoRef,
        head_sha: &str,
        run: &CheckRunRequest,
    ) -> Result<u64, ForgeError> {
        let route = format!("/repos/{}/check-runs", path(repo));
        let what = format!("new check run `{}` on {repo}", run.name);
        let client = self.client(repo).await?;
        let (first, rest) = split_annotations(run);
        let mut body = check_run_body(run, first);
        body["head_sha"] = json!(head_sha);
        let created: CreatedComment = client
            .post(&route, Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        self.append_annotations(repo, created.id, run, rest).await?;
        Ok(created.id)
    }

    async fn update_check_run(
        &self,
        repo: &RepoRef,
        id: u64,
        run: &CheckRunRequest,
    ) -> Result<(), ForgeError> {
        let (first, rest) = split_annotations(run);
        self.patch_check_run(repo, id, &check_run_body(run, first))
            .await?;
        self.append_annotations(repo, id, run, rest).await
    }

    async fn set_commit_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &CommitStatusRequest,
    ) -> Result<(), ForgeError> {
        let route = format!("/repos/{}/statuses/{}", path(repo), encode(sha));
        let what = format!("commit status `{}` on {repo}@{sha}", status.context);
        // GitHub has no warning state: a warning is a success whose description says more.
        let state = match status.state {
            StatusState::Warning => "success",
            other => other.as_str(),
        };
        let mut body = json!({
            "state": state,
            "context": status.context,
            "description": status.description_trimmed(),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        let client = self.client(repo).await?;
        let _: IgnoredAny = client
            .post(&route, Some(&body))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn reviews(&self, repo: &RepoRef, number: u64) -> Result<Vec<Review>, ForgeError> {
        let what = format!("reviews of {repo}#{number}");
        let mut reviews = Vec::new();
        for page in 1.. {
            let route = format!(
                "/repos/{}/pulls/{number}/reviews?per_page={PER_PAGE}&page={page}",
                path(repo)
            );
            let batch: Vec<PullReview> = self.get(repo, route, &what).await?;
            let last = batch.len() < PER_PAGE;
            reviews.extend(batch.into_iter().filter_map(PullReview::review));
            if last {
                break;
            }
        }
        Ok(reviews)
    }

    async fn review_comments(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<ReviewComment>, ForgeError> {
        let what = format!("review comments of {repo}#{number}");
        let mut comments = Vec::new();
        for page in 1.. {
            let route = format!(
                "/repos/{}/pulls/{number}/comments?per_page={PER_PAGE}&page={page}",
                path(repo)
            );
            let batch: Vec<LineComment> = self.get(repo, route, &what).await?;
            let last = batch.len() < PER_PAGE;
            comments.extend(batch.into_iter().map(LineComment::comment));
            if last {
                break;
            }
        }
        Ok(comments)
    }

    async fn reply_review_comment(
        &self,
        repo: &RepoRef,
        number: u64,
        to: &ReviewComment,
        body: &str,
    ) -> Result<(), ForgeError> {
        // GitHub answers a reply to a reply as a reply to the thread's first comment.
        let thread = to.in_reply_to.unwrap_or(to.id);
        let route = format!(
            "/repos/{}/pulls/{number}/comments/{thread}/replies",
            path(repo)
        );
        let what = format!("reply to review comment {thread} on {repo}#{number}");
        let client = self.client(repo).await?;
        let _: IgnoredAny = client
            .post(&route, Some(&json!({ "body": body })))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    async fn check_states(
        &self,
        repo: &RepoRef,
        sha: &str,
    ) -> Result<Vec<(String, CheckState)>, ForgeError> {
        // Latest per context (highest id): statuses first, so a check run of the same name wins.
        let mut latest: HashMap<String, (u64, CheckState)> = HashMap::new();
        let what = format!("commit statuses of {repo}@{sha}");
        for page in 1.. {
            let route = format!(
                "/repos/{}/commits/{}/statuses?per_page={PER_PAGE}&page={page}",
                path(repo),
                encode(sha)
            );
            let batch: Vec<StatusEntry> = self.get(repo, route, &what).await?;
            let last = batch.len() < PER_PAGE;
            for status in batch {
                keep_latest(
                    &mut latest,
                    status.context,
                    status.id,
                    status_state(&status.state),
                );
            }
            if last {
                break;
            }
        }
        let mut runs: HashMap<String, (u64, CheckState)> = HashMap::new();
        let what = format!("check runs of {repo}@{sha}");
        let mut seen = 0;
        for page in 1.. {
            let route = format!(
                "/repos/{}/commits/{}/check-runs?per_page={PER_PAGE}&page={page}",
                path(repo),
                encode(sha)
            );
            let batch: CheckRunList = self.get(repo, route, &what).await?;
            let count = batch.check_runs.len();
            seen += count;
            for run in batch.check_runs {
                let state = run_state(&run.status, run.conclusion.as_deref());
                keep_latest(&mut runs, run.name, run.id, state);
            }
            if count == 0 || seen >= batch.total_count {
                break;
            }
        }
        latest.extend(runs);
        let mut states: Vec<(String, CheckState)> = latest
            .into_iter()
            .map(|(name, (_, state))| (name, state))
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
        let client = self.client(repo).await?;
        // GitHub answers 405 when the pull request cannot be merged and 409 when its head is
        // no longer `sha`.
        let merged: MergeResult = client
            .put(
                &route,
                Some(&json!({ "merge_method": merge_method(method), "sha": sha })),
            )
            .await
            .map_err(|err| api_error(err, &what))?;
        if merged.merged {
            Ok(())
        } else {
            Err(ForgeError::Api {
                status: 200,
                what,
                message: merged.message.unwrap_or_else(|| "not merged".to_owned()),
            })
        }
    }
}

impl GithubForge {
    async fn patch_check_run(
        &self,
        repo: &RepoRef,
        id: u64,
        body: &serde_json::Value,
    ) -> Result<(), ForgeError> {
        let route = format!("/repos/{}/check-runs/{id}", path(repo));
        let what = format!("check run {id} on {repo}");
        let client = self.client(repo).await?;
        let _: IgnoredAny = client
            .patch(&route, Some(body))
            .await
            .map_err(|err| api_error(err, &what))?;
        Ok(())
    }

    /// Sends annotations beyond the first request's 50 in further updates of 50 each (GitHub
    /// appends them), repeating the output's title and summary, which each update needs.
    async fn append_annotations(
        &self,
        repo: &RepoRef,
        id: u64,
        run: &CheckRunRequest,
        rest: &[Annotation],
    ) -> Result<(), ForgeError> {
        let Some(output) = &run.output else {
            return Ok(());
        };
        for batch in rest.chunks(CHECK_ANNOTATIONS_PER_REQUEST) {
            let body = json!({
                "output": {
                    "title": output.title,
                    "summary": truncate_chars(&output.summary, CHECK_TEXT_MAX),
                    "annotations": batch.iter().map(annotation_json).collect::<Vec<_>>(),
                }
            });
            self.patch_check_run(repo, id, &body).await?;
        }
        Ok(())
    }
}

/// The annotations that go in the first request, and the rest.
fn split_annotations(run: &CheckRunRequest) -> (&[Annotation], &[Annotation]) {
    let all = run
        .output
        .as_ref()
        .map_or(&[][..], |o| o.annotations.as_slice());
    all.split_at(all.len().min(CHECK_ANNOTATIONS_PER_REQUEST))
}

/// A create or update body (without `head_sha`) carrying `annotations` of the output.
fn check_run_body(run: &CheckRunRequest, annotations: &[Annotation]) -> serde_json::Value {
    let mut body = json!({ "name": run.name, "status": run.status.as_str() });
    if let Some(conclusion) = run.conclusion {
        body["status"] = json!(CheckStatus::Completed.as_str());
        body["conclusion"] = json!(conclusion.as_str());
        body["completed_at"] = json!(Utc::now());
    }
    if let Some(url) = &run.details_url {
        body["details_url"] = json!(url);
    }
    if let Some(output) = &run.output {
        let mut out = json!({
            "title": output.title,
            "summary": truncate_chars(&output.summary, CHECK_TEXT_MAX),
            "annotations": annotations.iter().map(annotation_json).collect::<Vec<_>>(),
        });
        if let Some(text) = &output.text {
            out["text"] = json!(truncate_chars(text, CHECK_TEXT_MAX));
        }
        body["output"] = out;
    }
    body
}

fn annotation_json(a: &Annotation) -> serde_json::Value {
    // GitHub: lines start at 1; columns only when the annotation is on one line.
    let line = a.line.max(1);
    let mut value = json!({
        "path": a.path,
        "start_line": line,
        "end_line": line,
        "annotation_level": a.level.as_str(),
        "message": a.message,
    });
    if let Some(column) = a.column {
        value["start_column"] = json!(column);
        value["end_column"] = json!(column);
    }
    value
}

fn merge_method(method: MergeMethod) -> &'static str {
    match method {
        MergeMethod::Merge => "merge",
        MergeMethod::Squash => "squash",
        MergeMethod::Rebase => "rebase",
    }
}

fn keep_latest(
    map: &mut HashMap<String, (u64, CheckState)>,
    name: String,
    id: u64,
    state: CheckState,
) {
    match map.get(&name) {
        Some((seen, _)) if *seen > id => {}
        _ => {
            map.insert(name, (id, state));
        }
    }
}

/// A commit status's state as a gate sees it.
fn status_state(state: &str) -> CheckState {
    match state {
        "success" => CheckState::Success,
        "pending" => CheckState::Pending,
        _ => CheckState::Failure,
    }
}

/// A check run as a gate sees it: success, neutral and skipped pass.
fn run_state(status: &str, conclusion: Option<&str>) -> CheckState {
    match (status, conclusion) {
        ("completed", Some("success" | "neutral" | "skipped")) => CheckState::Success,
        ("completed", _) => CheckState::Failure,
        _ => CheckState::Pending,
    }
}

#[derive(Deserialize)]
struct PullReview {
    user: Option<User>,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    submitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    commit_id: Option<String>,
}

impl PullReview {
    /// `None` for a state GitHub may add later.
    fn review(self) -> Option<Review> {
        let state = match self.state.as_str() {
            "APPROVED" => ReviewState::Approved,
            "CHANGES_REQUESTED" => ReviewState::ChangesRequested,
            "COMMENTED" => ReviewState::Commented,
            "DISMISSED" => ReviewState::Dismissed,
            "PENDING" => ReviewState::Pending,
            _ => return None,
        };
        Some(Review {
            author: login(self.user),
            state,
            body: clean(self.body.unwrap_or_default()),
            submitted_at: self.submitted_at,
            commit_id: self.commit_id,
        })
    }
}

/// A pull request review comment as GitHub lists it.
#[derive(Deserialize)]
struct LineComment {
    id: u64,
    user: Option<User>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    path: String,
    /// `null` when the line is outdated; `original_line` is where it was.
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    original_line: Option<u64>,
    #[serde(default)]
    diff_hunk: String,
    #[serde(default)]
    in_reply_to_id: Option<u64>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    html_url: String,
}

impl LineComment {
    fn comment(self) -> ReviewComment {
        ReviewComment {
            id: self.id,
            author: login(self.user),
            body: clean(self.body),
            path: self.path,
            line: self.line.or(self.original_line),
            diff_hunk: clean(self.diff_hunk),
            in_reply_to: self.in_reply_to_id,
            created_at: self.created_at,
            html_url: self.html_url,
        }
    }
}

#[derive(Deserialize)]
struct StatusEntry {
    id: u64,
    state: String,
    context: String,
}

#[derive(Deserialize)]
struct CheckRunList {
    total_count: usize,
    check_runs: Vec<CheckRunEntry>,
}

#[derive(Deserialize)]
struct CheckRunEntry {
    id: u64,
    name: String,
    status: String,
    conclusion: Option<String>,
}

#[derive(Deserialize)]
struct MergeResult {
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::last_page;

    #[test]
    fn reads_the_last_page_from_a_link_header() {
        let link = r#"<https://api.github.com/repositories/1/issues/2/events?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/events?per_page=100&page=7>; rel="last""#;
        assert_eq!(last_page(link), Some(7));
        let on_last =
            r#"<https://x.test/e?page=1>; rel="first", <https://x.test/e?page=6>; rel="prev""#;
        assert_eq!(last_page(on_last), None);
    }
}
