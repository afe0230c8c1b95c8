//! The token service: suite and corp access tokens cached in Postgres and refreshed by one
//! replica at a time (docs/architecture.md §4.4).
//!
//! Why in Postgres and not in memory: every replica of every worker needs the same token, and
//! WeCom rate-limits `gettoken`; N replicas each refreshing on their own is the stampede the SDKs
//! suffer from. The protocol, for both kinds of token:
//!
//! 1. Read the cached token without locking. If it is younger than 90 % of its lifetime, use it.
//! 2. Otherwise open a transaction and lock the owning row (`suites` for the suite token,
//!    `tenants` for a corp token: `select … for no key update`). Replicas that need the same
//!    token queue on that lock.
//! 3. Re-read the cache under the lock: the replica ahead in the queue has usually refreshed it,
//!    and then no WeCom call is made.
//! 4. Otherwise call WeCom, store the token (sealed), commit (releasing the lock).
//!
//! If the refresh fails transiently while the old token has not expired yet, the old token is
//! used. On 40014/42001 (corp) or 40082/42009 (suite) the failing token is invalidated only if it
//! is still the stored one (compare-and-delete by SHA-256), so a late error for an already
//! replaced token never kills its replacement; [`TokenService::with_corp_token`] and
//! [`TokenService::with_suite_token`] do that and retry the call once.
//!
//! The corp token comes from `gettoken` with the corp id and the tenant's permanent code, the
//! 代开发 app secret (docs/wecom.md §4.4). Tenants that are not `active` get no WeCom call at all.
//!
//! Each refresh holds one pooled connection for the duration of the WeCom call; size pools for
//! the number of refreshes that may run at once.

use std::fmt;
use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use wecom::api::{ApiError, Client, ErrorClass, TokenKind};

use crate::corp_tokens::{self, corp_token_row, store_corp_token};
use crate::error::StoreError;
use crate::ids::{CorpId, SuiteId};
use crate::secret::{SecretBox, SecretContext};
use crate::suites::{self, CachedToken, store_suite_token, suite_token_row};
use crate::tenants::{self, TenantStatus};

/// An access token handed to a WeCom call. Its `Debug` is redacted.
#[derive(Clone)]
pub struct Token {
    value: SecretString,
    expires_at: DateTime<Utc>,
}

impl Token {
    /// The token, to put into the `access_token` / `suite_access_token` query parameter.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// When WeCom will stop accepting it (as estimated when it was fetched).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token (or no result) could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The tenant does not exist.
    #[error("tenant {suite_id}/{corp_id} is unknown: no WeCom call made")]
    UnknownTenant {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
    },
    /// The tenant exists but is not `active`.
    #[error("tenant {suite_id}/{corp_id} is {status}, not active: no WeCom call made")]
    TenantNotActive {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
        /// Its status.
        status: TenantStatus,
    },
    /// No suite_ticket has been stored for the suite yet.
    #[error(
        "no suite_ticket stored for suite {0} yet: WeCom pushes one every 10 minutes (or force \
         one from the provider console)"
    )]
    NoSuiteTicket(SuiteId),
    /// WeCom refused or failed to issue the token.
    #[error("fetching the {kind} access token failed: {source}")]
    Fetch {
        /// `suite` or `corp`.
        kind: &'static str,
        /// WeCom's answer.
        #[source]
        source: ApiError,
    },
    /// The call made with the token failed (after the one retry a token error gets).
    #[error("WeCom call failed: {0}")]
    Call(#[source] ApiError),
    /// The database or a secret failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(err))
    }
}

impl TokenError {
    /// What a worker should do about it, in the vocabulary of WeCom errors: a missing ticket or a
    /// database hiccup is retryable, a tenant that is not active is broken, WeCom's own answers
    /// keep their class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::TenantNotActive { .. } => ErrorClass::TenantBroken,
            Self::NoSuiteTicket(_) => ErrorClass::Retryable,
            Self::Fetch { source, .. } | Self::Call(source) => source.class(),
            Self::Store(err) if err.is_transient() => ErrorClass::Retryable,
            Self::UnknownTenant { .. } | Self::Store(_) => ErrorClass::Permanent,
        }
    }

    /// WeCom's error, when WeCom answered one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Fetch { source, .. } | Self::Call(source) => Some(source),
            _ => None,
        }
    }
}

/// Suite and corp tokens for every replica of every worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenService {
    pool: PgPool,
    client: Client,
    secrets: SecretBox,
}

impl TokenService {
    /// A service over the database, the WeCom client and the secret keyring.
    pub fn new(pool: PgPool, client: Client, secrets: SecretBox) -> Self {
        Self {
            pool,
            client,
            secrets,
        }
    }

    /// The WeCom client the service calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The suite access token, from the cache or fetched with the stored ticket.
    pub async fn suite_token(
        &self,
        suite_id: &SuiteId,
        suite_secret: &SecretString,
    ) -> Result<Token, TokenError> {
        let mut conn = self.pool.acquire().await?;
        let row = suite_token_row(&mut conn, suite_id, false).await?;
        if let Some(row) = row
            && let Some(token) =
                self.fresh(row.token.as_ref(), row.now, &suite_context(suite_id))?
        {
            return Ok(token);
        }
        drop(conn);
        self.refresh_suite_token(suite_id, suite_secret).await
    }

