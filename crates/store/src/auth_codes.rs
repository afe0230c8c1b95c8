//! `auth_codes`: every AuthCode (create_auth, reset_permanent_code) from arrival to outcome.
//!
//! An AuthCode is single-use and lives ten minutes (PITFALLS 10). It is recorded on arrival
//! ([`record_auth_code`], idempotent), then exchanged by exactly one worker: [`claim_auth_code`]
//! locks the row (`select … for update`) inside the caller's transaction, so a duplicate delivery
//! on another replica waits and then sees the outcome instead of burning the code a second time.
//! The outcome is written in the same transaction ([`mark_auth_code_exchanged`] together with the
//! tenant write, or [`mark_auth_code_failed`]). The code itself is sealed and kept only while it
//! can still be exchanged.
//!
//! Rows are found by the SHA-256 of the code ([`AuthCodeHash`]), never by the code.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgConnection;

use crate::error::StoreError;
use crate::ids::{CorpId, SuiteId};
use crate::sealed::{from_columns, wecom_time};
use crate::secret::{SecretBox, SecretContext, sha256};

/// How long an AuthCode can be exchanged after WeCom issued it.
pub const AUTH_CODE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The SHA-256 of an AuthCode: the row key. Its `Display` shows the first 12 hex digits, enough
/// to correlate log lines with rows without revealing anything.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthCodeHash([u8; 32]);

impl AuthCodeHash {
    /// The hash of a code.
    pub fn of(code: &str) -> Self {
        Self(sha256(code))
    }

    /// Parses the full 64-digit hex form (as `daikai auth-codes list` prints it).
    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(text)
            .map_err(|_| StoreError::invalid("AuthCode hash", "not hexadecimal"))?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| StoreError::invalid("AuthCode hash", "not 32 bytes"))
    }

    /// The full hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw bytes (the `code_sha256` column).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for AuthCodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..6]))
    }
}

impl fmt::Debug for AuthCodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthCodeHash({self})")
    }
}

/// Which event delivered the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthCodeKind {
    /// A corp authorized the template: the exchange creates the tenant.
    CreateAuth,
    /// The provider asked for a new secret: the exchange rotates the tenant's code.
    ResetPermanentCode,
}

impl AuthCodeKind {
    /// The value stored in `auth_codes.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateAuth => "create_auth",
            Self::ResetPermanentCode => "reset_permanent_code",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "create_auth" => Ok(Self::CreateAuth),
            "reset_permanent_code" => Ok(Self::ResetPermanentCode),
            other => Err(StoreError::Corrupt {
                column: "auth_codes.kind",
                detail: format!("unknown kind {other:?}"),
            }),
        }
    }
}

/// Where a code is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthCodeState {
    /// Persisted, not exchanged yet.
    Received,
    /// Exchanged for a permanent code (terminal).
    Exchanged,
    /// Burnt, expired or refused (terminal); `failure_reason` says why.
    Failed,
}

impl AuthCodeState {
    /// The value stored in `auth_codes.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Exchanged => "exchanged",
            Self::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "received" => Ok(Self::Received),
            "exchanged" => Ok(Self::Exchanged),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt {
                column: "auth_codes.state",
                detail: format!("unknown state {other:?}"),
            }),
        }
    }
}

/// An AuthCode as delivered. Its `Debug` shows the code's hash prefix, not the code.
#[derive(Clone, Copy)]
pub struct NewAuthCode<'a> {
    /// The suite that received it.
    pub suite_id: &'a SuiteId,
    /// create_auth or reset_permanent_code.
    pub kind: AuthCodeKind,
    /// The code (sealed before it is written).
    pub code: &'a str,
    /// The event's WeCom `TimeStamp`; the code expires ten minutes after it.
    pub wecom_time: i64,
    /// When daikai received the push.
    pub received_at: DateTime<Utc>,
}

