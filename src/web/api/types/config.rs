//! A repository's config versions and rejected pushes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::config_versions as store;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersions {
    /// `forge:owner/name`
    pub repository: String,
    /// The version new tickets are pinned to.
    pub active: Option<i64>,
    pub versions: Vec<ConfigVersion>,
    /// Pushes whose tree failed validation, newest first.
    pub rejected: Vec<Rejection>,
    /// Why the last sync could not read the tree at all (clone or fetch failed).
    pub sync_error: Option<String>,
}

/// One accepted snapshot of `.forgehand/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    pub id: i64,
    pub number: i64,
    pub commit_sha: String,
    pub content_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A tree that failed validation at a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub commit_sha: String,
    pub content_hash: String,
    pub errors: Vec<ValidationError>,
    pub created_at: DateTime<Utc>,
}

/// `file:line: message`, in parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Relative to the repository root, e.g. `.forgehand/workflows/fullstack.md`.
    pub file: String,
    /// 1-based.
    pub line: Option<u32>,
    pub message: String,
}

impl From<store::ConfigVersion> for ConfigVersion {
    fn from(v: store::ConfigVersion) -> Self {
        Self {
            id: v.id,
            number: v.number,
            commit_sha: v.commit_sha,
            content_hash: v.content_hash,
            created_at: v.created_at,
        }
    }
}

impl From<store::Rejection> for Rejection {
    fn from(r: store::Rejection) -> Self {
        Self {
            commit_sha: r.commit_sha,
            content_hash: r.content_hash,
            errors: r.errors.into_iter().map(ValidationError::from).collect(),
            created_at: r.created_at,
        }
    }
}

impl From<crate::config::repo::ValidationError> for ValidationError {
    fn from(e: crate::config::repo::ValidationError) -> Self {
        Self {
            file: e.file,
            line: e.line,
            message: e.message,
        }
    }
}