    async fn refresh_suite_token(
        &self,
        suite_id: &SuiteId,
        suite_secret: &SecretString,
    ) -> Result<Token, TokenError> {
        let context = suite_context(suite_id);
        let mut tx = self.pool.begin().await?;
        let Some(row) = suite_token_row(&mut tx, suite_id, true).await? else {
            return Err(TokenError::NoSuiteTicket(suite_id.clone()));
        };
        if let Some(token) = self.fresh(row.token.as_ref(), row.now, &context)? {
            return Ok(token);
        }
        let Some(ticket) = suites::ticket(&mut tx, &self.secrets, suite_id).await? else {
            return Err(TokenError::NoSuiteTicket(suite_id.clone()));
        };
        let fetched = self
            .client
            .get_suite_token(
                suite_id.as_str(),
                suite_secret.expose_secret(),
                ticket.ticket.expose_secret(),
            )
            .await;
        match fetched {
            Ok(fetched) => {
                let expires_at = row.now + lifetime(fetched.expires_in);
                store_suite_token(
                    &mut tx,
                    &self.secrets,
                    suite_id,
                    &fetched.access_token,
                    row.now,
                    expires_at,
                )
                .await?;
                tx.commit().await?;
                tracing::info!(%suite_id, %expires_at, "suite access token refreshed");
                Ok(Token {
                    value: SecretString::from(fetched.access_token),
                    expires_at,
                })
            }
            Err(err) => self.fallback(row.token.as_ref(), row.now, &context, "suite", err),
        }
    }

    /// The corp access token of an `active` tenant, from the cache or fetched with `gettoken`
    /// (corp id + permanent code).
    pub async fn corp_token(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
    ) -> Result<Token, TokenError> {
        let context = corp_context(suite_id, corp_id);
        let mut conn = self.pool.acquire().await?;
        let row = corp_token_row(&mut conn, suite_id, corp_id).await?;
        let row = require_active(suite_id, corp_id, row.map(|r| (r.status, r)))?;
        if let Some(token) = self.fresh(row.token.as_ref(), row.now, &context)? {
            return Ok(token);
        }
        drop(conn);
        self.refresh_corp_token(suite_id, corp_id).await
    }

    async fn refresh_corp_token(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
    ) -> Result<Token, TokenError> {
        let context = corp_context(suite_id, corp_id);
        let mut tx = self.pool.begin().await?;
        let locked = tenants::secret_row(&mut tx, suite_id, corp_id, true).await?;
        let sealed_code = require_active(suite_id, corp_id, locked)?;
        let Some(row) = corp_token_row(&mut tx, suite_id, corp_id).await? else {
            return Err(unknown(suite_id, corp_id));
        };
        if let Some(token) = self.fresh(row.token.as_ref(), row.now, &context)? {
            return Ok(token);
        }
        let sealed_code = sealed_code.ok_or_else(|| StoreError::Corrupt {
            column: "tenants.permanent_code",
            detail: format!("active tenant {suite_id}/{corp_id} has no permanent code"),
        })?;
        let code = tenants::open_code(&self.secrets, suite_id, corp_id, &sealed_code)?;
        let fetched = self
            .client
            .get_token(corp_id.as_str(), code.expose_secret())
            .await;
        match fetched {
            Ok(fetched) => {
                let expires_at = row.now + lifetime(fetched.expires_in);
                store_corp_token(
                    &mut tx,
                    &self.secrets,
                    suite_id,
                    corp_id,
                    &fetched.access_token,
                    row.now,
                    expires_at,
                )
                .await?;
                tx.commit().await?;
                tracing::info!(%suite_id, %corp_id, %expires_at, "corp access token refreshed");
                Ok(Token {
                    value: SecretString::from(fetched.access_token),
                    expires_at,
                })
            }
            Err(err) => self.fallback(row.token.as_ref(), row.now, &context, "corp", err),
        }
    }

    /// Drops the cached corp token if it is still `failing` (see the module docs). Returns
    /// whether it was dropped.
    pub async fn invalidate_corp_token(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        failing: &Token,
    ) -> Result<bool, TokenError> {
        let mut conn = self.pool.acquire().await?;
        let dropped =
            corp_tokens::invalidate_corp_token(&mut conn, suite_id, corp_id, failing.expose())
                .await?;
        tracing::info!(%suite_id, %corp_id, dropped, "corp access token reported invalid");
        Ok(dropped)
    }

    /// Drops the cached suite token if it is still `failing`. Returns whether it was dropped.
    pub async fn invalidate_suite_token(
        &self,
        suite_id: &SuiteId,
        failing: &Token,
    ) -> Result<bool, TokenError> {
        let mut conn = self.pool.acquire().await?;
        let dropped = suites::invalidate_suite_token(&mut conn, suite_id, failing.expose()).await?;
        tracing::info!(%suite_id, dropped, "suite access token reported invalid");
        Ok(dropped)
    }

