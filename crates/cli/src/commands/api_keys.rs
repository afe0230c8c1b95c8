//! `daikai api-keys create|list|revoke`: the keys the provider's own apps call the provider API
//! with (docs/api.md §2). A new key is printed once, on the first line; only its hash is stored.

use std::io::Write;

use secrecy::ExposeSecret as _;
use serde::Serialize;
use sqlx::PgPool;
use store::api_keys::{self, ApiKeyRecord, NewApiKey, Scope};

use crate::exit::Fault;
use crate::output::{self, Table};

/// `api-keys list --json`: one entry per key (never the key).
#[derive(Debug, Serialize)]
struct KeyJson<'a> {
    id: &'a str,
    name: &'a str,
    scopes: Vec<&'static str>,
    suites: Option<&'a [String]>,
    rate_limit: Option<i32>,
    created_at: chrono::DateTime<chrono::Utc>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> KeyJson<'a> {
    fn of(key: &'a ApiKeyRecord) -> Self {
        Self {
            id: &key.id,
            name: &key.name,
            scopes: key.scopes.iter().map(|s| s.as_str()).collect(),
            suites: key.suites.as_deref(),
            rate_limit: key.rate_limit,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// Creates a key and prints it (first line), then what it may do.
pub async fn create(pool: &PgPool, new: &NewApiKey<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let (generated, record) = api_keys::create_api_key(&mut conn, new).await?;
    writeln!(out, "{}", generated.key.expose_secret())?;
    writeln!(
        out,
        "created API key {} ({}): scopes {}; suites {}. The key above is shown only now: only \
         its hash is stored.",
        record.id,
        record.name,
        scope_list(&record.scopes),
        suite_list(&record),
    )?;
    Ok(())
}

/// Every key, newest first.
pub async fn list(pool: &PgPool, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let keys = api_keys::list_api_keys(&mut conn).await?;
    if json {
        let rows: Vec<KeyJson<'_>> = keys.iter().map(KeyJson::of).collect();
        return output::json(out, &rows);
    }
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "SCOPES",
        "SUITES",
        "RATE",
        "LAST USED",
        "REVOKED",
        "CREATED",
    ]);
    for key in &keys {
        table.row(vec![
            key.id.clone(),
            key.name.clone(),
            scope_list(&key.scopes),
            suite_list(key),
            key.rate_limit
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            output::time_or_dash(key.last_used_at),
            output::time_or_dash(key.revoked_at),
            output::time(key.created_at),
        ]);
    }
    table.print(out)?;
    writeln!(out, "{} key(s)", keys.len())?;
    Ok(())
}

/// Revokes a key: the API answers it 401 from then on (within `API_KEY_CACHE_SECS`).
pub async fn revoke(pool: &PgPool, id: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let Some(key) = api_keys::revoke_api_key(&mut conn, id).await? else {
        return Err(Fault::NotFound(format!(
            "no API key has the id `{id}` (see `daikai api-keys list`)"
        ))
        .into());
    };
    writeln!(
        out,
        "API key {} ({}) revoked at {}",
        key.id,
        key.name,
        output::time_or_dash(key.revoked_at)
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

fn suite_list(key: &ApiKeyRecord) -> String {
    key.suites
        .as_ref()
        .map_or_else(|| "all".to_owned(), |s| s.join(","))
}
