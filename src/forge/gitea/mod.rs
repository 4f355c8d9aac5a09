//! Gitea and Forgejo: the REST client and webhook payload parsing.

pub(crate) mod admin;
mod client;
pub(crate) mod payload;

pub use client::GiteaForge;
