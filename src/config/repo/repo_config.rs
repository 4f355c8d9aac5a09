//! The validated configuration of one repository, and lookups over it.

use serde::Serialize;

use super::schedule::Schedule;
use super::settings::Settings;
use super::skill::Skill;
use super::statuses::StatusDef;
use super::triggers::Triggers;
use super::workflow::Workflow;

#[derive(Clone, Debug, Serialize)]
pub struct RepoConfig {
    /// In board-column order.
    pub statuses: Vec<StatusDef>,
    pub triggers: Triggers,
    pub branch_prefix: String,
    /// Runs at once for this repository.
    pub max_concurrent: u32,
    /// Sorted by file path.
    pub workflows: Vec<Workflow>,
    /// Sorted by name.
    pub skills: Vec<Skill>,
    pub schedules: Vec<Schedule>,
}

impl RepoConfig {
    pub(crate) fn new(
        settings: Settings,
        workflows: Vec<Workflow>,
        skills: Vec<Skill>,
        schedules: Vec<Schedule>,
    ) -> Self {
        Self {
            statuses: settings.statuses,
            triggers: settings.triggers,
            branch_prefix: settings.branch_prefix,
            max_concurrent: settings.max_concurrent,
            workflows,
            skills,
            schedules,
        }
    }

    pub fn status_by_name(&self, name: &str) -> Option<&StatusDef> {
        self.statuses.iter().find(|s| s.name == name)
    }

    /// The ticket's status from its labels: when several status labels are present, the one
    /// latest in `statuses` order wins (a ticket moved forward without the old label removed).
    pub fn status_of(&self, labels: &[String]) -> Option<&StatusDef> {
        self.statuses
            .iter()
            .rev()
            .find(|s| labels.contains(&s.label))
    }

    pub fn workflow_for_pickup(&self, status_name: &str) -> Option<&Workflow> {
        self.workflows
            .iter()
            .find(|w| w.pickup.iter().any(|p| p == status_name))
    }

    pub fn workflow_by_name(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }

    pub fn skill_by_name(&self, name: &str) -> Option<&Skill> {
        self.skills.iter().find(|s| s.name == name)
    }

    /// Where a claim moves a ticket from `pickup`: the next `started` status after it in the
    /// board order, else the first `started` status (validation guarantees one exists).
    pub fn started_status_after(&self, pickup: &str) -> Option<&StatusDef> {
        let position = self.statuses.iter().position(|s| s.name == pickup)?;
        self.statuses[position + 1..]
            .iter()
            .chain(&self.statuses)
            .find(|s| s.stage == super::Stage::Started)
    }
}

impl Default for RepoConfig {
    /// The defaults of DESIGN §2: what a repository without `.forgehand/` gets.
    fn default() -> Self {
        Self::new(Settings::default(), Vec::new(), Vec::new(), Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::repo::{Permission, Stage};

    fn labels(list: &[&str]) -> Vec<String> {
        list.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn defaults_match_the_design() {
        let config = RepoConfig::default();
        let names: Vec<_> = config.statuses.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "backlog",
                "todo",
                "in-progress",
                "in-review",
                "merging",
                "done",
                "canceled"
            ]
        );
        assert_eq!(config.triggers.min_permission, Permission::Write);
        assert_eq!(config.branch_prefix, "forgehand/");
        assert_eq!(config.max_concurrent, 5);
        assert!(config.workflows.is_empty());
    }

    #[test]
    fn status_lookups() {
        let config = RepoConfig::default();
        assert_eq!(
            config
                .status_of(&["agent:todo".to_owned()])
                .map(|s| s.stage),
            Some(Stage::Unstarted)
        );
        assert_eq!(
            config.status_by_name("done").map(|s| s.label.as_str()),
            Some("agent:done")
        );
        assert!(config.status_by_name("agent:done").is_none());
    }

    #[test]
    fn status_of_prefers_the_latest_status() {
        let config = RepoConfig::default();
        let pick = |l: &[&str]| config.status_of(&labels(l)).map(|s| s.name.clone());
        assert_eq!(pick(&["bug", "agent:todo"]), Some("todo".to_owned()));
        assert_eq!(
            pick(&["agent:in-review", "agent:todo", "agent:backlog"]),
            Some("in-review".to_owned())
        );
        assert_eq!(pick(&["bug", "todo"]), None);
        assert_eq!(pick(&[]), None);
    }
}
