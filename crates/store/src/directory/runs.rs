//! Full syncs (`sync_runs`) and the reconciliation schedule (`directory_sync`).
//!
//! At most one run per tenant is `running` (a partial unique index). Its owner (a worker replica)
//! holds a lease it renews with every checkpoint; every write of the owner names it, so a replica
//! whose lease lapsed and was taken over learns it at its next checkpoint and stops (fencing).
//! A trigger that finds a run in progress asks it to run again when it finishes
//! (`rerun_requested`): the running run may have read the directory before the trigger's change.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::error::StoreError;

/// A sync run row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SyncRun {
    /// Run id.
    pub id: i64,
    /// `tenants.id`.
    pub tenant_id: i64,
    /// Why it runs: `activated`, `changed`, `requested`, `reconcile`, `rerun`.
    pub reason: String,
    /// The event that started it (its envelope id), if an event did.
    pub trigger_id: Option<Uuid>,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// Where it is: `departments`, `users`, `members`, `tags`, `sweep`.
    pub phase: String,
    /// Where to resume the phase (its own JSON).
    pub checkpoint: Value,
    /// The replica working on it.
    pub owner: Option<String>,
    /// Until when the owner's claim holds.
    pub lease_until: Option<DateTime<Utc>>,
    /// Run again when finished.
    pub rerun_requested: bool,
    /// Started (the mark of mark and sweep: rows observed later are never swept by it).
    pub started_at: DateTime<Utc>,
    /// Last checkpoint.
    pub heartbeat_at: DateTime<Utc>,
    /// Finished, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// WeCom calls made.
    pub api_calls: i64,
    /// Pages (listing answers) processed.
    pub pages: i64,
    /// Waits for a rate limit (45009 or the shared quota).
    pub rate_limit_waits: i64,
    /// Departments written.
    pub departments: i64,
    /// Members written.
    pub users: i64,
    /// Tags written.
    pub tags: i64,
    /// Rows that were missing from the mirror.
    pub rows_added: i64,
    /// Rows that differed from WeCom.
    pub rows_changed: i64,
    /// Rows WeCom no longer shows, removed by the sweep.
    pub rows_removed: i64,
    /// How often another replica took it over.
    pub takeovers: i32,
    /// Why it failed.
    pub error: Option<String>,
}

// Spliced into queries with `format!`, hence `AssertSqlSafe` there: the SQL text is built
// from constants only; every value is a bind parameter.
const COLUMNS: &str =
    "id, tenant_id, reason, trigger_id, status, phase, checkpoint, owner, lease_until,
    rerun_requested, started_at, heartbeat_at, finished_at, api_calls, pages, rate_limit_waits,
    departments, users, tags, rows_added, rows_changed, rows_removed, takeovers, error";

/// What [`start`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new run, owned by the caller.
    New(SyncRun),
    /// A run whose owner's lease lapsed (it died), now owned by the caller: resume it.
    TakenOver(SyncRun),
    /// Another replica is running one; it was asked to run again when it finishes.
    Busy(SyncRun),
    /// This very trigger's run is in progress: the event was delivered again (its consumer
    /// stopped while the run was under way). The run resumes from its checkpoint; nothing
    /// more to ask.
    Redelivered(SyncRun),
}

/// Starts a full sync of the tenant for `reason` (and the event `trigger`, if an event asks),
/// takes over one whose lease lapsed, or marks the running one for a rerun — unless it is this
/// same trigger's run. One transaction; safe against any number of replicas doing the same.
pub async fn start(
    conn: &mut PgConnection,
    tenant_id: i64,
    reason: &str,
    trigger: Option<Uuid>,
    owner: &str,
    lease: Duration,
) -> Result<Start, StoreError> {
    let lease_secs = lease.as_secs_f64();
    loop {
        let mut tx: Transaction<'_, Postgres> = sqlx::Connection::begin(&mut *conn).await?;
        let running: Option<SyncRun> = sqlx::query_as(AssertSqlSafe(format!(
            "select {COLUMNS} from sync_runs where tenant_id = $1 and status = 'running' for update"
        )))
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let started = match running {
            Some(run) => {
                let lapsed: bool = sqlx::query_scalar(
                    "select lease_until is null or lease_until < clock_timestamp() from sync_runs where id = $1",
                )
                .bind(run.id)
                .fetch_one(&mut *tx)
                .await?;
                if lapsed {
                    Start::TakenOver(take_over(&mut tx, run.id, owner, lease_secs).await?)
                } else if trigger.is_some() && run.trigger_id == trigger {
                    Start::Redelivered(run)
                } else {
                    Start::Busy(request_rerun(&mut tx, run.id).await?)
                }
            }
            None => match insert(&mut tx, tenant_id, reason, trigger, owner, lease_secs).await {
                Ok(run) => Start::New(run),
                Err(StoreError::Database(sqlx::Error::Database(error)))
                    if error.is_unique_violation() =>
                {
                    // Another replica inserted one at the same moment: look again.
                    continue;
                }
                Err(error) => return Err(error),
            },
        };
        tx.commit().await?;
        return Ok(started);
    }
}

