//! Whole-tree tests: the `examples/` trees and the cross-file rules.

use std::path::Path;
use std::time::Duration;

use super::*;

fn example(name: &str) -> ConfigFiles {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    read_dir(&root).expect("example tree is readable")
}

fn tree(entries: &[(&str, &str)]) -> ConfigFiles {
    entries
        .iter()
        .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
        .collect()
}

fn messages(files: &ConfigFiles) -> Vec<String> {
    match validate(files) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn empty_tree_is_the_default_config() {
    let config = validate(&ConfigFiles::new()).expect("valid");
    assert_eq!(config.statuses, RepoConfig::default().statuses);
    assert!(config.workflows.is_empty() && config.skills.is_empty() && config.schedules.is_empty());
}

#[test]
fn basic_example_validates_to_the_expected_structure() {
    let config = validate(&example("basic")).unwrap_or_else(|errors| {
        panic!("examples/basic must validate: {errors:#?}");
    });
    assert_eq!(config.statuses.len(), 7);
    assert_eq!(config.triggers.min_permission, Permission::Write);

    let wf = config
        .workflow_for_pickup("todo")
        .expect("fullstack picks up todo");
    assert_eq!(wf.name, "fullstack");
    assert_eq!(wf.file, ".forgehand/workflows/fullstack.md");
    assert_eq!(wf.finish, ["in-review"]);
    assert_eq!(wf.agent, "claude");
    assert_eq!(wf.runs_on, ["linux"]);
    assert_eq!(wf.max_concurrent, Some(3));
    assert_eq!(wf.timeout, Duration::from_secs(45 * 60));
    assert_eq!(wf.budget_usd, Some(5.0));
    assert_eq!(wf.skills, ["commit-style"]);
    assert_eq!(wf.hooks.on_claim[0].timeout, Duration::from_secs(5 * 60));
    let gates: Vec<_> = wf
        .hooks
        .on_complete
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(gates, ["fmt", "tests"]);
    assert_eq!(
        wf.hooks.on_complete[0].timeout,
        Duration::from_secs(10 * 60)
    );
    assert_eq!(wf.hooks.on_complete[0].on_failure, OnFailure::Block);
    assert_eq!(wf.hooks.before_merge[0].on_failure, OnFailure::Warn);
    assert_eq!(wf.merge.method, MergeMethod::Squash);
    assert!(wf.merge.auto);
    assert_eq!(wf.harness_line, 23);
    assert!(
        wf.harness
            .starts_with("You are working on {{ ticket.title }}")
    );

    let rendered = render_harness(wf, &HarnessContext::sample()).expect("renders");
    assert!(rendered.contains("Add a dark mode toggle (#42) in octo/hello"));
    assert!(rendered.contains("**hubot**: Please keep"));

    let skill = config.skill_by_name("commit-style").expect("skill");
    assert_eq!(skill.files, [".forgehand/skills/commit-style/SKILL.md"]);
    assert_eq!(config.schedules.len(), 1);
    assert_eq!(config.schedules[0].timezone, "Europe/Berlin");
    assert_eq!(
        config.schedules[0].issue.labels,
        ["agent:todo", "dependencies"]
    );
    assert!(config.workflow_for_pickup("in-review").is_none());
}

#[test]
fn broken_example_reports_every_error() {
    let errors = messages(&example("broken"));
    let expected = [
        ".forgehand/config.yaml:4: duplicate status label `agent:todo` (status `in-review`)",
        ".forgehand/schedules.yaml:3: schedule `nightly`: invalid cron `0 25 * * *`",
        ".forgehand/schedules.yaml:7: schedule `weekly`: unknown timezone `Europe/Atlantis`",
        ".forgehand/skills/empty/SKILL.md: skill `empty` has no SKILL.md",
        ".forgehand/skills/review/SKILL.md:2: `name` is `reviewing` but the folder is `review`",
        ".forgehand/workflows/bugfix.md:3: finish: unknown status `in-reveiw`",
        ".forgehand/workflows/bugfix.md:5: unknown skill `no-such-skill`",
        ".forgehand/workflows/bugfix.md:7: harness: unknown variable `ticket.titel`",
        ".forgehand/workflows/docs.md:2: pickup: status `todo` is already picked up by .forgehand/workflows/bugfix.md",
        ".forgehand/workflows/docs.md:8: harness: unknown filter",
        ".forgehand/workflows/slow.md:5: timeout: invalid duration `45 minutes please`",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(expected) {
        assert!(got.starts_with(want), "expected `{want}…`, got `{got}`");
    }
}

#[test]
fn yaml_syntax_error_in_front_matter_is_shifted_to_the_file_line() {
    let files = tree(&[(
        ".forgehand/workflows/a.md",
        "---\npickup: [todo]\nfinish: [in-review\nagent: claude\n---\nx\n",
    )]);
    let errors = validate(&files).expect_err("invalid");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, ".forgehand/workflows/a.md");
    // The parser notices the unclosed flow list on the line after it opens, or at the end.
    assert!(matches!(errors[0].line, Some(3..=5)), "{errors:?}");
}

#[test]
fn broken_config_skips_status_checks_instead_of_guessing() {
    let files = tree(&[
        (
            ".forgehand/config.yaml",
            // A bad value (not a misspelt key, which is dropped and the rest checked).
            "statuses:\n  - { name: ready, stage: sideways }\n",
        ),
        (
            ".forgehand/workflows/a.md",
            "---\npickup: [ready]\nfinish: [shipped]\nagent: claude\n---\nx\n",
        ),
    ]);
    let errors = messages(&files);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(".forgehand/config.yaml:2: "),
        "{errors:?}"
    );
    assert!(errors[0].contains("sideways"), "{errors:?}");
}

#[test]
fn custom_statuses_drive_workflow_checks() {
    let files = tree(&[
        (
            ".forgehand/config.yaml",
            "statuses:\n  - { name: ready, stage: unstarted }\n  - { name: working, stage: started }\n  - { name: shipped, stage: completed }\n  - { name: dropped, stage: canceled }\n",
        ),
        (
            ".forgehand/workflows/a.md",
            "---\npickup: [ready]\nfinish: [shipped]\nagent: claude\n---\nx\n",
        ),
        (".forgehand/workflows/README.md", "Workflows live here."),
        (".forgehand/README.md", "Our agent setup."),
    ]);
    let config = validate(&files).expect("valid");
    assert_eq!(
        config.status_by_name("ready").map(|s| s.label.as_str()),
        Some("agent:ready")
    );
    assert_eq!(config.workflows.len(), 1);
}

#[test]
fn misplaced_files_are_reported() {
    let files = tree(&[
        (".forgehand/config.yml", "max_concurrent: 2\n"),
        (".forgehand/workflows/a.yaml", "pickup: [todo]\n"),
    ]);
    assert_eq!(
        messages(&files),
        [
            ".forgehand/config.yml: this file is ignored: rename it to `config.yaml`",
            ".forgehand/workflows/a.yaml: not a workflow: workflows are `.forgehand/workflows/<name>.md` (a README.md is allowed)",
        ]
    );
}

#[test]
fn content_hash_of_examples_differs() {
    assert_ne!(
        content_hash(&example("basic")),
        content_hash(&example("broken"))
    );
    assert_eq!(
        content_hash(&example("basic")),
        content_hash(&example("basic"))
    );
}
