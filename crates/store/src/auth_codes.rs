//! `auth_codes`: every AuthCode (create_auth, reset_permanent_code) from arrival to outcome.
//!
//! An AuthCode is single-use and lives ten minutes. It is recorded on arrival
//! ([`record_auth_code`], idempotent), then exchanged by exactly one worker at a time:
//! [`claim_auth_code`] takes a *claim* on the row in one committed statement (a claim id and a
//! lease, [`CLAIM_LEASE`]) before the WeCom call, so no transaction is held open across HTTP,
//! and a duplicate delivery, a redelivery or the expiry sweep leaves a claimed code alone
//! ([`Claim::Busy`]) instead of burning it a second time.
//!
//! The outcome is written afterwards: [`mark_auth_code_exchanged`] in the transaction that stores
//! the permanent code (after [`lock_auth_code`] re-took the row, so a retried commit recognises
//! its own earlier success by the claim id), or [`mark_auth_code_failed`]. A permanent code in
//! hand is the truth: marking a code exchanged also overrides an earlier `failed` (another
//! worker's 40078 while this one's commit was being retried), keeping the superseded reason. The
//! code itself is sealed and kept only while it can still be exchanged.
//!
//! Rows are found by the SHA-256 of the code ([`AuthCodeHash`]), never by the code.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::{CorpId, SuiteId};
use crate::sealed::{from_columns, wecom_time};
use crate::secret::{SecretBox, SecretContext, sha256};

/// How long an AuthCode can be exchanged after WeCom issued it.
pub const AUTH_CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// How long a claim keeps others away from a code: longer than one exchange call with its
/// inline retries (four 10 s calls and the suite token), short enough that a claimant that died
/// mid-call leaves the code to a redelivery well within its life.
pub const CLAIM_LEASE: TimeDelta = TimeDelta::minutes(2);

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
    /// The latest claim (kept after the exchange: it tells whose exchange it was).
    pub claim_id: Option<Uuid>,
    /// Others leave the code alone until then.
    pub claimed_until: Option<DateTime<Utc>>,
    /// A `failed` outcome that an exchange by a claimant holding the permanent code overrode.
    pub superseded_failure: Option<String>,
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
    /// This claim; pass it to the outcome writes.
    pub claim_id: Uuid,
    /// Until when the claim keeps others away.
    pub claimed_until: DateTime<Utc>,
}

/// The result of [`claim_auth_code`].
#[derive(Debug)]
pub enum Claim {
    /// Exchange it now: the claim is committed, no transaction is held.
    Ready(ClaimedAuthCode),
    /// Another worker holds a claim on it (its exchange call may be in flight): try again after
    /// `until`, never call WeCom with it meanwhile.
    Busy {
        /// When that claim lapses.
        until: DateTime<Utc>,
    },
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

// Spliced into queries with `format!`, hence `AssertSqlSafe` there: the SQL text is built
// from constants only; every value is a bind parameter.
const COLUMNS: &str = "code_sha256, suite_id, kind, state, corp_id, wecom_time, received_at,
    expires_at, attempts, last_attempt_at, last_error, failure_reason, exchanged_at, failed_at,
    claim_id, claimed_until, superseded_failure";

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
    claim_id: Option<Uuid>,
    claimed_until: Option<DateTime<Utc>>,
    superseded_failure: Option<String>,
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
            claim_id: row.claim_id,
            claimed_until: row.claimed_until,
            superseded_failure: row.superseded_failure,
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
    let inserted: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "insert into auth_codes (code_sha256, suite_id, kind, state, code_ciphertext, code_nonce,
                                 code_key_id, wecom_time, received_at, expires_at)
         values ($1, $2, $3, 'received', $4, $5, $6, $7, $8, $9)
         on conflict (code_sha256) do nothing
         returning {COLUMNS}"
    )))
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
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from auth_codes where code_sha256 = $1"
    )))
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
    let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from auth_codes where $1::text is null or state = $1
         order by received_at desc limit $2"
    )))
    .bind(state.map(AuthCodeState::as_str))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(AuthCodeRecord::try_from).collect()
}

