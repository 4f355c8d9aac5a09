//! A fleet as processes: `forgehand serve` replicas that only coordinate (`[runner] enabled =
//! false`) on one PostgreSQL database, and `forgehand runner` processes that lease their runs,
//! against the in-process sandbox forge. Runners are killed (`kill -9`) and paused (SIGSTOP)
//! past their lease: their runs go to another runner, and nothing of theirs is pushed late.
//! (Replicas need PostgreSQL: these tests run on it only. The agents run unconfined,
//! `--sandbox none`: the tests are about leases, not confinement.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forgehand::sandbox::{self, ForgeModel, Permission, SandboxServer};
use forgehand::web::api::types::{self, ConfigVersions};
use serde_json::{Value, json};

use crate::gitrepo::GitRemote;
use crate::harness::{ADMIN_TOKEN, Db, GITHUB_SECRET, TestDb, fixture, postgres_available};
use crate::restart::{free_port, wait_ready};

const REPO: &str = "octo/app";
/// How long a lease lasts unrenewed in the tests that kill or pause a runner: its run goes back
/// to the queue soon after.
const SHORT_LEASE: &str = "3s";
/// In the test where no runner fails: long enough that a busy host's slow heartbeat does not
/// send a run to a second runner.
const LONG_LEASE: &str = "30s";

/// The agent: records its start (`<runner>/<ticket>.start`, ns), waits for `$SHARED/go-<runner>`
/// when `$SHARED/hold` exists, writes which runner did the work, records its end.
const AGENT: &str = r#"marks="$SHARED/$RUNNER"
mkdir -p "$marks"
date +%s%N > "$marks/$FORGEHAND_TICKET_NUMBER.start"
if [ -e "$SHARED/hold" ]; then
  while [ ! -e "$SHARED/go-$RUNNER" ]; do sleep 0.1; done
else
  sleep 0.3
fi
echo "$RUNNER" > "done-$FORGEHAND_TICKET_NUMBER.txt"
date +%s%N > "$marks/$FORGEHAND_TICKET_NUMBER.end"
"#;

/// `.forgehand/`: two unstarted statuses, each picked up by a workflow for its own runner label.
const STATUSES: &str = "statuses:\n\
  - { name: todo, label: \"agent:todo\", stage: unstarted }\n\
  - { name: gpu-todo, label: \"agent:gpu-todo\", stage: unstarted }\n\
  - { name: in-progress, label: \"agent:in-progress\", stage: started }\n\
  - { name: in-review, label: \"agent:in-review\", stage: started }\n\
  - { name: done, label: \"agent:done\", stage: completed }\n\
  - { name: canceled, label: \"agent:canceled\", stage: canceled }\n\
max_concurrent: 100\n";

fn workflow(pickup: &str, label: &str) -> String {
    format!(
        "---\npickup: [{pickup}]\nfinish: [in-review]\nagent: script\nruns_on: [{label}]\n\
         max_turns: 1\ntimeout: 60s\nstall_timeout: 30s\n---\nDo {{{{ ticket.title }}}}\n"
    )
}

/// A `serve` process.
struct Replica {
    base: String,
    child: Child,
    _data: tempfile::TempDir,
}

/// A `forgehand runner` process and the runner it signs in as.
struct RunnerProcess {
    name: String,
    id: i64,
    child: Child,
    log: PathBuf,
}

