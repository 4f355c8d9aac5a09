//! `.forgehand/workflows/<name>.md`: YAML front matter (what, when, with which gates) plus the
//! harness body (the agent's instructions, a template).

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::error::{FileErrors, ValidationError};
use super::hooks::Hooks;
use super::keys::{self, from_yaml_all};
use super::names::{NAME_RULE, is_valid_name};
use super::source::{Source, split_front_matter};
use super::statuses::StatusDef;
use super::yaml::utf8;

pub(crate) const DIR: &str = ".forgehand/workflows/";

#[derive(Clone, Debug, Serialize)]
pub struct Workflow {
    /// The file stem: `fullstack` for `.forgehand/workflows/fullstack.md`.
    pub name: String,
    /// Path relative to the repository root.
    pub file: String,
    /// Statuses this workflow picks up; no two workflows share one.
    pub pickup: Vec<String>,
    /// Where a successful run moves the ticket; with several, the agent chooses.
    pub finish: Vec<String>,
    /// An agent profile name from the server config.
    pub agent: String,
    /// Runner labels a runner must have to take these runs.
    pub runs_on: Vec<String>,
    pub max_concurrent: Option<u32>,
    pub max_turns: u32,
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(with = "duration")]
    pub stall_timeout: Duration,
    pub budget_usd: Option<f64>,
    /// Skill folder names under `.forgehand/skills/`.
    pub skills: Vec<String>,
    pub pr: PrSettings,
    pub hooks: Hooks,
    pub merge: MergeSettings,
    /// The raw template body after the front matter.
    pub harness: String,
    /// 1-based file line where `harness` starts, to map template errors back to the file.
    pub harness_line: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrSettings {
    #[serde(default)]
    pub draft: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    Merge,
    #[default]
    Squash,
    Rebase,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSettings {
    /// Approvals from people with write access required before `merging`.
    #[serde(default = "default_approvals")]
    pub approvals: u32,
    #[serde(default)]
    pub method: MergeMethod,
    /// Whether Forgehand merges by itself once everything is green.
    #[serde(default)]
    pub auto: bool,
}

fn default_approvals() -> u32 {
    1
}

impl Default for MergeSettings {
    fn default() -> Self {
        Self {
            approvals: default_approvals(),
            method: MergeMethod::default(),
            auto: false,
        }
    }
}

/// The front matter as written; `name`, `file` and the harness come from elsewhere.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatterSpec {
    #[serde(default)]
    pickup: Vec<String>,
    #[serde(default)]
    finish: Vec<String>,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    runs_on: Vec<String>,
    #[serde(default)]
    max_concurrent: Option<u32>,
    #[serde(default = "default_max_turns")]
    max_turns: u32,
    #[serde(default = "default_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default = "default_stall_timeout", with = "duration")]
    stall_timeout: Duration,
    #[serde(default)]
    budget_usd: Option<f64>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    pr: PrSettings,
    #[serde(default)]
    hooks: Hooks,
    #[serde(default)]
    merge: MergeSettings,
}

fn default_max_turns() -> u32 {
    10
}

fn default_timeout() -> Duration {
    duration::minutes(45)
}

fn default_stall_timeout() -> Duration {
    duration::minutes(5)
}

/// What a workflow is checked against: the repository's statuses (`None` when `config.yaml`
/// is itself broken, so status checks are skipped) and the skill folders present.
pub(crate) struct Context<'a> {
    pub statuses: Option<&'a [StatusDef]>,
    pub skills: &'a HashSet<String>,
}

/// Whether `path` is a workflow file: a direct `*.md` child of `workflows/` other than a README.
pub(crate) fn is_workflow_path(path: &str) -> bool {
    path.strip_prefix(DIR).is_some_and(|rest| {
        !rest.contains('/') && rest.ends_with(".md") && !rest.eq_ignore_ascii_case("README.md")
    })
}

