//! What the benchmark examples share (each includes this folder as a module).

/// Drops and recreates the database `url` names (never `postgres`).
pub async fn prepare_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut parsed = url::Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty(),
        "database name `{name}`"
    );
    anyhow::ensure!(
        name != "postgres",
        "use a database of its own: it is dropped and recreated"
    );
    parsed.set_path("/postgres");
    let mut conn = sqlx::PgConnection::connect(parsed.as_str()).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
