//! One hook on the forge: a check run `forgehand/<name>` (queued → in progress → completed) or
//! a commit status with that context (pending → final state).

use crate::config::repo::OnFailure;
use crate::forge::{
    CheckConclusion, CheckOutput, CheckRunRequest, CheckStatus, CommitStatusRequest, StatusState,
};
use crate::report::hook_result::{HookResult, HookStatus};

use super::Reporter;
use super::markdown::fenced_tail;
use crate::domain::check_name;

/// A hook being reported, from [`Reporter::queue`] or [`Reporter::start`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookHandle {
    /// `forgehand/<hook name>`.
    pub name: String,
    /// The check run, when check runs are used and creating it worked.
    pub check_run_id: Option<u64>,
}

impl Reporter {
    /// Announces a hook that will run: a queued check run, or a pending commit status.
    pub async fn queue(&self, hook: &str) -> HookHandle {
        let name = check_name(hook);
        if !self.uses_check_runs() {
            self.status(&name, StatusState::Pending, "queued").await;
            return HookHandle {
                name,
                check_run_id: None,
            };
        }
        let request = self.run_request(&name, CheckStatus::Queued, None, None);
        let id = match self
            .forge
            .create_check_run(&self.repo, &self.head_sha, &request)
            .await
        {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::warn!(repo = %self.repo, check = %name, error = %err, "cannot create check run");
                None
            }
        };
        HookHandle {
            name,
            check_run_id: id,
        }
    }

    /// Marks a queued hook as running.
    pub async fn begin(&self, handle: &HookHandle) {
        if !self.uses_check_runs() {
            self.status(&handle.name, StatusState::Pending, "running")
                .await;
            return;
        }
        let request = self.run_request(&handle.name, CheckStatus::InProgress, None, None);
        self.send_run(handle, &request).await;
    }

    /// [`Reporter::queue`] then [`Reporter::begin`]: the hook starts now.
    pub async fn start(&self, hook: &str) -> HookHandle {
        let handle = self.queue(hook).await;
        self.begin(&handle).await;
        handle
    }

    /// Completes a hook's check with its result: conclusion, a summary line, the output's tail
    /// in a code block and, when it did not pass, the file:line annotations of its output (the
    /// client sends them 50 per request).
    pub async fn complete(&self, handle: &HookHandle, result: &HookResult) {
        if !self.uses_check_runs() {
            let (state, description) = status_of(result);
            self.status(&handle.name, state, &description).await;
            return;
        }
        let annotations = if result.passed() {
            Vec::new()
        } else {
            result.annotations()
        };
        let mut summary = format!("`{}`: {}", handle.name, summary_of(result));
        if !annotations.is_empty() {
            summary.push_str(&format!(
                "\n\n{} annotation(s) from the output.",
                annotations.len()
            ));
        }
        if result.truncated {
            summary.push_str("\n\nOnly the tail of the output was kept.");
        }
        let text = (!result.output_tail.is_empty()).then(|| fenced_tail(&result.output_tail));
        let output = CheckOutput {
            title: title_of(result),
            summary,
            text,
            annotations,
        };
        let request = self.run_request(
            &handle.name,
            CheckStatus::Completed,
            Some(conclusion_of(result)),
            Some(output),
        );
        self.send_run(handle, &request).await;
    }

    fn run_request(
        &self,
        name: &str,
        status: CheckStatus,
        conclusion: Option<CheckConclusion>,
        output: Option<CheckOutput>,
    ) -> CheckRunRequest {
        CheckRunRequest {
            name: name.to_owned(),
            status,
            conclusion,
            details_url: self.details_url.clone(),
            output,
        }
    }

    /// Updates the handle's check run, or creates one when there is none yet (its creation
    /// failed earlier).
    async fn send_run(&self, handle: &HookHandle, request: &CheckRunRequest) {
        let sent = match handle.check_run_id {
            Some(id) => self.forge.update_check_run(&self.repo, id, request).await,
            None => self
                .forge
                .create_check_run(&self.repo, &self.head_sha, request)
                .await
                .map(|_| ()),
        };
        if let Err(err) = sent {
            tracing::warn!(repo = %self.repo, check = %handle.name, error = %err, "cannot update check run");
        }
    }

    pub(super) async fn status(&self, context: &str, state: StatusState, description: &str) {
        let status = CommitStatusRequest {
            context: context.to_owned(),
            state,
            description: description.to_owned(),
            target_url: self.details_url.clone(),
        };
        if let Err(err) = self
            .forge
            .set_commit_status(&self.repo, &self.head_sha, &status)
            .await
        {
            tracing::warn!(repo = %self.repo, context, error = %err, "cannot set commit status");
        }
    }
}

