//! A whole setup for run tests: a sandbox forge with `octo/app`, its repository as a real bare
//! git remote on disk carrying a `.forgehand/` tree, and the server with a scripted `command`
//! agent.

use std::path::PathBuf;
use std::sync::Arc;

use forgehand::app::Forges;
use forgehand::forge::github::{GithubAuth, GithubForge};
use forgehand::sandbox::{self, ForgeModel, Permission, SandboxServer};
use forgehand::web::api::types::{ConfigVersions, Diagnosis, RunState, TicketDetail};
use serde_json::{Value, json};

use crate::gitrepo::GitRemote;
use crate::harness::{Db, Options, TestServer, code_of, fixture, wait_until, wait_until_explained};

pub const REPO: &str = "octo/app";

pub struct Scenario {
    pub server: TestServer,
    pub model: ForgeModel,
    pub remote: GitRemote,
    pub shared: tempfile::TempDir,
    pub _sandbox: SandboxServer,
}

/// A workflow file for the scripted agent; `extra` adds front-matter lines.
pub fn workflow(harness: &str, extra: &str) -> String {
    format!(
        "---\npickup: [todo]\nfinish: [in-review]\nagent: script\nmax_turns: 3\ntimeout: 60s\n\
         stall_timeout: 20s\nskills: [style]\n{extra}---\n{harness}\n"
    )
}

pub const HARNESS: &str = "Work on {{ ticket.title }} (#{{ ticket.number }}).\n{{ ticket.body }}";

impl Scenario {
    /// `script` is the agent: a shell script run with `sh`, prompt on stdin, in the worktree.
    pub async fn start(db: Db, script: &str, workflow_file: &str, limits: &str) -> Self {
        let files = [
            (".forgehand/config.yaml", "max_concurrent: 5\n"),
            (".forgehand/workflows/build.md", workflow_file),
        ];
        Self::start_with_files(db, script, &files, limits).await
    }

    /// Like [`Scenario::start`] with a whole `.forgehand/` tree (the `style` skill is added).
    pub async fn start_with_files(
        db: Db,
        script: &str,
        files: &[(&str, &str)],
        limits: &str,
    ) -> Self {
        let scenario = Self::start_unsynced(db, script, files, limits).await;
        scenario.push_config("initial").await;
        scenario
    }

    /// Like [`Scenario::start_with_files`] without telling the server about the repository's
    /// head (for trees that do not validate: see [`Scenario::deliver_push`]).
    pub async fn start_unsynced(
        db: Db,
        script: &str,
        files: &[(&str, &str)],
        limits: &str,
    ) -> Self {
        Self::start_unsynced_with(db, script, files, limits, |_| Vec::new()).await
    }

    /// Like [`Scenario::start_unsynced`] with server environment settings that name the
    /// sandbox forge (`env` is given its base URL).
    pub async fn start_unsynced_with(
        db: Db,
        script: &str,
        files: &[(&str, &str)],
        limits: &str,
        env: impl FnOnce(&str) -> Vec<(String, String)>,
    ) -> Self {
        let remote = GitRemote::new();
        let skill = "---\nname: style\ndescription: House style.\n---\nWrite short lines.\n";
        let mut tree: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|(path, text)| (*path, Some(*text)))
            .collect();
        tree.push((".forgehand/skills/style/SKILL.md", Some(skill)));
        remote.commit(&tree, "add forgehand config");
        let shared = tempfile::tempdir().unwrap();
        let script_path = shared.path().join("agent.sh");
        std::fs::write(&script_path, script).unwrap();

