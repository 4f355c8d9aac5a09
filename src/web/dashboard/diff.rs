//! Line diffs: between two config versions (a longest-common-subsequence walk, bounded so a
//! huge file cannot make a page slow), and a run's pushed `git diff` split per file.

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    /// `' '` kept, `'+'` added, `'-'` removed.
    pub op: char,
    pub text: String,
}

impl DiffLine {
    pub fn class(&self) -> &'static str {
        match self.op {
            '+' => "add",
            '-' => "del",
            _ => "ctx",
        }
    }
}

/// Files longer than this (lines, either side) are compared whole instead of line by line.
const MAX_LINES: usize = 3000;
/// Unchanged lines kept around each change.
const CONTEXT: usize = 3;

/// The diff of `old` into `new`, with a few lines of context around each change; `None` when
/// the files are too large to compare line by line.
pub fn lines(old: &str, new: &str) -> Option<Vec<DiffLine>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return None;
    }
    // Common prefix and suffix first: config edits are usually small.
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let (n, m) = (ma.len(), mb.len());
    // lcs[i][j]: length of the LCS of ma[i..] and mb[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if ma[i] == mb[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let mut all = Vec::with_capacity(a.len() + b.len());
    all.extend(a[..prefix].iter().map(|l| (' ', *l)));
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && ma[i] == mb[j] {
            all.push((' ', ma[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
            all.push(('-', ma[i]));
            i += 1;
        } else {
            all.push(('+', mb[j]));
            j += 1;
        }
    }
    all.extend(a[a.len() - suffix..].iter().map(|l| (' ', *l)));
    // Keep changes and their context; mark skipped stretches with `…`.
    let changed: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op != ' ')
        .map(|(k, _)| k)
        .collect();
    let keep = |k: usize| {
        changed
            .iter()
            .any(|&c| k + CONTEXT >= c && k <= c + CONTEXT)
    };
    let mut out = Vec::new();
    let mut skipped = false;
    for (k, (op, text)) in all.iter().enumerate() {
        if *op != ' ' || keep(k) {
            if skipped {
                out.push(DiffLine {
                    op: ' ',
                    text: "…".to_owned(),
                });
                skipped = false;
            }
            out.push(DiffLine {
                op: *op,
                text: (*text).to_owned(),
            });
        } else {
            skipped = true;
        }
    }
    Some(out)
}

/// One file of a unified diff.
pub struct FileDiff {
    /// The `diff --git a/… b/…` line's paths, as git wrote them.
    pub path: String,
    pub added: usize,
    pub removed: usize,
    pub lines: Vec<DiffLine>,
}

/// A `git diff` output split per file; hunk headers (`@@ … @@`) are kept as context lines.
pub fn patch(text: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    for line in text.lines() {
        if let Some(paths) = line.strip_prefix("diff --git ") {
            files.push(FileDiff {
                path: paths
                    .strip_prefix("a/")
                    .unwrap_or(paths)
                    .replacen(" b/", " → ", 1),
                added: 0,
                removed: 0,
                lines: Vec::new(),
            });
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        let is_header = file.lines.is_empty() && !line.starts_with("@@");
        if is_header {
            // `index …`, `--- a/x`, `+++ b/x`, `new file mode …`: the file's header.
            continue;
        }
        let (op, body) = match line.chars().next() {
            Some('+') => ('+', &line[1..]),
            Some('-') => ('-', &line[1..]),
            Some(' ') => (' ', &line[1..]),
            _ => (' ', line),
        };
        match op {
            '+' => file.added += 1,
            '-' => file.removed += 1,
            _ => {}
        }
        file.lines.push(DiffLine {
            op,
            text: body.to_owned(),
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(d: &[DiffLine]) -> String {
        d.iter().map(|l| format!("{}{}\n", l.op, l.text)).collect()
    }

    #[test]
    fn small_edit_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\n";
        let d = lines(old, new).unwrap();
        assert_eq!(ops(&d), " …\n b\n c\n d\n-e\n+E\n f\n g\n h\n");
    }

    #[test]
    fn additions_and_removals() {
        let d = lines("x\ny\n", "y\nz\n").unwrap();
        assert_eq!(ops(&d), "-x\n y\n+z\n");
        assert!(lines("same\n", "same\n").unwrap().is_empty());
        assert_eq!(ops(&lines("", "new\n").unwrap()), "+new\n");
    }

    #[test]
    fn git_patch_per_file() {
        let text = "diff --git a/src/x.rs b/src/x.rs\nindex 1..2 100644\n--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1,2 +1,2 @@\n keep\n-old\n+new\n+more\ndiff --git a/README.md b/README.md\nnew file mode 100644\n--- /dev/null\n+++ b/README.md\n@@ -0,0 +1 @@\n+hello <b>\n";
        let files = patch(text);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "src/x.rs → src/x.rs");
        assert_eq!((files[0].added, files[0].removed), (2, 1));
        assert_eq!(
            ops(&files[0].lines),
            " @@ -1,2 +1,2 @@\n keep\n-old\n+new\n+more\n"
        );
        assert_eq!(ops(&files[1].lines), " @@ -0,0 +1 @@\n+hello <b>\n");
        assert!(patch("").is_empty());
    }
}
