//! Configuration: the server's own (`forgehand.toml` + environment) and each repository's
//! `.forgehand/` tree.

pub mod admin_token;
pub(crate) mod forge;
pub(crate) mod http;
pub(crate) mod oauth;
pub mod repo;
pub(crate) mod retention;
pub mod server;
pub mod startup;

/// Serde's `deserialize_with` for a humantime duration such as `30s`, `5m` or `14d`, the form
/// every duration in the server's settings takes.
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    use serde::Deserialize;
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}
