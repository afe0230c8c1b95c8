//! The mirrored client directories: departments, members with their memberships, tags with
//! their members and departments (`docs/contact-sync.md`; columns in `docs/schema.md`).
//!
//! Every write is an *observation*: what one WeCom read returned, stamped with the database time
//! at which that read started ([`Observation::observed_at`]). A row is only replaced by an
//! observation that started later, so whatever order replicas commit in, the newest read wins;
//! a read that started after a change reflects it. That one rule makes the mirror independent of
//! the order of events, full-sync pages and retries.
//!
//! - [`users`], [`departments`], [`tags`]: batched upserts (one statement per batch, `unnest`),
//!   tombstones for entities WeCom no longer shows, the readers that rebuild WeCom's shapes;
//! - [`runs`]: full syncs with one running run per tenant, leases, checkpoints, progress;
//! - [`quota`]: calls per (corp, API, minute) shared by every replica;
//! - [`sweep_unseen`] and [`purge_tenant`]: mark and sweep after a full sync; revocation.

pub mod departments;
pub mod quota;
pub mod runs;
pub mod tags;
pub mod users;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::StoreError;

/// Where one batch of rows comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// `tenants.id`.
    pub tenant_id: i64,
    /// Database time at which the WeCom read started ([`observation_time`]).
    pub observed_at: DateTime<Utc>,
    /// The full sync that read it, if any: marks the rows as seen by that run.
    pub run: Option<i64>,
    /// WeCom time of the change event that caused the read, if any.
    pub wecom_time: Option<DateTime<Utc>>,
}

/// What a batched write did, for drift counts and progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows written (new or replaced by a newer observation).
    pub rows: u64,
    /// Rows that did not exist (or were tombstones) before.
    pub added: u64,
    /// Rows whose content differed from the stored one.
    pub changed: u64,
}

impl Written {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: &Written) {
        self.rows += other.rows;
        self.added += other.added;
        self.changed += other.changed;
    }
}

/// The database clock now (`clock_timestamp()`, not the transaction start): take it right before
/// a WeCom read to stamp what the read returns. Every replica uses the same clock.
pub async fn observation_time(conn: &mut PgConnection) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(conn)
        .await?)
}

/// The directory's size, live rows only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Counts {
    /// Departments.
    pub departments: i64,
    /// Members.
    pub users: i64,
    /// Tags.
    pub tags: i64,
}

/// How many live departments, members and tags the tenant's mirror holds.
pub async fn counts(conn: &mut PgConnection, tenant_id: i64) -> Result<Counts, StoreError> {
    Ok(sqlx::query_as(
        "select
           (select count(*) from directory_departments where tenant_id = $1 and deleted_at is null) as departments,
           (select count(*) from directory_users where tenant_id = $1 and deleted_at is null) as users,
           (select count(*) from directory_tags where tenant_id = $1 and deleted_at is null) as tags",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await?)
}

/// Mark and sweep after a completed full sync: deletes the rows (live or tombstones) that `run`
/// did not see and that nothing observed after the run started. Returns how many live rows were
/// removed (tombstones confirmed gone are not counted: they were already not part of the mirror).
pub async fn sweep_unseen(
    conn: &mut PgConnection,
    tenant_id: i64,
    run: i64,
    run_started_at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // Each statement deletes the unseen rows and, by their ids, what references them from tags
    // (tag rows cascade to their members themselves).
    let statements = [
        "with gone as (
           delete from directory_users
           where tenant_id = $1 and seen_run is distinct from $2 and observed_at < $3
           returning user_id, deleted_at is null as live
         ),
         untagged as (
           delete from directory_tag_users t using gone
           where t.tenant_id = $1 and t.user_id = gone.user_id
         )
         select count(*) filter (where live) from gone",
        "with gone as (
           delete from directory_departments
           where tenant_id = $1 and seen_run is distinct from $2 and observed_at < $3
           returning department_id, deleted_at is null as live
         ),
         untagged as (
           delete from directory_tag_departments t using gone
           where t.tenant_id = $1 and t.department_id = gone.department_id
         )
         select count(*) filter (where live) from gone",
        "with gone as (
           delete from directory_tags
           where tenant_id = $1 and seen_run is distinct from $2 and observed_at < $3
           returning deleted_at is null as live
         )
         select count(*) filter (where live) from gone",
    ];
    let mut removed = 0;
    for statement in statements {
        let live: i64 = sqlx::query_scalar(statement)
            .bind(tenant_id)
            .bind(run)
            .bind(run_started_at)
            .fetch_one(&mut *conn)
            .await?;
        removed += u64::try_from(live).unwrap_or(0);
    }
    Ok(removed)
}

