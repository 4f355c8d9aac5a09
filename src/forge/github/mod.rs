//! GitHub: the REST client (App or token auth) and webhook payload parsing.

pub(crate) mod app;
mod client;
pub(crate) mod payload;

pub use client::{GithubAuth, GithubForge};