    /// Runs `call` with the tenant's corp token. If WeCom says the token is invalid or expired
    /// (40014/42001), invalidates it (compare-and-delete) and runs `call` once more with a fresh
    /// one. Any other error is returned as [`TokenError::Call`].
    pub async fn with_corp_token<T, F, Fut>(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        mut call: F,
    ) -> Result<T, TokenError>
    where
        F: FnMut(Token) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.corp_token(suite_id, corp_id).await?;
        match call(token.clone()).await {
            Err(err) if err.class() == ErrorClass::TokenExpired(TokenKind::Corp) => {
                tracing::info!(%suite_id, %corp_id, error = %err, "retrying with a fresh corp token");
                self.invalidate_corp_token(suite_id, corp_id, &token)
                    .await?;
                let token = self.corp_token(suite_id, corp_id).await?;
                call(token).await.map_err(TokenError::Call)
            }
            result => result.map_err(TokenError::Call),
        }
    }

    /// Runs `call` with the suite token; on 40082/42009 invalidates it (compare-and-delete) and
    /// runs `call` once more with a fresh one.
    pub async fn with_suite_token<T, F, Fut>(
        &self,
        suite_id: &SuiteId,
        suite_secret: &SecretString,
        mut call: F,
    ) -> Result<T, TokenError>
    where
        F: FnMut(Token) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.suite_token(suite_id, suite_secret).await?;
        match call(token.clone()).await {
            Err(err) if err.class() == ErrorClass::TokenExpired(TokenKind::Suite) => {
                tracing::info!(%suite_id, error = %err, "retrying with a fresh suite token");
                self.invalidate_suite_token(suite_id, &token).await?;
                let token = self.suite_token(suite_id, suite_secret).await?;
                call(token).await.map_err(TokenError::Call)
            }
            result => result.map_err(TokenError::Call),
        }
    }

    /// The cached token if it is younger than 90 % of its lifetime.
    fn fresh(
        &self,
        cached: Option<&CachedToken>,
        now: DateTime<Utc>,
        context: &SecretContext,
    ) -> Result<Option<Token>, StoreError> {
        match cached {
            Some(cached) if now < refresh_at(cached) => self.open(cached, context).map(Some),
            _ => Ok(None),
        }
    }

    /// After a failed refresh: the old token while it is still valid and the failure is
    /// transient, the failure otherwise.
    fn fallback(
        &self,
        cached: Option<&CachedToken>,
        now: DateTime<Utc>,
        context: &SecretContext,
        kind: &'static str,
        err: ApiError,
    ) -> Result<Token, TokenError> {
        match cached {
            Some(cached) if err.is_retryable() && now < cached.expires_at => {
                tracing::warn!(
                    token = kind,
                    error = %err,
                    expires_at = %cached.expires_at,
                    "token refresh failed; using the cached token until it expires"
                );
                Ok(self.open(cached, context)?)
            }
            _ => Err(TokenError::Fetch { kind, source: err }),
        }
    }

    fn open(&self, cached: &CachedToken, context: &SecretContext) -> Result<Token, StoreError> {
        let value = self.secrets.open(context, &cached.sealed)?;
        Ok(Token {
            value,
            expires_at: cached.expires_at,
        })
    }
}

/// When a cached token is due for refresh: at 90 % of its lifetime (WeCom: 7200 s, so 12 minutes
/// before it expires), keeping a margin for clock differences and in-flight calls.
fn refresh_at(cached: &CachedToken) -> DateTime<Utc> {
    let life = cached.expires_at - cached.refreshed_at;
    cached.refreshed_at + life * 9 / 10
}

/// `expires_in` as a duration, at least one second.
fn lifetime(expires_in: u64) -> TimeDelta {
    TimeDelta::seconds(
        i64::try_from(expires_in)
            .unwrap_or(i64::MAX)
            .clamp(1, 86_400 * 365),
    )
}

fn require_active<T>(
    suite_id: &SuiteId,
    corp_id: &CorpId,
    row: Option<(TenantStatus, T)>,
) -> Result<T, TokenError> {
    match row {
        None => Err(unknown(suite_id, corp_id)),
        Some((TenantStatus::Active, value)) => Ok(value),
        Some((status, _)) => Err(TokenError::TenantNotActive {
            suite_id: suite_id.clone(),
            corp_id: corp_id.clone(),
            status,
        }),
    }
}

fn unknown(suite_id: &SuiteId, corp_id: &CorpId) -> TokenError {
    TokenError::UnknownTenant {
        suite_id: suite_id.clone(),
        corp_id: corp_id.clone(),
    }
}

fn suite_context(suite_id: &SuiteId) -> SecretContext {
    SecretContext::suite_token(suite_id.as_str())
}

fn corp_context(suite_id: &SuiteId, corp_id: &CorpId) -> SecretContext {
    SecretContext::corp_token(suite_id.as_str(), corp_id.as_str())
}
