//! Agents and hooks in the sandbox: a hostile agent and a hostile hook try to read the server's
//! environment, database and other tickets' files, write outside their worktree and leave a
//! daemon behind; every attempt fails, and nothing of them remains. A run over its memory limit
//! stops with that reason.

use std::time::Duration;

use forgehand::domain::agent_event::AgentEvent;
use forgehand::web::api::types::{RunEvent, RunState};

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(
    hostile_agent_and_hook_are_contained,
    memory_hog_is_stopped,
    unsandboxed_run_says_so,
    git_metadata_of_the_agent_is_not_trusted,
    the_agents_own_commit_is_pushed_but_the_mirror_is_not_writable,
    home_symlinks_of_the_agent_are_not_followed
);

/// Tries everything an attacker would, writing what it got under `$OUT`. `$1` names the marker
/// of the daemon it leaves behind.
const HOSTILE: &str = r#"
data="${FORGEHAND_WORKTREE%/worktrees/*}"
mark="fh-$1-$(basename "$data")"
mkdir -p "$OUT"
try() {
    name=$1; shift
    if "$@" > "$OUT/$name.out" 2>/dev/null; then echo "$name: read"; else echo "$name: denied"; fi >> "$OUT/report"
}
try own_worktree ls "$FORGEHAND_WORKTREE"
try parent_environ cat "/proc/$PPID/environ"
try init_environ cat /proc/1/environ
try database head -c 16 "$data/forgehand.db"
try other_worktree cat "$data/worktrees/github/octo/app/999/secret.txt"
try other_home cat "$data/runs/999/home/secret.txt"
ls -A "$data" > "$OUT/data_dir.out" 2>&1
echo pwned > "$data/pwned" 2>/dev/null
echo pwned > "$data/../pwned-$(basename "$data")" 2>/dev/null
echo pwned > "/pwned-$(basename "$data")" 2>/dev/null
echo pwned > "$FORGEHAND_WORKTREE/../pwned" 2>/dev/null
setsid sh -c "sleep 600; : $mark" > /dev/null 2>&1 < /dev/null &
nohup sh -c "sleep 600; : $mark" > /dev/null 2>&1 < /dev/null &
sleep 0.2
"#;

fn agent_script() -> String {
    format!(
        "cat > /dev/null\nOUT=\"$SHARED/agent\"\nset -- agentd\n{HOSTILE}\n\
         echo 'from the agent' > hello.txt\n\
         echo '{{\"kind\":\"result\",\"text\":\"done\",\"is_error\":false}}'\n"
    )
}

/// The same attempts from an `on_complete` hook; its findings land in the worktree.
fn hook_workflow() -> String {
    let body: String = format!("OUT=\"$FORGEHAND_WORKTREE/.hook\"\nset -- hookd\n{HOSTILE}")
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    workflow(
        HARNESS,
        &format!("hooks:\n  on_complete:\n    - name: hostile\n      run: |\n{body}"),
    )
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// The parent of `pid`, from `/proc/<pid>/stat` (its fourth field, after the command name in
/// parentheses, which may hold spaces).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn assert_contained(report: &str, outputs: impl Fn(&str) -> String, server_env: &str) {
    assert!(report.contains("own_worktree: read"), "{report}");
    for attempt in ["database", "other_worktree", "other_home"] {
        assert!(
            report.contains(&format!("{attempt}: denied")),
            "{attempt} was not denied: {report}"
        );
    }
    for environ in ["parent_environ", "init_environ"] {
        let seen = outputs(environ);
        assert!(
            !seen.contains(server_env),
            "{environ} shows the server's environment: {seen}"
        );
    }
    let listing = outputs("data_dir");
    assert!(
        !listing.contains("forgehand.db"),
        "the data directory is in view: {listing}"
    );
}

