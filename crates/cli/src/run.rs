//! Running a parsed [`Command`]: each command is one short function printing to `out`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use store::api_keys::{self, NewApiKey, Scope};
use store::auth_codes::{AuthCodeState, list_auth_codes};
use store::rotation::{key_usage, rotate_secrets};
use store::tenants::{TenantStatus, list_tenants};
use store::{KeyId, SecretBox, SecretKey};

use crate::command::{Command, USAGE};
use crate::env::Env;

/// Runs `command`, writing its report to `out`.
pub async fn run(command: &Command, env: &Env, out: &mut dyn Write) -> anyhow::Result<()> {
    if !command.needs_database() {
        return match command {
            Command::GenerateKey { id } => generate_key(id.as_deref(), out),
            _ => Ok(out.write_all(USAGE.as_bytes())?),
        };
    }
    let pool = connect(env).await?;
    let result = match command {
        Command::Migrate => migrate(&pool, out).await,
        Command::CheckSchema => check_schema(&pool, out).await,
        Command::TenantsList { status } => tenants(&pool, *status, out).await,
        Command::AuthCodesList { state, limit } => auth_codes(&pool, *state, *limit, out).await,
        Command::SecretsStatus => secrets_status(&pool, env, out).await,
        Command::RotateSecrets { batch } => rotate(&pool, env, *batch, out).await,
        Command::ApiKeysCreate {
            name,
            scopes,
            suites,
            rate_limit,
        } => {
            let new = NewApiKey {
                name,
                scopes,
                suites: suites.as_deref(),
                rate_limit: *rate_limit,
            };
            create_api_key(&pool, &new, out).await
        }
        Command::ApiKeysList => list_api_keys(&pool, out).await,
        Command::ApiKeysRevoke { id } => revoke_api_key(&pool, id, out).await,
        Command::GenerateKey { .. } | Command::Help => Ok(()),
    };
    pool.close().await;
    result
}

async fn connect(env: &Env) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(env.database_url()?)
        .await
        .context("cannot connect to the database at DATABASE_URL")
}

async fn migrate(pool: &PgPool, out: &mut dyn Write) -> anyhow::Result<()> {
    let report = store::migrate(pool).await?;
    if report.applied.is_empty() {
        writeln!(
            out,
            "schema already at version {}: nothing to apply",
            report.latest
        )?;
    } else {
        let applied: Vec<String> = report.applied.iter().map(i64::to_string).collect();
        writeln!(
            out,
            "applied migration(s) {}; schema now at version {}",
            applied.join(", "),
            report.latest
        )?;
    }
    Ok(())
}

async fn check_schema(pool: &PgPool, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    writeln!(
        out,
        "schema is current (version {})",
        store::latest_version()
    )?;
    Ok(())
}

async fn tenants(
    pool: &PgPool,
    status: Option<TenantStatus>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let tenants = list_tenants(&mut conn, status).await?;
    writeln!(
        out,
        "{:<20} {:<34} {:<10} {:>9} {:<10} {:<25} CORP NAME",
        "SUITE", "CORP", "STATUS", "AGENT", "KEY ID", "UPDATED"
    )?;
    for t in &tenants {
        writeln!(
            out,
            "{:<20} {:<34} {:<10} {:>9} {:<10} {:<25} {}",
            t.suite_id,
            t.corp_id,
            t.status,
            t.agent_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            t.permanent_code_key_id.as_deref().unwrap_or("-"),
            t.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
            t.corp_name.as_deref().unwrap_or("-"),
        )?;
    }
    writeln!(out, "{} tenant(s)", tenants.len())?;
    Ok(())
}

