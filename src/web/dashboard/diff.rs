//! Line diffs between two config versions: a longest-common-subsequence walk, bounded so a
//! huge file cannot make a page slow.

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
}
