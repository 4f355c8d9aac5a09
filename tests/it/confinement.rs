//! Agents and hooks in the sandbox: a hostile agent and a hostile hook try to read the server's
//! environment, database and other tickets' files, write outside their worktree and leave a
//! daemon behind; every attempt fails, and nothing of them remains. A run over its memory limit
//! stops with that reason.

use std::time::Duration;

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(hostile_agent_and_hook_are_contained, memory_hog_is_stopped);

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
    // The test process is the server: a variable of its own environment stands for its secrets.
    let server_env = format!(
        "CARGO_MANIFEST_DIR={}",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests")
    );
    let s = Scenario::start(db, &agent_script(), &hook_workflow(), "").await;
    let data = s.server.data_dir.path().to_owned();
    let name = data.file_name().unwrap().to_string_lossy().into_owned();
    for dir in ["worktrees/github/octo/app/999", "runs/999/home"] {
        std::fs::create_dir_all(data.join(dir)).unwrap();
        std::fs::write(data.join(dir).join("secret.txt"), "TOP SECRET").unwrap();
    }

    let n = s.open_labelled("Be hostile", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    assert_eq!(ticket["runs"][0]["state"], "succeeded", "{ticket}");
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
    let n = s.open_labelled("Eat memory", &["agent:todo"], "alice").await;
    let started = std::time::Instant::now();
    wait_until("the run to end", || async {
        s.try_ticket(n).await["runs"][0]["state"] == "failed"
    })
    .await;
    let run = s.ticket(n).await["runs"][0].clone();
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("memory limit"), "{run}");
    assert!(started.elapsed() < Duration::from_secs(30), "{run}");
    s.finish().await;
}
