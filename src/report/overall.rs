//! The overall `forgehand` check of a run: how it ended, on which config version, at what cost.

use crate::forge::{CheckConclusion, CheckOutput, CheckRunRequest, CheckStatus, StatusState};

use super::Reporter;

/// The overall check's name (and status context).
pub const OVERALL_CHECK: &str = "forgehand";

/// What the overall check says about a run.
#[derive(Clone, Debug, PartialEq)]
pub struct OverallReport {
    pub conclusion: CheckConclusion,
    /// One line: `Ready for review`, `Gate tests failed`, ...
    pub headline: String,
    /// The pinned config version number.
    pub config_version: Option<i64>,
    /// The commit the pinned config version was synced from.
    pub config_sha: Option<String>,
    pub turns: u32,
    pub tokens: u64,
    pub cost_usd: f64,
    /// More markdown for the check's text (e.g. the gates' outcomes), if any.
    pub details: Option<String>,
}

impl OverallReport {
    /// `Config v3 (abc1234) · 2 turns · 12345 tokens · $0.42`.
    pub fn facts(&self) -> String {
        let mut parts = Vec::new();
        match (self.config_version, &self.config_sha) {
            (Some(v), Some(sha)) => parts.push(format!("config v{v} ({})", short(sha))),
            (Some(v), None) => parts.push(format!("config v{v}")),
            (None, _) => {}
        }
        parts.push(format!(
            "{} turn{}",
            self.turns,
            if self.turns == 1 { "" } else { "s" }
        ));
        parts.push(format!("{} tokens", self.tokens));
        parts.push(format!("${:.2}", self.cost_usd));
        parts.join(" · ")
    }
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

impl Reporter {
    /// Reports the overall `forgehand` check: a completed check run, or a commit status.
    pub async fn overall(&self, report: &OverallReport) {
        if !self.uses_check_runs() {
            let state = match report.conclusion {
                CheckConclusion::Success | CheckConclusion::Neutral | CheckConclusion::Skipped => {
                    StatusState::Success
                }
                CheckConclusion::ActionRequired => StatusState::Pending,
                _ => StatusState::Failure,
            };
            let description = format!("{} · {}", report.headline, report.facts());
            self.status(OVERALL_CHECK, state, &description).await;
            return;
        }
        let mut summary = format!("{}\n\n{}", report.headline, report.facts());
        if let Some(url) = &self.details_url {
            summary.push_str(&format!("\n\n[The run on the Forgehand dashboard]({url})"));
        }
        let request = CheckRunRequest {
            name: OVERALL_CHECK.to_owned(),
            status: CheckStatus::Completed,
            conclusion: Some(report.conclusion),
            details_url: self.details_url.clone(),
            output: Some(CheckOutput {
                title: report.headline.clone(),
                summary,
                text: report.details.clone(),
                annotations: Vec::new(),
            }),
        };
        if let Err(err) = self
            .forge
            .create_check_run(&self.repo, &self.head_sha, &request)
            .await
        {
            tracing::warn!(repo = %self.repo, error = %err, "cannot report the forgehand check");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_line() {
        let report = OverallReport {
            conclusion: CheckConclusion::Success,
            headline: "Ready for review".into(),
            config_version: Some(3),
            config_sha: Some("abcdef0123".into()),
            turns: 1,
            tokens: 1234,
            cost_usd: 0.416,
            details: None,
        };
        assert_eq!(
            report.facts(),
            "config v3 (abcdef0) · 1 turn · 1234 tokens · $0.42"
        );
    }
}
