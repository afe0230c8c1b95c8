//! WeCom's frequency limits, shared by every replica (`api_quota`).
//!
//! WeCom limits calls per corp and per API within a window and answers 45009 once a corp is over,
//! for the rest of its window. Replicas reserve calls in chunks from a per-minute counter, so
//! together they stay under the budget; when a call meets 45009 anyway, [`block`] makes every
//! replica hold off that API for the corp until the given time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use wecom::ids::CorpId;

use crate::error::StoreError;

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The calls are granted until `until` (the end of the current window).
    Granted {
        /// End of the window the calls belong to.
        until: DateTime<Utc>,
    },
    /// The window's budget is spent, or the API is blocked after a 45009: wait until `until`.
    Exhausted {
        /// When to try again.
        until: DateTime<Utc>,
        /// The database clock now.
        now: DateTime<Utc>,
    },
}

/// Reserves `calls` calls of `api` for the corp in the current minute, within `limit` per minute.
pub async fn reserve(
    conn: &mut PgConnection,
    corp_id: &CorpId,
    api: &str,
    calls: i32,
    limit: i32,
) -> Result<Reservation, StoreError> {
    let (granted, window_end, blocked_until, now): (
        bool,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "with slot as (select date_trunc('minute', clock_timestamp()) as start),
         blocked as (
           select max(blocked_until) as until from api_quota
           where corp_id = $1 and api = $2 and blocked_until > clock_timestamp()
         ),
         reserved as (
           insert into api_quota as q (corp_id, api, window_start, calls)
           select $1, $2, start, $3 from slot, blocked where $3 <= $4 and blocked.until is null
           on conflict (corp_id, api, window_start) do update set calls = q.calls + excluded.calls
           where q.calls + excluded.calls <= $4
           returning 1
         )
         select exists (select 1 from reserved), start + interval '1 minute', blocked.until,
                clock_timestamp()
         from slot, blocked",
    )
    .bind(corp_id)
    .bind(api)
    .bind(calls)
    .bind(limit)
    .fetch_one(conn)
    .await?;
    Ok(if granted {
        Reservation::Granted { until: window_end }
    } else {
        Reservation::Exhausted {
            until: blocked_until.unwrap_or(window_end),
            now,
        }
    })
}

/// Records that WeCom answered 45009 for the corp's `api`: no replica calls it for `hold` from now.
pub async fn block(
    conn: &mut PgConnection,
    corp_id: &CorpId,
    api: &str,
    hold: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into api_quota (corp_id, api, window_start, blocked_until)
         values ($1, $2, date_trunc('minute', clock_timestamp()),
                 clock_timestamp() + make_interval(secs => $3))
         on conflict (corp_id, api, window_start) do update
           set blocked_until = greatest(api_quota.blocked_until, excluded.blocked_until)",
    )
    .bind(corp_id)
    .bind(api)
    .bind(hold.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes windows that ended more than an hour ago.
pub async fn prune(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "delete from api_quota where window_start < now() - interval '1 hour'
           and (blocked_until is null or blocked_until < now())",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