async fn hostile_agent_and_hook_are_contained(db: Db) {
    // The test process is the server: a variable of its own environment that agents and hooks
    // are not given (cargo's, when run by cargo) stands for its secrets.
    let given = ["PATH", "HOME", "LANG", "TERM"];
    let server_env = std::env::vars()
        .find(|(k, v)| !given.contains(&k.as_str()) && !k.starts_with("FORGEHAND") && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .expect("the test process has an environment of its own");
    let s = Scenario::start(db, &agent_script(), &hook_workflow(), "").await;
    let data = s.server.data_dir.path().to_owned();
    let name = data.file_name().unwrap().to_string_lossy().into_owned();
    for dir in ["worktrees/github/octo/app/999", "runs/999/home"] {
        std::fs::create_dir_all(data.join(dir)).unwrap();
        std::fs::write(data.join(dir).join("secret.txt"), "TOP SECRET").unwrap();
    }

    let n = s
        .open_labelled("Be hostile", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket.runs[0].state, RunState::Succeeded, "{ticket:?}");
    let branch = format!("forgehand/{n}-be-hostile");

    let agent_out = s.shared_path("agent");
    let read = |name: &str| std::fs::read_to_string(agent_out.join(name)).unwrap_or_default();
    assert_contained(&read("report"), |n| read(&format!("{n}.out")), &server_env);
    let hook_out = data.join(format!("worktrees/github/octo/app/{n}/.hook"));
    let read_hook = |name: &str| std::fs::read_to_string(hook_out.join(name)).unwrap_or_default();
    let hook_report = read_hook("report");
    assert!(!hook_report.is_empty(), "the hook did not report");
    assert_contained(
        &hook_report,
        |n| read_hook(&format!("{n}.out")),
        &server_env,
    );
    assert!(s.file_on(&branch, "hello.txt").is_some());

    // Nothing was written outside the worktrees.
    for path in [
        data.join("pwned"),
        data.join(format!("../pwned-{name}")),
        std::path::PathBuf::from(format!("/pwned-{name}")),
        data.join(format!("worktrees/github/octo/app/{n}/../pwned")),
    ] {
        assert!(!path.exists(), "{} was written", path.display());
    }
    // And no daemon of either survived its turn or hook.
    for marker in [format!("fh-agentd-{name}"), format!("fh-hookd-{name}")] {
        wait_until(&format!("no process with {marker}"), || async {
            processes_with(&marker).is_empty()
        })
        .await;
    }
    s.finish().await;
}

/// Grows a string by 1 MiB every 20 ms until something stops it.
const HOG: &str = r#"
cat > /dev/null
chunk=$(head -c 1048576 /dev/zero | tr '\0' a)
x=""
while :; do x="$x$chunk"; sleep 0.02; done
"#;

async fn memory_hog_is_stopped(db: Db) {
    let s = Scenario::start(
        db,
        HOG,
        &workflow(HARNESS, ""),
        "memory_limit = \"64MiB\"\n",
    )
    .await;
    let n = s
        .open_labelled("Eat memory", &["agent:todo"], "alice")
        .await;
    let started = std::time::Instant::now();
    wait_until("the run to end", || async {
        s.run_state(n, 0).await == Some(RunState::Failed)
    })
    .await;
    let run = s.ticket(n).await.runs[0].clone();
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.contains("memory limit"), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "{run:?}");
    s.finish().await;
}

backend_tests!(
    killed_server_leaves_no_agent_and_restarts_one,
    unsandboxed_leftover_is_killed_on_restart
);

/// An agent that says it started, then waits in a child (and, with `daemon`, a `setsid` daemon)
/// until killed.
fn waiting_agent(marker: &str, daemon: bool) -> String {
    let daemon = if daemon {
        format!("setsid sh -c 'sleep 600; : {marker}' > /dev/null 2>&1 < /dev/null &\n")
    } else {
        String::new()
    };
    format!(
        "cat > /dev/null\necho started >> \"$SHARED/starts\"\n{daemon}sh -c 'sleep 600; : {marker}'\n"
    )
}

/// The server binary, killed (SIGKILL) when dropped, so a failing test leaves none behind.
struct Binary(std::process::Child);