impl fmt::Debug for NewAuthCode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAuthCode")
            .field("suite_id", &self.suite_id)
            .field("kind", &self.kind)
            .field("hash", &AuthCodeHash::of(self.code))
            .field("wecom_time", &self.wecom_time)
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// A row, without the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCodeRecord {
    /// The row key.
    pub hash: AuthCodeHash,
    /// The suite.
    pub suite_id: SuiteId,
    /// Which event delivered it.
    pub kind: AuthCodeKind,
    /// Where it is in its life.
    pub state: AuthCodeState,
    /// The corp, once the exchange told it.
    pub corp_id: Option<CorpId>,
    /// The event's WeCom time.
    pub wecom_time: Option<DateTime<Utc>>,
    /// Arrival.
    pub received_at: DateTime<Utc>,
    /// After this it can no longer be exchanged.
    pub expires_at: DateTime<Utc>,
    /// Exchange attempts made.
    pub attempts: i32,
    /// Last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last transient error.
    pub last_error: Option<String>,
    /// Why it failed, when `Failed`.
    pub failure_reason: Option<String>,
    /// When it was exchanged.
    pub exchanged_at: Option<DateTime<Utc>>,
    /// When it failed.
    pub failed_at: Option<DateTime<Utc>>,
}

/// A code ready to be exchanged; its row stays locked until the caller's transaction ends.
#[derive(Debug)]
pub struct ClaimedAuthCode {
    /// The row key.
    pub hash: AuthCodeHash,
    /// The suite.
    pub suite_id: SuiteId,
    /// Which event delivered it.
    pub kind: AuthCodeKind,
    /// The code, to pass to `get_permanent_code`.
    pub code: SecretString,
    /// Which attempt this is (1 for the first).
    pub attempt: i32,
    /// The code's deadline.
    pub expires_at: DateTime<Utc>,
}

/// The result of [`claim_auth_code`].
#[derive(Debug)]
pub enum Claim {
    /// Exchange it now, in this transaction.
    Ready(ClaimedAuthCode),
    /// Already exchanged (a duplicate delivery): nothing to do.
    AlreadyExchanged {
        /// The corp the exchange was for.
        corp_id: Option<CorpId>,
    },
    /// Already failed earlier: nothing to do (it was reported then).
    AlreadyFailed {
        /// Why.
        reason: String,
    },
    /// It expired before anyone exchanged it; this call marked it failed. Returned once per code,
    /// so the caller reports it (log + metric) exactly once.
    Expired(AuthCodeRecord),
    /// No such code was recorded.
    NotFound,
}

const COLUMNS: &str = "code_sha256, suite_id, kind, state, corp_id, wecom_time, received_at,
    expires_at, attempts, last_attempt_at, last_error, failure_reason, exchanged_at, failed_at";

#[derive(sqlx::FromRow)]
struct Row {
    code_sha256: Vec<u8>,
    suite_id: SuiteId,
    kind: String,
    state: String,
    corp_id: Option<CorpId>,
    wecom_time: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    attempts: i32,
    last_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    failure_reason: Option<String>,
    exchanged_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

impl TryFrom<Row> for AuthCodeRecord {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        let hash =
            <[u8; 32]>::try_from(row.code_sha256.as_slice()).map_err(|_| StoreError::Corrupt {
                column: "auth_codes.code_sha256",
                detail: "not 32 bytes".to_owned(),
            })?;
        Ok(Self {
            hash: AuthCodeHash(hash),
            suite_id: row.suite_id,
            kind: AuthCodeKind::parse(&row.kind)?,
            state: AuthCodeState::parse(&row.state)?,
            corp_id: row.corp_id,
            wecom_time: row.wecom_time,
            received_at: row.received_at,
            expires_at: row.expires_at,
            attempts: row.attempts,
            last_attempt_at: row.last_attempt_at,
            last_error: row.last_error,
            failure_reason: row.failure_reason,
            exchanged_at: row.exchanged_at,
            failed_at: row.failed_at,
        })
    }
}

