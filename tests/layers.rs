//! The layer rule, kept true: a module of `src/` may use its own layer and the layers below it,
//! never one above. Every `src/**/*.rs` is read; `use crate::…` lines (groups included),
//! inline `crate::x::…` paths and `super::` paths that climb to the crate root are checked.
//! Test code (`#[cfg(test)]` items, `tests.rs` and `tests/` directories) is left out: a test may
//! use a higher layer as its fixture (the sandbox forge, a real worktree).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom to top. Modules in one entry are one layer and may use each other.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["config"],
    &["forge"],
    // Counters and gauges, read from the forges' health.
    &["metrics"],
    &["store"],
    // The one way git (`git`) and every other process (`exec`: the bubblewrap sandbox) start.
    &["git", "exec"],
    // The shared context of a running server and its in-memory state.
    &["app"],
    &["report"],
    &["sync"],
    &["run"],
    &["engine"],
    // `sandbox` is the in-memory test forge, served beside the real routes.
    &["web", "sandbox"],
    // Commands: `demo` starts a whole server against the sandbox forge; `setup` and `doctor`
    // talk to the forges and check everything below; `runner` speaks the runner protocol
    // (`web`'s wire types) and runs agents as `run` does.
    &["server", "demo", "setup", "doctor", "runner", "main", "lib"],
];

/// The layer of a top-level module (`src/<name>.rs` or `src/<name>/`).
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// One use of a higher layer.
#[derive(Debug, PartialEq, Eq)]
struct Upward {
    line: usize,
    from: String,
    to: String,
}

