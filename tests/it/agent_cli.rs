//! What an agent CLI is given and how its turns are watched: prompts of any size on every
//! adapter, skills outside the worktree, one home per ticket that carries the CLI's sessions
//! across attempts, and tool calls that are not stalls.

use std::os::unix::fs::PermissionsExt;

use forgehand::web::api::types::{Run, RunState};

use crate::backend_tests;
use crate::harness::{Db, wait_until_explained};
use crate::scenario::{HARNESS, Scenario, workflow};

backend_tests!(
    huge_prompt_reaches_the_command_agent,
    huge_prompt_reaches_claude_code,
    huge_prompt_reaches_codex,
    huge_prompt_reaches_gemini,
    tracked_skill_folder_is_left_alone,
    retry_resumes_the_session_in_the_ticket_home,
    tool_call_in_progress_is_not_a_stall,
    tool_call_in_progress_still_times_out,
);

/// Waits until the ticket has `count` runs and the newest has ended; returns the runs, newest
/// first.
async fn ended_runs(s: &Scenario, n: u64, count: usize) -> Vec<Run> {
    wait_until_explained(
        &format!("#{n}'s run {count} to end"),
        || async {
            let runs = s.try_ticket(n).await.map(|t| t.runs).unwrap_or_default();
            runs.len() == count
                && matches!(
                    runs[0].state,
                    RunState::Succeeded | RunState::Failed | RunState::Canceled
                )
        },
        || s.explain(n),
    )
    .await;
    s.ticket(n).await.runs
}

/// A harness whose rendered prompt is over 1 MiB (a 64 KiB block, sixteen times), ending in a
/// marker. The file itself stays small.
fn huge_harness() -> String {
    let line = "Context the agent needs, pasted from a long discussion on the issue. 0123456789\n";
    let block = line.repeat(64 * 1024 / line.len() + 1);
    format!(
        "{{% set block %}}{block}{{% endset %}}{{% for i in range(16) %}}{{{{ block }}}}{{% endfor %}}END-OF-PROMPT"
    )
}

const MIB: usize = 1024 * 1024;

/// Checks the prompt the agent saved in `file` on the ticket's branch.
fn assert_whole_prompt(s: &Scenario, n: u64, title_slug: &str, file: &str) {
    let branch = format!("forgehand/{n}-{title_slug}");
    let prompt = s.file_on(&branch, file).expect("the prompt pushed");
    assert!(prompt.len() > MIB, "{} bytes", prompt.len());
    assert!(prompt.trim_end().ends_with("END-OF-PROMPT"));
}

async fn huge_prompt_reaches_the_command_agent(db: Db) {
    let s = Scenario::start(db, "cat > prompt.txt\n", &workflow(&huge_harness(), ""), "").await;
    let n = s.open_labelled("Big one", &["agent:todo"], "alice").await;
    let runs = ended_runs(&s, n, 1).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0]);
    assert_whole_prompt(&s, n, "big-one", "prompt.txt");
    s.finish().await;
}

/// A stand-in for a CLI binary: saves its arguments, its stdin and a prompt file Forgehand left in
/// its home (Codex's input limit) in the worktree, and exits 0 (a turn with no events is a
/// finished turn).
const FAKE_CLI: &str = "#!/bin/sh\nprintf '%s\\n' \"$@\" > args.txt\ncat > prompt.txt\n\
    cp \"$HOME/.forgehand/prompt.md\" prompt-file.txt 2>/dev/null || true\n";

