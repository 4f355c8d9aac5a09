//! How Forgehand talks to the forges (`[forge]` in `forgehand.toml`): timeouts and the spacing of
//! writes, so a hung or strict forge never stalls the server.

use super::duration;
use std::time::Duration;

use serde::Deserialize;

/// Every value has a default; see docs/configuration.md.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForgeSettings {
    /// Opening the TCP (and TLS) connection.
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// One whole request, from sending to the last byte of the answer.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Least time between two writes (POST/PATCH/PUT/DELETE) on one GitHub token, as GitHub's
    /// REST best practices ask.
    #[serde(deserialize_with = "duration")]
    pub github_write_spacing: Duration,
    /// The same for Gitea, which asks for none.
    #[serde(deserialize_with = "duration")]
    pub gitea_write_spacing: Duration,
    /// How long a `git fetch` or `git push` may go without a byte moving before it is abandoned
    /// (git's `http.lowSpeedTime`): a remote that accepts and never answers cannot hold a run.
    #[serde(deserialize_with = "duration")]
    pub git_stall_timeout: Duration,
}

impl Default for ForgeSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            github_write_spacing: Duration::from_secs(1),
            gitea_write_spacing: Duration::ZERO,
            git_stall_timeout: Duration::from_secs(60),
        }
    }
}

impl ForgeSettings {
    /// Names the first setting that cannot work.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (name, value) in [
            ("forge.connect_timeout", self.connect_timeout),
            ("forge.request_timeout", self.request_timeout),
            ("forge.git_stall_timeout", self.git_stall_timeout),
        ] {
            if value.is_zero() {
                return Err((name, "must be longer than zero".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_table_keeps_defaults_and_zero_timeouts_are_refused() {
        let settings: ForgeSettings = toml::from_str("github_write_spacing = \"0s\"").unwrap();
        assert_eq!(settings.github_write_spacing, Duration::ZERO);
        assert_eq!(settings.request_timeout, Duration::from_secs(30));
        assert!(settings.check().is_ok());
        let zero: ForgeSettings = toml::from_str("request_timeout = \"0s\"").unwrap();
        assert_eq!(zero.check().unwrap_err().0, "forge.request_timeout");
        assert!(toml::from_str::<ForgeSettings>("typo = \"1s\"").is_err());
    }
}