/// Check run conclusion: a failure blocks only with `on_failure: block`; `warn` and `ignore`
/// failures are neutral.
fn conclusion_of(result: &HookResult) -> CheckConclusion {
    match (&result.status, result.on_failure) {
        (HookStatus::Passed, _) => CheckConclusion::Success,
        (_, OnFailure::Warn | OnFailure::Ignore) => CheckConclusion::Neutral,
        (HookStatus::TimedOut, OnFailure::Block) => CheckConclusion::TimedOut,
        (_, OnFailure::Block) => CheckConclusion::Failure,
    }
}

/// Commit status state and description: `warn` failures are Gitea's `warning` (a success on
/// GitHub, which has no such state), `ignore` failures a success.
pub fn status_of(result: &HookResult) -> (StatusState, String) {
    let state = match (&result.status, result.on_failure) {
        (HookStatus::Passed, _) | (_, OnFailure::Ignore) => StatusState::Success,
        (_, OnFailure::Warn) => StatusState::Warning,
        (HookStatus::Error(_), OnFailure::Block) => StatusState::Error,
        (_, OnFailure::Block) => StatusState::Failure,
    };
    (state, summary_of(result))
}

fn summary_of(result: &HookResult) -> String {
    let mut line = result.outcome();
    match (result.passed(), result.on_failure) {
        (false, OnFailure::Warn) => line.push_str(" (warning only)"),
        (false, OnFailure::Ignore) => line.push_str(" (ignored)"),
        _ => {}
    }
    line
}

fn title_of(result: &HookResult) -> String {
    let base = match &result.status {
        HookStatus::Passed => "Passed".to_owned(),
        HookStatus::Failed {
            exit_code: Some(code),
        } => format!("Failed (exit {code})"),
        HookStatus::Failed { exit_code: None } => "Failed (killed by a signal)".to_owned(),
        HookStatus::TimedOut => "Timed out".to_owned(),
        HookStatus::OverLimit(_) => "Over its resource limit".to_owned(),
        HookStatus::Error(_) => "Could not run".to_owned(),
    };
    match (result.passed(), result.on_failure) {
        (false, OnFailure::Warn) => format!("{base}: warning only"),
        (false, OnFailure::Ignore) => format!("{base}: ignored"),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(status: HookStatus, on_failure: OnFailure) -> HookResult {
        HookResult {
            name: "tests".into(),
            on_failure,
            status,
            output_tail: String::new(),
            truncated: false,
            duration: Duration::from_millis(1200),
        }
    }

    #[test]
    fn conclusions_follow_on_failure() {
        let failed = HookStatus::Failed { exit_code: Some(1) };
        let cases = [
            (
                HookStatus::Passed,
                OnFailure::Block,
                CheckConclusion::Success,
                StatusState::Success,
            ),
            (
                failed.clone(),
                OnFailure::Block,
                CheckConclusion::Failure,
                StatusState::Failure,
            ),
            (
                failed.clone(),
                OnFailure::Warn,
                CheckConclusion::Neutral,
                StatusState::Warning,
            ),
            (
                failed,
                OnFailure::Ignore,
                CheckConclusion::Neutral,
                StatusState::Success,
            ),
            (
                HookStatus::TimedOut,
                OnFailure::Block,
                CheckConclusion::TimedOut,
                StatusState::Failure,
            ),
            (
                HookStatus::Error("x".into()),
                OnFailure::Block,
                CheckConclusion::Failure,
                StatusState::Error,
            ),
        ];
        for (status, on_failure, conclusion, state) in cases {
            let r = result(status, on_failure);
            assert_eq!(conclusion_of(&r), conclusion, "{r:?}");
            assert_eq!(status_of(&r).0, state, "{r:?}");
        }
        let r = result(HookStatus::Failed { exit_code: Some(2) }, OnFailure::Warn);
        assert_eq!(status_of(&r).1, "exit 2, 1.2s (warning only)");
        assert_eq!(title_of(&r), "Failed (exit 2): warning only");
    }
}
