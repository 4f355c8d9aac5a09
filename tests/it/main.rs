//! Integration tests: the real server over real HTTP, on SQLite and on PostgreSQL.

mod api;
mod checks;
mod claims;
mod cli;
mod config_sync;
mod confinement;
mod costs;
mod dashboard;
mod deps;
mod examples;
mod gates;
mod gitrepo;
mod harness;
mod hooks;
mod reconcile;
mod restart;
mod runs;
mod scenario;
mod schedules;
mod webhooks;
