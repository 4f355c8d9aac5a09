//! Forgehand: labelled issues on GitHub and Gitea/Forgejo become merged pull requests made by
//! AI coding agents, under harnesses versioned in git. See `DESIGN.md` for the contract.

pub mod app;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod domain;
pub mod engine;
pub mod exec;
pub mod forge;
pub(crate) mod git;
pub(crate) mod metrics;
pub mod report;
pub mod run;
pub mod runner;
pub mod sandbox;
pub mod server;
pub mod setup;
pub mod store;
pub mod sync;
pub mod web;
