//! The start-up check every service that seals secrets runs (docs/operations.md).

use anyhow::Context;
use store::{KeyId, SecretBox};

/// Refuses to start when the database holds secrets this process's keyring cannot open. Such a
/// replica would seal new AuthCodes, tickets, permanent codes and tokens under its own key,
/// which the correctly configured replicas and services then cannot open: single-use AuthCodes
/// would be lost.
pub async fn check_keys(pool: &sqlx::PgPool, secrets: &SecretBox) -> anyhow::Result<()> {
    let mut conn = pool
        .acquire()
        .await
        .context("DATABASE_URL: cannot connect to Postgres")?;
    let unopenable = store::rotation::unopenable_keys(&mut conn, secrets)
        .await
        .context("checking the stored secrets against DAIKAI_SECRET_KEY")?;
    if unopenable.is_empty() {
        return Ok(());
    }
    let problems = unopenable
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let configured = secrets
        .keyring()
        .key_ids()
        .iter()
        .map(KeyId::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    anyhow::bail!(
        "DAIKAI_SECRET_KEY / DAIKAI_SECRET_KEYS_PREVIOUS: the database holds secrets this process \
         cannot open: {problems}. Configured key ids: {configured}. Refusing to start: new \
         secrets sealed under this process's key could not be opened by the other replicas and \
         services. Configure the key they use (docs/operations.md)"
    )
}
