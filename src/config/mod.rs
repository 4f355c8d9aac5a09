//! Configuration: the server's own (`forgehand.toml` + environment) and each repository's
//! `.forgehand/` tree.

pub mod admin_token;
pub mod forge;
pub mod http;
pub mod repo;
pub mod retention;
pub mod server;
