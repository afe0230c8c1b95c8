//! `jsapi_tickets`: the JS-SDK tickets of each tenant, sealed (the corp's jsapi_ticket and the
//! app's agent_config ticket). These are the statements of the ticket refresh; when to run them,
//! and the WeCom call between them, is the `tokens` crate's, as for corp tokens.
//!
//! A tenant's ticket row is created empty by the first refresh and then locked: that row lock,
//! not the tenant's, serializes ticket refreshes, because a ticket refresh may itself need a corp
//! token refresh, which locks the tenant row.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::StoreError;
use crate::ids::{CorpId, SuiteId};
use crate::sealed::CachedToken;
use crate::secret::{SecretBox, SecretContext};
use crate::tenants::TenantStatus;

/// Which ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// The corp's jsapi_ticket: signs `wx.config`.
    Corp,
    /// The app's agent_config ticket: signs `wx.agentConfig`.
    Agent,
}

impl TicketKind {
    /// The value stored in `jsapi_tickets.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Corp => "corp",
            Self::Agent => "agent",
        }
    }
}

impl fmt::Display for TicketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the ticket path needs in one read: the tenant's status, the cached ticket, the database
/// clock.
#[derive(Debug)]
pub struct TicketRow {
    /// The tenant's status.
    pub status: TenantStatus,
    /// The cached ticket, if there is one.
    pub ticket: Option<CachedToken>,
    /// The database clock when read.
    pub now: DateTime<Utc>,
}

type Row = (
    String,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

fn ticket_row(
    suite_id: &SuiteId,
    corp_id: &CorpId,
    kind: TicketKind,
    row: Row,
) -> Result<TicketRow, StoreError> {
    let (status, ciphertext, nonce, key_id, expires_at, refreshed_at, now) = row;
    Ok(TicketRow {
        status: TenantStatus::parse(&status)?,
        ticket: CachedToken::from_columns(
            SecretContext::jsapi_ticket(suite_id.as_str(), corp_id.as_str(), kind.as_str()),
            ciphertext,
            nonce,
            key_id,
            expires_at,
            refreshed_at,
        ),
        now,
    })
}

/// Reads the tenant status and its cached ticket (no lock). `None` for an unknown tenant.
pub async fn cached_ticket(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    kind: TicketKind,
) -> Result<Option<TicketRow>, StoreError> {
    let row: Option<Row> = sqlx::query_as(
        "select t.status, j.ticket_ciphertext, j.ticket_nonce, j.ticket_key_id, j.expires_at,
                j.refreshed_at, clock_timestamp()
         from tenants t
         left join jsapi_tickets j
           on j.suite_id = t.suite_id and j.corp_id = t.corp_id and j.kind = $3
         where t.suite_id = $1 and t.corp_id = $2",
    )
    .bind(suite_id)
    .bind(corp_id)
    .bind(kind.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| ticket_row(suite_id, corp_id, kind, row))
        .transpose()
}

/// Creates the tenant's ticket row if needed and locks it (`for update`) until the caller's
/// transaction ends: the lock that serializes refreshes of this ticket across replicas. Pass a
/// transaction. `None` for an unknown tenant.
pub async fn lock_ticket(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    kind: TicketKind,
) -> Result<Option<TicketRow>, StoreError> {
    sqlx::query(
        "insert into jsapi_tickets (suite_id, corp_id, kind)
         select suite_id, corp_id, $3 from tenants where suite_id = $1 and corp_id = $2
         on conflict do nothing",
    )
    .bind(suite_id)
    .bind(corp_id)
    .bind(kind.as_str())
    .execute(&mut *conn)
    .await?;
    let row: Option<Row> = sqlx::query_as(
        "select t.status, j.ticket_ciphertext, j.ticket_nonce, j.ticket_key_id, j.expires_at,
                j.refreshed_at, clock_timestamp()
         from jsapi_tickets j
         join tenants t on t.suite_id = j.suite_id and t.corp_id = j.corp_id
         where j.suite_id = $1 and j.corp_id = $2 and j.kind = $3
         for update of j",
    )
    .bind(suite_id)
    .bind(corp_id)
    .bind(kind.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| ticket_row(suite_id, corp_id, kind, row))
        .transpose()
}

/// Caches a freshly fetched ticket, sealed, on the row [`lock_ticket`] created.
#[allow(
    clippy::too_many_arguments,
    reason = "the row key, the value and its two times"
)]
pub async fn store_ticket(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    kind: TicketKind,
    ticket: &str,
    refreshed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let context = SecretContext::jsapi_ticket(suite_id.as_str(), corp_id.as_str(), kind.as_str());
    let sealed = secrets.seal(&context, ticket)?;
    let done = sqlx::query(
        "update jsapi_tickets set ticket_ciphertext = $4, ticket_nonce = $5, ticket_key_id = $6,
                expires_at = $7, refreshed_at = $8
         where suite_id = $1 and corp_id = $2 and kind = $3",
    )
    .bind(suite_id)
    .bind(corp_id)
    .bind(kind.as_str())
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.key_id)
    .bind(expires_at)
    .bind(refreshed_at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::TenantNotFound {
            suite_id: suite_id.to_string(),
            corp_id: corp_id.to_string(),
        });
    }
    Ok(())
}
