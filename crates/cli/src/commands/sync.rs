//! `daikai sync CORP`, `daikai reconcile CORP` and `daikai sync status [CORP]`: asking contact
//! sync for a full sync through the bus (`tenant.sync_requested`, docs/contact-sync.md), and
//! watching the runs it records in `sync_runs`.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use store::directory::runs::{self, SyncRun};
use store::tenants::{TenantStatus, tenant_by_id};

use super::{find_tenant, publisher};
use crate::env::Env;
use crate::output::{self, Table, age, time, time_or_dash};

/// One sync run as `--json` shows it (`sync status`, `tenants show`).
#[derive(Debug, Clone, Serialize)]
pub struct RunJson {
    /// `sync_runs.id`.
    pub id: i64,
    /// The tenant's suite (filled where known).
    pub suite_id: Option<String>,
    /// The tenant's corp (filled where known).
    pub corp_id: Option<String>,
    /// `activated`, `changed`, `requested`, `reconcile`, …
    pub reason: String,
    /// `running`, `completed`, `failed`, `cancelled`.
    pub status: String,
    /// `departments`, `users`, `members`, `tags`, `sweep`, `done`.
    pub phase: String,
    /// The replica working on it.
    pub owner: Option<String>,
    /// Until when its lease holds.
    pub lease_until: Option<DateTime<Utc>>,
    /// Running with its lease lapsed: no replica is working on it.
    pub lease_lapsed: bool,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Last checkpoint.
    pub heartbeat_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// WeCom calls.
    pub api_calls: i64,
    /// Pages processed.
    pub pages: i64,
    /// Rate-limit waits.
    pub rate_limit_waits: i64,
    /// Departments written.
    pub departments: i64,
    /// Members written.
    pub users: i64,
    /// Tags written.
    pub tags: i64,
    /// Drift: rows added.
    pub rows_added: i64,
    /// Drift: rows changed.
    pub rows_changed: i64,
    /// Drift: rows removed.
    pub rows_removed: i64,
    /// Lease takeovers.
    pub takeovers: i32,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
}

impl From<&SyncRun> for RunJson {
    fn from(r: &SyncRun) -> Self {
        Self {
            id: r.id,
            suite_id: None,
            corp_id: None,
            reason: r.reason.clone(),
            status: r.status.clone(),
            phase: r.phase.clone(),
            owner: r.owner.clone(),
            lease_until: r.lease_until,
            lease_lapsed: r.status == "running" && r.lease_until.is_some_and(|l| l < Utc::now()),
            started_at: r.started_at,
            heartbeat_at: r.heartbeat_at,
            finished_at: r.finished_at,
            api_calls: r.api_calls,
            pages: r.pages,
            rate_limit_waits: r.rate_limit_waits,
            departments: r.departments,
            users: r.users,
            tags: r.tags,
            rows_added: r.rows_added,
            rows_changed: r.rows_changed,
            rows_removed: r.rows_removed,
            takeovers: r.takeovers,
            error: r.error.clone(),
        }
    }
}

/// Publishes `tenant.sync_requested` for the tenant; contact sync runs a full sync
/// (`reconcile` is the same request: a full sync is the reconciliation).
pub async fn request(
    pool: &PgPool,
    env: &Env,
    corp: &str,
    suite: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let tenant = find_tenant(pool, corp, suite).await?;
    if tenant.status != TenantStatus::Active {
        anyhow::bail!(
            "tenant {} / {} is {}: contact sync mirrors active tenants only (see `daikai tenants \
             show {}`)",
            tenant.suite_id,
            tenant.corp_id,
            tenant.status,
            tenant.corp_id
        );
    }
    let event = bus::TenantEvent::SyncRequested(bus::Tenant::from(&tenant));
    // A fresh basis per request: contact sync dedupes on the key, and each request is new.
    let request_id = uuid::Uuid::now_v7().to_string();
    let envelope = bus::Envelope::internal(event, &format!("daikai sync {request_id}"));
    let publisher = publisher(env).await?;
    let published = publisher
        .publish(&envelope, &format!("daikai-cli-{request_id}"))
        .await;
    publisher.close().await;
    published?;
    writeln!(
        out,
        "requested a full sync of {} / {} (message {}); follow it with `daikai sync status {}`",
        tenant.suite_id, tenant.corp_id, envelope.id, tenant.corp_id
    )?;
    Ok(())
}

/// Running runs (all tenants), or one tenant's recent runs.
pub async fn status(
    pool: &PgPool,
    corp: Option<&str>,
    suite: Option<&str>,
    limit: i64,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let runs = if let Some(corp) = corp {
        {
            let tenant = find_tenant(pool, corp, suite).await?;
            let mut conn = pool.acquire().await?;
            runs::recent_runs(&mut conn, tenant.id, limit)
                .await?
                .iter()
                .map(|r| RunJson {
                    suite_id: Some(tenant.suite_id.to_string()),
                    corp_id: Some(tenant.corp_id.to_string()),
                    ..RunJson::from(r)
                })
                .collect()
        }
    } else {
        store::check_schema(pool).await?;
        running_with_tenants(pool).await?
    };
    if json {
        return output::json(out, &runs);
    }
    print_runs(&runs, out)?;
    if corp.is_none() {
        writeln!(out, "{} run(s) in progress", runs.len())?;
    }
    Ok(())
}

/// Every running run, with its tenant's ids.
pub async fn running_with_tenants(pool: &PgPool) -> anyhow::Result<Vec<RunJson>> {
    let mut conn = pool.acquire().await?;
    let running = runs::running_runs(&mut conn).await?;
    let mut out = Vec::with_capacity(running.len());
    for r in &running {
        let tenant = tenant_by_id(&mut conn, r.tenant_id).await?;
        out.push(RunJson {
            suite_id: tenant.as_ref().map(|t| t.suite_id.to_string()),
            corp_id: tenant.as_ref().map(|t| t.corp_id.to_string()),
            ..RunJson::from(r)
        });
    }
    Ok(out)
}

/// The runs as a table.
pub fn print_runs(runs: &[RunJson], out: &mut dyn Write) -> std::io::Result<()> {
    let now = Utc::now();
    let mut table = Table::new(&[
        "RUN",
        "CORP",
        "REASON",
        "STATUS",
        "PHASE",
        "PAGES",
        "DEPT",
        "USERS",
        "TAGS",
        "DRIFT",
        "STARTED",
        "LAST CHECKPOINT",
    ]);
    for r in runs {
        let status = if r.lease_lapsed {
            "running (LEASE LAPSED)".to_owned()
        } else {
            r.status.clone()
        };
        table.row(vec![
            r.id.to_string(),
            r.corp_id.clone().unwrap_or_else(|| "-".into()),
            r.reason.clone(),
            status,
            r.phase.clone(),
            r.pages.to_string(),
            r.departments.to_string(),
            r.users.to_string(),
            r.tags.to_string(),
            format!("+{} ~{} -{}", r.rows_added, r.rows_changed, r.rows_removed),
            time(r.started_at),
            match r.finished_at {
                Some(at) => format!("finished {}", time_or_dash(Some(at))),
                None => format!("{} ago", age(now - r.heartbeat_at)),
            },
        ]);
    }
    table.print(out)?;
    for r in runs.iter().filter(|r| r.error.is_some()) {
        writeln!(
            out,
            "run {}: {}",
            r.id,
            r.error.as_deref().unwrap_or_default()
        )?;
    }
    Ok(())
}