/// Deletes the tenant's whole directory (revocation). Sync runs and their counts are kept.
pub async fn purge_tenant(conn: &mut PgConnection, tenant_id: i64) -> Result<u64, StoreError> {
    let mut removed = 0;
    for table in ["directory_tags", "directory_users", "directory_departments"] {
        let done = sqlx::query(AssertSqlSafe(format!(
            "delete from {table} where tenant_id = $1"
        )))
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
        removed += done.rows_affected();
    }
    Ok(removed)
}

/// Which entity table a tombstone goes to, and its key column.
#[derive(Clone, Copy)]
enum Entity {
    User,
    Department,
    Tag,
}

impl Entity {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            Self::User => ("directory_users", "user_id"),
            Self::Department => ("directory_departments", "department_id"),
            Self::Tag => ("directory_tags", "tag_id"),
        }
    }
}

/// Records that WeCom no longer shows the entity `key` as a tombstone observed at
/// `observation.observed_at` (a row is inserted if there was none, so a slower read from before
/// cannot create it), unless a later observation is stored. `None` when a later one won;
/// otherwise whether a live row became the tombstone.
async fn tombstone<K>(
    conn: &mut PgConnection,
    entity: Entity,
    observation: &Observation,
    key: K,
) -> Result<Option<bool>, StoreError>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    // `table` and `key_column` are constants from `Entity` (hence `AssertSqlSafe` below).
    let (table, key_column) = entity.table_and_key();
    let statement = format!(
        "with old as (
           select deleted_at is null as live from {table}
           where tenant_id = $1 and {key_column} = $2
         ),
         written as (
           insert into {table} as d (tenant_id, {key_column}, observed_at, wecom_time, deleted_at, updated_at)
           values ($1, $2, $3, $4, $3, now())
           on conflict (tenant_id, {key_column}) do update set
             observed_at = excluded.observed_at,
             wecom_time = greatest(d.wecom_time, excluded.wecom_time),
             deleted_at = coalesce(d.deleted_at, excluded.deleted_at),
             updated_at = now()
           where d.observed_at <= excluded.observed_at
           returning 1
         )
         select coalesce((select live from old), false) from written"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(statement))
        .bind(observation.tenant_id)
        .bind(key)
        .bind(observation.observed_at)
        .bind(observation.wecom_time)
        .fetch_optional(conn)
        .await?)
}

/// SHA-256 of a row's canonical JSON: two observations with the same hash hold the same content.
fn content_hash<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(json).to_vec()
}

fn json_text<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

/// Collects the rows a batched upsert returned into counts.
fn written(rows: &[(bool, bool)]) -> Written {
    Written {
        rows: rows.len() as u64,
        added: rows.iter().filter(|(added, _)| *added).count() as u64,
        changed: rows.iter().filter(|(_, changed)| *changed).count() as u64,
    }
}

/// A tenant as a directory read needs it: its id, whether it is active, and the observation time
/// for a read about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadableTenant {
    /// `tenants.id`.
    pub id: i64,
    /// Whether the tenant is `active` (only then is WeCom called for it).
    pub active: bool,
    /// The database clock now ([`observation_time`]).
    pub observed_at: DateTime<Utc>,
}

/// Looks the tenant up and reads the observation clock, in one round trip.
pub async fn readable_tenant(
    conn: &mut PgConnection,
    suite_id: &wecom::ids::SuiteId,
    corp_id: &wecom::ids::CorpId,
) -> Result<Option<ReadableTenant>, StoreError> {
    let row: Option<(i64, bool, DateTime<Utc>)> = sqlx::query_as(
        "select id, status = 'active', clock_timestamp() from tenants
         where suite_id = $1 and corp_id = $2",
    )
    .bind(suite_id)
    .bind(corp_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id, active, observed_at)| ReadableTenant {
        id,
        active,
        observed_at,
    }))
}

/// Takes a share lock on the tenant row for the rest of the transaction and says whether it is
/// `active`. Directory writes call it first: a revocation (which updates the row) then waits
/// for them, or they see it and write nothing, so no row is written after the purge.
pub async fn lock_active_tenant(
    conn: &mut PgConnection,
    tenant_id: i64,
) -> Result<bool, StoreError> {
    let active: Option<bool> =
        sqlx::query_scalar("select status = 'active' from tenants where id = $1 for share")
            .bind(tenant_id)
            .fetch_optional(conn)
            .await?;
    Ok(active == Some(true))
}
