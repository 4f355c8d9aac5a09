//! What both REST clients share: they talk to their APIs through octocrab's generic requests
//! (GitHub's and Gitea's error bodies both carry `message`), so errors and routes are built alike.

use crate::domain::RepoRef;
use crate::forge::ForgeError;
use crate::forge::guard::Refusal;

/// Maps octocrab's error to ours: 404 is `NotFound`, other answers `Api`, the rest transport,
/// decoding or authentication problems.
pub(crate) fn api_error(err: octocrab::Error, what: &str) -> ForgeError {
    match err {
        octocrab::Error::GitHub { source, .. } if source.status_code.as_u16() == 404 => {
            ForgeError::NotFound(what.to_owned())
        }
        octocrab::Error::GitHub { source, .. } => ForgeError::Api {
            status: source.status_code.as_u16(),
            what: what.to_owned(),
            message: source.message.clone(),
        },
        octocrab::Error::Json { .. } | octocrab::Error::Serde { .. } => ForgeError::Decode {
            what: what.to_owned(),
            message: err.to_string(),
        },
        octocrab::Error::JWT { .. } | octocrab::Error::Installation { .. } => {
            ForgeError::Auth(format!("{what}: {err}"))
        }
        octocrab::Error::Service { ref source, .. } if source.is::<Refusal>() => {
            match source.downcast_ref::<Refusal>() {
                Some(Refusal::RateLimited { until }) => ForgeError::RateLimited { until: *until },
                Some(Refusal::Timeout { after }) => ForgeError::Timeout {
                    what: what.to_owned(),
                    after: *after,
                },
                None => ForgeError::Transport {
                    what: what.to_owned(),
                    message: err.to_string(),
                },
            }
        }
        other => ForgeError::Transport {
            what: what.to_owned(),
            message: other.to_string(),
        },
    }
}

/// `owner/name` for a route, each part percent-encoded.
pub(crate) fn path(repo: &RepoRef) -> String {
    format!("{}/{}", encode(&repo.owner), encode(&repo.name))
}

/// Percent-encodes one path segment (label names may hold spaces, `/` or `#`).
pub(crate) use crate::domain::links::segment as encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        // `encode` itself is `domain::links::segment`, tested there.
        let repo = RepoRef::new(crate::domain::ForgeKind::Github, "octo", "hello.rs");
        assert_eq!(path(&repo), "octo/hello.rs");
    }
}
