//! Remote runners as the admin API lists, creates and revokes them.

use serde::{Deserialize, Serialize};

use crate::store::runners::RunnerRow;

/// A runner, with what it last announced and the runs it holds now. Times are Unix ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub id: i64,
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: i64,
    pub version: Option<String>,
    pub last_contact: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    /// The runs it holds now.
    pub runs: Vec<i64>,
}

impl Runner {
    pub fn new(row: RunnerRow, runs: Vec<i64>) -> Self {
        Self {
            id: row.id,
            name: row.name,
            labels: row.labels,
            capacity: row.capacity,
            version: row.version,
            last_contact: row.last_contact,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
            runs,
        }
    }
}

/// `POST /api/v1/runners`: a new runner's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRunner {
    pub name: String,
}

/// A new runner and its token, shown in this answer only (the server keeps its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerCreated {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// `POST /api/v1/runners/{id}/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerRevoked {
    pub id: i64,
    pub revoked: bool,
}
