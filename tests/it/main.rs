//! Integration tests: the real server over real HTTP, on SQLite and on PostgreSQL.

mod harness;
mod webhooks;
