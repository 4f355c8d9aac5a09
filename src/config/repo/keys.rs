//! Every misspelt key of a YAML file at once, with "did you mean". serde stops at the first
//! unknown field; this walks the parsed document against the keys each file allows, reports
//! each unknown one on its line, and drops it, so the rest of the file is still checked.

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::error::ValidationError;
use super::source::Source;
use super::yaml::from_yaml;

/// The keys a YAML value may have.
pub(crate) enum Shape {
    /// Anything (a scalar, or a value whose keys serde checks alone).
    Any,
    Map(&'static [(&'static str, Shape)]),
    List(&'static Shape),
}

static HOOK: Shape = Shape::Map(&[
    ("name", Shape::Any),
    ("run", Shape::Any),
    ("timeout", Shape::Any),
    ("on_failure", Shape::Any),
]);

/// A workflow's front matter.
pub(crate) static WORKFLOW: Shape = Shape::Map(&[
    ("pickup", Shape::Any),
    ("finish", Shape::Any),
    ("agent", Shape::Any),
    ("runs_on", Shape::Any),
    ("max_concurrent", Shape::Any),
    ("max_turns", Shape::Any),
    ("timeout", Shape::Any),
    ("stall_timeout", Shape::Any),
    ("budget_usd", Shape::Any),
    ("skills", Shape::Any),
    ("pr", Shape::Map(&[("draft", Shape::Any)])),
    (
        "hooks",
        Shape::Map(&[
            ("on_claim", Shape::List(&HOOK)),
            ("on_complete", Shape::List(&HOOK)),
            ("before_merge", Shape::List(&HOOK)),
            ("on_done", Shape::List(&HOOK)),
            ("on_cancel", Shape::List(&HOOK)),
            ("on_error", Shape::List(&HOOK)),
        ]),
    ),
    (
        "merge",
        Shape::Map(&[
            ("approvals", Shape::Any),
            ("method", Shape::Any),
            ("auto", Shape::Any),
        ]),
    ),
]);

static STATUS: Shape = Shape::Map(&[
    ("name", Shape::Any),
    ("label", Shape::Any),
    ("stage", Shape::Any),
]);

/// `config.yaml`.
pub(crate) static SETTINGS: Shape = Shape::Map(&[
    ("statuses", Shape::List(&STATUS)),
    (
        "triggers",
        Shape::Map(&[("min_permission", Shape::Any), ("allow_bots", Shape::Any)]),
    ),
    ("branch_prefix", Shape::Any),
    ("max_concurrent", Shape::Any),
]);

static SCHEDULE: Shape = Shape::Map(&[
    ("name", Shape::Any),
    ("cron", Shape::Any),
    ("timezone", Shape::Any),
    (
        "issue",
        Shape::Map(&[
            ("title", Shape::Any),
            ("body", Shape::Any),
            ("labels", Shape::Any),
        ]),
    ),
]);

/// `schedules.yaml`.
pub(crate) static SCHEDULES: Shape = Shape::Map(&[("schedules", Shape::List(&SCHEDULE))]);

/// An unknown key and where it sits.
struct Unknown {
    /// The known keys above it, outermost first.
    parents: Vec<&'static str>,
    key: String,
    suggestion: Option<&'static str>,
}

