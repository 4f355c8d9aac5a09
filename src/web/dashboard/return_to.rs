//! Where to send someone after signing in: a path on this server, read the way a browser reads
//! a `Location` header, so no spelling of another site (`//x`, `/\x`, `/<TAB>/x`, `https:x`)
//! gets through.

use url::Url;

/// A stand-in origin to resolve against; never shown.
const BASE: &str = "http://forgehand.invalid/";

/// `next` as a same-origin path (with its query and fragment), or `/`.
pub fn return_to(next: Option<&str>) -> String {
    next.and_then(local_path).unwrap_or_else(|| "/".to_owned())
}

fn local_path(next: &str) -> Option<String> {
    // Only paths: a relative reference like `board` would depend on the login page's URL.
    if !next.starts_with('/') {
        return None;
    }
    let base = Url::parse(BASE).ok()?;
    // The WHATWG parser, as browsers use: tabs and newlines are dropped and `\` is `/`, so
    // what resolves to the stand-in origin is what the browser will stay on.
    let resolved = base.join(next).ok()?;
    if resolved.origin() != base.origin() || resolved.username() != "" {
        return None;
    }
    let mut path = resolved.path().to_owned();
    if let Some(query) = resolved.query() {
        path.push('?');
        path.push_str(query);
    }
    if let Some(fragment) = resolved.fragment() {
        path.push('#');
        path.push_str(fragment);
    }
    // The path, re-serialized, must still be read as a path (`/.//x` normalizes to `//x`).
    if path.starts_with("//") || path.starts_with("/\\") {
        return None;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::return_to;

    #[test]
    fn only_local_paths() {
        for (next, want) in [
            (
                "/board?repo=github%3Aocto%2Fapp",
                "/board?repo=github%3Aocto%2Fapp",
            ),
            ("/runs/1#events", "/runs/1#events"),
            ("/a/../deliveries", "/deliveries"),
            ("//evil.example", "/"),
            ("/\\evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("/\n/evil.example", "/"),
            ("\t//evil.example", "/"),
            ("/.//evil.example", "/"),
            ("https://evil.example/", "/"),
            ("javascript:alert(1)", "/"),
            ("board", "/"),
            ("", "/"),
        ] {
            assert_eq!(return_to(Some(next)), want, "{next:?}");
        }
        assert_eq!(return_to(None), "/");
    }
}
