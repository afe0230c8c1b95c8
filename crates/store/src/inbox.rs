//! `inbox`: exact dedupe of consumed messages (docs/architecture.md §4.2).
//!
//! A consumer inserts `(consumer, dedupe_key)` in the same transaction as the message's effect.
//! The first delivery inserts and applies; a redelivery (broker) or a re-push (WeCom retries with
//! the same plaintext, hence the same key) finds the row, applies nothing and is acknowledged.
//! Because the insert commits or rolls back with the effect, a crash between the two cannot lose
//! or double an effect.
//!
//! Entries are kept for a retention period and then pruned ([`prune_expired`], run by the auth
//! worker's sweep): one replica at a time (an advisory lock), in short batches.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};

use crate::error::StoreError;

/// Records that `consumer` processed `dedupe_key`. Returns `true` the first time, `false` when
/// it was already recorded (a duplicate: skip the effect). Call it inside the effect's
/// transaction, before the effect.
pub async fn record(
    conn: &mut PgConnection,
    consumer: &str,
    dedupe_key: &str,
) -> Result<bool, StoreError> {
    if consumer.is_empty() || dedupe_key.is_empty() {
        return Err(StoreError::invalid(
            "inbox entry",
            "consumer and dedupe key must be non-empty",
        ));
    }
    let done = sqlx::query(
        "insert into inbox (consumer, dedupe_key) values ($1, $2)
         on conflict (consumer, dedupe_key) do nothing",
    )
    .bind(consumer)
    .bind(dedupe_key)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes entries processed before `older_than` in one statement; returns how many. Keep
/// entries for longer than any redelivery can take (WeCom retries within minutes; a
/// dead-lettered message replayed by an operator may come days later). Services use
/// [`prune_expired`], which bounds its transactions and runs on one replica at a time.
pub async fn prune(conn: &mut PgConnection, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("delete from inbox where processed_at < $1")
        .bind(older_than)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// The Postgres advisory lock (`pg_try_advisory_xact_lock`) held by each prune transaction, so
/// that only one replica prunes at a time. The bytes of `daikai` followed by 1.
pub const PRUNE_LOCK: i64 = 0x6461_696b_6169_0001;

/// What one [`prune_expired`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// This call pruned `rows` entries in `batches` transactions (`rows` is 0 when nothing was
    /// old enough). It stops early, without error, when another replica takes the lock
    /// between two batches.
    Done {
        /// Entries deleted.
        rows: u64,
        /// Transactions run.
        batches: u32,
    },
    /// Another replica holds the prune lock: nothing was done.
    Busy,
}

/// Deletes the entries of every consumer processed longer than `retention` ago (by the database
/// clock), at most `batch` per transaction and `max_batches` transactions per call, so a large
/// backlog never holds one long transaction and a call returns in bounded time (the next call
/// continues). Each transaction first takes [`PRUNE_LOCK`] with `pg_try_advisory_xact_lock`; if
/// another replica holds it, the call stops. Keep `retention` longer than any redelivery can
/// take: an entry pruned before its message is redelivered lets that message apply twice.
pub async fn prune_expired(
    pool: &PgPool,
    retention: TimeDelta,
    batch: i64,
    max_batches: u32,
) -> Result<Pruned, StoreError> {
    let batch = batch.max(1);
    let full = u64::try_from(batch).unwrap_or(u64::MAX);
    let (mut rows, mut batches) = (0, 0);
    while batches < max_batches.max(1) {
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(PRUNE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            tx.rollback().await?;
            return Ok(if batches == 0 {
                Pruned::Busy
            } else {
                Pruned::Done { rows, batches }
            });
        }
        let done = sqlx::query(
            "delete from inbox where (consumer, dedupe_key) in (
                 select consumer, dedupe_key from inbox
                 where processed_at < now() - make_interval(secs => $1)
                 order by processed_at limit $2)",
        )
        .bind(retention.as_seconds_f64())
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        batches += 1;
        rows += done.rows_affected();
        if done.rows_affected() < full {
            break;
        }
    }
    Ok(Pruned::Done { rows, batches })
}