/// Runs the huge harness through `adapter`, started as [`FAKE_CLI`].
async fn huge_prompt_reaches(db: Db, adapter: &str) {
    let bin = tempfile::tempdir().unwrap();
    let cli = bin.path().join("cli");
    std::fs::write(&cli, FAKE_CLI).unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The sandbox hides the host's /tmp: the fake CLI's folder is let in.
    let agents = format!(
        "[agents.fake]\nadapter = \"{adapter}\"\ncommand = \"{}\"\nsandbox_writable = [\"{}\"]\n",
        cli.display(),
        bin.path().display()
    );
    let file = workflow(&huge_harness(), "").replace("agent: script", "agent: fake");
    let s = Scenario::start(db, "exit 1\n", &file, &agents).await;
    let n = s.open_labelled("Big one", &["agent:todo"], "alice").await;
    let runs = ended_runs(&s, n, 1).await;
    assert_eq!(
        runs[0].state,
        RunState::Succeeded,
        "{adapter}: {:?}",
        runs[0]
    );
    if adapter == "codex" {
        // Over Codex's 1 MiB input limit: the prompt is in a file, stdin says where.
        assert_whole_prompt(&s, n, "big-one", "prompt-file.txt");
        let stdin = s
            .file_on(&format!("forgehand/{n}-big-one"), "prompt.txt")
            .unwrap();
        assert!(stdin.contains("/.forgehand/prompt.md"), "{stdin}");
    } else {
        assert_whole_prompt(&s, n, "big-one", "prompt.txt");
    }
    let args = s
        .file_on(&format!("forgehand/{n}-big-one"), "args.txt")
        .unwrap();
    assert!(
        args.len() < 4096,
        "{adapter}: the prompt is not an argument: {args}"
    );
    s.finish().await;
}

async fn huge_prompt_reaches_claude_code(db: Db) {
    huge_prompt_reaches(db, "claude-code").await;
}

async fn huge_prompt_reaches_codex(db: Db) {
    huge_prompt_reaches(db, "codex").await;
}

async fn huge_prompt_reaches_gemini(db: Db) {
    huge_prompt_reaches(db, "gemini").await;
}

/// The repository's own skills, where CLIs look for project skills.
const OWN_STYLE: &str = "---\nname: style\ndescription: The project's style.\n---\nTabs.\n";
const OWN_GREETING: &str = "---\nname: greeting\ndescription: Greets.\n---\nSay hi.\n";

async fn tracked_skill_folder_is_left_alone(db: Db) {
    let file = workflow(HARNESS, "");
    let files = [
        (".forgehand/config.yaml", "max_concurrent: 5\n"),
        (".forgehand/workflows/build.md", file.as_str()),
        // Same name as the workflow's skill, in the command adapter's skill folder.
        (".agents/skills/style/SKILL.md", OWN_STYLE),
        (".claude/skills/greeting/SKILL.md", OWN_GREETING),
    ];
    let script = "cat \"$HOME/.agents/skills/style/SKILL.md\" > skill-seen.txt\n\
                  cat .agents/skills/style/SKILL.md > own-skill-seen.txt\n\
                  echo hi > hello.txt\n";
    let s = Scenario::start_with_files(db, script, &files, "").await;
    let n = s.open_labelled("Say hello", &["agent:todo"], "alice").await;
    let runs = ended_runs(&s, n, 1).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0]);
    let branch = format!("forgehand/{n}-say-hello");
    // The agent had both: Forgehand's skill in its home, the repository's in the worktree.
    assert!(
        s.file_on(&branch, "skill-seen.txt")
            .unwrap()
            .contains("Write short lines.")
    );
    assert_eq!(s.file_on(&branch, "own-skill-seen.txt").unwrap(), OWN_STYLE);
    // The pull request holds the agent's change and nothing Forgehand wrote for itself.
    let mut changed = s.remote.changed_files(&branch);
    changed.sort();
    assert_eq!(
        changed,
        ["hello.txt", "own-skill-seen.txt", "skill-seen.txt"]
    );
    assert_eq!(
        s.file_on(&branch, ".agents/skills/style/SKILL.md")
            .as_deref(),
        Some(OWN_STYLE)
    );
    assert_eq!(
        s.file_on(&branch, ".claude/skills/greeting/SKILL.md")
            .as_deref(),
        Some(OWN_GREETING)
    );
    s.finish().await;
}