        let model = ForgeModel::new();
        model.add_repo("octo", "app", "main", &remote.clone_url());
        model.set_permission(REPO, "alice", Permission::Write);
        model.set_permission(REPO, "mallory", Permission::Read);
        let sandbox = sandbox::serve(model.clone()).await.unwrap();
        let github = GithubForge::new(
            &sandbox.github_api_url(),
            GithubAuth::Token("ghp_secret_test".into()),
        )
        .unwrap();
        let toml = format!(
            "[agents.script]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{}\"]\n\
             env = {{ SHARED = \"{}\" }}\nsandbox_writable = [\"{}\"]\n{limits}",
            script_path.display(),
            shared.path().display(),
            // The script and the test's shared folder are in /tmp, which the sandbox hides.
            shared.path().display()
        );
        let options = Options {
            forges: Forges::new(Some(Arc::new(github)), None),
            env: env(&sandbox.base_url()).into_iter().collect(),
            ..Options::default()
        }
        .toml(&toml);
        let server = TestServer::start_with(db, options).await;
        Self {
            server,
            model,
            remote,
            shared,
            _sandbox: sandbox,
        }
    }

    pub fn shared_path(&self, name: &str) -> PathBuf {
        self.shared.path().join(name)
    }

    /// Tells the server about the default branch's head, as GitHub's push hook would.
    pub async fn push_config(&self, tag: &str) {
        let head = self.deliver_push(tag).await;
        let head_for_wait = head.clone();
        wait_until("the config to sync", || async {
            let url = format!(
                "{}/api/v1/repos/github/octo/app/config-versions",
                self.server.base
            );
            let response = self.server.http.get(url).send().await.unwrap();
            response.status() == 200
                && response
                    .json::<ConfigVersions>()
                    .await
                    .unwrap()
                    .versions
                    .first()
                    .is_some_and(|v| v.commit_sha == head_for_wait)
        })
        .await;
    }

    /// Delivers the push hook of the default branch's head without waiting for the sync;
    /// returns the head.
    pub async fn deliver_push(&self, tag: &str) -> String {
        let head = self.remote.head();
        let body = serde_json::to_vec(&json!({
            "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000001",
            "after": head, "commits": [{"id": head, "added": [], "removed": [],
            "modified": [".forgehand/workflows/build.md"]}],
            "repository": self.repository_json(), "sender": {"login": "alice"},
        }))
        .unwrap();
        let response = self
            .server
            .post_github("push", &format!("push-{tag}"), &body)
            .await;
        assert_eq!(response.status(), 202);
        head
    }

    pub fn repository_json(&self) -> Value {
        json!({
            "id": 42, "name": "app", "full_name": REPO,
            "owner": {"login": "octo", "type": "Organization"},
            "html_url": "https://github.com/octo/app",
            "clone_url": self.remote.clone_url(), "default_branch": "main",
        })
    }

    /// Opens an issue in the sandbox, has `sender` add `labels` and delivers the
    /// `issues.labeled` hook of the last one.
    pub async fn open_labelled(&self, title: &str, labels: &[&str], sender: &str) -> u64 {
        self.open_with_body(title, "Please make it so.", labels, sender)
            .await
    }

    /// Opens an issue with a body of its own (dependencies…) and delivers its `labeled` hook.
    pub async fn open_with_body(
        &self,
        title: &str,
        body: &str,
        labels: &[&str],
        sender: &str,
    ) -> u64 {
        let number = self.model.open_issue(REPO, title, body, &[], "alice");
        self.model.add_labels(REPO, number, labels, sender);
        self.deliver_issue(number, sender, "labeled").await;
        number
    }

    /// The pickup diagnosis of a ticket.
    pub async fn diagnosis(&self, number: u64) -> Diagnosis {
        self.server
            .get_json(&format!(
                "/api/v1/tickets/github/octo/app/{number}/diagnosis"
            ))
            .await
    }

    /// Waits until the ticket's diagnosis has `code`; returns it.
    pub async fn wait_diagnosis(&self, number: u64, code: &str) -> Diagnosis {
        let url = format!(
            "{}/api/v1/tickets/github/octo/app/{number}/diagnosis",
            self.server.base
        );
        let mut last = None;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let response = self.server.http.get(&url).send().await.unwrap();
            if response.status() == 200 {
                let d: Diagnosis = response.json().await.unwrap();
                if code_of(&d) == code {
                    return d;
                }
                last = Some(d);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for #{number}'s diagnosis `{code}`; last: {last:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The progress comment Forgehand keeps on an issue.
    pub fn progress_comment(&self, number: u64) -> Option<String> {
        self.model
            .comments(REPO, number)
            .into_iter()
            .find(|c| c.body.contains("<!-- forgehand:progress -->"))
            .map(|c| c.body)
    }

    /// Delivers the sandbox's current state of an issue as an `issues` hook; `labeled` and
    /// `unlabeled` name the label last added or removed there, as GitHub's do.
    pub async fn deliver_issue(&self, number: u64, sender: &str, action: &str) {
        let issue = self.model.issue(REPO, number).unwrap();
        let mut v: Value =
            serde_json::from_slice(&fixture("github/issues/labeled.payload.json")).unwrap();
        v["action"] = json!(action);
        let changed = self
            .model
            .label_events(REPO, number)
            .into_iter()
            .rev()
            .find(|e| e.added == (action == "labeled"))
            .filter(|_| matches!(action, "labeled" | "unlabeled"));
        match changed {
            Some(event) => v["label"] = json!({"name": event.label, "color": "ededed"}),
            None => {
                v.as_object_mut().unwrap().remove("label");
            }
        }
        v["repository"] = self.repository_json();
        v["sender"] = json!({"login": sender, "type": "User"});
        v["issue"]["number"] = json!(number);
        v["issue"]["title"] = json!(issue.title);
        v["issue"]["body"] = json!(issue.body);
        v["issue"]["state"] = json!(issue.state.as_str());
        v["issue"]["user"] = json!({"login": issue.author});
        v["issue"]["updated_at"] = json!(issue.updated_at.to_rfc3339());
        v["issue"]["labels"] = issue.labels.iter().map(|l| json!({"name": l})).collect();
        let id = format!(
            "issue-{number}-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let response = self
            .server
            .post_github("issues", &id, &serde_json::to_vec(&v).unwrap())
            .await;
        assert_eq!(response.status(), 202);
    }

    /// Has `author` comment on an issue in the sandbox and delivers the `issue_comment` hook.
    pub async fn deliver_comment(&self, number: u64, author: &str, body: &str) {
        let id = self.model.add_comment(REPO, number, author, body);
        let issue = self.model.issue(REPO, number).unwrap();
        let comment = self
            .model
            .comments(REPO, number)
            .into_iter()
            .find(|c| c.id == id)
            .unwrap();
        let mut v: Value =
            serde_json::from_slice(&fixture("github/issue_comment/created.payload.json")).unwrap();
        v["repository"] = self.repository_json();
        v["sender"] = json!({"login": author, "type": "User"});
        v["issue"]["number"] = json!(number);
        v["issue"]["title"] = json!(issue.title);
        v["issue"]["body"] = json!(issue.body);
        v["issue"]["state"] = json!(issue.state.as_str());
        v["issue"]["user"] = json!({"login": issue.author});
        v["issue"]["updated_at"] = json!(issue.updated_at.to_rfc3339());
        v["issue"]["labels"] = issue.labels.iter().map(|l| json!({"name": l})).collect();
        v["comment"]["id"] = json!(id);
        v["comment"]["body"] = json!(body);
        v["comment"]["user"] = json!({"login": author});
        v["comment"]["created_at"] = json!(comment.created_at.to_rfc3339());
        v["comment"]["updated_at"] = json!(comment.updated_at.to_rfc3339());
        let response = self
            .server
            .post_github(
                "issue_comment",
                &format!("comment-{id}"),
                &serde_json::to_vec(&v).unwrap(),
            )
            .await;
        assert_eq!(response.status(), 202);
    }

    pub async fn ticket(&self, number: u64) -> TicketDetail {
        self.server
            .get_json(&format!("/api/v1/tickets/github/octo/app/{number}"))
            .await
    }

    /// The ticket, or `None` while it is not one (yet).
    pub async fn try_ticket(&self, number: u64) -> Option<TicketDetail> {
        let url = format!(
            "{}/api/v1/tickets/github/octo/app/{number}",
            self.server.base
        );
        let response = self.server.http.get(url).send().await.unwrap();
        if response.status() == 200 {
            Some(response.json().await.unwrap())
        } else {
            None
        }
    }

    /// The state of the ticket's run at `index` (newest first), while there is one.
    pub async fn run_state(&self, number: u64, index: usize) -> Option<RunState> {
        let ticket = self.try_ticket(number).await?;
        ticket.runs.get(index).map(|r| r.state)
    }

    /// How many runs the ticket has had (none while it is not a ticket yet).
    pub async fn run_count(&self, number: u64) -> usize {
        self.try_ticket(number).await.map_or(0, |t| t.runs.len())
    }

    pub async fn wait_status(&self, number: u64, status: &str) -> TicketDetail {
        wait_until_explained(
            &format!("#{number} to reach {status}"),
            || async {
                self.try_ticket(number)
                    .await
                    .is_some_and(|t| t.ticket.status.as_deref() == Some(status))
            },
            || self.explain(number),
        )
        .await;
        self.ticket(number).await
    }

    /// What a timed-out wait on ticket `number` saw: its status, its runs and its diagnosis.
    pub async fn explain(&self, number: u64) -> String {
        let Some(t) = self.try_ticket(number).await else {
            return format!("#{number} is not a ticket");
        };
        let runs: Vec<String> = t
            .runs
            .iter()
            .map(|r| format!("run {} {:?} turns {} {:?}", r.id, r.state, r.turns, r.error))
            .collect();
        // Where the newest run got to: its events, each cut short.
        let events: Vec<String> = match t.runs.first() {
            Some(run) => self
                .server
                .get_json::<Vec<Value>>(&format!("/api/v1/runs/{}/events", run.id))
                .await
                .iter()
                .map(|e| e.to_string().chars().take(200).collect())
                .collect(),
            None => Vec::new(),
        };
        let diagnosis = self.diagnosis(number).await;
        format!(
            "#{number} is {:?}; runs (newest first): {runs:?}; the newest's events: {events:?}; \
             diagnosis: {diagnosis:?}",
            t.ticket.status
        )
    }

    /// A file on a branch of the origin repository.
    pub fn file_on(&self, branch: &str, path: &str) -> Option<String> {
        self.remote.show(branch, path)
    }

    pub async fn finish(self) {
        self.server.finish().await;
    }
}
