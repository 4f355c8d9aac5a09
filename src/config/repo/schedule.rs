//! `.forgehand/schedules.yaml`: cron schedules that open issues.
//!
//! The file is a mapping with one key, `schedules`, holding the list (a mapping leaves room for
//! file-wide settings later without breaking existing files):
//!
//! ```yaml
//! schedules:
//!   - name: weekly-deps
//!     cron: "0 9 * * 1"          # 5 fields, or 6 with leading seconds
//!     timezone: Europe/Berlin     # IANA name, default UTC
//!     issue:
//!       title: Update dependencies
//!       body: Run `cargo update` and fix what breaks.
//!       labels: [agent:todo]
//! ```

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use super::error::{FileErrors, ValidationError};
use super::keys::{self, from_yaml_all};
use super::names::{NAME_RULE, is_valid_name};
use super::source::Source;
use super::yaml::utf8;

pub(crate) const FILE: &str = ".forgehand/schedules.yaml";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    /// IANA time zone the cron expression is read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    pub issue: ScheduledIssue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledIssue {
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// Labels of the opened issue; include a status label for an agent to pick it up.
    #[serde(default)]
    pub labels: Vec<String>,
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulesFile {
    #[serde(default)]
    schedules: Vec<Schedule>,
}

impl Schedule {
    /// The first time strictly after `after` that the schedule fires, or `None` if the cron
    /// expression or time zone is invalid (never the case after validation) or never matches.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tz = Tz::from_str(&self.timezone).ok()?;
        let cron = parse_cron(&self.cron).ok()?;
        cron.find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

fn parse_cron(expr: &str) -> Result<Cron, croner::errors::CronError> {
    Cron::new(expr).with_seconds_optional().parse()
}

/// The fields of a 5-field cron expression; a 6-field one has `second` first.
const CRON_FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

/// Which field of `expr` is wrong, found by trying each field alone among `*`s; the parser's
/// own message when no single field is to blame.
fn cron_problem(expr: &str, err: &croner::errors::CronError) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let names: Vec<&str> = match fields.len() {
        5 => CRON_FIELDS.to_vec(),
        6 => std::iter::once("second").chain(CRON_FIELDS).collect(),
        n => {
            return format!(
                "{n} fields; expected 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
            );
        }
    };
    let bad: Vec<String> = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let alone: Vec<&str> = (0..fields.len())
                .map(|j| if j == *i { fields[j] } else { "*" })
                .collect();
            parse_cron(&alone.join(" ")).is_err()
        })
        .map(|(i, value)| format!("the {} field `{value}` is invalid", names[i]))
        .collect();
    if bad.is_empty() {
        err.to_string()
    } else {
        bad.join("; ")
    }
}

pub(crate) fn parse(bytes: &[u8], errors: &mut Vec<ValidationError>) -> Vec<Schedule> {
    let text = match utf8(FILE, bytes) {
        Ok(text) => text,
        Err(err) => {
            errors.push(err);
            return Vec::new();
        }
    };
    let Some(file) = from_yaml_all::<SchedulesFile>(FILE, text, 1, &keys::SCHEDULES, errors) else {
        return Vec::new();
    };
    let src = Source::new(text, 1);
    let mut out = FileErrors { file: FILE, errors };
    let mut names = HashSet::new();
    for (index, schedule) in file.schedules.iter().enumerate() {
        let nth = file.schedules[..index]
            .iter()
            .filter(|s| s.name == schedule.name)
            .count();
        let entry = src.key_value("name", &schedule.name, nth);
        check(schedule, entry, src, &mut names, &mut out);
    }
    file.schedules
}

