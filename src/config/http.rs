//! The HTTP server's limits (`[http]` in `forgehand.toml`): how long and how much any one client
//! on the network may hold of the server.

use super::duration;
use std::time::Duration;

use serde::Deserialize;

/// Every value has a default; see docs/configuration.md for why each is what it is.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// From a request's first byte to the end of its headers.
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body.
    #[serde(deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    /// A connection with no request in progress and no traffic is closed after this.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Open connections at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Request body bytes held across all clients at once; beyond it, requests are refused with
    /// `503` and `Retry-After`.
    pub max_body_bytes_in_flight: usize,
    /// Largest webhook body (GitHub caps deliveries at 25 MB).
    pub max_webhook_body: usize,
    /// How long in-flight requests may finish after shutdown begins; then connections drop.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            max_webhook_body: 25 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl HttpLimits {
    /// Names the first setting that cannot work.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let durations = [
            ("http.header_read_timeout", self.header_read_timeout),
            ("http.body_read_timeout", self.body_read_timeout),
            ("http.idle_timeout", self.idle_timeout),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err((name, "must be longer than zero".into()));
            }
        }
        if self.max_connections == 0 {
            return Err(("http.max_connections", "must be at least 1".into()));
        }
        if self.max_webhook_body == 0 || self.max_webhook_body > u32::MAX as usize {
            return Err((
                "http.max_webhook_body",
                format!("must be between 1 and {} bytes", u32::MAX),
            ));
        }
        // A delivery of the largest allowed size must fit in the budget, or it never gets in.
        if self.max_body_bytes_in_flight < self.max_webhook_body
            || self.max_body_bytes_in_flight > tokio::sync::Semaphore::MAX_PERMITS
        {
            return Err((
                "http.max_body_bytes_in_flight",
                format!(
                    "must be at least http.max_webhook_body ({} bytes)",
                    self.max_webhook_body
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_tables_keep_the_other_defaults() {
        let limits: HttpLimits = toml::from_str("idle_timeout = \"2s\"").unwrap();
        assert_eq!(limits.idle_timeout, Duration::from_secs(2));
        assert_eq!(
            limits.max_connections,
            HttpLimits::default().max_connections
        );
        assert!(limits.check().is_ok());
    }

    #[test]
    fn unusable_limits_are_named() {
        let zero: HttpLimits = toml::from_str("header_read_timeout = \"0s\"").unwrap();
        assert_eq!(zero.check().unwrap_err().0, "http.header_read_timeout");
        let small: HttpLimits = toml::from_str("max_body_bytes_in_flight = 1024").unwrap();
        assert_eq!(
            small.check().unwrap_err().0,
            "http.max_body_bytes_in_flight"
        );
        assert!(toml::from_str::<HttpLimits>("max_conections = 1").is_err());
    }
}
