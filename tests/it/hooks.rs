//! `forgehand hooks run` on trees made in a temporary directory (hooks like `true`, `false` and
//! `echo src/x.rs:3: bad`) and on the shipped examples, and the GitHub Action's definition.

use std::path::Path;
use std::process::{Command, Output};

const GATES: &str = r#"---
pickup: [todo]
finish: [in-review]
agent: claude
hooks:
  on_claim: [{ name: env, run: "env | sort" }]
  on_complete:
    - { name: fmt, run: "true" }
    - { name: lint, run: "echo 'src/x.rs:3: bad'; exit 1", on_failure: warn }
    - { name: tests, run: "echo boom; exit 2" }
  before_merge:
    - { name: audit, run: "false", on_failure: ignore }
    - { name: ok, run: "echo fine" }
---
Do {{ ticket.title }}
"#;

fn tree(workflows: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join(".forgehand/workflows");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, text) in workflows {
        std::fs::write(folder.join(format!("{name}.md")), text).unwrap();
    }
    dir
}

fn hooks_run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["hooks", "run"])
        .args(args)
        .arg(dir)
        .env_remove("GITHUB_ACTIONS")
        .env("FORGEHAND_TEST_SECRET", "do-not-leak")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_blocking_failure_exits_non_zero_with_its_output() {
    let dir = tree(&[("gates", GATES)]);
    let out = hooks_run(
        dir.path(),
        &["--workflow", "gates", "--stage", "on_complete"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    // Each hook: what it runs, its output as it came, then its result.
    assert_eq!(lines[0], "gates / on_complete: 3 hook(s)");
    assert_eq!(lines[1], "▶ fmt: true");
    assert!(lines[2].starts_with("✔ fmt ("), "{text}");
    assert!(lines[3].starts_with("▶ lint: echo"), "{text}");
    assert_eq!(lines[4], "    src/x.rs:3: bad");
    assert!(lines[5].starts_with("⚠ lint (exit 1, "), "{text}");
    assert!(lines[5].ends_with("; warning only)"), "{text}");
    assert_eq!(lines[6], "▶ tests: echo boom; exit 2");
    assert_eq!(lines[7], "    boom");
    assert!(lines[8].starts_with("✘ tests (exit 2, "), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 blocking hook(s) failed"));
}

#[test]
fn warn_and_ignore_failures_pass_and_on_complete_is_the_default_stage() {
    let dir = tree(&[("gates", GATES)]);
    let out = hooks_run(dir.path(), &["--stage", "before_merge"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("· audit (exit 1, "), "{text}");
    assert!(text.contains("; ignored)"), "{text}");
    assert!(text.contains("✔ ok ("), "{text}");

    // No --stage: on_complete, which fails.
    let out = hooks_run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("gates / on_complete:"));
}

#[test]
fn hooks_get_forgehand_variables_and_nothing_else_of_the_environment() {
    let dir = tree(&[("gates", GATES)]);
    let out = hooks_run(dir.path(), &["--stage", "on_claim"]);
    assert!(out.status.success(), "{}", stdout(&out));
    // A passing hook's output is shown too.
    assert!(
        stdout(&out).contains("    FORGEHAND_STAGE=on_claim"),
        "{}",
        stdout(&out)
    );
    let dir2 = tree(&[(
        "gates",
        &GATES.replace("\"env | sort\"", "\"env | sort; exit 1\""),
    )]);
    let out = hooks_run(dir2.path(), &["--stage", "on_claim"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("    FORGEHAND_STAGE=on_claim"), "{text}");
    assert!(text.contains("    FORGEHAND_WORKFLOW=gates"), "{text}");
    let worktree = std::path::absolute(dir2.path()).unwrap();
    assert!(
        text.contains(&format!("    FORGEHAND_WORKTREE={}", worktree.display())),
        "{text}"
    );
    assert!(text.contains("    PATH="), "{text}");
    assert!(!text.contains("FORGEHAND_TEST_SECRET"), "{text}");
    assert!(!text.contains("FORGEHAND_TICKET_NUMBER"), "{text}");
}

#[test]
fn in_github_actions_annotations_become_workflow_commands() {
    let dir = tree(&[("gates", GATES)]);
    let out = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["hooks", "run"])
        .arg(dir.path())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", dir.path().parent().unwrap())
        .output()
        .unwrap();
    let text = stdout(&out);
    let name = dir.path().file_name().unwrap().to_string_lossy();
    assert!(
        text.contains(&format!(
            "::warning file={name}/src/x.rs,line=3,title=forgehand/lint::bad"
        )),
        "{text}"
    );
    // `tests` printed no file:line: its failure is annotated on its line of the workflow file.
    assert!(
        text.contains(&format!(
            "::error file={name}/.forgehand/workflows/gates.md,line=10,title=forgehand/tests::hook `tests` failed: exit 2, "
        )),
        "{text}"
    );
    let annotations = text.lines().filter(|l| l.starts_with("::")).count();
    assert_eq!(annotations, 2, "one per failure: {text}");
}

/// A slow hook's output shows as it is written, not when the hook ends.
#[test]
fn output_is_streamed_while_a_slow_hook_runs() {
    use std::io::BufRead;
    let slow = GATES.replace(
        "\"echo boom; exit 2\"",
        "\"echo first; sleep 2; echo second\"",
    );
    let dir = tree(&[("gates", &slow)]);
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_forgehand"))
        .args(["hooks", "run"])
        .arg(dir.path())
        .env_remove("GITHUB_ACTIONS")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in reader.lines() {
        seen.push((line.unwrap(), started.elapsed()));
    }
    child.wait().unwrap();
    let at = |text: &str| {
        seen.iter()
            .find(|(line, _)| line == text)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no line {text:?} in {seen:?}"))
    };
    let (first, second) = (at("    first"), at("    second"));
    assert!(
        second - first >= std::time::Duration::from_millis(1500),
        "`first` came only {:?} before `second`: buffered ({seen:?})",
        second - first
    );
    let order: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    let position = |text: &str| order.iter().position(|l| *l == text).unwrap();
    assert!(position("▶ fmt: true") < position("    first"), "{order:?}");
    assert!(position("    second") < order.len() - 1, "{order:?}");
}

#[test]
fn workflow_and_stage_mistakes_are_errors() {
    let other = GATES.replace("pickup: [todo]", "pickup: [backlog]");
    let dir = tree(&[("gates", GATES), ("other", &other)]);
    let out = hooks_run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("several workflows; choose one with --workflow (gates, other)"),
        "{err}"
    );

    let out = hooks_run(dir.path(), &["--workflow", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workflow `nope`"));

    let out = hooks_run(dir.path(), &["--workflow", "gates", "--stage", "on_lunch"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown stage `on_lunch`"));
}

#[test]
fn the_examples_good_and_broken() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The basic example's gates call cargo; its on_done stage is empty and runs nothing.
    let out = hooks_run(
        &root.join("examples/basic"),
        &["--workflow", "fullstack", "--stage", "on_done"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out).trim(), "fullstack / on_done: 0 hook(s)");

    let out = hooks_run(&root.join("examples/broken"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the configuration does not validate"), "{err}");
    assert!(
        err.contains(".forgehand/"),
        "errors are listed with their file: {err}"
    );
}

#[test]
fn the_github_action_is_a_composite_action_with_its_inputs_and_steps() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("action/action.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let action: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let inputs = action["inputs"].as_mapping().unwrap();
    for name in [
        "version",
        "build-from-source",
        "workflow",
        "stage",
        "directory",
    ] {
        assert!(
            inputs.contains_key(name),
            "input `{name}` is missing from action.yml"
        );
    }
    assert_eq!(
        action["inputs"]["version"]["default"].as_str(),
        Some("latest")
    );
    assert_eq!(
        action["inputs"]["stage"]["default"].as_str(),
        Some("on_complete")
    );
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let scripts: Vec<&str> = steps.iter().map(|s| s["run"].as_str().unwrap()).collect();
    assert!(steps.iter().all(|s| s["shell"].as_str() == Some("bash")));
    // Installing is action/install.sh (tested in tests/it/action_install.rs).
    assert!(
        scripts[0].contains("bash \"$GITHUB_ACTION_PATH/install.sh\""),
        "{}",
        scripts[0]
    );
    assert!(scripts[1].contains("forgehand check-config"));
    assert!(scripts[2].contains("hooks run --stage"));
    // Inputs reach the scripts through the environment, never spliced into the script text.
    assert!(scripts.iter().all(|s| !s.contains("${{")), "{scripts:?}");
}
