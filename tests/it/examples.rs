//! The shipped example server configuration parses.

use std::collections::BTreeMap;

use forgehand::config::server::ServerConfig;

#[test]
fn example_server_config_parses_apart_from_its_secret_files() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/forgehand.toml"
    ))
    .unwrap();
    // The secret files it names do not exist here; strip those lines and check the rest.
    let text: String = text
        .lines()
        .filter(|l| !l.contains("_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replace("app_id = 123456", "");
    let config = ServerConfig::from_toml(&text, &BTreeMap::new()).unwrap();
    assert_eq!(config.listen.port(), 2080);
    assert_eq!(config.agents["claude"].adapter, "claude-code");
    assert_eq!(config.gitea.unwrap().url, "https://git.example.com");
}
