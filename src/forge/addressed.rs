//! What a comment asks of Forgehand: `/forgehand <command>` lines (one per line, anywhere in
//! the comment) and an `@forgehand <request>` mention. Text inside code (fenced blocks and
//! backticks) and quoted lines (`> …`, a reply quoting someone) asks nothing.

/// A comment command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Retry,
    Cancel,
    Status,
    /// A `/forgehand` line with a word Forgehand does not know (empty when none was given).
    Unknown(String),
}

impl Command {
    pub fn name(&self) -> &str {
        match self {
            Command::Retry => "retry",
            Command::Cancel => "cancel",
            Command::Status => "status",
            Command::Unknown(word) => word,
        }
    }
}

/// What one comment asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addressed {
    pub commands: Vec<Command>,
    /// The comment's text without its command lines, when it mentions `@<login>`.
    pub mention: Option<String>,
}

impl Addressed {
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.mention.is_none()
    }
}

/// Commands taken from one comment; more are ignored, so one long comment cannot make the bot
/// act and answer thousands of times.
const MAX_COMMANDS: usize = 3;

/// Reads `body` for commands to, and a mention of, `login` (compared case-insensitively).
/// Repeated commands count once.
pub fn parse(body: &str, login: &str) -> Addressed {
    let login = login.to_lowercase();
    let slash = format!("/{login}");
    let at = format!("@{login}");
    let mut out = Addressed::default();
    let mut rest = Vec::new();
    let mut mentioned = false;
    let mut in_fence = false;
    for line in body.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || trimmed.starts_with('>') {
            continue;
        }
        let lower = trimmed.to_lowercase();
        if let Some(after) = lower.strip_prefix(&slash)
            && (after.is_empty() || after.starts_with(char::is_whitespace))
        {
            let word = after.split_whitespace().next().unwrap_or_default();
            let command = match word {
                "retry" => Command::Retry,
                "cancel" => Command::Cancel,
                "status" => Command::Status,
                // Echoed in the reply: no backticks to break out of code, no `@` to ping.
                other => Command::Unknown(
                    other
                        .chars()
                        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                        .take(40)
                        .collect(),
                ),
            };
            if out.commands.len() < MAX_COMMANDS && !out.commands.contains(&command) {
                out.commands.push(command);
            }
            continue;
        }
        if mentions(&without_code(&lower), &at) {
            mentioned = true;
        }
        rest.push(line);
    }
    if mentioned {
        out.mention = Some(rest.join("\n").trim().to_owned());
    }
    out
}

/// The line without inline code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// Whether `line` has `at` as a whole word (`@forgehand`, not `@forgehand-dev` or `a@forgehand`).
fn mentions(line: &str, at: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    line.match_indices(at).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + at.len()..].chars().next();
        !before.is_some_and(|c| word(c) || c == '@') && !after.is_some_and(|c| word(c) || c == '[')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A comment of thousands of command lines asks for at most a few distinct things, and an
    /// unknown word echoed back carries no markdown or mention.
    #[test]
    fn commands_are_capped_deduplicated_and_echoed_plainly() {
        let flood = "/forgehand status\n".repeat(3000);
        assert_eq!(parse(&flood, "forgehand").commands, [Command::Status]);
        let many = "/forgehand a\n/forgehand b\n/forgehand retry\n/forgehand cancel\n";
        assert_eq!(parse(many, "forgehand").commands.len(), MAX_COMMANDS);
        let sneaky = parse("/forgehand x`@org/team", "forgehand");
        assert_eq!(sneaky.commands, [Command::Unknown("xorgteam".into())]);
    }

    #[test]
    fn commands_one_per_line_anywhere() {
        let a = parse(
            "Thanks!\n/forgehand retry\n  /Forgehand STATUS please\n/forgehand frobnicate\n/forgehandx cancel",
            "forgehand",
        );
        assert_eq!(
            a.commands,
            [
                Command::Retry,
                Command::Status,
                Command::Unknown("frobnicate".into())
            ]
        );
        assert_eq!(a.mention, None);
        assert_eq!(
            parse("/forgehand", "forgehand").commands,
            [Command::Unknown(String::new())]
        );
    }

    #[test]
    fn code_and_quotes_ask_nothing() {
        let body = "```\n/forgehand cancel\n@forgehand do it\n```\n> /forgehand retry\nuse `@forgehand` like this";
        assert!(
            parse(body, "forgehand").is_empty(),
            "{:?}",
            parse(body, "forgehand")
        );
    }

    #[test]
    fn mentions_are_whole_words() {
        assert_eq!(
            parse(
                "@forgehand please add tests\n/forgehand status",
                "forgehand"
            ),
            Addressed {
                commands: vec![Command::Status],
                mention: Some("@forgehand please add tests".into()),
            }
        );
        assert!(parse("cc @forgehand-dev", "forgehand").mention.is_none());
        assert!(
            parse("mail me@forgehand.dev", "forgehand")
                .mention
                .is_none()
        );
        assert!(
            parse("hey @Forgehand, fix it", "forgehand")
                .mention
                .is_some()
        );
        assert!(parse("@forgehand[bot] fix", "forgehand").mention.is_none());
        assert!(
            parse("@forgehand[bot] fix", "forgehand[bot]")
                .mention
                .is_some()
        );
    }
}
