//! Durations written as humantime strings (`45m`, `1h30m`) in YAML and in serialized output.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    // Parsing inside the visitor (not after `String::deserialize`) lets the YAML deserializer
    // attach the scalar's own line to the error instead of the enclosing mapping's.
    d.deserialize_str(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `45m`, `20s` or `1h30m`")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        let parsed = humantime::parse_duration(text.trim()).map_err(|err| {
            E::custom(format!(
                "invalid duration `{text}`: {err} (expected e.g. `45m`, `20s`, `1h30m`)"
            ))
        })?;
        if parsed.is_zero() {
            return Err(E::custom(format!(
                "invalid duration `{text}`: must be greater than zero"
            )));
        }
        Ok(parsed)
    }
}

pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*value))
}

pub(crate) fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
