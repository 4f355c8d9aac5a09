//! Lifecycle hooks (DESIGN §2–§3): each hook is `sh -c <run>` in the worktree, confined as an
//! agent is ([`crate::exec`], `[hooks]` in the server config), with an environment
//! built from exactly what the caller gives (nothing is inherited), a timeout and resource limits
//! enforced on all its processes (SIGTERM, then SIGKILL after [`KILL_GRACE`]), and stdout and
//! stderr captured interleaved into one bounded buffer that keeps the tail ([`OUTPUT_TAIL`]).
//!
//! A stage's hooks run one after the other and **all** of them run, even after a blocking
//! failure: every hook gets its result (and its check on the pull request), and the caller
//! decides with [`HookResult::blocks`]. When a hook's shell exits, whatever it left running is
//! killed (its whole pid namespace in a sandbox): a hook cannot leave daemons behind.
//!
//! What a hook's result is, and the annotations read from its output, is `report::hook_result`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::repo::{Hook, OnFailure, Workflow};
use crate::exec::Confinement;
pub use crate::forge::{Annotation, AnnotationLevel};
use crate::report::hook_result::{HookResult, HookStatus, format_duration};

/// How much of a hook's output is kept: the last 64 KiB.
pub const OUTPUT_TAIL: usize = 64 * 1024;
/// Between SIGTERM and SIGKILL when a hook times out.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for the rest of the output once the hook's group is gone (a process that
/// left the group may still hold the pipe open).
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Sees a hook's output as it is written (from the thread reading the hook's pipe), for a
/// command line that streams it.
pub type OutputSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// What a caller of [`run_local`] is told while the stage runs: each hook's start, its output as
/// it comes, and its result.
pub trait StageObserver {
    /// Before the first hook: the workflow chosen and how many hooks the stage has.
    fn stage(&mut self, workflow: &Workflow, stage: &str, hooks: usize);
    fn started(&mut self, hook: &Hook);
    /// Where the hook's output goes while it runs, besides the kept tail.
    fn sink(&mut self) -> Option<OutputSink>;
    fn finished(&mut self, result: &HookResult);
}

/// Runs one hook confined by `place` (in its working directory) with exactly `env` as its
/// environment.
pub async fn run_hook(hook: &Hook, place: &Confinement, env: &[(String, String)]) -> HookResult {
    run_hook_streamed(hook, place, env, None).await
}

/// [`run_hook`], with the output also given to `sink` as it is written.
async fn run_hook_streamed(
    hook: &Hook,
    place: &Confinement,
    env: &[(String, String)],
    sink: Option<OutputSink>,
) -> HookResult {
    let started = Instant::now();
    let (status, output_tail, truncated) = execute(hook, place, env, sink).await;
    HookResult {
        name: hook.name.clone(),
        on_failure: hook.on_failure,
        status,
        output_tail,
        truncated,
        duration: started.elapsed(),
    }
}

/// Runs every hook of a stage in order (all of them, also after a failure) and returns their
/// results in the same order.
pub async fn run_stage(
    hooks: &[Hook],
    place: &Confinement,
    env: &[(String, String)],
) -> Vec<HookResult> {
    let mut results = Vec::with_capacity(hooks.len());
    for hook in hooks {
        results.push(run_hook(hook, place, env).await);
    }
    results
}

/// [`run_stage`], reported on the pull request's head commit (check runs `forgehand/<name>`,
/// or commit statuses): every hook is queued first, so the whole stage shows at once, then each
/// goes in progress and completes in turn. Reporting failures are logged, never fatal.
pub async fn run_stage_reported(
    hooks: &[Hook],
    place: &Confinement,
    env: &[(String, String)],
    reporter: &crate::report::Reporter,
) -> Vec<HookResult> {
    let mut handles = Vec::with_capacity(hooks.len());
    for hook in hooks {
        handles.push(reporter.queue(&hook.name).await);
    }
    let mut results = Vec::with_capacity(hooks.len());
    for (hook, handle) in hooks.iter().zip(&handles) {
        reporter.begin(handle).await;
        let result = run_hook(hook, place, env).await;
        reporter.complete(handle, &result).await;
        results.push(result);
    }
    results
}

