//! `.forgehand/skills/<name>/`: reusable instruction documents handed to agents.
//!
//! Each folder needs a `SKILL.md` with `name` (equal to the folder) and `description` in its
//! front matter. Other front matter keys are allowed, unlike everywhere else in `.forgehand/`:
//! the format is shared with agent CLIs (`allowed-tools`, `license`, …) and skills are copied
//! between tools as they are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigFiles;
use super::error::ValidationError;
use super::names::{NAME_RULE, is_valid_name};
use super::source::{Source, split_front_matter};
use super::yaml::{from_yaml, utf8};

pub(crate) const DIR: &str = ".forgehand/skills/";
const SKILL_FILE: &str = "SKILL.md";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skill {
    /// The folder name.
    pub name: String,
    pub description: String,
    /// Every file of the folder, as keys of [`ConfigFiles`] (relative to the repository root),
    /// sorted; `SKILL.md` among them.
    pub files: Vec<String>,
}

impl Skill {
    /// The folder, relative to the repository root, with a trailing `/`: strip it from
    /// [`Skill::files`] to get paths inside the skill.
    pub fn dir(&self) -> String {
        format!("{DIR}{}/", self.name)
    }
}

#[derive(Deserialize)]
struct SkillFrontMatter {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Skill folders with their files; files directly in `skills/` belong to no skill.
pub(crate) fn folders(files: &ConfigFiles) -> BTreeMap<String, Vec<String>> {
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in files.keys() {
        if let Some((folder, _)) = path.strip_prefix(DIR).and_then(|rest| rest.split_once('/')) {
            folders
                .entry(folder.to_owned())
                .or_default()
                .push(path.clone());
        }
    }
    folders
}

/// Parses one skill folder; `None` when its `SKILL.md` is missing or unreadable.
pub(crate) fn parse(
    name: &str,
    paths: &[String],
    files: &ConfigFiles,
    errors: &mut Vec<ValidationError>,
) -> Option<Skill> {
    let file = format!("{DIR}{name}/{SKILL_FILE}");
    if !is_valid_name(name) {
        errors.push(ValidationError::new(
            &file,
            None,
            format!("invalid skill folder name `{name}`: use {NAME_RULE}"),
        ));
    }
    let Some(bytes) = files.get(&file) else {
        errors.push(ValidationError::new(
            &file,
            None,
            format!("skill `{name}` has no {SKILL_FILE}"),
        ));
        return None;
    };
    let parsed = utf8(&file, bytes).and_then(|text| {
        let fm = split_front_matter(text)
            .map_err(|err| ValidationError::new(&file, Some(1), err.to_string()))?;
        let spec: SkillFrontMatter = from_yaml(&file, fm.yaml, fm.yaml_line)?;
        Ok((Source::new(fm.yaml, fm.yaml_line), spec))
    });
    let (src, spec) = match parsed {
        Ok(ok) => ok,
        Err(err) => {
            errors.push(err);
            return None;
        }
    };
    match spec.name.as_deref() {
        None => errors.push(ValidationError::new(
            &file,
            Some(1),
            "front matter needs `name`",
        )),
        Some(found) if found != name => errors.push(ValidationError::new(
            &file,
            src.key("name", 1),
            format!("`name` is `{found}` but the folder is `{name}`: they must be equal"),
        )),
        Some(_) => {}
    }
    let description = spec.description.unwrap_or_default();
    if description.trim().is_empty() {
        errors.push(ValidationError::new(
            &file,
            src.key("description", 1).or(Some(1)),
            "front matter needs a non-empty `description`: agents use it to decide when to read the skill",
        ));
    }
    Some(Skill {
        name: name.to_owned(),
        description,
        files: paths.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> ConfigFiles {
        entries
            .iter()
            .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
            .collect()
    }

    fn run(files: &ConfigFiles) -> (Vec<Skill>, Vec<String>) {
        let mut errors = Vec::new();
        let skills = folders(files)
            .iter()
            .filter_map(|(name, paths)| parse(name, paths, files, &mut errors))
            .collect();
        (skills, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn valid_skill_lists_its_files() {
        let f = files(&[
            (
                ".forgehand/skills/style/SKILL.md",
                "---\nname: style\ndescription: How we write.\nlicense: MIT\n---\nBody\n",
            ),
            (".forgehand/skills/style/examples/a.txt", "x"),
            (".forgehand/skills/README.md", "not a skill"),
        ]);
        let (skills, errors) = run(&f);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(skills.len(), 1);
        assert_eq!(skills[0].description, "How we write.");
        assert_eq!(
            skills[0].files,
            [
                ".forgehand/skills/style/SKILL.md",
                ".forgehand/skills/style/examples/a.txt"
            ]
        );
        assert_eq!(skills[0].dir(), ".forgehand/skills/style/");
    }

    #[test]
    fn missing_and_bad_skill_files() {
        let f = files(&[
            (".forgehand/skills/a/notes.md", "x"),
            (".forgehand/skills/b/SKILL.md", "---\nname: c\n---\n"),
            (".forgehand/skills/d/SKILL.md", "no front matter"),
        ]);
        let (_, errors) = run(&f);
        assert_eq!(
            errors,
            [
                ".forgehand/skills/a/SKILL.md: skill `a` has no SKILL.md",
                ".forgehand/skills/b/SKILL.md:2: `name` is `c` but the folder is `b`: they must be equal",
                ".forgehand/skills/b/SKILL.md:1: front matter needs a non-empty `description`: agents use it to decide when to read the skill",
                ".forgehand/skills/d/SKILL.md:1: must start with `---` YAML front matter",
            ]
        );
    }
}
