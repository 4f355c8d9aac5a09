//! How long finished webhook deliveries are kept (`[retention]`).

use super::duration;
use std::time::Duration;

use serde::Deserialize;

/// `[retention]` of `forgehand.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Processed and ignored deliveries are deleted this long after they were processed.
    #[serde(default = "default_processed", deserialize_with = "duration")]
    pub deliveries: Duration,
    /// Failed deliveries are kept longer: they are what an operator looks into.
    #[serde(default = "default_failed", deserialize_with = "duration")]
    pub failed_deliveries: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            deliveries: default_processed(),
            failed_deliveries: default_failed(),
        }
    }
}

fn default_processed() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

fn default_failed() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_refuses_nonsense() {
        let r: Retention = toml::from_str("deliveries = \"2d\"").unwrap();
        assert_eq!(r.deliveries, Duration::from_secs(2 * 24 * 3600));
        assert_eq!(r.failed_deliveries, default_failed());
        assert!(toml::from_str::<Retention>("deliveries = \"soon\"").is_err());
        assert!(toml::from_str::<Retention>("keep = \"2d\"").is_err());
    }
}