/// Like a CLI, keeps its conversation in `$HOME` under the session id: attempt 1 starts a
/// session, saves its prompt as the history and is killed; a resumed turn fails as the CLIs do
/// when the session's files are not in its home.
const SESSION_AGENT: &str = r#"
prompt=$(cat)
if [ -z "$FORGEHAND_AGENT_SESSION" ]; then
  printf '%s\n' "$prompt" > "$HOME/session-s1.txt"
  echo '{"kind":"session","id":"s1"}'
  kill -9 $$
fi
history="$HOME/session-$FORGEHAND_AGENT_SESSION.txt"
[ -f "$history" ] || { echo "No conversation found with session ID: $FORGEHAND_AGENT_SESSION" >&2; exit 1; }
cp "$history" history.txt
printf '%s\n' "$prompt" > resumed-prompt.txt
"#;

async fn retry_resumes_the_session_in_the_ticket_home(db: Db) {
    let s = Scenario::start(db, SESSION_AGENT, &workflow(HARNESS, ""), "").await;
    let n = s.open_labelled("Resume me", &["agent:todo"], "alice").await;
    let runs = ended_runs(&s, n, 2).await;
    assert_eq!(runs[1].state, RunState::Failed);
    // Killed: by signal when unconfined; inside bubblewrap, whose child it is, as 128 + 9.
    let error = runs[1].error.as_deref().unwrap();
    assert!(
        error.contains("signal") || error.contains("code 137"),
        "{:?}",
        runs[1]
    );
    assert_eq!(
        runs[0].state,
        RunState::Succeeded,
        "attempt 2: {:?}",
        runs[0]
    );
    assert_eq!(runs[0].attempt, 2);
    let branch = format!("forgehand/{n}-resume-me");
    // Attempt 2 resumed attempt 1's conversation: its history is turn 1's prompt.
    let history = s.file_on(&branch, "history.txt").unwrap();
    assert!(history.contains("Work on Resume me"), "{history}");
    let resumed = s.file_on(&branch, "resumed-prompt.txt").unwrap();
    assert!(resumed.contains("Continue the task"), "{resumed}");
    s.finish().await;
}

/// A tool call that runs (silently) three times longer than `stall_timeout`.
const SLOW_TOOL: &str = r#"
echo '{"kind":"tool_call","id":"t1","name":"bash","input":"{\"command\":\"make test\"}"}'
sleep 3
echo '{"kind":"tool_result","id":"t1","output":"ok","is_error":false}'
echo done > tested.txt
"#;

async fn tool_call_in_progress_is_not_a_stall(db: Db) {
    let file = workflow(HARNESS, "").replace("stall_timeout: 20s", "stall_timeout: 1s");
    let s = Scenario::start(db, SLOW_TOOL, &file, "").await;
    let n = s
        .open_labelled("Run the tests", &["agent:todo"], "alice")
        .await;
    let runs = ended_runs(&s, n, 1).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0]);
    assert_eq!(
        s.file_on(&format!("forgehand/{n}-run-the-tests"), "tested.txt")
            .unwrap()
            .trim(),
        "done"
    );
    s.finish().await;
}

async fn tool_call_in_progress_still_times_out(db: Db) {
    let file = workflow(HARNESS, "")
        .replace("stall_timeout: 20s", "stall_timeout: 1s")
        .replace("timeout: 60s", "timeout: 3s");
    let endless = "echo '{\"kind\":\"tool_call\",\"id\":\"t1\",\"name\":\"bash\",\"input\":\"{}\"}'\n\
                   sleep 60\n";
    let s = Scenario::start(db, endless, &file, "").await;
    let n = s.open_labelled("Hang", &["agent:todo"], "alice").await;
    let runs = ended_runs(&s, n, 1).await;
    assert_eq!(runs[0].state, RunState::Failed);
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 3s"),
        "{:?}",
        runs[0]
    );
    s.finish().await;
}
