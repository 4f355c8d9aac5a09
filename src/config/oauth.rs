//! Sign-in with a forge (OAuth2 authorization-code flow): the OAuth app registered on the forge
//! (`[github]`/`[gitea]` `oauth_client_id` and `oauth_client_secret`) and where its pages are.

use super::server::Secret;

/// An OAuth app registered on a forge, through which people sign in to the dashboard.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Secret,
}

/// The web root of a GitHub whose REST API is at `api_url`: `https://github.com` for
/// `https://api.github.com`, `https://ghe.example` for GHE's `https://ghe.example/api/v3`, the
/// URL itself otherwise (the sandbox serves both under one root).
pub fn github_web_url(api_url: &str) -> String {
    let trimmed = api_url.trim_end_matches('/');
    if trimmed == "https://api.github.com" {
        return "https://github.com".to_owned();
    }
    trimmed
        .strip_suffix("/api/v3")
        .unwrap_or(trimmed)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_url_of_github_ghe_and_others() {
        assert_eq!(
            github_web_url("https://api.github.com/"),
            "https://github.com"
        );
        assert_eq!(
            github_web_url("https://ghe.example/api/v3"),
            "https://ghe.example"
        );
        assert_eq!(
            github_web_url("http://127.0.0.1:9/github"),
            "http://127.0.0.1:9/github"
        );
    }
}
