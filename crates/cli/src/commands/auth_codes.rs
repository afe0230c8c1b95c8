//! `daikai auth-codes [--failed]`: every AuthCode and its fate, and for a burnt one what to do
//! (docs/operations.md §4).

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use store::auth_codes::{AuthCodeRecord, AuthCodeState, list_auth_codes};

use crate::output::{self, Table, time, time_or_dash};

/// `auth-codes --json`: one entry per code (never the code itself: its SHA-256 prefix).
#[derive(Debug, Serialize)]
pub struct AuthCodeJson {
    /// First 12 hex digits of the code's SHA-256.
    pub hash_prefix: String,
    /// `suite_id`.
    pub suite_id: String,
    /// `create_auth` or `reset_permanent_code`.
    pub kind: String,
    /// `received`, `exchanged` or `failed`.
    pub state: String,
    /// The corp, once known.
    pub corp_id: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// When WeCom stops accepting it.
    pub expires_at: DateTime<Utc>,
    /// Exchange attempts.
    pub attempts: i32,
    /// Exchanged at.
    pub exchanged_at: Option<DateTime<Utc>>,
    /// Failed at.
    pub failed_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// The last transient error.
    pub last_error: Option<String>,
    /// For a failed code: what to do.
    pub advice: Option<&'static str>,
}

impl From<&AuthCodeRecord> for AuthCodeJson {
    fn from(c: &AuthCodeRecord) -> Self {
        let mut hash = c.hash.to_hex();
        hash.truncate(12);
        Self {
            hash_prefix: hash,
            suite_id: c.suite_id.to_string(),
            kind: c.kind.as_str().to_owned(),
            state: c.state.as_str().to_owned(),
            corp_id: c.corp_id.as_ref().map(ToString::to_string),
            received_at: c.received_at,
            expires_at: c.expires_at,
            attempts: c.attempts,
            exchanged_at: c.exchanged_at,
            failed_at: c.failed_at,
            failure_reason: c.failure_reason.clone(),
            last_error: c.last_error.clone(),
            advice: (c.state == AuthCodeState::Failed).then(|| advice(c.kind.as_str())),
        }
    }
}

/// What to do about a failed code of this kind: a new code is the only cure.
pub fn advice(kind: &str) -> &'static str {
    if kind == "reset_permanent_code" {
        "a new code is needed: click 「重新获取secret」 for this corp's 代开发 app in the provider \
         console again (docs/operations.md §4)"
    } else {
        "a new code is needed: click 「重新获取secret」 for this corp's 代开发 app in the provider \
         console, or have the corp's admin re-authorize the app; fix the cause first if the \
         reason names one (docs/operations.md §4)"
    }
}

/// Lists codes, newest first.
pub async fn list(
    pool: &PgPool,
    state: Option<AuthCodeState>,
    limit: i64,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let codes: Vec<AuthCodeJson> = list_auth_codes(&mut conn, state, limit)
        .await?
        .iter()
        .map(AuthCodeJson::from)
        .collect();
    if json {
        return output::json(out, &codes);
    }
    let mut table = Table::new(&[
        "CODE", "SUITE", "KIND", "STATE", "CORP", "RECEIVED", "ATTEMPTS", "SETTLED",
    ]);
    for c in &codes {
        table.row(vec![
            c.hash_prefix.clone(),
            c.suite_id.clone(),
            c.kind.clone(),
            c.state.clone(),
            c.corp_id.clone().unwrap_or_else(|| "-".into()),
            time(c.received_at),
            c.attempts.to_string(),
            time_or_dash(c.exchanged_at.or(c.failed_at)),
        ]);
    }
    table.print(out)?;
    for c in codes.iter().filter(|c| c.state == "failed") {
        writeln!(
            out,
            "\n{} ({}, corp {}) failed: {}",
            c.hash_prefix,
            c.kind,
            c.corp_id.as_deref().unwrap_or("unknown"),
            c.failure_reason.as_deref().unwrap_or("no reason recorded")
        )?;
        if let Some(advice) = c.advice {
            writeln!(out, "  → {advice}")?;
        }
    }
    writeln!(out, "{} AuthCode(s)", codes.len())?;
    Ok(())
}
