//! `corp_tokens`: the cached access token of each tenant (`gettoken` with corpid + permanent
//! code), sealed. These are the statements of the corp-token refresh; when to run them, and the
//! WeCom call between them, is the `tokens` crate's refresh protocol.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgConnection;

use crate::error::StoreError;
use crate::ids::{CorpId, SuiteId};
use crate::sealed::CachedToken;
use crate::secret::{Sealed, SecretBox, SecretContext, sha256};
use crate::tenants::{self, TenantStatus};

/// What the corp-token path needs in one read: the tenant's status, its cached token, the
/// database clock (every replica judges freshness by the same clock).
#[derive(Debug)]
pub struct CorpTokenRow {
    /// The tenant's status.
    pub status: TenantStatus,
    /// The cached corp token, if there is one.
    pub token: Option<CachedToken>,
    /// The database clock when read.
    pub now: DateTime<Utc>,
}

/// Reads the tenant status and its cached token (no lock). `None` for an unknown tenant.
pub async fn cached_corp_token(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<Option<CorpTokenRow>, StoreError> {
    type Row = (
        String,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    );
    let row: Option<Row> = sqlx::query_as(
        "select t.status, c.token_ciphertext, c.token_nonce, c.token_key_id, c.expires_at,
                c.refreshed_at, clock_timestamp()
         from tenants t
         left join corp_tokens c on c.suite_id = t.suite_id and c.corp_id = t.corp_id
         where t.suite_id = $1 and t.corp_id = $2",
    )
    .bind(suite_id)
    .bind(corp_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(
        |(status, ciphertext, nonce, key_id, expires_at, refreshed_at, now)| {
            let token = CachedToken::from_columns(
                SecretContext::corp_token(suite_id.as_str(), corp_id.as_str()),
                ciphertext,
                nonce,
                key_id,
                expires_at,
                refreshed_at,
            );
            Ok(CorpTokenRow {
                status: TenantStatus::parse(&status)?,
                token,
                now,
            })
        },
    )
    .transpose()
}

/// A tenant row locked for a corp-token refresh: its status and its sealed permanent code.
#[derive(Debug)]
pub struct LockedTenant {
    /// The tenant's status.
    pub status: TenantStatus,
    suite_id: SuiteId,
    corp_id: CorpId,
    sealed_code: Option<Sealed>,
}

impl LockedTenant {
    /// The permanent code (the app secret `gettoken` takes), opened. An `active` tenant always
    /// has one; its absence is a corrupt row.
    pub fn permanent_code(&self, secrets: &SecretBox) -> Result<SecretString, StoreError> {
        let sealed = self
            .sealed_code
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt {
                column: "tenants.permanent_code",
                detail: format!(
                    "{} tenant {}/{} has no permanent code",
                    self.status, self.suite_id, self.corp_id
                ),
            })?;
        tenants::open_code(secrets, &self.suite_id, &self.corp_id, sealed)
    }
}

/// Locks the tenant's row (`for no key update`) until the caller's transaction ends: the lock
/// that serializes corp-token refreshes across replicas, and orders them with secret rotation
/// and revocation (which write the row). Pass a transaction. `None` for an unknown tenant.
pub async fn lock_tenant(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<Option<LockedTenant>, StoreError> {
    let row = tenants::secret_row(conn, suite_id, corp_id, true).await?;
    Ok(row.map(|(status, sealed_code)| LockedTenant {
        status,
        suite_id: suite_id.clone(),
        corp_id: corp_id.clone(),
        sealed_code,
    }))
}

/// Caches a freshly fetched corp token, sealed (replacing any previous one).
pub async fn store_corp_token(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    token: &str,
    refreshed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let context = SecretContext::corp_token(suite_id.as_str(), corp_id.as_str());
    let sealed = secrets.seal(&context, token)?;
    sqlx::query(
        "insert into corp_tokens (suite_id, corp_id, token_ciphertext, token_nonce, token_key_id,
                                  token_sha256, expires_at, refreshed_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (suite_id, corp_id) do update set
             token_ciphertext = excluded.token_ciphertext, token_nonce = excluded.token_nonce,
             token_key_id = excluded.token_key_id, token_sha256 = excluded.token_sha256,
             expires_at = excluded.expires_at, refreshed_at = excluded.refreshed_at",
    )
    .bind(suite_id)
    .bind(corp_id)
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

/// Drops the cached corp token if it is still `failing_token` (compare-and-delete,
/// docs/architecture.md §4.4: a late 40014 for a token that was already replaced must not kill
/// the replacement). Returns whether it was dropped.
pub async fn invalidate_corp_token(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    failing_token: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "delete from corp_tokens where suite_id = $1 and corp_id = $2 and token_sha256 = $3",
    )
    .bind(suite_id)
    .bind(corp_id)
    .bind(sha256(failing_token).as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// When a cached token stops working: a tenant's corp token, or a suite's token (`corp_id`
/// `None`), without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenExpiry {
    /// The suite.
    pub suite_id: SuiteId,
    /// The corp, for a corp token.
    pub corp_id: Option<CorpId>,
    /// When WeCom stops accepting it.
    pub expires_at: DateTime<Utc>,
    /// When it was fetched.
    pub refreshed_at: DateTime<Utc>,
    /// The database clock when read.
    pub now: DateTime<Utc>,
}

/// Every cached suite and corp token that expires before `now + within` (expired ones too),
/// soonest first (`daikai status`).
pub async fn tokens_expiring_within(
    conn: &mut PgConnection,
    within: std::time::Duration,
) -> Result<Vec<TokenExpiry>, StoreError> {
    type Row = (
        SuiteId,
        Option<CorpId>,
        DateTime<Utc>,
        DateTime<Utc>,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select suite_id, corp_id, expires_at, refreshed_at, now from (
           select suite_id, corp_id, expires_at, refreshed_at, clock_timestamp() as now
             from corp_tokens
           union all
           select suite_id, null, suite_token_expires_at, suite_token_refreshed_at,
                  clock_timestamp()
             from suites where suite_token_expires_at is not null
         ) t
         where expires_at < now + make_interval(secs => $1)
         order by expires_at",
    )
    .bind(within.as_secs_f64())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(suite_id, corp_id, expires_at, refreshed_at, now)| TokenExpiry {
                suite_id,
                corp_id,
                expires_at,
                refreshed_at,
                now,
            },
        )
        .collect())
}
