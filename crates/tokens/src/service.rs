//! [`TokenService`]: the refresh protocol of the crate docs, over `store`'s statements and
//! `wecom`'s client. The row lock of a refresh is held by its own transaction, on its own pooled
//! connection, for the duration of the WeCom call; see the crate docs for what that asks of
//! callers.

use std::future::Future;
use wecom::ids::Ticket;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use store::corp_tokens::{self, cached_corp_token, lock_tenant, store_corp_token};
use store::jsapi_tickets::{TicketKind, cached_ticket, lock_ticket, store_ticket};
use store::suites::{self, cached_suite_token, lock_suite_token, store_suite_token};
use store::tenants::TenantStatus;
use store::{CachedToken, CorpId, SecretBox, StoreError, SuiteId};
use wecom::api::{ApiError, Client, ErrorClass, TokenKind};

use crate::error::TokenError;
use crate::token::Token;

/// Suite and corp tokens for every replica of every worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenService {
    pool: PgPool,
    client: Client,
    secrets: SecretBox,
}

impl TokenService {
    /// A service over the database, the WeCom client and the secret keyring. Each refresh takes
    /// one connection of `pool` for the duration of its WeCom call (crate docs: size the pools).
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
        let row = cached_suite_token(&mut conn, suite_id).await?;
        if let Some(row) = row
            && let Some(token) = self.fresh(row.token.as_ref(), row.now)?
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
        let mut tx = self.pool.begin().await?;
        let Some(row) = lock_suite_token(&mut tx, suite_id).await? else {
            return Err(TokenError::NoSuiteTicket(suite_id.clone()));
        };
        if let Some(token) = self.fresh(row.token.as_ref(), row.now)? {
            return Ok(token);
        }
        let Some(ticket) = suites::ticket(&mut tx, &self.secrets, suite_id).await? else {
            return Err(TokenError::NoSuiteTicket(suite_id.clone()));
        };
        let ticket =
            Ticket::parse(ticket.ticket.expose_secret()).map_err(store::StoreError::from)?;
        // The row lock is held across this call: it is what keeps the other replicas waiting.
        let fetched = self
            .client
            .get_suite_token(suite_id, suite_secret.expose_secret(), &ticket)
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
                Ok(Token::fetched(
                    SecretString::from(fetched.access_token),
                    expires_at,
                ))
            }
            Err(err) => self.fallback(row.token.as_ref(), row.now, "suite", err),
        }
    }

    /// The corp access token of an `active` tenant, from the cache or fetched with `gettoken`
    /// (corp id + permanent code).
    pub async fn corp_token(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
    ) -> Result<Token, TokenError> {
        let mut conn = self.pool.acquire().await?;
        let row = cached_corp_token(&mut conn, suite_id, corp_id).await?;
        let row = require_active(suite_id, corp_id, row.map(|r| (r.status, r)))?;
        if let Some(token) = self.fresh(row.token.as_ref(), row.now)? {
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
        let mut tx = self.pool.begin().await?;
        let locked = lock_tenant(&mut tx, suite_id, corp_id).await?;
        let tenant = require_active(suite_id, corp_id, locked.map(|t| (t.status, t)))?;
        let Some(row) = cached_corp_token(&mut tx, suite_id, corp_id).await? else {
            return Err(unknown(suite_id, corp_id));
        };
        if let Some(token) = self.fresh(row.token.as_ref(), row.now)? {
            return Ok(token);
        }
        let code = tenant.permanent_code(&self.secrets)?;
        // The row lock is held across this call: it is what keeps the other replicas waiting.
        let fetched = self.client.get_token(corp_id, code.expose_secret()).await;
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
                Ok(Token::fetched(
                    SecretString::from(fetched.access_token),
                    expires_at,
                ))
            }
            Err(err) => self.fallback(row.token.as_ref(), row.now, "corp", err),
        }
    }

    /// A JS-SDK ticket of an `active` tenant (the corp's jsapi_ticket or the app's agent_config
    /// ticket), from the cache or fetched with the tenant's corp token: the same single-flight as
    /// corp tokens, over the ticket's own row lock (crate docs, "JS-SDK tickets").
    pub async fn jsapi_ticket(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        kind: TicketKind,
    ) -> Result<Token, TokenError> {
        let mut conn = self.pool.acquire().await?;
        let row = cached_ticket(&mut conn, suite_id, corp_id, kind).await?;
        let row = require_active(suite_id, corp_id, row.map(|r| (r.status, r)))?;
        if let Some(ticket) = self.fresh(row.ticket.as_ref(), row.now)? {
            return Ok(ticket);
        }
        drop(conn);
        // The corp token is had first, on its own connection, so that the ticket refresh below
        // holds one connection at a time; a token WeCom refuses is replaced once.
        let token = self.corp_token(suite_id, corp_id).await?;
        match self.refresh_ticket(suite_id, corp_id, kind, &token).await {
            Err(TokenError::Fetch { source, .. })
                if source.class() == ErrorClass::TokenExpired(TokenKind::Corp) =>
            {
                tracing::info!(%suite_id, %corp_id, ticket = %kind, error = %source,
                    "retrying the ticket with a fresh corp token");
                self.invalidate_corp_token(suite_id, corp_id, &token)
                    .await?;
                let token = self.corp_token(suite_id, corp_id).await?;
                self.refresh_ticket(suite_id, corp_id, kind, &token).await
            }
            result => result,
        }
    }

    async fn refresh_ticket(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        kind: TicketKind,
        token: &Token,
    ) -> Result<Token, TokenError> {
        let mut tx = self.pool.begin().await?;
        let locked = lock_ticket(&mut tx, suite_id, corp_id, kind).await?;
        let row = require_active(suite_id, corp_id, locked.map(|r| (r.status, r)))?;
        if let Some(ticket) = self.fresh(row.ticket.as_ref(), row.now)? {
            return Ok(ticket);
        }
        // The ticket row lock is held across this call: it keeps the other replicas waiting.
        let fetched = match kind {
            TicketKind::Corp => self.client.get_jsapi_ticket(token.expose()).await,
            TicketKind::Agent => self.client.get_agent_config_ticket(token.expose()).await,
        };
        let label = match kind {
            TicketKind::Corp => "corp jsapi ticket",
            TicketKind::Agent => "agent ticket",
        };
        match fetched {
            Ok(fetched) => {
                let expires_at = row.now + lifetime(fetched.expires_in);
                store_ticket(
                    &mut tx,
                    &self.secrets,
                    suite_id,
                    corp_id,
                    kind,
                    &fetched.ticket,
                    row.now,
                    expires_at,
                )
                .await?;
                tx.commit().await?;
                tracing::info!(%suite_id, %corp_id, ticket = %kind, %expires_at, "JS-SDK ticket refreshed");
                Ok(Token::fetched(
                    SecretString::from(fetched.ticket),
                    expires_at,
                ))
            }
            Err(err) => self.fallback(row.ticket.as_ref(), row.now, label, err),
        }
    }

    /// Drops the cached corp token if it is still `failing` (compare-and-delete, see the crate
    /// docs). Returns whether it was dropped.
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
    /// one. Any other error is returned as [`TokenError::Call`]. No connection is held while
    /// `call` runs.
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
    /// runs `call` once more with a fresh one. No connection is held while `call` runs.
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
    ) -> Result<Option<Token>, StoreError> {
        match cached {
            Some(cached) if now < refresh_at(cached) => self.open(cached).map(Some),
            _ => Ok(None),
        }
    }

    /// After a failed refresh: the old token while it is still valid and the failure is
    /// transient, the failure otherwise.
    fn fallback(
        &self,
        cached: Option<&CachedToken>,
        now: DateTime<Utc>,
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
                Ok(self.open(cached)?)
            }
            _ => Err(TokenError::Fetch { kind, source: err }),
        }
    }

    fn open(&self, cached: &CachedToken) -> Result<Token, StoreError> {
        Ok(Token::new(cached.open(&self.secrets)?, cached.expires_at))
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