struct Fleet {
    model: ForgeModel,
    remote: GitRemote,
    shared: tempfile::TempDir,
    db: TestDb,
    replicas: Vec<Replica>,
    runners: Vec<RunnerProcess>,
    /// Sends the admin token.
    http: reqwest::Client,
    _sandbox: SandboxServer,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self
            .runners
            .iter_mut()
            .map(|r| &mut r.child)
            .chain(self.replicas.iter_mut().map(|r| &mut r.child))
        {
            let _ = signal(child, libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Fleet {
    /// The forge, its repository with both workflows, and `replicas` coordinators on one
    /// PostgreSQL database; no runner yet. `None` without PostgreSQL.
    async fn start(replicas: usize, lease: &str) -> Option<Self> {
        postgres_available().await?;
        let remote = GitRemote::new();
        let build = workflow("todo", "linux");
        let gpu = workflow("gpu-todo", "gpu");
        remote.commit(
            &[
                (".forgehand/config.yaml", Some(STATUSES)),
                (".forgehand/workflows/build.md", Some(build.as_str())),
                (".forgehand/workflows/gpu.md", Some(gpu.as_str())),
            ],
            "add forgehand config",
        );
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("agent.sh"), AGENT).unwrap();
        let model = ForgeModel::new();
        model.add_repo("octo", "app", "main", &remote.clone_url());
        model.set_permission(REPO, "alice", Permission::Write);
        let sandbox = sandbox::serve(model.clone()).await.unwrap();
        let db = TestDb::create(Db::Postgres, shared.path()).await;
        let toml = shared.path().join("server.toml");
        std::fs::write(
            &toml,
            format!(
                "{}[runner]\nenabled = false\n[limits]\nrun_lease = \"{lease}\"\n\
                 [forge]\ngithub_write_spacing = \"0s\"\n",
                agent_profile(shared.path(), "server")
            ),
        )
        .unwrap();
        let mut started = Vec::new();
        for _ in 0..replicas {
            started.push(spawn_replica(&db, &toml, &sandbox.github_api_url()));
        }
        let http = reqwest::Client::builder()
            .default_headers(reqwest::header::HeaderMap::from_iter([(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}")).unwrap(),
            )]))
            .build()
            .unwrap();
        for replica in &started {
            wait_ready(&http, &replica.base).await;
        }
        let fleet = Self {
            model,
            remote,
            shared,
            db,
            replicas: started,
            runners: Vec::new(),
            http,
            _sandbox: sandbox,
        };
        fleet.push_config().await;
        Some(fleet)
    }

    fn base(&self, i: usize) -> &str {
        &self.replicas[i % self.replicas.len()].base
    }

    /// Tells a replica about the default branch's head and waits for the config to sync.
    async fn push_config(&self) {
        let head = self.remote.head();
        let body = json!({
            "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000001",
            "after": head, "commits": [{"id": head, "added": [], "removed": [],
            "modified": [".forgehand/workflows/build.md"]}],
            "repository": self.repository_json(), "sender": {"login": "alice"},
        });
        self.deliver(0, "push", "push-initial", &body).await;
        wait_until("the config to sync", Duration::from_secs(60), || async {
            let url = format!(
                "{}/api/v1/repos/github/octo/app/config-versions",
                self.base(0)
            );
            let r = self.http.get(url).send().await.unwrap();
            r.status() == 200
                && r.json::<ConfigVersions>()
                    .await
                    .unwrap()
                    .versions
                    .first()
                    .is_some_and(|v| v.commit_sha == head)
        })
        .await;
    }

    fn repository_json(&self) -> Value {
        json!({
            "id": 42, "name": "app", "full_name": REPO,
            "owner": {"login": "octo", "type": "Organization"},
            "html_url": "https://github.com/octo/app",
            "clone_url": self.remote.clone_url(), "default_branch": "main",
        })
    }

    async fn deliver(&self, replica: usize, event: &str, id: &str, body: &Value) {
        let body = serde_json::to_vec(body).unwrap();
        let sig = format!(
            "sha256={}",
            forgehand::forge::signature::sign(GITHUB_SECRET.as_bytes(), &body)
        );
        let r = reqwest::Client::new()
            .post(format!("{}/webhooks/github", self.base(replica)))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", id)
            .header("X-Hub-Signature-256", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }

    /// Opens an issue that alice labels `label`, delivered to one of the replicas in turn.
    async fn open_labelled(&self, title: &str, label: &str) -> u64 {
        let number = self.model.open_issue(REPO, title, "", &[], "alice");
        self.model.add_labels(REPO, number, &[label], "alice");
        let issue = self.model.issue(REPO, number).unwrap();
        let mut v: Value =
            serde_json::from_slice(&fixture("github/issues/labeled.payload.json")).unwrap();
        v["label"] = json!({"name": label, "color": "ededed"});
        v["repository"] = self.repository_json();
        v["sender"] = json!({"login": "alice", "type": "User"});
        v["issue"]["number"] = json!(number);
        v["issue"]["title"] = json!(issue.title);
        v["issue"]["body"] = json!(issue.body);
        v["issue"]["user"] = json!({"login": "alice"});
        v["issue"]["updated_at"] = json!(issue.updated_at.to_rfc3339());
        v["issue"]["labels"] = issue.labels.iter().map(|l| json!({"name": l})).collect();
        self.deliver(number as usize, "issues", &format!("label-{number}"), &v)
            .await;
        number
    }

    /// Registers a runner through the admin API and starts its process; waits until the
    /// server has heard from it (a claim counts on that).
    async fn add_runner(&mut self, name: &str, labels: &[&str], capacity: u32) -> usize {
        let r = self
            .http
            .post(format!("{}/api/v1/runners", self.base(0)))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created: types::RunnerCreated = r.json().await.unwrap();
        let config = self.shared.path().join(format!("{name}.toml"));
        std::fs::write(&config, agent_profile(self.shared.path(), name)).unwrap();
        let dir = self.shared.path().join(format!("{name}-work"));
        let log = self.shared.path().join(format!("{name}.log"));
        let index = self.runners.len();
        let child = Command::new(env!("CARGO_BIN_EXE_forgehand"))
            .arg("--config")
            .arg(&config)
            .arg("runner")
            .args(["--server", self.base(index)])
            .args(["--labels", &labels.join(",")])
            .args(["--capacity", &capacity.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(["--sandbox", "none"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.shared.path())
            .env("FORGEHAND_RUNNER_TOKEN", &created.token)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the forgehand binary starts");
        let id = created.id;
        self.runners.push(RunnerProcess {
            name: name.to_owned(),
            id,
            child,
            log,
        });
        wait_until(
            "the runner to announce itself",
            Duration::from_secs(30),
            || async {
                self.runner_rows()
                    .await
                    .iter()
                    .any(|r| r.id == id && r.last_contact.is_some())
            },
        )
        .await;
        index
    }

    async fn runner_rows(&self) -> Vec<types::Runner> {
        let r = self
            .http
            .get(format!("{}/api/v1/runners", self.base(0)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    fn runner_log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.runners[index].log).unwrap_or_default()
    }

    /// The agents' starts and ends per runner name: ticket → (start ns, end ns if it ended).
    fn marks(&self) -> BTreeMap<String, BTreeMap<u64, (i128, Option<i128>)>> {
        let mut all = BTreeMap::new();
        for runner in &self.runners {
            let dir = self.shared.path().join(&runner.name);
            let mut runs = BTreeMap::new();
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
                    continue;
                };
                let Ok(ticket) = stem.to_string_lossy().parse::<u64>() else {
                    continue;
                };
                let Ok(ns) = std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .parse::<i128>()
                else {
                    continue;
                };
                let slot: &mut (i128, Option<i128>) = runs.entry(ticket).or_default();
                match ext.to_string_lossy().as_ref() {
                    "start" => slot.0 = ns,
                    _ => slot.1 = Some(ns),
                }
            }
            all.insert(runner.name.clone(), runs);
        }
        all
    }

    /// The sandbox's pull requests: head branch → numbers.
    fn pulls(&self, up_to: u64) -> BTreeMap<String, Vec<u64>> {
        let mut pulls: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for n in 1..=up_to {
            if let Some(pull) = self.model.pull(REPO, n) {
                pulls.entry(pull.head_ref).or_default().push(n);
            }
        }
        pulls
    }

    fn in_review(&self, number: u64) -> bool {
        self.model
            .issue(REPO, number)
            .is_some_and(|i| i.labels.iter().any(|l| l == "agent:in-review"))
    }

    /// Which runner's agent wrote the file the branch of `number`'s pull request carries.
    fn pushed_by(&self, number: u64, up_to: u64) -> Option<String> {
        let pulls = self.pulls(up_to);
        let (branch, _) = pulls
            .iter()
            .find(|(branch, _)| branch_of(branch) == Some(number))?;
        self.remote
            .show(branch, &format!("done-{number}.txt"))
            .map(|s| s.trim().to_owned())
    }

    fn go(&self, runner: &str) {
        std::fs::write(self.shared.path().join(format!("go-{runner}")), "").unwrap();
    }

    fn hold(&self) {
        std::fs::write(self.shared.path().join("hold"), "").unwrap();
    }

    /// What each runner holds now, as the coordinator sees it: runner id → runs.
    async fn held(&self) -> BTreeMap<i64, usize> {
        self.runner_rows()
            .await
            .into_iter()
            .map(|r| (r.id, r.runs.len()))
            .collect()
    }
}

/// The ticket a branch `forgehand/<number>-…` belongs to.
fn branch_of(branch: &str) -> Option<u64> {
    branch
        .strip_prefix("forgehand/")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// The scripted agent's profile, with `RUNNER` naming who runs it.
fn agent_profile(shared: &Path, runner: &str) -> String {
    format!(
        "[agents.script]\nadapter = \"command\"\ncommand = \"sh\"\nargs = [\"{}\"]\n\
         env = {{ SHARED = \"{}\", RUNNER = \"{runner}\" }}\n",
        shared.join("agent.sh").display(),
        shared.display()
    )
}

fn spawn_replica(db: &TestDb, toml: &Path, forge_api: &str) -> Replica {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(data.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FORGEHAND_CONFIG", toml)
        .env("FORGEHAND_DATA_DIR", data.path())
        .env("DATABASE_URL", &db.url)
        .env("FORGEHAND_LISTEN", format!("127.0.0.1:{port}"))
        .env("FORGEHAND_PUBLIC_URL", &base)
        .env("FORGEHAND_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FORGEHAND_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
        .env("FORGEHAND_GITHUB_API_URL", forge_api)
        .env("FORGEHAND_GITHUB_TOKEN", "ghp_fleet_test")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the forgehand binary starts");
    Replica {
        base,
        child,
        _data: data,
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most runs of one runner's agents that overlapped in time.
fn most_at_once(runs: &BTreeMap<u64, (i128, Option<i128>)>) -> usize {
    let mut edges: Vec<(i128, i32)> = Vec::new();
    for (start, end) in runs.values() {
        edges.push((*start, 1));
        edges.push((end.unwrap_or(i128::MAX), -1));
    }
    // An end at the same instant as a start is counted first.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or_default()
}

// The replicas do not space their forge writes (`github_write_spacing = "0s"`): the sandbox
// forge has no secondary rate limit, and with GitHub's one write a second per installation the
// forge, not the fleet, would set the pace (docs/runners.md, "Throughput").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_tickets_across_two_labels_on_three_runners() {
    let Some(mut fleet) = Fleet::start(2, LONG_LEASE).await else {
        return;
    };
    let capacities = [
        ("linux-1", "linux", 2),
        ("gpu-1", "gpu", 2),
        ("both-1", "linux,gpu", 3),
    ];
    for (name, labels, capacity) in capacities {
        let labels: Vec<&str> = labels.split(',').collect();
        fleet.add_runner(name, &labels, capacity).await;
    }
    let mut tickets = BTreeMap::new();
    for i in 0..60 {
        let label = if i % 2 == 0 {
            "agent:todo"
        } else {
            "agent:gpu-todo"
        };
        let n = fleet.open_labelled(&format!("Task {i}"), label).await;
        tickets.insert(n, label);
    }
    let ids: BTreeMap<i64, u32> = fleet
        .runners
        .iter()
        .zip(capacities)
        .map(|(r, (_, _, capacity))| (r.id, capacity))
        .collect();
    // The coordinator's view, sampled while the runs go through.
    let mut samples = 0;
    wait_until(
        "every ticket to be in review",
        Duration::from_secs(240),
        || {
            samples += 1;
            let fleet = &fleet;
            let ids = &ids;
            let tickets = &tickets;
            async move {
                for (runner, held) in fleet.held().await {
                    let capacity = ids.get(&runner).copied().unwrap_or_default() as usize;
                    assert!(
                        held <= capacity,
                        "runner {runner} holds {held} > {capacity}"
                    );
                }
                tickets.keys().all(|n| fleet.in_review(*n))
            }
        },
    )
    .await;
    assert!(samples > 1);
    let last = tickets.keys().max().copied().unwrap_or_default() + 100;
    let pulls = fleet.pulls(last);
    let marks = fleet.marks();
    for (n, label) in &tickets {
        let branch_pulls: Vec<&Vec<u64>> = pulls
            .iter()
            .filter(|(b, _)| branch_of(b) == Some(*n))
            .map(|(_, p)| p)
            .collect();
        assert_eq!(branch_pulls.len(), 1, "#{n}: {pulls:?}");
        assert_eq!(branch_pulls[0].len(), 1, "#{n}: {pulls:?}");
        // Executed by exactly one runner, one that has the workflow's label.
        let ran: Vec<&String> = marks
            .iter()
            .filter(|(_, runs)| runs.contains_key(n))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(ran.len(), 1, "#{n} ran on {ran:?}");
        let wrong = if *label == "agent:todo" {
            "gpu-1"
        } else {
            "linux-1"
        };
        assert_ne!(ran[0], wrong, "#{n} ran on a runner without its label");
        assert_eq!(fleet.pushed_by(*n, last).as_deref(), Some(ran[0].as_str()));
    }
    // `marks` is ordered by name, `capacities` by start order: look each runner up by name.
    for (name, runs) in &marks {
        let capacity = capacities
            .iter()
            .find(|(runner, _, _)| runner == name)
            .map(|(_, _, capacity)| *capacity)
            .unwrap_or_default();
        assert!(
            most_at_once(runs) <= capacity as usize,
            "{name} ran {} at once",
            most_at_once(runs)
        );
    }
    // Everyone took part.
    assert!(marks.values().all(|runs| !runs.is_empty()), "{marks:?}");
    fleet.db.drop_db().await;
}

/// Starts runner `first` alone, labels one ticket and waits until its agent started.
async fn one_run_held_by(fleet: &mut Fleet, first: &str) -> u64 {
    fleet.hold();
    fleet.add_runner(first, &["linux"], 1).await;
    let n = fleet.open_labelled("Held work", "agent:todo").await;
    let marks = fleet.shared.path().join(first).join(format!("{n}.start"));
    wait_until(
        "the first runner's agent to start",
        Duration::from_secs(30),
        || {
            let marks = marks.clone();
            async move { marks.exists() }
        },
    )
    .await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runners_run_is_finished_by_another() {
    let Some(mut fleet) = Fleet::start(2, SHORT_LEASE).await else {
        return;
    };
    let n = one_run_held_by(&mut fleet, "doomed").await;
    fleet.runners[0].child.kill().unwrap();
    let _ = fleet.runners[0].child.wait();
    // Its agent may outlive it: let it end too, with nobody left to hand its work over.
    fleet.go("doomed");
    fleet.go("heir");
    fleet.add_runner("heir", &["linux"], 1).await;
    wait_until(
        "the ticket to be in review",
        Duration::from_secs(60),
        || async { fleet.in_review(n) },
    )
    .await;
    let marks = fleet.marks();
    assert!(marks["heir"].contains_key(&n), "{marks:?}");
    let pulls = fleet.pulls(n + 10);
    assert_eq!(pulls.values().map(Vec::len).sum::<usize>(), 1, "{pulls:?}");
    assert_eq!(fleet.pushed_by(n, n + 10).as_deref(), Some("heir"));
    fleet.db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_runners_late_finish_is_refused() {
    let Some(mut fleet) = Fleet::start(2, SHORT_LEASE).await else {
        return;
    };
    let n = one_run_held_by(&mut fleet, "sleeper").await;
    signal(&fleet.runners[0].child, libc::SIGSTOP).unwrap();
    // Past its lease the run is requeued, and the other runner takes it.
    fleet.add_runner("heir", &["linux"], 1).await;
    let heir_started = fleet.shared.path().join("heir").join(format!("{n}.start"));
    wait_until(
        "the run to go to the other runner",
        Duration::from_secs(30),
        || {
            let heir_started = heir_started.clone();
            async move { heir_started.exists() }
        },
    )
    .await;
    fleet.go("heir");
    wait_until(
        "the ticket to be in review",
        Duration::from_secs(60),
        || async { fleet.in_review(n) },
    )
    .await;
    // Now the paused runner wakes up with its agent's work done, and tries to hand it over.
    fleet.go("sleeper");
    signal(&fleet.runners[0].child, libc::SIGCONT).unwrap();
    // Whichever of its requests comes first (the heartbeat, or the finish of its agent's
    // work) is refused with 409, and the runner drops the work.
    wait_until(
        "the paused runner to be refused",
        Duration::from_secs(30),
        || async {
            let log = fleet.runner_log(0);
            log.contains("work dropped") || log.contains("409")
        },
    )
    .await;
    let pulls = fleet.pulls(n + 10);
    assert_eq!(pulls.values().map(Vec::len).sum::<usize>(), 1, "{pulls:?}");
    assert_eq!(fleet.pushed_by(n, n + 10).as_deref(), Some("heir"));
    fleet.db.drop_db().await;
}