/// Records a code on arrival. Idempotent: a redelivery finds the row and changes nothing.
/// Returns the row and whether this call created it.
pub async fn record_auth_code(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    code: &NewAuthCode<'_>,
) -> Result<(AuthCodeRecord, bool), StoreError> {
    let hash = AuthCodeHash::of(code.code);
    let issued = wecom_time(code.wecom_time)?;
    let sealed = secrets.seal(&SecretContext::auth_code(&hash.to_hex()), code.code)?;
    let inserted: Option<Row> = sqlx::query_as(&format!(
        "insert into auth_codes (code_sha256, suite_id, kind, state, code_ciphertext, code_nonce,
                                 code_key_id, wecom_time, received_at, expires_at)
         values ($1, $2, $3, 'received', $4, $5, $6, $7, $8, $9)
         on conflict (code_sha256) do nothing
         returning {COLUMNS}"
    ))
    .bind(hash.as_bytes().as_slice())
    .bind(code.suite_id)
    .bind(code.kind.as_str())
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.key_id)
    .bind(issued)
    .bind(code.received_at)
    .bind(issued + AUTH_CODE_LIFETIME)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok((AuthCodeRecord::try_from(row)?, true));
    }
    let existing = auth_code(conn, &hash)
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            column: "auth_codes",
            detail: "a conflicting row vanished during insert".to_owned(),
        })?;
    Ok((existing, false))
}

/// One code's row.
pub async fn auth_code(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
) -> Result<Option<AuthCodeRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from auth_codes where code_sha256 = $1"
    ))
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AuthCodeRecord::try_from).transpose()
}

/// Recent codes, newest first, optionally of one state.
pub async fn list_auth_codes(
    conn: &mut PgConnection,
    state: Option<AuthCodeState>,
    limit: i64,
) -> Result<Vec<AuthCodeRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from auth_codes where $1::text is null or state = $1
         order by received_at desc limit $2"
    ))
    .bind(state.map(AuthCodeState::as_str))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(AuthCodeRecord::try_from).collect()
}

/// Claims a code for exchange. **Call inside a transaction**: the row lock (`for update`) is what
/// keeps a second replica from exchanging the same code; it is held until commit or rollback,
/// and the outcome must be written in that same transaction. Counts the attempt.
pub async fn claim_auth_code(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    hash: &AuthCodeHash,
) -> Result<Claim, StoreError> {
    type Locked = (
        String,
        Option<CorpId>,
        Option<String>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        bool,
    );
    let locked: Option<Locked> = sqlx::query_as(
        "select state, corp_id, failure_reason, code_ciphertext, code_nonce, code_key_id,
                expires_at <= clock_timestamp()
         from auth_codes where code_sha256 = $1 for update",
    )
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((state, corp_id, reason, ciphertext, nonce, key_id, expired)) = locked else {
        return Ok(Claim::NotFound);
    };
    match AuthCodeState::parse(&state)? {
        AuthCodeState::Exchanged => return Ok(Claim::AlreadyExchanged { corp_id }),
        AuthCodeState::Failed => {
            return Ok(Claim::AlreadyFailed {
                reason: reason.unwrap_or_default(),
            });
        }
        AuthCodeState::Received => {}
    }
    if expired {
        let record = mark_failed(conn, hash, EXPIRED_REASON).await?;
        return Ok(Claim::Expired(record));
    }
    let sealed = from_columns(ciphertext, nonce, key_id).ok_or(StoreError::Corrupt {
        column: "auth_codes.code_ciphertext",
        detail: "a received code has no sealed code".to_owned(),
    })?;
    let code = secrets.open(&SecretContext::auth_code(&hash.to_hex()), &sealed)?;
    let row: Row = sqlx::query_as(&format!(
        "update auth_codes set attempts = attempts + 1, last_attempt_at = clock_timestamp(),
             updated_at = now()
         where code_sha256 = $1 returning {COLUMNS}"
    ))
    .bind(hash.as_bytes().as_slice())
    .fetch_one(&mut *conn)
    .await?;
    let record = AuthCodeRecord::try_from(row)?;
    Ok(Claim::Ready(ClaimedAuthCode {
        hash: record.hash,
        suite_id: record.suite_id,
        kind: record.kind,
        code,
        attempt: record.attempts,
        expires_at: record.expires_at,
    }))
}