/// Parses and checks one workflow file. Returns the workflow whenever its front matter parsed,
/// so cross-file checks (shared pickups) still see it; `errors` decides validity.
pub(crate) fn parse(
    file: &str,
    bytes: &[u8],
    ctx: &Context<'_>,
    errors: &mut Vec<ValidationError>,
) -> Option<Workflow> {
    let text = match utf8(file, bytes) {
        Ok(text) => text,
        Err(err) => {
            errors.push(err);
            return None;
        }
    };
    let fm = match split_front_matter(text) {
        Ok(fm) => fm,
        Err(err) => {
            errors.push(ValidationError::new(file, Some(1), err.to_string()));
            return None;
        }
    };
    let spec: FrontMatterSpec =
        from_yaml_all(file, fm.yaml, fm.yaml_line, &keys::WORKFLOW, errors)?;
    let name = file
        .strip_prefix(DIR)
        .and_then(|rest| rest.strip_suffix(".md"))
        .unwrap_or(file)
        .to_owned();
    let workflow = Workflow {
        name,
        file: file.to_owned(),
        pickup: spec.pickup,
        finish: spec.finish,
        agent: spec.agent,
        runs_on: spec.runs_on,
        max_concurrent: spec.max_concurrent,
        max_turns: spec.max_turns,
        timeout: spec.timeout,
        stall_timeout: spec.stall_timeout,
        budget_usd: spec.budget_usd,
        skills: spec.skills,
        pr: spec.pr,
        hooks: spec.hooks,
        merge: spec.merge,
        harness: fm.body.to_owned(),
        harness_line: fm.body_line,
    };
    let src = Source::new(fm.yaml, fm.yaml_line);
    let mut out = FileErrors { file, errors };
    check_front_matter(&workflow, src, ctx, &mut out);
    Some(workflow)
}

fn check_front_matter(wf: &Workflow, src: Source<'_>, ctx: &Context<'_>, out: &mut FileErrors<'_>) {
    if !is_valid_name(&wf.name) {
        out.push(
            None,
            format!("invalid workflow file name `{}`: use {NAME_RULE}", wf.name),
        );
    }
    check_statuses(wf, src, ctx, out);
    if wf.agent.trim().is_empty() {
        out.push(
            src.key("agent", 1).or(Some(1)),
            "`agent` is required: an agent profile name",
        );
    }
    if wf.runs_on.iter().any(|label| label.trim().is_empty()) {
        out.push(src.key("runs_on", 1), "runs_on labels must not be empty");
    }
    check_limits(wf, src, out);
    for skill in &wf.skills {
        if !ctx.skills.contains(skill) {
            out.push(
                src.path(&["skills"], Some(skill)),
                format!("unknown skill `{skill}`: no folder .forgehand/skills/{skill}/"),
            );
        }
    }
    check_hooks(wf, src, out);
}

fn check_statuses(wf: &Workflow, src: Source<'_>, ctx: &Context<'_>, out: &mut FileErrors<'_>) {
    if wf.pickup.is_empty() {
        out.push(
            src.key("pickup", 1).or(Some(1)),
            "`pickup` must list at least one status",
        );
    }
    if wf.finish.is_empty() {
        out.push(
            src.key("finish", 1).or(Some(1)),
            "`finish` must list at least one status",
        );
    }
    let Some(statuses) = ctx.statuses else {
        return;
    };
    let known = |name: &str| statuses.iter().find(|s| s.name == name);
    for (key, list) in [("pickup", &wf.pickup), ("finish", &wf.finish)] {
        for name in list {
            let line = src.path(&[key], Some(name));
            match known(name) {
                None => out.push(line, format!("{key}: unknown status `{name}`")),
                Some(status) if key == "pickup" && status.stage.is_terminal() => out.push(
                    line,
                    format!(
                        "pickup: status `{name}` is {}: nothing to pick up",
                        status.stage.as_str()
                    ),
                ),
                Some(_) if key == "finish" && wf.pickup.contains(name) => out.push(
                    line,
                    format!("finish: status `{name}` is also a pickup status of this workflow"),
                ),
                Some(_) => {}
            }
        }
    }
}

fn check_limits(wf: &Workflow, src: Source<'_>, out: &mut FileErrors<'_>) {
    if wf.max_turns == 0 {
        out.push(src.key("max_turns", 1), "max_turns must be at least 1");
    }
    if wf.max_concurrent == Some(0) {
        out.push(
            src.key("max_concurrent", 1),
            "max_concurrent must be at least 1",
        );
    }
    if let Some(budget) = wf.budget_usd
        && !(budget.is_finite() && budget > 0.0)
    {
        out.push(
            src.key("budget_usd", 1),
            "budget_usd must be a positive number",
        );
    }
}

