//! Gitea and Forgejo: the REST client and webhook payload parsing.

pub mod admin;
mod client;
pub mod payload;

pub use client::GiteaForge;
