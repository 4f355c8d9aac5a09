//! `forgehand setup`: connecting Forgehand to a forge from the command line — a GitHub App
//! registered through GitHub's manifest flow, or a webhook created on Gitea with a token.

pub mod cli;
mod config_file;
pub(crate) mod gitea;
pub(crate) mod github;

use std::path::PathBuf;

use crate::config::server::ConfigError;
use crate::forge::ForgeError;

/// Why a setup stopped; each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Forge(#[from] ForgeError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("cannot serve the local setup page on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}
