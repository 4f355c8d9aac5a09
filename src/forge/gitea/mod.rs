//! Gitea and Forgejo: the REST client and webhook payload parsing.

mod client;
pub mod payload;

pub use client::GiteaForge;