/// The `FORGEHAND_*` variables a hook gets (DESIGN §2). Empty fields are left out.
#[derive(Clone, Debug, Default)]
pub struct HookVars {
    pub stage: String,
    pub workflow: String,
    /// `forge:owner/name`.
    pub repo: String,
    pub ticket_number: Option<u64>,
    pub ticket_title: String,
    pub branch: String,
    pub run_id: String,
    pub status: String,
    pub attempt: Option<u32>,
    pub worktree: PathBuf,
}

impl HookVars {
    /// `FORGEHAND_STAGE`, `FORGEHAND_WORKFLOW`, `FORGEHAND_REPO`, `FORGEHAND_TICKET_NUMBER`,
    /// `FORGEHAND_TICKET_TITLE`, `FORGEHAND_BRANCH`, `FORGEHAND_RUN_ID`, `FORGEHAND_STATUS`,
    /// `FORGEHAND_ATTEMPT`, `FORGEHAND_WORKTREE`, followed by `base` (e.g. `PATH`, `HOME`).
    pub fn env(&self, base: &[(String, String)]) -> Vec<(String, String)> {
        let number = self
            .ticket_number
            .map(|n| n.to_string())
            .unwrap_or_default();
        let attempt = self.attempt.map(|n| n.to_string()).unwrap_or_default();
        let worktree = self.worktree.to_string_lossy().into_owned();
        let vars = [
            ("FORGEHAND_STAGE", self.stage.as_str()),
            ("FORGEHAND_WORKFLOW", self.workflow.as_str()),
            ("FORGEHAND_REPO", self.repo.as_str()),
            ("FORGEHAND_TICKET_NUMBER", number.as_str()),
            ("FORGEHAND_TICKET_TITLE", self.ticket_title.as_str()),
            ("FORGEHAND_BRANCH", self.branch.as_str()),
            ("FORGEHAND_RUN_ID", self.run_id.as_str()),
            ("FORGEHAND_STATUS", self.status.as_str()),
            ("FORGEHAND_ATTEMPT", attempt.as_str()),
            ("FORGEHAND_WORKTREE", worktree.as_str()),
        ];
        vars.into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain(base.iter().cloned())
            .collect()
    }
}

/// Keeps the last `cap` bytes written to it.
struct Tail {
    buf: Vec<u8>,
    cap: usize,
    dropped: bool,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            dropped: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim in bulk, not on every write.
        if self.buf.len() > 2 * self.cap {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.cap {
            self.buf.drain(..self.buf.len() - self.cap);
            self.dropped = true;
        }
    }

    /// The tail as text, starting at a character boundary.
    fn text(&mut self) -> (String, bool) {
        self.trim();
        let mut start = 0;
        if self.dropped {
            // Skip UTF-8 continuation bytes a cut may have left at the front.
            while start < self.buf.len().min(3) && (self.buf[start] & 0b1100_0000) == 0b1000_0000 {
                start += 1;
            }
        }
        (
            String::from_utf8_lossy(&self.buf[start..]).into_owned(),
            self.dropped,
        )
    }
}

type SharedTail = Arc<Mutex<Tail>>;

