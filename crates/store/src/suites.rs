//! `suites`: per suite, the newest suite_ticket and the cached suite access token.
//!
//! The suite token's statements are here (read, lock, store, compare-and-delete); when to run
//! them, and the WeCom call between them, is the `tokens` crate's refresh protocol.
//!
//! The ticket is durable (a ticket lost on restart means no suite token for up to ten minutes)
//! and monotonic per suite (an older push, or another suite's push, never replaces it;
//! docs/architecture.md §4.3). "Newer" is decided by WeCom's own `TimeStamp`, never by arrival
//! order, because replicas consume pushes out of order.
//!
//! A stored `TimeStamp` further ahead of the database clock than [`FUTURE_SKEW`] is not trusted:
//! it came from a clock that ran ahead (or was moved), and honouring it would make every real
//! push "older" for as long as that clock was ahead, leaving the suite token to expire. The next
//! push replaces such a ticket whatever its own `TimeStamp`; from then on the order is WeCom's
//! again. A push is still stored however far ahead its own `TimeStamp` is: WeCom's ticket is the
//! valid one, only its time is not allowed to block the next.

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use sqlx::PgConnection;

use crate::error::StoreError;
use crate::ids::SuiteId;
use crate::sealed::{CachedToken, from_columns, wecom_time};
use crate::secret::{SecretBox, SecretContext, sha256};

/// A suite_ticket push to store. Its `Debug` omits the ticket.
#[derive(Clone, Copy)]
pub struct NewTicket<'a> {
    /// The suite it belongs to.
    pub suite_id: &'a SuiteId,
    /// The ticket itself (sealed before it is written).
    pub ticket: &'a str,
    /// The push's WeCom `TimeStamp` (unix seconds).
    pub wecom_time: i64,
    /// When daikai received the push (the envelope's `received_at`).
    pub received_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewTicket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTicket")
            .field("suite_id", &self.suite_id)
            .field("wecom_time", &self.wecom_time)
            .field("received_at", &self.received_at)
            .finish_non_exhaustive()
    }
}

/// The stored ticket of a suite.
#[derive(Debug)]
pub struct StoredTicket {
    /// The ticket.
    pub ticket: SecretString,
    /// Its WeCom `TimeStamp`.
    pub wecom_time: DateTime<Utc>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

/// How fresh a suite's ticket is, without opening it (for the ticket-age metric and alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketStatus {
    /// The suite.
    pub suite_id: SuiteId,
    /// WeCom `TimeStamp` of the stored ticket, if there is one.
    pub wecom_time: Option<DateTime<Utc>>,
    /// When it was received.
    pub received_at: Option<DateTime<Utc>>,
    /// The database clock when read; `now - wecom_time` is the ticket's age.
    pub now: DateTime<Utc>,
}

/// How far ahead of the database clock a stored ticket's WeCom `TimeStamp` may be and still
/// count: WeCom's clock and ours disagree by seconds, not minutes.
pub const FUTURE_SKEW: TimeDelta = TimeDelta::minutes(5);

/// Stores a ticket unless the suite already has one with the same or a newer WeCom `TimeStamp`
/// (a stored time more than [`FUTURE_SKEW`] ahead of the database clock does not count: any new
/// push replaces it). Returns `true` when the ticket was stored, `false` when it was older (or a
/// duplicate) and ignored. Creates the suite row on its first ticket.
pub async fn store_ticket(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    ticket: &NewTicket<'_>,
) -> Result<bool, StoreError> {
    let wecom_time = wecom_time(ticket.wecom_time)?;
    let sealed = secrets.seal(
        &SecretContext::suite_ticket(ticket.suite_id.as_str()),
        ticket.ticket,
    )?;
    let stored: Option<bool> = sqlx::query_scalar(
        "insert into suites as s (suite_id, ticket_ciphertext, ticket_nonce, ticket_key_id,
                                  ticket_wecom_time, ticket_received_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (suite_id) do update set
             ticket_ciphertext  = excluded.ticket_ciphertext,
             ticket_nonce       = excluded.ticket_nonce,
             ticket_key_id      = excluded.ticket_key_id,
             ticket_wecom_time  = excluded.ticket_wecom_time,
             ticket_received_at = excluded.ticket_received_at,
             updated_at         = now()
         where s.ticket_wecom_time is null
            or s.ticket_wecom_time < excluded.ticket_wecom_time
            or s.ticket_wecom_time > now() + make_interval(secs => $7)
         returning true",
    )
    .bind(ticket.suite_id)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.key_id)
    .bind(wecom_time)
    .bind(ticket.received_at)
    .bind(future_skew_secs())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(stored.is_some())
}

/// [`FUTURE_SKEW`] in seconds, as Postgres' `make_interval` takes them.
fn future_skew_secs() -> f64 {
    FUTURE_SKEW.as_seconds_f64()
}

