//! Integration tests: the real server over real HTTP, on SQLite and on PostgreSQL.

mod config_sync;
mod gitrepo;
mod harness;
mod webhooks;
