//! The agents' callback API: requests and answers.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/agent/comment`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRequest {
    pub body: String,
}

/// The comment posted on the run's issue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentPosted {
    pub comment_id: u64,
}

/// `POST /api/v1/agent/finish`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishRequest {
    pub status: String,
}

/// The finish status chosen for the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishChosen {
    pub run: i64,
    pub finish_status: String,
}