fn lock(tail: &SharedTail) -> std::sync::MutexGuard<'_, Tail> {
    tail.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn execute(
    hook: &Hook,
    place: &Confinement,
    env: &[(String, String)],
    sink: Option<OutputSink>,
) -> (HookStatus, String, bool) {
    let workdir = &place.view.workdir;
    if !workdir.is_dir() {
        let message = format!("working directory {} is missing", workdir.display());
        return (HookStatus::Error(message), String::new(), false);
    }
    // One pipe for both streams keeps their interleaving as written.
    let (reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(err) => {
            return (
                HookStatus::Error(format!("cannot create a pipe: {err}")),
                String::new(),
                false,
            );
        }
    };
    let writer_err = match writer.try_clone() {
        Ok(w) => w,
        Err(err) => {
            return (
                HookStatus::Error(format!("cannot create a pipe: {err}")),
                String::new(),
                false,
            );
        }
    };
    let args = ["-c".to_owned(), hook.run.clone()];
    let spawned = place
        .command("/bin/sh", &args, env)
        .and_then(|mut command| {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::from(writer))
                .stderr(Stdio::from(writer_err));
            // The command (and the parent's copies of the write end) goes with the spawn, or the
            // reader never sees the end.
            place.spawn(command, "/bin/sh")
        });
    let mut sandbox = match spawned {
        Ok(sandbox) => sandbox,
        Err(err) => return (HookStatus::Error(err.to_string()), String::new(), false),
    };

    let tail: SharedTail = Arc::new(Mutex::new(Tail::new(OUTPUT_TAIL)));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let tail = tail.clone();
        // A blocking read on its own thread: a process that escaped the group may keep the pipe
        // open forever, and then only this thread waits, not the hook.
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        lock(&tail).push(&buf[..n]);
                        if let Some(sink) = &sink {
                            sink(&buf[..n]);
                        }
                    }
                }
            }
            let _ = done_tx.send(());
        });
    }

    let status = match tokio::time::timeout(hook.timeout, sandbox.wait_checked()).await {
        Ok(Ok(Ok(exit))) if exit.success() => HookStatus::Passed,
        Ok(Ok(Ok(exit))) => HookStatus::Failed {
            exit_code: exit.code(),
        },
        Ok(Ok(Err(err))) => HookStatus::Error(format!("cannot wait for the hook: {err}")),
        Ok(Err(hit)) => {
            sandbox.stop(KILL_GRACE).await;
            HookStatus::OverLimit(hit)
        }
        Err(_) => {
            sandbox.stop(KILL_GRACE).await;
            HookStatus::TimedOut
        }
    };
    // Whatever the hook left running goes with it.
    sandbox.kill();
    let _ = tokio::time::timeout(DRAIN_WAIT, done_rx).await;
    let (text, truncated) = lock(&tail).text();
    (status, text, truncated)
}

/// Why [`run_local`] could not run a stage.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration does not validate (run `forgehand check-config`):\n{}", list(.0))]
    Invalid(Vec<crate::config::repo::ValidationError>),
    #[error("{0}")]
    Workflow(String),
    #[error("unknown stage `{0}` (expected one of {stages})", stages = crate::config::repo::Hooks::STAGES.join(", "))]
    Stage(String),
}

