//! Webhook signature verification: HMAC-SHA256 of the raw body, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Checks a hex HMAC-SHA256 `signature` of `body` under `secret`. GitHub prefixes the hex with
/// `sha256=`; Gitea and Forgejo send bare hex. Both forms are accepted.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let hex_part = signature
        .trim()
        .strip_prefix("sha256=")
        .unwrap_or(signature.trim());
    let Ok(expected) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

/// The hex signature of `body`, as a forge would compute it (used by tests and the load generator).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify(b"It's a Secret to Everybody", b"Hello, World!", sig));
        assert!(!verify(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            sig
        ));
        assert!(!verify(b"wrong", b"Hello, World!", sig));
    }

    #[test]
    fn bare_hex_and_garbage() {
        let sig = sign(b"k", b"body");
        assert!(verify(b"k", b"body", &sig));
        assert!(!verify(b"k", b"body", "zz"));
        assert!(!verify(b"k", b"body", ""));
        assert!(!verify(b"k", b"body", &sig[..10]));
    }
}
