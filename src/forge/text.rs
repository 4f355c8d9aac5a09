//! Text from the network made storable: PostgreSQL cannot hold U+0000 in `text`, so every NUL a
//! forge sends becomes U+FFFD (the replacement character) before it reaches any database, and
//! both backends store the same text.

use std::borrow::Cow;

/// `text` with each NUL replaced.
pub fn clean(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// A JSON document with each `\u0000` escape inside its strings rewritten to `\uFFFD` (the same
/// length, so nothing else moves). A raw NUL cannot occur inside a valid JSON string, so this is
/// the only way one arrives; `\\u0000` (an escaped backslash, then text) is left alone.
pub fn clean_json(json: &[u8]) -> Cow<'_, [u8]> {
    // Almost no payload has one: a vectorized search for the escape's bytes ends the usual case
    // without walking the document byte by byte.
    if memchr::memmem::find(json, br"\u0000").is_none() {
        return Cow::Borrowed(json);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        if json[i + 1..].starts_with(b"u0000") {
            let buf = out.get_or_insert_with(|| json.to_vec());
            buf[i + 2..i + 6].copy_from_slice(b"FFFD");
            i += 6;
        } else {
            // Skip the escaped character, whatever it is (`\\` included).
            i += 2;
        }
    }
    out.map_or(Cow::Borrowed(json), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_become_replacement_characters() {
        let json = br#"{"title":"a\u0000b","body":"\\u0000 is text","x":"\u0000"}"#;
        let cleaned = clean_json(json);
        let v: serde_json::Value = serde_json::from_slice(&cleaned).unwrap();
        assert_eq!(v["title"], "a\u{FFFD}b");
        assert_eq!(v["body"], "\\u0000 is text");
        assert_eq!(v["x"], "\u{FFFD}");
        assert!(matches!(clean_json(br#"{"a":"\n"}"#), Cow::Borrowed(_)));
        // A trailing backslash (invalid JSON) must not panic.
        assert!(matches!(clean_json(b"\"\\"), Cow::Borrowed(_)));
    }

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert_eq!(clean("a\0b\0".into()), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(clean("plain".into()), "plain");
    }
}
