//! GitHub: the REST client (App or token auth) and webhook payload parsing.

pub mod app;
mod client;
pub mod payload;

pub use client::{GithubAuth, GithubForge};