fn check_hooks(wf: &Workflow, src: Source<'_>, out: &mut FileErrors<'_>) {
    for (stage, hooks) in wf.hooks.iter() {
        let stage_line = src.path(&["hooks", stage], None);
        let mut seen = HashSet::new();
        for (index, hook) in hooks.iter().enumerate() {
            // Same-named hooks before this one: the nth `name: x` after the stage key is ours.
            let nth = hooks[..index]
                .iter()
                .filter(|h| h.name == hook.name)
                .count();
            let line = stage_line
                .and_then(|from| src.key_value_from("name", &hook.name, from, nth))
                .or(stage_line);
            if hook.name.trim().is_empty() {
                out.push(line, format!("{stage}: hook name must not be empty"));
            } else if !seen.insert(hook.name.as_str()) {
                out.push(
                    line,
                    format!("{stage}: duplicate hook name `{}`", hook.name),
                );
            }
            if hook.run.trim().is_empty() {
                out.push(
                    line,
                    format!("{stage}: hook `{}` has an empty `run`", hook.name),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::repo::statuses::default_statuses;

    fn run(text: &str) -> (Option<Workflow>, Vec<String>) {
        let statuses = default_statuses();
        let skills = HashSet::from(["commit-style".to_owned()]);
        let ctx = Context {
            statuses: Some(&statuses),
            skills: &skills,
        };
        let mut errors = Vec::new();
        let wf = parse(
            ".forgehand/workflows/w.md",
            text.as_bytes(),
            &ctx,
            &mut errors,
        );
        (wf, errors.iter().map(ToString::to_string).collect())
    }

    const GOOD: &str =
        "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\n---\nFix {{ ticket.title }}.\n";

    #[test]
    fn minimal_workflow_gets_defaults() {
        let (wf, errors) = run(GOOD);
        assert!(errors.is_empty(), "{errors:?}");
        let wf = wf.expect("valid");
        assert_eq!(wf.name, "w");
        assert_eq!(wf.max_turns, 10);
        assert_eq!(wf.timeout, Duration::from_secs(45 * 60));
        assert_eq!(wf.stall_timeout, Duration::from_secs(5 * 60));
        assert_eq!(wf.merge, MergeSettings::default());
        assert_eq!(wf.harness, "Fix {{ ticket.title }}.\n");
        assert_eq!(wf.harness_line, 6);
    }

    #[test]
    fn missing_front_matter() {
        let (_, errors) = run("# just markdown\n");
        assert_eq!(
            errors,
            [".forgehand/workflows/w.md:1: must start with `---` YAML front matter"]
        );
    }

    #[test]
    fn unknown_status_in_pickup_points_at_its_line() {
        let (_, errors) =
            run("---\nagent: claude\npickup:\n  - todo\n  - tood\nfinish: [in-review]\n---\nx\n");
        assert_eq!(
            errors,
            [".forgehand/workflows/w.md:5: pickup: unknown status `tood`"]
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let (_, errors) =
            run("---\npickup: [todo]\nfinish: [in-review]\nagent: claude\nmax_turn: 3\n---\nx\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(".forgehand/workflows/w.md:5: unknown field `max_turn`"),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_duration_points_at_its_line() {
        let (_, errors) = run(
            "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\ntimeout: 45 minutes please\n---\nx\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                ".forgehand/workflows/w.md:5: timeout: invalid duration `45 minutes please`"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_merge_method_is_an_error() {
        let (_, errors) = run(
            "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\nmerge: { method: octopus }\n---\nx\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(".forgehand/workflows/w.md:5: "),
            "{errors:?}"
        );
        assert!(
            errors[0].contains("unknown variant `octopus`"),
            "{errors:?}"
        );
    }

    #[test]
    fn missing_skill_and_bad_hooks() {
        let text = "---\npickup: [todo]\nfinish: [in-review]\nagent: claude\nskills: [commit-style, nope]\nhooks:\n  on_complete:\n    - { name: fmt, run: cargo fmt }\n    - { name: fmt, run: \"\" }\n---\nx\n";
        let (_, errors) = run(text);
        assert_eq!(
            errors,
            [
                ".forgehand/workflows/w.md:5: unknown skill `nope`: no folder .forgehand/skills/nope/",
                ".forgehand/workflows/w.md:9: on_complete: duplicate hook name `fmt`",
                ".forgehand/workflows/w.md:9: on_complete: hook `fmt` has an empty `run`",
            ]
        );
    }

    #[test]
    fn empty_agent_pickup_and_finish() {
        // A misspelt key does not stop the other checks.
        let (_, errors) = run("---\nrun_on: []\n---\nx\n");
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(
            errors[0],
            ".forgehand/workflows/w.md:2: unknown field `run_on`; did you mean `runs_on`?"
        );
        let (_, errors) = run("---\n---\nx\n");
        assert_eq!(
            errors,
            [
                ".forgehand/workflows/w.md:1: `pickup` must list at least one status",
                ".forgehand/workflows/w.md:1: `finish` must list at least one status",
                ".forgehand/workflows/w.md:1: `agent` is required: an agent profile name",
            ]
        );
    }

    #[test]
    fn recognizes_workflow_paths() {
        assert!(is_workflow_path(".forgehand/workflows/a.md"));
        assert!(!is_workflow_path(".forgehand/workflows/README.md"));
        assert!(!is_workflow_path(".forgehand/workflows/sub/a.md"));
        assert!(!is_workflow_path(".forgehand/workflows/a.yaml"));
    }
}
