//! `inbox`: exact dedupe of consumed messages (ARCHITECTURE §4.2).
//!
//! A consumer inserts `(consumer, dedupe_key)` in the same transaction as the message's effect.
//! The first delivery inserts and applies; a redelivery (broker) or a re-push (WeCom retries with
//! the same plaintext, hence the same key) finds the row, applies nothing and is acknowledged.
//! Because the insert commits or rolls back with the effect, a crash between the two cannot lose
//! or double an effect.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

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

/// Deletes entries processed before `older_than`; returns how many. Keep entries for longer than
/// any redelivery can take (WeCom retries within minutes; a dead-lettered message replayed by an
/// operator may come days later), e.g. 30 days.
pub async fn prune(conn: &mut PgConnection, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("delete from inbox where processed_at < $1")
        .bind(older_than)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