/// Parses `text` (starting at file line `first_line`) as `T` like [`from_yaml`], but first
/// reports every key `shape` does not allow (each with its line and the closest known key) and
/// parses what remains. `None` when the file cannot be read as `T` (its error pushed).
pub(crate) fn from_yaml_all<T: DeserializeOwned>(
    file: &str,
    text: &str,
    first_line: u32,
    shape: &Shape,
    errors: &mut Vec<ValidationError>,
) -> Option<T> {
    // Syntax errors, depth and blank documents are `from_yaml`'s; a document that does not
    // parse as YAML at all gets its located error from there.
    let mut value = match from_yaml::<Value>(file, text, first_line) {
        Ok(value) => value,
        Err(err) => {
            errors.push(err);
            return None;
        }
    };
    let mut unknown = Vec::new();
    prune(&mut value, shape, &mut Vec::new(), &mut unknown);
    if unknown.is_empty() {
        return match from_yaml::<T>(file, text, first_line) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                errors.push(err);
                None
            }
        };
    }
    let src = Source::new(text, first_line);
    let mut searched_from: std::collections::HashMap<String, u32> = Default::default();
    for u in &unknown {
        let parent = src.path(&u.parents, None).unwrap_or(first_line);
        let from = searched_from
            .get(&u.key)
            .map_or(parent, |last| (*last + 1).max(parent));
        let line = src.key(&u.key, from);
        if let Some(line) = line {
            searched_from.insert(u.key.clone(), line);
        }
        let hint = match u.suggestion {
            Some(known) => format!("; did you mean `{known}`?"),
            None => String::new(),
        };
        errors.push(ValidationError::new(
            file,
            line.or(Some(parent)),
            format!("unknown field `{}`{hint}", u.key),
        ));
    }
    match serde_yaml_ng::from_value::<T>(value) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            // Another mistake besides the keys: the text parse locates it.
            match from_yaml::<T>(file, text, first_line) {
                Err(located) if !located.message.starts_with("unknown field") => {
                    errors.push(located)
                }
                _ => errors.push(ValidationError::new(file, None, err.to_string())),
            }
            None
        }
    }
}

fn prune(
    value: &mut Value,
    shape: &Shape,
    parents: &mut Vec<&'static str>,
    found: &mut Vec<Unknown>,
) {
    match (shape, value) {
        (Shape::Map(keys), Value::Mapping(map)) => {
            let mut drop = Vec::new();
            for (key, child) in map.iter_mut() {
                let Some(name) = key.as_str() else { continue };
                match keys.iter().find(|(known, _)| *known == name) {
                    Some((known, inner)) => {
                        parents.push(known);
                        prune(child, inner, parents, found);
                        parents.pop();
                    }
                    None => {
                        found.push(Unknown {
                            parents: parents.clone(),
                            key: name.to_owned(),
                            suggestion: closest(name, keys.iter().map(|(k, _)| *k)),
                        });
                        drop.push(key.clone());
                    }
                }
            }
            for key in drop {
                map.remove(&key);
            }
        }
        (Shape::List(item), Value::Sequence(items)) => {
            for child in items {
                prune(child, item, parents, found);
            }
        }
        _ => {}
    }
}

/// The known key nearest to `typo`, when it is near enough to be what was meant.
fn closest(typo: &str, known: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    let typo = typo.to_ascii_lowercase();
    known
        .map(|k| (edit_distance(&typo, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        #[serde(default)]
        #[allow(dead_code)]
        branch_prefix: String,
        #[serde(default)]
        max_concurrent: u32,
    }

    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        let keys = ["pickup", "finish", "max_turns", "stall_timeout"];
        assert_eq!(closest("pickpu", keys.into_iter()), Some("pickup"));
        assert_eq!(closest("max_turn", keys.into_iter()), Some("max_turns"));
        assert_eq!(closest("Finish", keys.into_iter()), Some("finish"));
        assert_eq!(closest("colour", keys.into_iter()), None);
    }

    #[test]
    fn every_unknown_key_is_reported_on_its_line_and_the_rest_parses() {
        static SHAPE: Shape = Shape::Map(&[
            ("branch_prefix", Shape::Any),
            ("max_concurrent", Shape::Any),
        ]);
        let text = "branch_prefx: a/\nmax_concurrent: 4\ncolour: red\n";
        let mut errors = Vec::new();
        let spec: Option<Spec> = from_yaml_all("f.yaml", text, 1, &SHAPE, &mut errors);
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "f.yaml:1: unknown field `branch_prefx`; did you mean `branch_prefix`?",
                "f.yaml:3: unknown field `colour`",
            ]
        );
        assert_eq!(spec.map(|s| s.max_concurrent), Some(4));
    }
}