/// The `failure_reason` of a code that expired before it was exchanged.
pub const EXPIRED_REASON: &str = "expired: not exchanged within 10 minutes of issue";

/// Records a successful exchange: state `exchanged`, the corp learned, the sealed code deleted.
pub async fn mark_auth_code_exchanged(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    corp_id: &CorpId,
) -> Result<AuthCodeRecord, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "update auth_codes set state = 'exchanged', corp_id = $2, exchanged_at = clock_timestamp(),
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where code_sha256 = $1 and state = 'received'
         returning {COLUMNS}"
    ))
    .bind(hash.as_bytes().as_slice())
    .bind(corp_id)
    .fetch_optional(&mut *conn)
    .await?;
    finish(conn, hash, row, "marking the code exchanged").await
}

/// Records a terminal failure (burnt code 40078, expiry, a permanent WeCom error): state
/// `failed` with `reason`, the sealed code deleted. `reason` must not contain the code.
pub async fn mark_auth_code_failed(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    reason: &str,
) -> Result<AuthCodeRecord, StoreError> {
    mark_failed(conn, hash, reason).await
}

async fn mark_failed(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    reason: &str,
) -> Result<AuthCodeRecord, StoreError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "update auth_codes set state = 'failed', failure_reason = $2,
             failed_at = clock_timestamp(),
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where code_sha256 = $1 and state = 'received'
         returning {COLUMNS}"
    ))
    .bind(hash.as_bytes().as_slice())
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    finish(conn, hash, row, "marking the code failed").await
}

/// Records a transient exchange failure (the caller will retry while the code is valid): one
/// more attempt and the error text. Use it on a connection *outside* the transaction that was
/// rolled back, or the record is rolled back with it. `error` must not contain the code.
pub async fn record_auth_code_error(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "update auth_codes set attempts = attempts + 1, last_attempt_at = clock_timestamp(),
             last_error = $2, updated_at = now()
         where code_sha256 = $1 and state = 'received'",
    )
    .bind(hash.as_bytes().as_slice())
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks every code still `received` past its deadline as failed ([`EXPIRED_REASON`]) and
/// returns them, so a periodic sweep reports codes whose event was never processed — a code is
/// never silently lost.
pub async fn fail_expired_auth_codes(
    conn: &mut PgConnection,
) -> Result<Vec<AuthCodeRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "update auth_codes set state = 'failed', failure_reason = $1,
             failed_at = clock_timestamp(),
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where state = 'received' and expires_at <= clock_timestamp()
         returning {COLUMNS}"
    ))
    .bind(EXPIRED_REASON)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(AuthCodeRecord::try_from).collect()
}

async fn finish(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    row: Option<Row>,
    action: &'static str,
) -> Result<AuthCodeRecord, StoreError> {
    if let Some(row) = row {
        return AuthCodeRecord::try_from(row);
    }
    match auth_code(conn, hash).await? {
        None => Err(StoreError::invalid(
            "AuthCode",
            format!("{action}: code {hash} was never recorded"),
        )),
        Some(record) => Err(StoreError::invalid(
            "AuthCode",
            format!("{action}: code {hash} is already {}", record.state.as_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_code() {
        let suite = SuiteId::parse("dk1").unwrap();
        let code = NewAuthCode {
            suite_id: &suite,
            kind: AuthCodeKind::CreateAuth,
            code: "SECRET-AUTH-CODE",
            wecom_time: 1,
            received_at: Utc::now(),
        };
        let hash = AuthCodeHash::of("SECRET-AUTH-CODE");
        let debug = format!("{code:?} {hash} {hash:?}");
        assert!(!debug.contains("SECRET-AUTH-CODE"), "{debug}");
        assert!(debug.contains(&hash.to_string()));
        assert_eq!(hash.to_string().len(), 12);
        assert_eq!(AuthCodeHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert!(AuthCodeHash::from_hex("abc").is_err());
    }
}
