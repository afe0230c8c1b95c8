//! `daikai secrets status`, `daikai rotate-secrets` and `daikai secret-key generate`
//! (docs/operations.md §2).

use std::io::Write;

use anyhow::Context as _;
use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use sqlx::PgPool;
use store::rotation::{key_usage, rotate_secrets_with_progress};
use store::{KeyId, SecretBox, SecretKey};

use crate::env::Env;
use crate::output::{self, Progress};

/// `secrets status --json`: one entry per column and key id.
#[derive(Debug, Serialize)]
struct KeyUsageJson {
    column: &'static str,
    key_id: String,
    count: i64,
    active: bool,
}

/// How many stored secrets each key id seals, per column.
pub async fn status(
    pool: &PgPool,
    env: &Env,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let active = if env.has_secret_key() {
        Some(env.keyring()?.active().id().to_string())
    } else {
        None
    };
    let mut conn = pool.acquire().await?;
    let usage = key_usage(&mut conn).await?;
    if json {
        let rows: Vec<KeyUsageJson> = usage
            .iter()
            .map(|u| KeyUsageJson {
                column: u.column,
                key_id: u.key_id.clone(),
                count: u.count,
                active: active.as_deref() == Some(u.key_id.as_str()),
            })
            .collect();
        return output::json(out, &rows);
    }
    for u in &usage {
        let marker = if active.as_deref() == Some(u.key_id.as_str()) {
            " (active)"
        } else {
            ""
        };
        writeln!(out, "{:<24} {:<16} {}{marker}", u.column, u.key_id, u.count)?;
    }
    if usage.is_empty() {
        writeln!(out, "no stored secrets")?;
    }
    Ok(())
}

/// Re-seals every stored secret under the active key, with progress; run again after an
/// interruption, it continues with what is left (each batch is committed on its own).
pub async fn rotate(
    pool: &PgPool,
    env: &Env,
    batch: i64,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let secrets = SecretBox::new(env.keyring()?);
    let active = secrets.active_key_id().as_str().to_owned();
    let left = under_other_keys(pool, &active).await?;
    writeln!(
        out,
        "re-sealing under active key `{active}`: {left} stored value(s) under other keys"
    )?;
    let mut progress = Progress::new(u64::try_from(left).unwrap_or(0));
    let mut write_error = None;
    let result = rotate_secrets_with_progress(pool, &secrets, batch, |column, done| {
        if let Err(err) = progress.advance(out, done, &format!("{column}: {done} re-sealed")) {
            write_error.get_or_insert(err);
        }
    })
    .await;
    progress.finish();
    let report = result.context(
        "rotation stopped (every batch before this error is committed: fix the cause and run \
         `daikai rotate-secrets` again to continue)",
    )?;
    if let Some(err) = write_error {
        return Err(err.into());
    }
    for r in &report {
        writeln!(out, "{:<24} {} re-sealed", r.column, r.count)?;
    }
    let left = under_other_keys(pool, &active).await?;
    if left == 0 {
        writeln!(
            out,
            "every stored secret is under `{active}`; old keys may be removed"
        )?;
        Ok(())
    } else {
        anyhow::bail!(
            "{left} secret(s) are still under other keys (written concurrently by a service \
             running with an older DAIKAI_SECRET_KEY?): deploy the new key everywhere and run \
             `daikai rotate-secrets` again"
        )
    }
}

async fn under_other_keys(pool: &PgPool, active: &str) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    Ok(key_usage(&mut conn)
        .await?
        .iter()
        .filter(|u| u.key_id != active)
        .map(|u| u.count)
        .sum())
}

/// Prints a new key.
pub fn generate_key(id: Option<&str>, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = match id {
        Some(id) => id.to_owned(),
        None => format!("k{}", Utc::now().format("%Y%m%d")),
    };
    let id = KeyId::parse(&id).context("--id")?;
    let (_, text) = SecretKey::generate(id);
    writeln!(out, "{}", text.expose_secret())?;
    Ok(())
}