impl Binary {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Posts a GitHub webhook to the binary.
async fn post_github(base: &str, event: &str, body: &serde_json::Value) {
    let body = serde_json::to_vec(body).unwrap();
    let sig = format!(
        "sha256={}",
        forgehand::forge::signature::sign(crate::harness::GITHUB_SECRET.as_bytes(), &body)
    );
    let id = format!(
        "{event}-{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/github"))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", id)
        .header("X-Hub-Signature-256", sig)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

/// `kill -9` of the real server binary during a run: the agent and its daemon are gone within a
/// second; after a restart exactly one agent runs the run.
async fn killed_server_leaves_no_agent_and_restarts_one(db: Db) {
    killed_server(db, true).await;
}

/// Without a sandbox the agent outlives a `kill -9` of the server; the restarted server kills
/// it (the process group it recorded) before it runs the run again: one agent, never two.
async fn unsandboxed_leftover_is_killed_on_restart(db: Db) {
    killed_server(db, false).await;
}

async fn killed_server(db: Db, sandboxed: bool) {
    use forgehand::sandbox::{self as forge_sandbox, ForgeModel, Permission};
    use serde_json::json;

    let data_dir = tempfile::tempdir().unwrap();
    let test_db = crate::harness::TestDb::create(db, data_dir.path()).await;
    let marker = format!(
        "fh-killed-{}",
        data_dir.path().file_name().unwrap().to_string_lossy()
    );
    let remote = crate::gitrepo::GitRemote::new();
    let skill = "---\nname: style\ndescription: House style.\n---\nWrite short lines.\n";
    let build = workflow(HARNESS, "");
    remote.commit(
        &[
            (".forgehand/config.yaml", Some("max_concurrent: 5\n")),
            (".forgehand/workflows/build.md", Some(build.as_str())),
            (".forgehand/skills/style/SKILL.md", Some(skill)),
        ],
        "add forgehand config",
    );
    let model = ForgeModel::new();
    model.add_repo("octo", "app", "main", &remote.clone_url());
    model.set_permission(crate::scenario::REPO, "alice", Permission::Write);
    let forge = forge_sandbox::serve(model.clone()).await.unwrap();

    let shared = tempfile::tempdir().unwrap();
    let script = shared.path().join("agent.sh");
    std::fs::write(&script, waiting_agent(&marker, sandboxed)).unwrap();
    let config = shared.path().join("forgehand.toml");
    std::fs::write(
        &config,
        format!(
            "[agents.script]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{}\"]\n\
             env = {{ SHARED = \"{}\" }}\nsandbox_writable = [\"{}\"]\nsandbox = \"{}\"\n",
            script.display(),
            shared.path().display(),
            shared.path().display(),
            if sandboxed { "bwrap" } else { "none" }
        ),
    )
    .unwrap();
    let port = crate::restart::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let spawn = || {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_forgehand"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FORGEHAND_CONFIG", &config)
            .env("FORGEHAND_DATA_DIR", data_dir.path())
            .env("DATABASE_URL", &test_db.url)
            .env("FORGEHAND_LISTEN", format!("127.0.0.1:{port}"))
            .env("FORGEHAND_GITHUB_API_URL", forge.github_api_url())
            .env("FORGEHAND_GITHUB_TOKEN", "ghp_secret_test")
            .env(
                "FORGEHAND_GITHUB_WEBHOOK_SECRET",
                crate::harness::GITHUB_SECRET,
            )
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the forgehand binary starts");
        Binary(child)
    };
    let starts = || {
        std::fs::read_to_string(shared.path().join("starts"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    // The agent's waiting child (and its daemon): per running agent.
    let per_agent = if sandboxed { 2 } else { 1 };
    // A shell's child between its fork and its exec carries the shell's command line for a
    // moment: count only marked processes whose parent is not marked too.
    let agents = || {
        let marked = processes_with(&marker);
        marked
            .iter()
            .filter(|pid| parent_of(**pid).is_none_or(|parent| !marked.contains(&parent)))
            .count()
    };

    let mut server = spawn();
    crate::restart::wait_ready(&reqwest::Client::new(), &base).await;
    let repository = json!({
        "id": 42, "name": "app", "full_name": crate::scenario::REPO,
        "owner": {"login": "octo", "type": "Organization"},
        "html_url": "https://github.com/octo/app",
        "clone_url": remote.clone_url(), "default_branch": "main",
    });
    let head = remote.head();
    let push = json!({
        "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000001",
        "after": head, "commits": [{"id": head, "added": [], "removed": [],
        "modified": [".forgehand/workflows/build.md"]}],
        "repository": repository, "sender": {"login": "alice"},
    });
    post_github(&base, "push", &push).await;
    let n = model.open_issue(
        crate::scenario::REPO,
        "Wait",
        "Please wait.",
        &["agent:todo"],
        "alice",
    );
    let issue = model.issue(crate::scenario::REPO, n).unwrap();
    let mut labeled: serde_json::Value = serde_json::from_slice(&crate::harness::fixture(
        "github/issues/labeled.payload.json",
    ))
    .unwrap();
    labeled["action"] = json!("labeled");
    labeled["repository"] = repository;
    labeled["sender"] = json!({"login": "alice", "type": "User"});
    labeled["issue"]["number"] = json!(n);
    labeled["issue"]["title"] = json!(issue.title);
    labeled["issue"]["body"] = json!(issue.body);
    labeled["issue"]["state"] = json!("open");
    labeled["issue"]["user"] = json!({"login": "alice"});
    labeled["issue"]["updated_at"] = json!(issue.updated_at.to_rfc3339());
    labeled["issue"]["labels"] = json!([{"name": "agent:todo"}]);
    // The config may still be syncing: the label is delivered again until an agent starts.
    for _ in 0..100 {
        post_github(&base, "issues", &labeled).await;
        if starts() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_until("the agent to start", || async {
        starts() == 1 && agents() >= per_agent
    })
    .await;

    server.kill();
    if sandboxed {
        let killed = std::time::Instant::now();
        while agents() > 0 && killed.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(agents(), 0, "the agent outlived the server by a second");
    }

    let mut server = spawn();
    wait_until("the run to start again", || async { starts() == 2 }).await;
    // Give a second agent every chance to appear: there must never be one.
    for _ in 0..40 {
        assert!(starts() <= 2, "a second agent started for the run");
        assert!(
            agents() <= per_agent,
            "two agents run at once: {}",
            agents()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    if sandboxed {
        wait_until("the agent to go with the server", || async {
            agents() == 0
        })
        .await;
    } else {
        // Unconfined, it outlives the server: the test cleans up after itself.
        for pid in processes_with(&marker) {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) touches no memory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    test_db.drop_db().await;
}

/// `sandbox = "none"` runs, and every run says so in its events (the run page shows them).
async fn unsandboxed_run_says_so(db: Db) {
    let script = "cat > /dev/null\necho hi > hello.txt\n\
                  echo '{\"kind\":\"result\",\"text\":\"ok\",\"is_error\":false}'\n";
    let s = Scenario::start(db, script, &workflow(HARNESS, ""), "sandbox = \"none\"\n").await;
    let n = s
        .open_labelled("Unconfined", &["agent:todo"], "alice")
        .await;
    let ticket = s.wait_status(n, "in-review").await;
    let run_id = ticket.runs[0].id;
    let events: Vec<RunEvent> = s
        .server
        .get_json(&format!("/api/v1/runs/{run_id}/events"))
        .await;
    let notices: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.event {
            AgentEvent::Message { role, text } if role == "forgehand" => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{events:?}");
    assert!(notices[0].contains("sandbox = \"none\""), "{events:?}");
    s.finish().await;
}

/// Points its worktree's git (both the `.git` file and its admin folder's `commondir`) at a
/// repository whose configuration it wrote: a clean filter that leaves a marker in the data
/// directory, which only the server (outside the sandbox) can reach.
const GIT_REDIRECT: &str = r#"
cat > /dev/null
data="${FORGEHAND_WORKTREE%/worktrees/*}"
admin=$(sed 's/^gitdir: //' .git)
common=$(cd "$admin" && cd "$(cat commondir)" && pwd)
evil="$SHARED/evil"
mkdir -p "$evil/common/refs"
ln -s "$common/objects" "$evil/common/objects"
printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n[filter "evil"]\n\tclean = "touch %s; cat"\n\trequired = true\n' "$data/filter-ran" > "$evil/common/config"
cp -r "$admin" "$evil/wt"
echo "$evil/common" > "$evil/wt/commondir"
echo "$evil/common" > "$admin/commondir"
printf '[filter "evil"]\n\tclean = "touch %s; cat"\n' "$data/filter-ran" > "$admin/config.worktree"
echo "gitdir: $evil/wt" > .git
printf '* filter=evil\n' > .gitattributes
echo 'from the agent' > hello.txt
echo '{"kind":"result","text":"done","is_error":false}'
"#;

async fn git_metadata_of_the_agent_is_not_trusted(db: Db) {
    let s = Scenario::start(db, GIT_REDIRECT, &workflow(HARNESS, ""), "").await;
    let data = s.server.data_dir.path().to_owned();
    let n = s
        .open_labelled("Redirect git", &["agent:todo"], "alice")
        .await;
    wait_until("the run to end", || async {
        let state = s.run_state(n, 0).await;
        matches!(state, Some(RunState::Succeeded | RunState::Failed))
    })
    .await;
    assert!(
        !data.join("filter-ran").exists(),
        "the server ran the agent's git filter"
    );
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs[0].state, RunState::Succeeded, "{ticket:?}");
    let branch = format!("forgehand/{n}-redirect-git");
    assert_eq!(
        s.file_on(&branch, "hello.txt").as_deref(),
        Some("from the agent\n")
    );
    s.finish().await;
}

/// Commits on its own (as coding agents do), then tries to plant and to overwrite objects in the
/// repository's mirror, whose object store every ticket and the server's config reading share.
const OWN_COMMIT: &str = r#"
cat > /dev/null
echo 'from the agent' > agent.txt
git add agent.txt
git -c user.name=Agent -c user.email=agent@example.com commit -q -m "The agent's own commit" \
    || echo failed > commit-failed.txt
objects="$(git rev-parse --git-common-dir)/objects"
touch "$objects/planted" 2>/dev/null && echo planted > planted.txt
for f in "$objects"/pack/*.pack "$objects"/??/*; do
    [ -f "$f" ] && chmod u+w "$f" 2>/dev/null && : > "$f" 2>/dev/null && echo "$f" >> emptied.txt
done
echo '{"kind":"result","text":"done","is_error":false}'
"#;

async fn the_agents_own_commit_is_pushed_but_the_mirror_is_not_writable(db: Db) {
    let s = Scenario::start(db, OWN_COMMIT, &workflow(HARNESS, ""), "").await;
    let n = s
        .open_labelled("Commit on its own", &["agent:todo"], "alice")
        .await;
    wait_until("the run to end", || async {
        let state = s.run_state(n, 0).await;
        matches!(state, Some(RunState::Succeeded | RunState::Failed))
    })
    .await;
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs[0].state, RunState::Succeeded, "{ticket:?}");
    let branch = format!("forgehand/{n}-commit-on-its-own");
    assert_eq!(s.file_on(&branch, "commit-failed.txt"), None);
    assert_eq!(s.file_on(&branch, "planted.txt"), None);
    assert_eq!(s.file_on(&branch, "emptied.txt"), None);
    assert_eq!(
        s.file_on(&branch, "agent.txt").as_deref(),
        Some("from the agent\n")
    );
    let log = s.remote.log(&branch, "%s");
    assert!(log.contains("The agent's own commit"), "{log}");
    s.finish().await;
}

/// Attempt 1 replaces `~/.agents` (where the command adapter gets its skills) with a symlink to
/// a folder outside its home and fails; attempt 2 finds its skills in a real folder again.
const HOME_SYMLINK: &str = r#"
cat > /dev/null
if [ ! -e "$SHARED/planted" ]; then
    touch "$SHARED/planted"
    rm -rf "$HOME/.agents"
    ln -s "$SHARED/victim" "$HOME/.agents"
    exit 1
fi
cat "$HOME/.agents/skills/style/SKILL.md" > skill-seen.txt
echo '{"kind":"result","text":"done","is_error":false}'
"#;

async fn home_symlinks_of_the_agent_are_not_followed(db: Db) {
    let s = Scenario::start(db, HOME_SYMLINK, &workflow(HARNESS, ""), "").await;
    let victim = s.shared_path("victim");
    std::fs::create_dir_all(victim.join("skills")).unwrap();
    std::fs::write(victim.join("skills/keep.txt"), "ORIGINAL").unwrap();
    let n = s
        .open_labelled("Plant a link", &["agent:todo"], "alice")
        .await;
    wait_until("the retry to end", || async {
        let runs = s.try_ticket(n).await.map(|t| t.runs).unwrap_or_default();
        runs.len() == 2 && matches!(runs[0].state, RunState::Succeeded | RunState::Failed)
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(victim.join("skills/keep.txt"))
            .ok()
            .as_deref(),
        Some("ORIGINAL"),
        "the server followed the agent's symlink"
    );
    assert!(!victim.join("skills/style").exists());
    let ticket = s.ticket(n).await;
    assert_eq!(ticket.runs[0].state, RunState::Succeeded, "{ticket:?}");
    let branch = format!("forgehand/{n}-plant-a-link");
    assert!(
        s.file_on(&branch, "skill-seen.txt")
            .is_some_and(|t| t.contains("Write short lines")),
        "{ticket:?}"
    );
    s.finish().await;
}