/// Claims a code for exchange, in one committed statement: a new claim id, the lease
/// ([`CLAIM_LEASE`] unless `lease` says otherwise) and one more attempt. Returns the code only
/// when it is `received`, unexpired and not claimed by anyone else; an expired, unclaimed code is
/// marked failed here ([`Claim::Expired`], returned once per code).
pub async fn claim_auth_code(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    hash: &AuthCodeHash,
    lease: TimeDelta,
) -> Result<Claim, StoreError> {
    let claim_id = Uuid::now_v7();
    let claimed: Option<SealedColumns> = sqlx::query_as(
        "update auth_codes set claim_id = $2, claimed_until = clock_timestamp() + $3,
             attempts = attempts + 1, last_attempt_at = clock_timestamp(), updated_at = now()
         where code_sha256 = $1 and state = 'received' and expires_at > clock_timestamp()
           and (claimed_until is null or claimed_until <= clock_timestamp())
         returning code_ciphertext, code_nonce, code_key_id",
    )
    .bind(hash.as_bytes().as_slice())
    .bind(claim_id)
    .bind(lease)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((ciphertext, nonce, key_id)) = claimed else {
        return unclaimable(conn, hash).await;
    };
    let opened = from_columns(ciphertext, nonce, key_id)
        .ok_or(StoreError::Corrupt {
            column: "auth_codes.code_ciphertext",
            detail: "a received code has no sealed code".to_owned(),
        })
        .and_then(|sealed| Ok(secrets.open(&SecretContext::auth_code(&hash.to_hex()), &sealed)?));
    let code = match opened {
        Ok(code) => code,
        Err(error) => {
            // Nothing was sent: let a worker that can open it have it at once.
            release_claim(conn, hash, claim_id).await?;
            return Err(error);
        }
    };
    let record = auth_code(conn, hash).await?.ok_or(StoreError::Corrupt {
        column: "auth_codes",
        detail: "a claimed row vanished".to_owned(),
    })?;
    Ok(Claim::Ready(ClaimedAuthCode {
        hash: record.hash,
        suite_id: record.suite_id,
        kind: record.kind,
        code,
        attempt: record.attempts,
        expires_at: record.expires_at,
        claim_id,
        claimed_until: record.claimed_until.unwrap_or(record.expires_at),
    }))
}

/// The sealed code's columns: ciphertext, nonce, key id.
type SealedColumns = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);

/// state, corp_id, failure_reason, claimed_until, claimed now, expired now.
type ClaimState = (
    String,
    Option<CorpId>,
    Option<String>,
    Option<DateTime<Utc>>,
    bool,
    bool,
);

/// Why a code could not be claimed.
async fn unclaimable(conn: &mut PgConnection, hash: &AuthCodeHash) -> Result<Claim, StoreError> {
    let row: Option<ClaimState> = sqlx::query_as(
        "select state, corp_id, failure_reason, claimed_until,
                    coalesce(claimed_until > clock_timestamp(), false),
                    expires_at <= clock_timestamp()
             from auth_codes where code_sha256 = $1",
    )
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((state, corp_id, reason, claimed_until, claimed, expired)) = row else {
        return Ok(Claim::NotFound);
    };
    match AuthCodeState::parse(&state)? {
        AuthCodeState::Exchanged => Ok(Claim::AlreadyExchanged { corp_id }),
        AuthCodeState::Failed => Ok(Claim::AlreadyFailed {
            reason: reason.unwrap_or_default(),
        }),
        AuthCodeState::Received if claimed => Ok(Claim::Busy {
            until: claimed_until.unwrap_or_else(Utc::now),
        }),
        AuthCodeState::Received if expired => match expire_unclaimed(conn, hash).await? {
            Some(record) => Ok(Claim::Expired(record)),
            // Claimed or settled in between: ask again shortly.
            None => Ok(Claim::Busy { until: Utc::now() }),
        },
        // The claim lapsed in between: ask again shortly.
        AuthCodeState::Received => Ok(Claim::Busy { until: Utc::now() }),
    }
}