fn list(errors: &[crate::config::repo::ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `forgehand hooks run`: validates `dir/.forgehand`, then runs one stage of one workflow's
/// hooks in `dir`, as a run would, but with only `FORGEHAND_STAGE`, `FORGEHAND_WORKFLOW`,
/// `FORGEHAND_WORKTREE` (the other `FORGEHAND_*` variables are unset) and the caller's `PATH`
/// and `HOME`. `workflow` may be omitted when the tree has exactly one workflow.
pub async fn run_local(
    dir: &Path,
    workflow: Option<&str>,
    stage: &str,
    observer: &mut dyn StageObserver,
) -> Result<(Workflow, Vec<HookResult>), LocalError> {
    use crate::config::repo;
    let files = repo::read_dir(dir).map_err(|source| LocalError::Read {
        path: dir.join(".forgehand").display().to_string(),
        source,
    })?;
    // Within the limits, off the runtime: the tree may come from anyone's pull request.
    let config = repo::guard::validate(files)
        .await
        .unwrap_or_else(|stopped| Err(vec![stopped.to_validation_error()]))
        .map_err(LocalError::Invalid)?;
    let names = || {
        config
            .workflows
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match workflow {
        Some(name) => config
            .workflows
            .iter()
            .find(|w| w.name == name)
            .ok_or_else(|| {
                LocalError::Workflow(format!("no workflow `{name}` (the tree has: {})", names()))
            })?,
        None => match config.workflows.as_slice() {
            [only] => only,
            [] => return Err(LocalError::Workflow("the tree has no workflow".to_owned())),
            _ => {
                return Err(LocalError::Workflow(format!(
                    "several workflows; choose one with --workflow ({})",
                    names()
                )));
            }
        },
    };
    let hooks = chosen
        .hooks
        .stage(stage)
        .ok_or_else(|| LocalError::Stage(stage.to_owned()))?;
    let worktree = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let vars = HookVars {
        stage: stage.to_owned(),
        workflow: chosen.name.clone(),
        worktree: worktree.clone(),
        ..HookVars::default()
    };
    let base: Vec<(String, String)> = ["PATH", "HOME"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect();
    // A developer's or CI's own checkout: no server secrets to hide, and the hooks' toolchains
    // may need to write to HOME, so it runs as the caller's own process.
    let place = Confinement::local(&worktree);
    let env = vars.env(&base);
    let mut results = Vec::with_capacity(hooks.len());
    observer.stage(chosen, stage, hooks.len());
    for hook in hooks {
        observer.started(hook);
        let result = run_hook_streamed(hook, &place, &env, observer.sink()).await;
        observer.finished(&result);
        results.push(result);
    }
    Ok((chosen.clone(), results))
}

/// A result's one line, without its output: `✔ fmt (1.2s)`, `✘ tests (exit 1, 3.4s)`.
pub fn headline(result: &HookResult) -> String {
    let took = format_duration(result.duration);
    if result.passed() {
        return format!("✔ {} ({took})", result.name);
    }
    let detail = match &result.status {
        HookStatus::Failed {
            exit_code: Some(code),
        } => format!("exit {code}, {took}"),
        HookStatus::Failed { exit_code: None } => format!("killed by a signal, {took}"),
        HookStatus::TimedOut => format!("timed out after {took}"),
        HookStatus::OverLimit(hit) => format!("stopped {hit}, {took}"),
        HookStatus::Error(message) => message.clone(),
        HookStatus::Passed => unreachable!("handled above"),
    };
    let (mark, note) = match result.on_failure {
        OnFailure::Block => ("✘", ""),
        OnFailure::Warn => ("⚠", "; warning only"),
        OnFailure::Ignore => ("·", "; ignored"),
    };
    format!("{mark} {} ({detail}{note})", result.name)
}

/// What to put before annotation paths (relative to `dir`) so they are relative to the GitHub
/// Actions workspace (`GITHUB_WORKSPACE`): `sub/dir/`, or nothing.
pub fn workspace_prefix(dir: &Path, workspace: Option<&Path>) -> String {
    let (Some(workspace), Ok(dir)) = (workspace, std::path::absolute(dir)) else {
        return String::new();
    };
    let dir: PathBuf = dir.components().collect();
    match dir.strip_prefix(workspace) {
        Ok(rel) if !rel.as_os_str().is_empty() => format!("{}/", rel.display()),
        _ => String::new(),
    }
}

/// GitHub Actions workflow commands (`::error file=…,line=…::message`) for a failed hook's
/// annotations, so they show on the pull request's diff when run in a GitHub workflow. `prefix`
/// comes from [`workspace_prefix`].
pub fn github_actions_commands(result: &HookResult, prefix: &str) -> Vec<String> {
    if result.passed() {
        return Vec::new();
    }
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    result
        .annotations()
        .iter()
        .map(|a| {
            let kind = match a.level {
                AnnotationLevel::Failure => "error",
                AnnotationLevel::Warning => "warning",
                AnnotationLevel::Notice => "notice",
            };
            let column = a.column.map(|c| format!(",col={c}")).unwrap_or_default();
            format!(
                "::{kind} file={},line={}{column},title={}::{}",
                property(&format!("{prefix}{}", a.path)),
                a.line,
                property(&format!("forgehand/{}", result.name)),
                escape(&a.message)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::hook_result::{MAX_ANNOTATIONS, annotations};

    fn hook(name: &str, run: &str, timeout: Duration) -> Hook {
        Hook {
            name: name.to_owned(),
            run: run.to_owned(),
            timeout,
            on_failure: OnFailure::Block,
        }
    }

    /// Unconfined in `dir`: these tests are about the process tree, not the sandbox.
    fn at(dir: &Path) -> Confinement {
        Confinement::local(dir)
    }

    fn path_env() -> Vec<(String, String)> {
        vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())]
    }

    #[tokio::test]
    async fn a_passing_hook_passes_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let h = hook("ok", "echo out; echo err >&2; pwd", Duration::from_secs(10));
        let result = run_hook(&h, &at(dir.path()), &path_env()).await;
        assert_eq!(result.status, HookStatus::Passed, "{}", result.output_tail);
        assert!(result.passed() && !result.blocks());
        let lines: Vec<&str> = result.output_tail.lines().collect();
        assert_eq!(lines[..2], ["out", "err"]);
        let pwd = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(std::fs::canonicalize(lines[2]).unwrap(), pwd);
        assert!(!result.truncated);
    }

    #[tokio::test]
    async fn a_failing_hook_reports_its_exit_code_and_blocks_only_when_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = hook("bad", "echo broken; exit 3", Duration::from_secs(10));
        let result = run_hook(&h, &at(dir.path()), &path_env()).await;
        assert_eq!(result.status, HookStatus::Failed { exit_code: Some(3) });
        assert!(result.blocks());
        assert_eq!(result.output_tail, "broken\n");
        assert!(result.outcome().starts_with("exit 3, "));

        h.on_failure = OnFailure::Warn;
        let result = run_hook(&h, &at(dir.path()), &path_env()).await;
        assert!(!result.passed() && !result.blocks());
    }

    #[tokio::test]
    async fn a_missing_worktree_is_an_error_that_blocks() {
        let h = hook("x", "true", Duration::from_secs(10));
        let result = run_hook(&h, &at(Path::new("/nonexistent/forgehand")), &path_env()).await;
        assert!(
            matches!(result.status, HookStatus::Error(_)),
            "{:?}",
            result.status
        );
        assert!(result.blocks());
    }

    fn alive(pid: i32) -> bool {
        // A zombie waiting for its reaper is dead for our purpose.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let run = format!(
            "sleep 100 & echo $! > {}; echo started; sleep 100",
            pidfile.display()
        );
        let h = hook("slow", &run, Duration::from_millis(500));
        let started = Instant::now();
        let result = run_hook(&h, &at(dir.path()), &path_env()).await;
        assert_eq!(result.status, HookStatus::TimedOut);
        assert!(result.blocks());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(result.output_tail, "started\n");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "background child {pid} survived the timeout");
    }

    #[tokio::test]
    async fn a_term_ignoring_hook_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let h = hook(
            "stubborn",
            "trap '' TERM; echo armed; while :; do sleep 0.1; done",
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let result = run_hook(&h, &at(dir.path()), &path_env()).await;
        assert_eq!(result.status, HookStatus::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= KILL_GRACE && took < KILL_GRACE + Duration::from_secs(4),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn output_keeps_a_bounded_tail() {
        let dir = tempfile::tempdir().unwrap();
        // ~200 KiB of numbered lines; the last line must survive.
        let h = hook(
            "loud",
            "i=0; while [ $i -lt 20000 ]; do echo \"line $i ..........\"; i=$((i+1)); done",
            Duration::from_secs(60),
        );
        let result = run_hook(&h, &at(dir.path()), &path_env()).await;
        assert!(result.passed());
        assert!(result.truncated);
        assert!(result.output_tail.len() <= OUTPUT_TAIL);
        assert!(result.output_tail.len() > OUTPUT_TAIL - 100);
        assert!(result.output_tail.ends_with("line 19999 ..........\n"));
        assert!(!result.output_tail.contains("line 0 "));
    }

    #[tokio::test]
    async fn the_environment_is_exactly_what_is_given() {
        // SAFETY: the variable name is unique to this test; nothing reads it concurrently.
        unsafe { std::env::set_var("FORGEHAND_TEST_SECRET_LEAK", "leaked") };
        let dir = tempfile::tempdir().unwrap();
        let vars = HookVars {
            stage: "on_complete".into(),
            workflow: "fullstack".into(),
            worktree: dir.path().to_owned(),
            ..HookVars::default()
        };
        let env = vars.env(&path_env());
        let h = hook("env", "env | sort", Duration::from_secs(10));
        let result = run_hook(&h, &at(dir.path()), &env).await;
        assert!(result.passed());
        let out = &result.output_tail;
        assert!(!out.contains("FORGEHAND_TEST_SECRET_LEAK"), "{out}");
        assert!(!out.contains("HOME="), "{out}");
        assert!(out.contains("FORGEHAND_STAGE=on_complete"), "{out}");
        assert!(out.contains("FORGEHAND_WORKFLOW=fullstack"), "{out}");
        assert!(
            !out.contains("FORGEHAND_TICKET_NUMBER"),
            "unset fields are left out: {out}"
        );
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
            .collect();
        assert_eq!(
            names,
            [
                "FORGEHAND_STAGE",
                "FORGEHAND_WORKFLOW",
                "FORGEHAND_WORKTREE",
                "PATH"
            ]
        );
    }

    #[tokio::test]
    async fn a_stage_runs_every_hook_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = [
            hook("a", "echo a >> log", Duration::from_secs(10)),
            hook("b", "exit 1", Duration::from_secs(10)),
            hook("c", "echo c >> log", Duration::from_secs(10)),
        ];
        let results = run_stage(&hooks, &at(dir.path()), &path_env()).await;
        let names: Vec<_> = results
            .iter()
            .map(|r| (r.name.as_str(), r.passed()))
            .collect();
        assert_eq!(names, [("a", true), ("b", false), ("c", true)]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log")).unwrap(),
            "a\nc\n"
        );
    }

    #[test]
    fn parses_annotations() {
        let output = "\
\x1b[1m\x1b[31msrc/lib.rs:12:5: error: expected `;`\x1b[0m
src/x.rs:3: bad
./tests/a_test.py:7: warning: unused import
https://example.com:443/path: not a file
see http://host:80: nope
12:30:45: a log line with a time
my file.rs:3: has a space
src/x.rs:3: bad
src/y.rs:0: line zero
error[E0308]: mismatched types
  --> src/main.rs:4:18
";
        let found = annotations(output);
        let short: Vec<(&str, u32, Option<u32>, AnnotationLevel, &str)> = found
            .iter()
            .map(|a| {
                (
                    a.path.as_str(),
                    a.line,
                    a.column,
                    a.level,
                    a.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            short,
            [
                (
                    "src/lib.rs",
                    12,
                    Some(5),
                    AnnotationLevel::Failure,
                    "error: expected `;`"
                ),
                ("src/x.rs", 3, None, AnnotationLevel::Failure, "bad"),
                (
                    "tests/a_test.py",
                    7,
                    None,
                    AnnotationLevel::Warning,
                    "warning: unused import"
                ),
                (
                    "src/main.rs",
                    4,
                    Some(18),
                    AnnotationLevel::Failure,
                    "error[E0308]: mismatched types"
                ),
            ]
        );
    }

    #[test]
    fn annotations_are_bounded() {
        let output: String = (1..=MAX_ANNOTATIONS + 10)
            .map(|i| format!("src/x.rs:{i}: e\n"))
            .collect();
        assert_eq!(annotations(&output).len(), MAX_ANNOTATIONS);
    }

    #[test]
    fn the_tail_starts_on_a_character_boundary() {
        let mut tail = Tail::new(5);
        tail.push("aé€".as_bytes()); // 1 + 2 + 3 bytes
        tail.push("b".as_bytes());
        let (text, truncated) = tail.text();
        assert!(truncated);
        assert_eq!(text, "€b");
    }
}