/// The newest ticket of a suite, opened.
pub async fn ticket(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    suite_id: &SuiteId,
) -> Result<Option<StoredTicket>, StoreError> {
    type Row = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let row: Option<Row> = sqlx::query_as(
        "select ticket_ciphertext, ticket_nonce, ticket_key_id, ticket_wecom_time,
                ticket_received_at
         from suites where suite_id = $1",
    )
    .bind(suite_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((ciphertext, nonce, key_id, Some(wecom_time), Some(received_at))) = row else {
        return Ok(None);
    };
    let Some(sealed) = from_columns(ciphertext, nonce, key_id) else {
        return Ok(None);
    };
    let ticket = secrets.open(&SecretContext::suite_ticket(suite_id.as_str()), &sealed)?;
    Ok(Some(StoredTicket {
        ticket,
        wecom_time,
        received_at,
    }))
}

/// Ticket freshness of every known suite, ordered by suite id.
pub async fn ticket_statuses(conn: &mut PgConnection) -> Result<Vec<TicketStatus>, StoreError> {
    type Row = (
        SuiteId,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select suite_id, ticket_wecom_time, ticket_received_at, clock_timestamp()
             from suites order by suite_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(suite_id, wecom_time, received_at, now)| TicketStatus {
            suite_id,
            wecom_time,
            received_at,
            now,
        })
        .collect())
}

/// Drops the cached suite token if it is still `failing_token` (compare-and-delete: a late
/// error for a token that was already replaced leaves the replacement alone). Returns whether
/// it was dropped.
pub async fn invalidate_suite_token(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    failing_token: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "update suites set
             suite_token_ciphertext = null, suite_token_nonce = null, suite_token_key_id = null,
             suite_token_sha256 = null, suite_token_expires_at = null,
             suite_token_refreshed_at = null, updated_at = now()
         where suite_id = $1 and suite_token_sha256 = $2",
    )
    .bind(suite_id)
    .bind(sha256(failing_token).as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// What the suite-token refresh needs from a `suites` row: the cached token and the database
/// clock (every replica judges freshness by the same clock).
#[derive(Debug)]
pub struct SuiteTokenRow {
    /// The cached suite token, if there is one.
    pub token: Option<CachedToken>,
    /// The database clock when read.
    pub now: DateTime<Utc>,
}

/// Reads the cached suite token without locking. `None` when the suite has no row (no ticket
/// was ever stored).
pub async fn cached_suite_token(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
) -> Result<Option<SuiteTokenRow>, StoreError> {
    suite_token_row(conn, suite_id, false).await
}

/// Reads the cached suite token and locks the suite's row (`for no key update`) until the
/// caller's transaction ends: the lock that serializes suite-token refreshes across replicas.
/// Pass a transaction. `None` when the suite has no row.
pub async fn lock_suite_token(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
) -> Result<Option<SuiteTokenRow>, StoreError> {
    suite_token_row(conn, suite_id, true).await
}

async fn suite_token_row(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    lock: bool,
) -> Result<Option<SuiteTokenRow>, StoreError> {
    type Row = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    );
    let sql = if lock {
        "select suite_token_ciphertext, suite_token_nonce, suite_token_key_id,
                suite_token_expires_at, suite_token_refreshed_at, clock_timestamp()
         from suites where suite_id = $1 for no key update"
    } else {
        "select suite_token_ciphertext, suite_token_nonce, suite_token_key_id,
                suite_token_expires_at, suite_token_refreshed_at, clock_timestamp()
         from suites where suite_id = $1"
    };
    let row: Option<Row> = sqlx::query_as(sql)
        .bind(suite_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(
        |(ciphertext, nonce, key_id, expires_at, refreshed_at, now)| SuiteTokenRow {
            token: CachedToken::from_columns(
                SecretContext::suite_token(suite_id.as_str()),
                ciphertext,
                nonce,
                key_id,
                expires_at,
                refreshed_at,
            ),
            now,
        },
    ))
}

/// Caches a freshly fetched suite token (sealed) on the suite's row.
pub async fn store_suite_token(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    token: &str,
    refreshed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sealed = secrets.seal(&SecretContext::suite_token(suite_id.as_str()), token)?;
    sqlx::query(
        "update suites set
             suite_token_ciphertext = $2, suite_token_nonce = $3, suite_token_key_id = $4,
             suite_token_sha256 = $5, suite_token_expires_at = $6,
             suite_token_refreshed_at = $7, updated_at = now()
         where suite_id = $1",
    )
    .bind(suite_id)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.key_id)
    .bind(sha256(token).as_slice())
    .bind(expires_at)
    .bind(refreshed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_new_ticket_omits_the_ticket() {
        let suite = SuiteId::parse("dk1").unwrap();
        let push = NewTicket {
            suite_id: &suite,
            ticket: "SECRET-TICKET",
            wecom_time: 1,
            received_at: Utc::now(),
        };
        let debug = format!("{push:?}");
        assert!(
            debug.contains("dk1") && !debug.contains("SECRET-TICKET"),
            "{debug}"
        );
    }
}