async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: i64,
    reason: &str,
    trigger: Option<Uuid>,
    owner: &str,
    lease_secs: f64,
) -> Result<SyncRun, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "insert into sync_runs (tenant_id, reason, trigger_id, owner, lease_until, started_at,
                                heartbeat_at)
         values ($1, $2, $5, $3, clock_timestamp() + make_interval(secs => $4),
                 clock_timestamp(), clock_timestamp())
         returning {COLUMNS}"
    )))
    .bind(tenant_id)
    .bind(reason)
    .bind(owner)
    .bind(lease_secs)
    .bind(trigger)
    .fetch_one(&mut **tx)
    .await?)
}

async fn take_over(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    owner: &str,
    lease_secs: f64,
) -> Result<SyncRun, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update sync_runs set owner = $2, lease_until = clock_timestamp() + make_interval(secs => $3),
             heartbeat_at = clock_timestamp(), takeovers = takeovers + 1
         where id = $1 returning {COLUMNS}"
    )))
    .bind(run_id)
    .bind(owner)
    .bind(lease_secs)
    .fetch_one(&mut **tx)
    .await?)
}

async fn request_rerun(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
) -> Result<SyncRun, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update sync_runs set rerun_requested = true where id = $1 returning {COLUMNS}"
    )))
    .bind(run_id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Progress since the last checkpoint (added to the run's counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// WeCom calls.
    pub api_calls: i64,
    /// Pages.
    pub pages: i64,
    /// Rate-limit waits.
    pub rate_limit_waits: i64,
    /// Departments written.
    pub departments: i64,
    /// Members written.
    pub users: i64,
    /// Tags written.
    pub tags: i64,
    /// Rows added.
    pub rows_added: i64,
    /// Rows changed.
    pub rows_changed: i64,
}

impl Progress {
    /// Adds `other`.
    pub fn add(&mut self, other: Progress) {
        self.api_calls += other.api_calls;
        self.pages += other.pages;
        self.rate_limit_waits += other.rate_limit_waits;
        self.departments += other.departments;
        self.users += other.users;
        self.tags += other.tags;
        self.rows_added += other.rows_added;
        self.rows_changed += other.rows_changed;
    }
}

/// Saves the run's position and progress and renews the lease; call it in the transaction that
/// wrote the rows the checkpoint covers. `false` when the caller no longer owns the run (taken
/// over, cancelled): roll back and stop.
pub async fn checkpoint(
    conn: &mut PgConnection,
    run_id: i64,
    owner: &str,
    lease: Duration,
    phase: &str,
    checkpoint: &Value,
    progress: &Progress,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "update sync_runs set phase = $3, checkpoint = $4,
             lease_until = clock_timestamp() + make_interval(secs => $5),
             heartbeat_at = clock_timestamp(),
             api_calls = api_calls + $6, pages = pages + $7, rate_limit_waits = rate_limit_waits + $8,
             departments = departments + $9, users = users + $10, tags = tags + $11,
             rows_added = rows_added + $12, rows_changed = rows_changed + $13
         where id = $1 and owner = $2 and status = 'running'",
    )
    .bind(run_id)
    .bind(owner)
    .bind(phase)
    .bind(checkpoint)
    .bind(lease.as_secs_f64())
    .bind(progress.api_calls)
    .bind(progress.pages)
    .bind(progress.rate_limit_waits)
    .bind(progress.departments)
    .bind(progress.users)
    .bind(progress.tags)
    .bind(progress.rows_added)
    .bind(progress.rows_changed)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What [`complete`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// Done; nothing asked for another run.
    Done,
    /// Done, and a trigger arrived while it ran: run again.
    RerunRequested,
    /// The caller no longer owned the run: nothing was recorded.
    NotOwner,
}

/// Marks the run completed with the sweep's count and schedules the tenant's next
/// reconciliation `reconcile_every` (spread by ±25 %) from now.
pub async fn complete(
    conn: &mut PgConnection,
    run_id: i64,
    owner: &str,
    rows_removed: i64,
    reconcile_every: Duration,
) -> Result<Completed, StoreError> {
    let rerun: Option<(i64, bool)> = sqlx::query_as(
        "update sync_runs set status = 'completed', phase = 'done', finished_at = clock_timestamp(),
             rows_removed = rows_removed + $3, lease_until = null
         where id = $1 and owner = $2 and status = 'running'
         returning tenant_id, rerun_requested",
    )
    .bind(run_id)
    .bind(owner)
    .bind(rows_removed)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((tenant_id, rerun)) = rerun else {
        return Ok(Completed::NotOwner);
    };
    sqlx::query(
        "insert into directory_sync (tenant_id, next_reconcile_at, last_completed_run, last_completed_at)
         values ($1, clock_timestamp() + make_interval(secs => $3 * (0.75 + random() / 2)), $2,
                 clock_timestamp())
         on conflict (tenant_id) do update set next_reconcile_at = excluded.next_reconcile_at,
             last_completed_run = excluded.last_completed_run,
             last_completed_at = excluded.last_completed_at",
    )
    .bind(tenant_id)
    .bind(run_id)
    .bind(reconcile_every.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(if rerun {
        Completed::RerunRequested
    } else {
        Completed::Done
    })
}

/// Marks the run failed (it will not be resumed; the next trigger starts a new one).
pub async fn fail(
    conn: &mut PgConnection,
    run_id: i64,
    owner: &str,
    error: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "update sync_runs set status = 'failed', finished_at = clock_timestamp(), error = $3,
             lease_until = null
         where id = $1 and owner = $2 and status = 'running'",
    )
    .bind(run_id)
    .bind(owner)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels the tenant's running run (revocation): its owner stops at its next checkpoint.
pub async fn cancel(
    conn: &mut PgConnection,
    tenant_id: i64,
    why: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "update sync_runs set status = 'cancelled', finished_at = clock_timestamp(), error = $2,
             lease_until = null
         where tenant_id = $1 and status = 'running'",
    )
    .bind(tenant_id)
    .bind(why)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One run by id.
pub async fn run(conn: &mut PgConnection, run_id: i64) -> Result<Option<SyncRun>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from sync_runs where id = $1"
    )))
    .bind(run_id)
    .fetch_optional(conn)
    .await?)
}

