//! The `forgehand/config` check: whether a commit's `.forgehand/` tree validates, with each
//! error as a file:line annotation.

use crate::app::App;
use crate::config::repo::ValidationError;
use crate::domain::RepoRef;
use crate::domain::links;
use crate::forge::{
    Annotation, AnnotationLevel, CheckConclusion, CheckOutput, CheckRunRequest, CheckStatus,
    CommitStatusRequest, Forge, ForgeError, StatusState,
};

/// The config check's name (and status context).
pub const CONFIG_CHECK: &str = "forgehand/config";

/// [`report_config`] through the app's client for the repository's forge, with a link to the
/// dashboard. Errors are logged; a forge without a client is skipped.
pub async fn config_check(
    app: &App,
    repo: &RepoRef,
    head_sha: &str,
    result: Result<(), &[ValidationError]>,
) {
    let Some(forge) = app.forges.get(repo.forge) else {
        return;
    };
    let details = links::absolute(app.config.public_url.as_str(), &links::overview());
    if let Err(err) = report_config(forge.as_ref(), repo, head_sha, Some(&details), result).await {
        tracing::warn!(%repo, sha = head_sha, error = %err, "cannot report the forgehand/config check");
    }
}

/// Reports a `.forgehand/` validation result on `head_sha`: a check run with one failure
/// annotation per error (line 1 for errors about a whole file), or a commit status.
pub async fn report_config(
    forge: &dyn Forge,
    repo: &RepoRef,
    head_sha: &str,
    details_url: Option<&str>,
    result: Result<(), &[ValidationError]>,
) -> Result<(), ForgeError> {
    let (conclusion, title) = match result {
        Ok(()) => (
            CheckConclusion::Success,
            "The configuration is valid".to_owned(),
        ),
        Err(errors) => (
            CheckConclusion::Failure,
            format!("{} configuration error(s)", errors.len()),
        ),
    };
    let errors = result.err().unwrap_or_default();
    if !forge.supports_check_runs() {
        let description = match errors.first() {
            Some(first) if errors.len() == 1 => first.to_string(),
            Some(first) => format!("{first} (and {} more)", errors.len() - 1),
            None => title,
        };
        let state = if errors.is_empty() {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        let status = CommitStatusRequest {
            context: CONFIG_CHECK.to_owned(),
            state,
            description,
            target_url: details_url.map(str::to_owned),
        };
        return forge.set_commit_status(repo, head_sha, &status).await;
    }
    let mut summary = if errors.is_empty() {
        "`.forgehand/` validates. It becomes active when this commit lands on the default branch."
            .to_owned()
    } else {
        "`.forgehand/` does not validate; while it does not, the active version stays.\n".to_owned()
    };
    for e in errors {
        summary.push_str(&format!("\n- `{e}`"));
    }
    let annotations = errors
        .iter()
        .map(|e| Annotation {
            path: e.file.clone(),
            line: e.line.unwrap_or(1),
            column: None,
            level: AnnotationLevel::Failure,
            message: e.message.clone(),
        })
        .collect();
    let request = CheckRunRequest {
        name: CONFIG_CHECK.to_owned(),
        status: CheckStatus::Completed,
        conclusion: Some(conclusion),
        details_url: details_url.map(str::to_owned),
        output: Some(CheckOutput {
            title,
            summary,
            text: None,
            annotations,
        }),
    };
    forge.create_check_run(repo, head_sha, &request).await?;
    Ok(())
}
