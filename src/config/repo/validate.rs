//! Validation of a whole `.forgehand/` tree: each file on its own, then across files.

use std::collections::{BTreeMap, HashSet};

use super::ConfigFiles;
use super::error::ValidationError;
use super::repo_config::RepoConfig;
use super::settings::{self, Settings};
use super::source::{Source, split_front_matter};
use super::workflow::{self, Workflow};
use super::{harness, limits, schedule, skill};

/// Places where a misnamed file would otherwise be silently ignored.
const LIKELY_TYPOS: [(&str, &str); 2] = [
    (".forgehand/config.yml", "config.yaml"),
    (".forgehand/schedules.yml", "schedules.yaml"),
];

/// Parses and checks a `.forgehand/` tree, collecting every error, sorted by file and line.
///
/// Without `config.yaml` the defaults apply; an empty set of files is a valid configuration.
/// Files other than the known ones (a README, a skill's attachments) are allowed.
pub fn validate(files: &ConfigFiles) -> Result<RepoConfig, Vec<ValidationError>> {
    // Readers check sizes before reading; a tree from elsewhere is held to the same limits.
    let too_large = limits::check_sizes(files.iter().map(|(path, bytes)| limits::Entry {
        path,
        bytes: bytes.len() as u64,
    }));
    if !too_large.is_empty() {
        return Err(too_large);
    }
    let mut errors = Vec::new();
    let settings = match files.get(settings::FILE) {
        Some(bytes) => settings::parse(bytes, &mut errors),
        None => Some(Settings::default()),
    };

    let folders = skill::folders(files);
    let skill_names: HashSet<String> = folders.keys().cloned().collect();
    let skills: Vec<_> = folders
        .iter()
        .filter_map(|(name, paths)| skill::parse(name, paths, files, &mut errors))
        .collect();

    let ctx = workflow::Context {
        statuses: settings.as_ref().map(|s| s.statuses.as_slice()),
        skills: &skill_names,
    };
    let workflows: Vec<_> = files
        .iter()
        .filter(|(path, _)| workflow::is_workflow_path(path))
        .filter_map(|(path, bytes)| workflow::parse(path, bytes, &ctx, &mut errors))
        .collect();
    // The harness is checked once its workflow is known (the harness reads the workflow).
    for workflow in &workflows {
        errors.extend(harness::check(workflow));
    }
    check_shared_pickups(&workflows, files, &mut errors);
    check_stray_files(files, &mut errors);

    let schedules = files
        .get(schedule::FILE)
        .map(|bytes| schedule::parse(bytes, &mut errors))
        .unwrap_or_default();

    match settings {
        Some(settings) if errors.is_empty() => {
            Ok(RepoConfig::new(settings, workflows, skills, schedules))
        }
        _ => {
            // Stable: errors of one line keep the order the checks found them in.
            errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Err(errors)
        }
    }
}

/// No status may be picked up by two workflows: the error goes on the later file and names both.
fn check_shared_pickups(
    workflows: &[Workflow],
    files: &ConfigFiles,
    errors: &mut Vec<ValidationError>,
) {
    let mut owners: BTreeMap<&str, &Workflow> = BTreeMap::new();
    for wf in workflows {
        for status in &wf.pickup {
            match owners.get(status.as_str()) {
                Some(owner) if owner.file != wf.file => errors.push(ValidationError::new(
                    &wf.file,
                    pickup_line(files, &wf.file, status),
                    format!(
                        "pickup: status `{status}` is already picked up by {}; no two workflows may share a pickup status",
                        owner.file
                    ),
                )),
                Some(_) => {}
                None => {
                    owners.insert(status, wf);
                }
            }
        }
    }
}

fn pickup_line(files: &ConfigFiles, file: &str, status: &str) -> Option<u32> {
    let text = std::str::from_utf8(files.get(file)?).ok()?;
    let fm = split_front_matter(text).ok()?;
    Source::new(fm.yaml, fm.yaml_line).path(&["pickup"], Some(status))
}

fn check_stray_files(files: &ConfigFiles, errors: &mut Vec<ValidationError>) {
    for path in files.keys() {
        if let Some(rest) = path.strip_prefix(workflow::DIR)
            && !workflow::is_workflow_path(path)
            && !rest.eq_ignore_ascii_case("README.md")
        {
            errors.push(ValidationError::new(
                path,
                None,
                "not a workflow: workflows are `.forgehand/workflows/<name>.md` (a README.md is allowed)",
            ));
        }
        if let Some((_, meant)) = LIKELY_TYPOS.iter().find(|(typo, _)| typo == path) {
            errors.push(ValidationError::new(
                path,
                None,
                format!("this file is ignored: rename it to `{meant}`"),
            ));
        }
    }
}