/// The tenant's latest runs, newest first.
pub async fn recent_runs(
    conn: &mut PgConnection,
    tenant_id: i64,
    limit: i64,
) -> Result<Vec<SyncRun>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from sync_runs where tenant_id = $1 order by id desc limit $2"
    )))
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Every running run, oldest first (status pages, `daikai sync status`).
pub async fn running_runs(conn: &mut PgConnection) -> Result<Vec<SyncRun>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from sync_runs where status = 'running' order by started_at"
    )))
    .fetch_all(conn)
    .await?)
}

/// Tenants whose running run lost its owner (lease lapsed): their trigger message should have
/// been redelivered to another replica; the periodic tick resumes them if it was not.
pub async fn lapsed_runs(conn: &mut PgConnection) -> Result<Vec<SyncRun>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from sync_runs
         where status = 'running' and lease_until < clock_timestamp() order by started_at"
    )))
    .fetch_all(conn)
    .await?)
}

/// Claims up to `limit` active tenants whose reconciliation is due (skipping those another
/// replica is claiming) and pushes their next date `every` ahead, so each is requested once.
pub async fn claim_due_reconciliations(
    conn: &mut PgConnection,
    every: Duration,
    limit: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "update directory_sync set next_reconcile_at = clock_timestamp() + make_interval(secs => $1)
         where tenant_id in (
           select s.tenant_id from directory_sync s join tenants t on t.id = s.tenant_id
           where t.status = 'active' and s.next_reconcile_at <= clock_timestamp()
           order by s.next_reconcile_at limit $2
           for update of s skip locked)
         returning tenant_id",
    )
    .bind(every.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Gives the run's lease up now (its owner failed transiently): the retry of the trigger, on any
/// replica, takes it over and resumes from the checkpoint.
pub async fn release(conn: &mut PgConnection, run_id: i64, owner: &str) -> Result<(), StoreError> {
    sqlx::query(
        "update sync_runs set lease_until = clock_timestamp()
         where id = $1 and owner = $2 and status = 'running'",
    )
    .bind(run_id)
    .bind(owner)
    .execute(conn)
    .await?;
    Ok(())
}