async fn auth_codes(
    pool: &PgPool,
    state: Option<AuthCodeState>,
    limit: i64,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let codes = list_auth_codes(&mut conn, state, limit).await?;
    for c in &codes {
        writeln!(
            out,
            "{} suite={} kind={} state={} corp={} received={} expires={} attempts={}",
            c.hash.to_hex(),
            c.suite_id,
            c.kind.as_str(),
            c.state.as_str(),
            c.corp_id.as_ref().map_or("-", |id| id.as_str()),
            c.received_at.format("%Y-%m-%dT%H:%M:%SZ"),
            c.expires_at.format("%Y-%m-%dT%H:%M:%SZ"),
            c.attempts,
        )?;
        if let Some(reason) = &c.failure_reason {
            writeln!(out, "    failure: {reason}")?;
        }
        if let Some(error) = &c.last_error {
            writeln!(out, "    last error: {error}")?;
        }
    }
    writeln!(out, "{} AuthCode(s)", codes.len())?;
    Ok(())
}

async fn secrets_status(pool: &PgPool, env: &Env, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let active = if env.has_secret_key() {
        Some(env.keyring()?.active().id().to_string())
    } else {
        None
    };
    let mut conn = pool.acquire().await?;
    let usage = key_usage(&mut conn).await?;
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

async fn rotate(pool: &PgPool, env: &Env, batch: i64, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let secrets = SecretBox::new(env.keyring()?);
    writeln!(
        out,
        "re-sealing under active key `{}`",
        secrets.active_key_id()
    )?;
    let report = rotate_secrets(pool, &secrets, batch).await?;
    for r in &report {
        writeln!(out, "{:<24} {} re-sealed", r.column, r.count)?;
    }
    let mut conn = pool.acquire().await?;
    let left: i64 = key_usage(&mut conn)
        .await?
        .iter()
        .filter(|u| u.key_id != secrets.active_key_id().as_str())
        .map(|u| u.count)
        .sum();
    if left == 0 {
        writeln!(
            out,
            "every stored secret is under `{}`; old keys may be removed",
            secrets.active_key_id()
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

async fn create_api_key(
    pool: &PgPool,
    new: &NewApiKey<'_>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let (generated, record) = api_keys::create_api_key(&mut conn, new).await?;
    writeln!(out, "{}", generated.key.expose_secret())?;
    writeln!(
        out,
        "created API key {} ({}): scopes {}; suites {}. The key above is shown only now: \
         only its hash is stored.",
        record.id,
        record.name,
        scope_list(&record.scopes),
        record
            .suites
            .as_ref()
            .map_or_else(|| "all".to_owned(), |s| s.join(",")),
    )?;
    Ok(())
}

async fn list_api_keys(pool: &PgPool, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let keys = api_keys::list_api_keys(&mut conn).await?;
    writeln!(
        out,
        "{:<12} {:<20} {:<44} {:<20} {:>6} {:<20} {:<20} CREATED",
        "ID", "NAME", "SCOPES", "SUITES", "RATE", "LAST USED", "REVOKED"
    )?;
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    for key in &keys {
        writeln!(
            out,
            "{:<12} {:<20} {:<44} {:<20} {:>6} {:<20} {:<20} {}",
            key.id,
            key.name,
            scope_list(&key.scopes),
            key.suites
                .as_ref()
                .map_or_else(|| "all".to_owned(), |s| s.join(",")),
            key.rate_limit
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            time(key.last_used_at),
            time(key.revoked_at),
            key.created_at.format("%Y-%m-%d %H:%M:%S"),
        )?;
    }
    writeln!(out, "{} key(s)", keys.len())?;
    Ok(())
}

async fn revoke_api_key(pool: &PgPool, id: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let Some(key) = api_keys::revoke_api_key(&mut conn, id).await? else {
        anyhow::bail!("no API key has the id `{id}` (see `daikai api-keys list`)");
    };
    writeln!(
        out,
        "API key {} ({}) revoked at {}",
        key.id,
        key.name,
        key.revoked_at
            .unwrap_or_else(Utc::now)
            .format("%Y-%m-%d %H:%M:%S UTC")
    )?;
    Ok(())
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn generate_key(id: Option<&str>, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = match id {
        Some(id) => id.to_owned(),
        None => format!("k{}", Utc::now().format("%Y%m%d")),
    };
    let id = KeyId::parse(&id).context("--id")?;
    let (_, text) = SecretKey::generate(id);
    writeln!(out, "{}", text.expose_secret())?;
    Ok(())
}