/// Marks one expired, unclaimed code failed; `None` if it is not (any more).
async fn expire_unclaimed(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
) -> Result<Option<AuthCodeRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "update auth_codes set state = 'failed', failure_reason = $2,
             failed_at = clock_timestamp(), claimed_until = null,
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where code_sha256 = $1 and state = 'received' and expires_at <= clock_timestamp()
           and (claimed_until is null or claimed_until <= clock_timestamp())
         returning {COLUMNS}"
    )))
    .bind(hash.as_bytes().as_slice())
    .bind(EXPIRED_REASON)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AuthCodeRecord::try_from).transpose()
}

/// Gives a claim up (nothing was sent, or the call failed without using the code).
pub async fn release_claim(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    claim_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "update auth_codes set claimed_until = null, updated_at = now()
         where code_sha256 = $1 and claim_id = $2 and state = 'received'",
    )
    .bind(hash.as_bytes().as_slice())
    .bind(claim_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the code's row (`for update`) in the caller's transaction and returns it: the first
/// step of storing an exchange's result, so a retried commit sees what an earlier, maybe
/// committed, attempt left.
pub async fn lock_auth_code(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
) -> Result<Option<AuthCodeRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from auth_codes where code_sha256 = $1 for update"
    )))
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(AuthCodeRecord::try_from).transpose()
}

/// The `failure_reason` of a code that expired before it was exchanged.
pub const EXPIRED_REASON: &str = "expired: not exchanged within 10 minutes of issue";

/// Records a successful exchange under `claim_id`: state `exchanged`, the corp learned, the
/// sealed code deleted. Overrides a `failed` state (the permanent code is the proof; the old
/// reason is kept in `superseded_failure`); errors only when the code is already exchanged or
/// was never recorded.
pub async fn mark_auth_code_exchanged(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    corp_id: &CorpId,
    claim_id: Uuid,
) -> Result<AuthCodeRecord, StoreError> {
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "update auth_codes set state = 'exchanged', corp_id = $2, claim_id = $3,
             claimed_until = null, exchanged_at = clock_timestamp(),
             superseded_failure = case when state = 'failed' then failure_reason end,
             failure_reason = null, failed_at = null,
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where code_sha256 = $1 and state <> 'exchanged'
         returning {COLUMNS}"
    )))
    .bind(hash.as_bytes().as_slice())
    .bind(corp_id)
    .bind(claim_id)
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
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "update auth_codes set state = 'failed', failure_reason = $2,
             failed_at = clock_timestamp(), claimed_until = null,
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where code_sha256 = $1 and state = 'received'
         returning {COLUMNS}"
    )))
    .bind(hash.as_bytes().as_slice())
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    finish(conn, hash, row, "marking the code failed").await
}

/// Records a transient exchange failure (the caller will retry while the code is valid): the
/// error text, and the claim `claim_id` given up so the retry can claim it again at once.
/// `error` must not contain the code.
pub async fn record_auth_code_error(
    conn: &mut PgConnection,
    hash: &AuthCodeHash,
    claim_id: Uuid,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "update auth_codes set last_error = $2, last_attempt_at = clock_timestamp(),
             claimed_until = case when claim_id = $3 then null else claimed_until end,
             updated_at = now()
         where code_sha256 = $1 and state = 'received'",
    )
    .bind(hash.as_bytes().as_slice())
    .bind(error)
    .bind(claim_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks every unclaimed code still `received` past its deadline as failed ([`EXPIRED_REASON`])
/// and returns them, so a periodic sweep reports codes whose event was never processed — a code
/// is never silently lost. A claimed code is left to its claimant, who may hold its permanent
/// code already.
pub async fn fail_expired_auth_codes(
    conn: &mut PgConnection,
) -> Result<Vec<AuthCodeRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(format!(
        "update auth_codes set state = 'failed', failure_reason = $1,
             failed_at = clock_timestamp(),
             code_ciphertext = null, code_nonce = null, code_key_id = null, updated_at = now()
         where state = 'received' and expires_at <= clock_timestamp()
           and (claimed_until is null or claimed_until <= clock_timestamp())
         returning {COLUMNS}"
    )))
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
