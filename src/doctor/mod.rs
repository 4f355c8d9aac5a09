//! `forgehand doctor`: checks what a running Forgehand depends on — config, database,
//! webhooks, forge credentials and what they may really do, git, the agent CLIs, the sandbox and
//! disk space — and says for each line ok, warn or fail, with what to do.

mod database;
mod forges;
mod host;

use crate::config::server::ServerConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// What was checked, e.g. `database`, `agent profile "claude"`.
    pub subject: String,
    pub detail: String,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            subject: subject.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Warn,
            subject: subject.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Fail,
            subject: subject.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<4}  {}: {}",
            self.status.as_str(),
            self.subject,
            self.detail
        )?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      → {fix}")?;
        }
        Ok(())
    }
}

/// Every check on a loaded config, in report order.
pub async fn check(config: &ServerConfig) -> Vec<Finding> {
    let mut findings = database::check(config).await;
    findings.extend(forges::check(config).await);
    findings.extend(host::check(config).await);
    findings
}

/// The worst status among `findings` (ok when empty).
pub fn worst(findings: &[Finding]) -> Status {
    findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Ok)
}