fn check<'a>(
    schedule: &'a Schedule,
    entry: Option<u32>,
    src: Source<'_>,
    names: &mut HashSet<&'a str>,
    out: &mut FileErrors<'_>,
) {
    // Fields are searched from the entry's `name:` line; a field before it falls back to it.
    let field = |key: &str| entry.and_then(|from| src.key(key, from)).or(entry);
    let name = &schedule.name;
    if !is_valid_name(name) {
        out.push(
            entry,
            format!("invalid schedule name `{name}`: use {NAME_RULE}"),
        );
    } else if !names.insert(name) {
        out.push(entry, format!("duplicate schedule name `{name}`"));
    }
    if let Err(err) = parse_cron(&schedule.cron) {
        out.push(
            field("cron"),
            format!(
                "schedule `{name}`: invalid cron `{}`: {}",
                schedule.cron,
                cron_problem(&schedule.cron, &err)
            ),
        );
    }
    if Tz::from_str(&schedule.timezone).is_err() {
        out.push(
            field("timezone"),
            format!(
                "schedule `{name}`: unknown timezone `{}` (use an IANA name like `Europe/Berlin` or `UTC`)",
                schedule.timezone
            ),
        );
    }
    if schedule.issue.title.trim().is_empty() {
        out.push(
            field("title"),
            format!("schedule `{name}`: issue title must not be empty"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Vec<Schedule>, Vec<String>) {
        let mut errors = Vec::new();
        let schedules = parse(text.as_bytes(), &mut errors);
        (schedules, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn parses_with_defaults_and_computes_next_run() {
        let (schedules, errors) = run(
            "schedules:\n  - name: weekly\n    cron: \"0 9 * * 1\"\n    issue: { title: Deps }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(schedules[0].timezone, "UTC");
        assert!(schedules[0].issue.labels.is_empty());
        let monday = "2025-01-06T09:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        let sunday = "2025-01-05T12:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        assert_eq!(schedules[0].next_after(sunday), Some(monday));
    }

    #[test]
    fn seconds_field_is_optional() {
        assert!(parse_cron("30 0 9 * * 1").is_ok());
        assert!(parse_cron("0 9 * * 1").is_ok());
        assert!(parse_cron("0 9 * *").is_err());
    }

    #[test]
    fn bad_cron_and_timezone_point_at_their_lines() {
        let text = "schedules:\n  - name: ok\n    cron: \"0 9 * * 1\"\n    issue: { title: A }\n  - name: bad\n    cron: \"61 9 * * 1\"\n    timezone: Mars/Olympus\n    issue: { title: B }\n  - name: ok\n    cron: \"0 9 * * 1\"\n    issue: { title: \"\" }\n";
        let (_, errors) = run(text);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].starts_with(
                ".forgehand/schedules.yaml:6: schedule `bad`: invalid cron `61 9 * * 1`"
            ),
            "{errors:?}"
        );
        assert_eq!(
            errors[1],
            ".forgehand/schedules.yaml:7: schedule `bad`: unknown timezone `Mars/Olympus` (use an IANA name like `Europe/Berlin` or `UTC`)"
        );
        assert_eq!(
            errors[2],
            ".forgehand/schedules.yaml:9: duplicate schedule name `ok`"
        );
        assert_eq!(
            errors[3],
            ".forgehand/schedules.yaml:11: schedule `ok`: issue title must not be empty"
        );
    }

    #[test]
    fn the_bad_cron_field_is_named() {
        let err = parse_cron("61 9 * * 1").expect_err("invalid");
        assert_eq!(
            cron_problem("61 9 * * 1", &err),
            "the minute field `61` is invalid"
        );
        let err = parse_cron("0 0 9 * 13 *").expect_err("invalid");
        assert_eq!(
            cron_problem("0 0 9 * 13 *", &err),
            "the month field `13` is invalid"
        );
        let err = parse_cron("0 9 * *").expect_err("invalid");
        assert!(cron_problem("0 9 * *", &err).starts_with("4 fields; expected 5"));
    }

    #[test]
    fn top_level_list_is_rejected_with_a_location() {
        let (_, errors) = run("- name: x\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(".forgehand/schedules.yaml:1: "),
            "{errors:?}"
        );
    }
}
