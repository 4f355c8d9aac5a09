//! `.forgehand/config.yaml`: statuses, trigger policy and repository-wide defaults.

use std::collections::HashSet;

use serde::Deserialize;

use super::error::{FileErrors, ValidationError};
use super::keys::{self, from_yaml_all};
use super::names::{NAME_RULE, is_valid_name};
use super::source::Source;
use super::statuses::{Stage, StatusDef, StatusSpec, default_statuses};
use super::triggers::Triggers;
use super::yaml::utf8;

pub(crate) const FILE: &str = ".forgehand/config.yaml";

/// GitHub rejects longer labels.
const MAX_LABEL_LEN: usize = 50;

/// Stages the lifecycle needs: somewhere to pick up from, to work in, to end in either way.
const REQUIRED_STAGES: [Stage; 4] = [
    Stage::Unstarted,
    Stage::Started,
    Stage::Completed,
    Stage::Canceled,
];

/// The validated content of `config.yaml`.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub statuses: Vec<StatusDef>,
    pub triggers: Triggers,
    pub branch_prefix: String,
    pub max_concurrent: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            statuses: default_statuses(),
            triggers: Triggers::default(),
            branch_prefix: default_branch_prefix(),
            max_concurrent: default_max_concurrent(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsSpec {
    #[serde(default)]
    statuses: Option<Vec<StatusSpec>>,
    #[serde(default)]
    triggers: Triggers,
    #[serde(default = "default_branch_prefix")]
    branch_prefix: String,
    #[serde(default = "default_max_concurrent")]
    max_concurrent: u32,
}

fn default_branch_prefix() -> String {
    "forgehand/".to_owned()
}

fn default_max_concurrent() -> u32 {
    5
}

/// Parses and checks `config.yaml`. `None` when it does not parse, so callers can skip checks
/// that depend on the statuses instead of reporting errors against the wrong ones; `errors`
/// decides validity.
pub(crate) fn parse(bytes: &[u8], errors: &mut Vec<ValidationError>) -> Option<Settings> {
    let text = match utf8(FILE, bytes) {
        Ok(text) => text,
        Err(err) => {
            errors.push(err);
            return None;
        }
    };
    let spec: SettingsSpec = from_yaml_all(FILE, text, 1, &keys::SETTINGS, errors)?;
    let settings = Settings {
        statuses: match spec.statuses {
            Some(list) => list.into_iter().map(StatusDef::from).collect(),
            None => default_statuses(),
        },
        triggers: spec.triggers,
        branch_prefix: spec.branch_prefix,
        max_concurrent: spec.max_concurrent,
    };
    let mut out = FileErrors { file: FILE, errors };
    let src = Source::new(text, 1);
    check_statuses(&settings.statuses, src, &mut out);
    check_other(&settings, src, &mut out);
    Some(settings)
}

fn check_statuses(statuses: &[StatusDef], src: Source<'_>, out: &mut FileErrors<'_>) {
    let mut names = HashSet::new();
    let mut labels = HashSet::new();
    for status in statuses {
        let name_line = src.key_value("name", &status.name, 0);
        if !is_valid_name(&status.name) {
            out.push(
                name_line,
                format!("invalid status name `{}`: use {NAME_RULE}", status.name),
            );
        }
        if !names.insert(status.name.as_str()) {
            let line = src.key_value("name", &status.name, 1).or(name_line);
            out.push(line, format!("duplicate status name `{}`", status.name));
        }
        let label_line = src.key_value("label", &status.label, 0).or(name_line);
        if status.label.trim().is_empty() || status.label.chars().count() > MAX_LABEL_LEN {
            out.push(
                label_line,
                format!(
                    "status `{}`: label must be 1 to {MAX_LABEL_LEN} characters",
                    status.name
                ),
            );
        }
        if !labels.insert(status.label.as_str()) {
            let line = src.key_value("label", &status.label, 1).or(name_line);
            out.push(
                line,
                format!(
                    "duplicate status label `{}` (status `{}`)",
                    status.label, status.name
                ),
            );
        }
    }
    let statuses_line = src.key("statuses", 1);
    for stage in REQUIRED_STAGES {
        if !statuses.iter().any(|s| s.stage == stage) {
            out.push(
                statuses_line,
                format!(
                    "at least one status of stage `{}` is required",
                    stage.as_str()
                ),
            );
        }
    }
}

fn check_other(settings: &Settings, src: Source<'_>, out: &mut FileErrors<'_>) {
    if !is_valid_branch_prefix(&settings.branch_prefix) {
        out.push(
            src.key("branch_prefix", 1),
            format!(
                "invalid branch_prefix `{}`: must be non-empty and usable in a git branch name",
                settings.branch_prefix
            ),
        );
    }
    if settings.max_concurrent == 0 {
        out.push(
            src.key("max_concurrent", 1),
            "max_concurrent must be at least 1",
        );
    }
    if settings
        .triggers
        .allow_bots
        .iter()
        .any(|b| b.trim().is_empty())
    {
        out.push(
            src.key("allow_bots", 1),
            "allow_bots entries must not be empty",
        );
    }
}

/// A subset of `git check-ref-format`: the prefix is followed by `<number>-<slug>`.
fn is_valid_branch_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && !prefix.starts_with(['/', '-', '.'])
        && !prefix.contains("..")
        && !prefix.contains("//")
        && !prefix.contains("@{")
        && !prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<Settings>, Vec<String>) {
        let mut errors = Vec::new();
        let settings = parse(text.as_bytes(), &mut errors);
        (settings, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn empty_file_means_defaults() {
        let (settings, errors) = run("# nothing yet\n");
        assert!(errors.is_empty(), "{errors:?}");
        let settings = settings.expect("valid");
        assert_eq!(settings.statuses.len(), 7);
        assert_eq!(settings.branch_prefix, "forgehand/");
        assert_eq!(settings.max_concurrent, 5);
    }

    #[test]
    fn label_defaults_to_agent_prefix() {
        let text = "statuses:\n  - { name: todo, stage: unstarted }\n  - { name: wip, stage: started }\n  - { name: done, stage: completed }\n  - { name: no, label: nope, stage: canceled }\n";
        let (settings, errors) = run(text);
        assert!(errors.is_empty(), "{errors:?}");
        let settings = settings.expect("valid");
        assert_eq!(settings.statuses[0].label, "agent:todo");
        assert_eq!(settings.statuses[3].label, "nope");
    }

    #[test]
    fn syntax_error_has_parser_line() {
        let (settings, errors) = run("branch_prefix: x/\nstatuses: [\n  {name: a\n");
        assert!(settings.is_none());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(".forgehand/config.yaml:"),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_on_its_line() {
        let (_, errors) = run("branch_prefix: x/\nmax_concurent: 3\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(".forgehand/config.yaml:2: unknown field `max_concurent`"),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_stage_is_an_error() {
        let (_, errors) = run("statuses:\n  - name: todo\n    stage: begun\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(".forgehand/config.yaml:3: "),
            "{errors:?}"
        );
        assert!(errors[0].contains("unknown variant `begun`"), "{errors:?}");
    }

    #[test]
    fn duplicates_and_missing_stages_are_reported() {
        let text = "statuses:\n  - { name: todo, label: a, stage: unstarted }\n  - { name: todo, label: a, stage: started }\nmax_concurrent: 0\n";
        let (_, errors) = run(text);
        assert_eq!(
            errors,
            [
                ".forgehand/config.yaml:3: duplicate status name `todo`",
                ".forgehand/config.yaml:3: duplicate status label `a` (status `todo`)",
                ".forgehand/config.yaml:1: at least one status of stage `completed` is required",
                ".forgehand/config.yaml:1: at least one status of stage `canceled` is required",
                ".forgehand/config.yaml:4: max_concurrent must be at least 1",
            ]
        );
    }

    #[test]
    fn branch_prefix_must_be_ref_safe() {
        assert!(is_valid_branch_prefix("forgehand/"));
        assert!(is_valid_branch_prefix("bot-"));
        assert!(!is_valid_branch_prefix(""));
        assert!(!is_valid_branch_prefix("a b/"));
        assert!(!is_valid_branch_prefix("a..b"));
    }
}