/// The module path of a file under `src/` (`["run", "hooks"]` for `run/hooks.rs`).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        // `x/mod.rs` is `x`; `lib.rs` and `main.rs` stand for themselves.
        if stem != "mod" || parts.is_empty() {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The code without comments and without the text of string literals, line for line.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let (mut in_string, mut in_block) = (false, 0usize);
    while let Some(c) = chars.next() {
        if in_block > 0 {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                in_block -= 1;
            } else if c == '/' && chars.peek() == Some(&'*') {
                chars.next();
                in_block += 1;
            } else if c == '\n' {
                out.push('\n');
            }
            continue;
        }
        if in_string {
            // A string's text is left out (its lines kept): `"crate::x"` is no use of `x`.
            if c == '\\' {
                if chars.next() == Some('\n') {
                    out.push('\n');
                }
            } else if c == '"' {
                in_string = false;
                out.push(c);
            } else if c == '\n' {
                out.push('\n');
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            // A char literal such as '"' must not open a string.
            '\'' => {
                out.push(c);
                let rest: String = chars.clone().take(3).collect();
                let mut it = rest.chars();
                match (it.next(), it.next(), it.next()) {
                    (Some('\\'), Some(e), Some('\'')) => {
                        out.extend(['\\', e, '\'']);
                        chars.nth(2);
                    }
                    (Some(x), Some('\''), _) => {
                        out.extend([x, '\'']);
                        chars.nth(1);
                    }
                    _ => {}
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for rest in chars.by_ref() {
                    if rest == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                in_block = 1;
            }
            _ => out.push(c),
        }
    }
    out
}

/// Byte ranges of `#[cfg(test)]` items: up to the `;` of `mod x;` or the brace that closes the
/// item's body.
fn test_ranges(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let start = from + found;
        let mut i = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        let mut end = code.len();
        while i < bytes.len() {
            match bytes[i] {
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        ranges.push((start, end));
        from = end;
    }
    ranges
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn ident_at(code: &str, at: usize) -> &str {
    let end = code[at..]
        .bytes()
        .position(|b| !is_ident(b))
        .map_or(code.len(), |n| at + n);
    &code[at..end]
}

/// The first segments of the items of a `{…}` group starting at `open` (nested groups skipped).
fn group_heads(code: &str, open: usize) -> Vec<&str> {
    let bytes = code.as_bytes();
    let (mut depth, mut heads, mut expect) = (0usize, Vec::new(), true);
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                depth += 1;
                expect = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => expect = true,
            b if expect && depth == 1 && is_ident(b) => {
                heads.push(ident_at(code, i));
                expect = false;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// Every use in `text` (a file at `module` path) of a top-level module above its own layer.
fn upward_uses(module: &[String], text: &str) -> Vec<Upward> {
    let Some(own) = module.first() else {
        return Vec::new();
    };
    let Some(own_layer) = layer_of(own) else {
        return Vec::new();
    };
    let code = strip_comments(text);
    let tests = test_ranges(&code);
    let in_test = |at: usize| tests.iter().any(|&(s, e)| s <= at && at < e);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut check = |at: usize, to: &str| {
        if let Some(layer) = layer_of(to)
            && layer > own_layer
        {
            found.push(Upward {
                line: code[..at].matches('\n').count() + 1,
                from: own.clone(),
                to: to.to_owned(),
            });
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let preceded = i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b'$');
        if preceded || in_test(i) {
            i += 1;
            continue;
        }
        // `crate::x` or `super::super::x` climbing to the crate root.
        let rest = &bytes[i..];
        let after = if rest.starts_with(b"crate::") {
            Some(i + "crate::".len())
        } else if rest.starts_with(b"super::") {
            let mut at = i;
            let mut climbs = 0;
            while bytes[at..].starts_with(b"super::") {
                at += "super::".len();
                climbs += 1;
            }
            // A file's module path: `super` from `run::hooks` is `run`; from `run` the root.
            (climbs >= module.len()).then_some(at)
        } else {
            None
        };
        let Some(after) = after else {
            i += 1;
            continue;
        };
        if bytes.get(after) == Some(&b'{') {
            for head in group_heads(&code, after) {
                check(i, head);
            }
        } else {
            check(i, ident_at(&code, after));
        }
        i = after;
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Test-only files: `tests.rs` and everything under a `tests/` directory.
fn is_test_file(relative: &Path) -> bool {
    relative
        .iter()
        .any(|p| p == "tests" || p == "tests.rs" || p == "testdata")
}

#[test]
fn no_module_uses_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "src/ was not found at {}", src.display());
    let mut unplaced = Vec::new();
    let mut violations = Vec::new();
    let mut per_layer: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        if is_test_file(relative) {
            continue;
        }
        let module = module_path(relative);
        let top = module.first().cloned().unwrap_or_default();
        if layer_of(&top).is_none() {
            unplaced.push(relative.display().to_string());
            continue;
        }
        *per_layer.entry(top).or_default() += 1;
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for up in upward_uses(&module, &text) {
            violations.push(format!(
                "src/{}:{}: `{}` uses the higher layer `{}`",
                relative.display(),
                up.line,
                up.from,
                up.to
            ));
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules with no layer (add them to LAYERS in tests/layers.rs): {unplaced:?}"
    );
    assert!(
        violations.is_empty(),
        "lower layers must not use higher ones (order, bottom first: {LAYERS:?}):\n{}",
        violations.join("\n")
    );
}

fn path(p: &str) -> Vec<String> {
    p.split("::").map(str::to_owned).collect()
}

#[test]
fn an_upward_use_is_caught_with_its_line() {
    let text =
        "//! The store.\nuse crate::domain::RepoRef;\n\nuse crate::run::event::AgentEvent;\n";
    let found = upward_uses(&path("store::runs"), text);
    assert_eq!(
        found,
        vec![Upward {
            line: 4,
            from: "store".into(),
            to: "run".into()
        }]
    );
}

#[test]
fn groups_inline_paths_and_super_are_caught() {
    let text = "use crate::{\n    config::X,\n    engine::{a, b},\n};\nfn f() { crate::web::g(); super::super::server::h(); }\n";
    let found = upward_uses(&path("report::hook"), text);
    let seen: Vec<(usize, &str)> = found.iter().map(|u| (u.line, u.to.as_str())).collect();
    // `super::super` from `report::hook` climbs past the root's child: it names `server`.
    assert_eq!(seen, vec![(1, "engine"), (5, "web"), (5, "server")]);
}

#[test]
fn comments_strings_tests_and_downward_uses_pass() {
    let text = "/// See [`crate::engine::x`].\nuse crate::store::Store;\nconst S: &str = \"// crate::web\";\nuse super::event;\nmacro_rules! m { () => { $crate::web::x() } }\n#[cfg(test)]\nmod tests {\n    use crate::engine::y;\n}\n";
    assert_eq!(upward_uses(&path("run::turns"), text), vec![]);
}
