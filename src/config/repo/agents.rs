//! `check-config --config forgehand.toml`: each workflow's `agent` must name a profile of that
//! server configuration, checked where both are known (the repository alone cannot know them).

use super::error::ValidationError;
use super::source::{Source, split_front_matter};
use super::{ConfigFiles, RepoConfig};

/// An error on each workflow whose `agent` is not one of `profiles`, on its `agent:` line.
pub fn check_agents(
    config: &RepoConfig,
    files: &ConfigFiles,
    profiles: &[&str],
) -> Vec<ValidationError> {
    let known = if profiles.is_empty() {
        "it has none".to_owned()
    } else {
        format!("it has {}", profiles.join(", "))
    };
    config
        .workflows
        .iter()
        .filter(|wf| !profiles.contains(&wf.agent.as_str()))
        .map(|wf| {
            let line = files
                .get(&wf.file)
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .and_then(|text| split_front_matter(text).ok())
                .and_then(|fm| Source::new(fm.yaml, fm.yaml_line).key("agent", 1));
            ValidationError::new(
                &wf.file,
                line,
                format!(
                    "agent: no profile `{}` in the server configuration ({known})",
                    wf.agent
                ),
            )
        })
        .collect()
}
