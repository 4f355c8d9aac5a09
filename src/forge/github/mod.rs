//! GitHub: the REST client (App or token auth) and webhook payload parsing.

mod client;
pub mod payload;

pub use client::{GithubAuth, GithubForge};
