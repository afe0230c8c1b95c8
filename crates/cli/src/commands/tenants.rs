//! `daikai tenants list` and `daikai tenants show CORP`: what daikai knows about a tenant, in one
//! place — status and times, scope and grants, token, directory and its syncs, AuthCodes.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use store::auth_codes::list_auth_codes;
use store::corp_tokens::cached_corp_token;
use store::directory::{self, runs};
use store::tenants::{Tenant, TenantStatus, list_tenants};

use super::auth_codes::{AuthCodeJson, advice};
use super::find_tenant;
use super::sync::RunJson;
use crate::output::{self, Table, age, time, time_or_dash};

/// AuthCodes scanned for the ones of one tenant.
const AUTH_CODE_SCAN: i64 = 1000;
/// AuthCodes shown per tenant.
const AUTH_CODES_SHOWN: usize = 5;

/// `tenants list --json`: one entry per tenant.
#[derive(Debug, Serialize)]
struct TenantRowJson {
    suite_id: String,
    corp_id: String,
    corp_name: Option<String>,
    status: &'static str,
    agent_id: Option<i64>,
    permanent_code_key_id: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<&Tenant> for TenantRowJson {
    fn from(t: &Tenant) -> Self {
        Self {
            suite_id: t.suite_id.to_string(),
            corp_id: t.corp_id.to_string(),
            corp_name: t.corp_name.clone(),
            status: t.status.as_str(),
            agent_id: t.agent_id,
            permanent_code_key_id: t.permanent_code_key_id.clone(),
            updated_at: t.updated_at,
        }
    }
}

/// Lists tenants, optionally of one suite and status.
pub async fn list(
    pool: &PgPool,
    suite: Option<&str>,
    status: Option<TenantStatus>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let tenants: Vec<Tenant> = list_tenants(&mut conn, status)
        .await?
        .into_iter()
        .filter(|t| suite.is_none_or(|s| t.suite_id.as_str() == s))
        .collect();
    if json {
        let rows: Vec<TenantRowJson> = tenants.iter().map(TenantRowJson::from).collect();
        return output::json(out, &rows);
    }
    let mut table = Table::new(&[
        "SUITE",
        "CORP",
        "STATUS",
        "AGENT",
        "KEY ID",
        "UPDATED",
        "CORP NAME",
    ]);
    for t in &tenants {
        table.row(vec![
            t.suite_id.to_string(),
            t.corp_id.to_string(),
            t.status.to_string(),
            t.agent_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            t.permanent_code_key_id
                .clone()
                .unwrap_or_else(|| "-".into()),
            time(t.updated_at),
            t.corp_name.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print(out)?;
    writeln!(out, "{} tenant(s)", tenants.len())?;
    Ok(())
}

/// `tenants show --json`.
#[derive(Debug, Serialize)]
struct TenantJson {
    suite_id: String,
    corp_id: String,
    corp_name: Option<String>,
    status: &'static str,
    agent_id: Option<i64>,
    created_at: DateTime<Utc>,
    activated_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_event_time: Option<DateTime<Utc>>,
    permanent_code_key_id: Option<String>,
    permanent_code_updated_at: Option<DateTime<Utc>>,
    scope: Scope,
    privilege: Option<Value>,
    corp_token: Option<TokenJson>,
    last_full_sync: Option<RunJson>,
    running_sync: Option<RunJson>,
    directory: DirectoryJson,
    auth_codes: Vec<AuthCodeJson>,
}

/// The visibility scope from `auth_info.agent[0].privilege`.
#[derive(Debug, Default, Serialize)]
struct Scope {
    departments: Vec<Value>,
    users: Vec<Value>,
    tags: Vec<Value>,
}

#[derive(Debug, Serialize)]
struct TokenJson {
    refreshed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    expired: bool,
}

#[derive(Debug, Serialize)]
struct DirectoryJson {
    departments: i64,
    users: i64,
    tags: i64,
}

/// Everything about one tenant.
pub async fn show(
    pool: &PgPool,
    corp: &str,
    suite: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let tenant = find_tenant(pool, corp, suite).await?;
    let report = gather(pool, &tenant).await?;
    if json {
        return output::json(out, &report);
    }
    print_report(&report, out)?;
    Ok(())
}

async fn gather(pool: &PgPool, t: &Tenant) -> anyhow::Result<TenantJson> {
    let mut conn = pool.acquire().await?;
    let token = cached_corp_token(&mut conn, &t.suite_id, &t.corp_id)
        .await?
        .and_then(|row| {
            row.token.map(|token| TokenJson {
                refreshed_at: token.refreshed_at,
                expires_at: token.expires_at,
                expired: token.expires_at <= row.now,
            })
        });
    let recent = runs::recent_runs(&mut conn, t.id, 50).await?;
    let last_full_sync = recent
        .iter()
        .find(|r| r.status == "completed")
        .map(RunJson::from);
    let running_sync = recent
        .iter()
        .find(|r| r.status == "running")
        .map(RunJson::from);
    let counts = directory::counts(&mut conn, t.id).await?;
    let auth_codes = list_auth_codes(&mut conn, None, AUTH_CODE_SCAN)
        .await?
        .iter()
        .filter(|c| c.suite_id == t.suite_id && c.corp_id.as_ref() == Some(&t.corp_id))
        .take(AUTH_CODES_SHOWN)
        .map(AuthCodeJson::from)
        .collect();
    let privilege = t
        .auth_info
        .as_ref()
        .and_then(|info| info.pointer("/auth_info/agent/0/privilege"))
        .cloned();
    let list = |key: &str| -> Vec<Value> {
        privilege
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Ok(TenantJson {
        suite_id: t.suite_id.to_string(),
        corp_id: t.corp_id.to_string(),
        corp_name: t.corp_name.clone(),
        status: t.status.as_str(),
        agent_id: t.agent_id,
        created_at: t.created_at,
        activated_at: t.activated_at,
        updated_at: t.updated_at,
        revoked_at: t.revoked_at,
        last_event_time: t.last_event_time,
        permanent_code_key_id: t.permanent_code_key_id.clone(),
        permanent_code_updated_at: t.permanent_code_updated_at,
        scope: Scope {
            departments: list("allow_party"),
            users: list("allow_user"),
            tags: list("allow_tag"),
        },
        privilege,
        corp_token: token,
        last_full_sync,
        running_sync,
        directory: DirectoryJson {
            departments: counts.departments,
            users: counts.users,
            tags: counts.tags,
        },
        auth_codes,
    })
}

fn print_report(r: &TenantJson, out: &mut dyn Write) -> std::io::Result<()> {
    let now = Utc::now();
    let name = r.corp_name.as_deref().unwrap_or("-");
    writeln!(out, "tenant       {} / {} ({name})", r.suite_id, r.corp_id)?;
    writeln!(out, "status       {}{}", r.status, status_hint(r.status))?;
    writeln!(
        out,
        "agent id     {}",
        r.agent_id.map_or_else(|| "-".to_owned(), |a| a.to_string())
    )?;
    writeln!(out, "authorized   {}", time_or_dash(r.activated_at))?;
    writeln!(out, "changed      {}", time(r.updated_at))?;
    writeln!(out, "revoked      {}", time_or_dash(r.revoked_at))?;
    writeln!(out, "last event   {}", time_or_dash(r.last_event_time))?;
    writeln!(
        out,
        "secret       under key {} since {}",
        r.permanent_code_key_id.as_deref().unwrap_or("-"),
        time_or_dash(r.permanent_code_updated_at)
    )?;
    let join = |values: &[Value]| {
        if values.is_empty() {
            "-".to_owned()
        } else {
            values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    writeln!(
        out,
        "scope        departments: {}; users: {}; tags: {}",
        join(&r.scope.departments),
        join(&r.scope.users),
        join(&r.scope.tags)
    )?;
    if let Some(privilege) = &r.privilege {
        writeln!(out, "grants       {privilege}")?;
    }
    match &r.corp_token {
        Some(t) if t.expired => writeln!(
            out,
            "corp token   expired {} ago (refreshed on next use)",
            age(now - t.expires_at)
        )?,
        Some(t) => writeln!(
            out,
            "corp token   expires {} (in {})",
            time(t.expires_at),
            age(t.expires_at - now)
        )?,
        None => writeln!(out, "corp token   none cached (fetched on first use)")?,
    }
    print_activity(r, out)
}

/// The directory, its syncs and the AuthCodes of a tenant report.
fn print_activity(r: &TenantJson, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "directory    {} department(s), {} user(s), {} tag(s)",
        r.directory.departments, r.directory.users, r.directory.tags
    )?;
    match &r.last_full_sync {
        Some(run) => writeln!(
            out,
            "last sync    #{} ({}) finished {}: {} dept, {} users, {} tags; drift +{} ~{} -{}",
            run.id,
            run.reason,
            time_or_dash(run.finished_at),
            run.departments,
            run.users,
            run.tags,
            run.rows_added,
            run.rows_changed,
            run.rows_removed
        )?,
        None => writeln!(out, "last sync    none completed")?,
    }
    if let Some(run) = &r.running_sync {
        writeln!(
            out,
            "running      #{} ({}) in phase {}, {} page(s), lease {}",
            run.id,
            run.reason,
            run.phase,
            run.pages,
            if run.lease_lapsed { "LAPSED" } else { "held" }
        )?;
    }
    if r.auth_codes.is_empty() {
        writeln!(out, "auth codes   none recorded for this corp")?;
    }
    for code in &r.auth_codes {
        writeln!(
            out,
            "auth code    {} {} {} received {}{}",
            code.hash_prefix,
            code.kind,
            code.state,
            time(code.received_at),
            code.failure_reason
                .as_deref()
                .map(|reason| format!(": {reason}"))
                .unwrap_or_default()
        )?;
        if code.state == "failed" {
            writeln!(out, "             → {}", advice(&code.kind))?;
        }
    }
    Ok(())
}

/// What a non-active status means for the operator (docs/operations.md §9).
fn status_hint(status: &str) -> &'static str {
    match status {
        "pending" => {
            " — authorized, but no permanent code yet: see `daikai auth-codes --failed` \
             (docs/operations.md §9)"
        }
        "suspended" => {
            " — the corp disabled the app, or WeCom refuses its credentials \
             (docs/operations.md §9)"
        }
        "revoked" => " — the corp cancelled the authorization; its data is purged",
        _ => "",
    }
}
