//! [`TokenService`]: the refresh protocol of the crate docs, over `store`'s statements and
//! `wecom`'s client. The row lock of a refresh is held by its own transaction, on its own pooled
//! connection, for the duration of the WeCom call; see the crate docs for what that asks of
//! callers.

use std::future::Future;
use std::sync::Arc;
use wecom::ids::Ticket;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{PgPool, Postgres, Transaction};
use store::corp_tokens::{self, LockedTenant, cached_corp_token, lock_tenant, store_corp_token};
use store::jsapi_tickets::{TicketKind, cached_ticket, lock_ticket, store_ticket};
use store::suites::{self, cached_suite_token, lock_suite_token, store_suite_token};
use store::tenants::TenantStatus;
use store::{CachedToken, CorpId, SecretBox, StoreError, SuiteId};
use wecom::api::{ApiError, Client, ErrorClass, TokenKind};

use crate::error::TokenError;
use crate::observe::{RefreshKind, RefreshObserver};
use crate::token::Token;

/// Suite and corp tokens for every replica of every worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenService {
    pool: PgPool,
    client: Client,
    secrets: SecretBox,
    observer: Option<Arc<dyn RefreshObserver>>,
}

impl TokenService {
    /// A service over the database, the WeCom client and the secret keyring. Each refresh takes
    /// one connection of `pool` for the duration of its WeCom call (crate docs: size the pools).
    pub fn new(pool: PgPool, client: Client, secrets: SecretBox) -> Self {
        Self {
            pool,
            client,
            secrets,
            observer: None,
        }
    }

    /// This service, telling `observer` of every refresh it attempts and how it ended (the
    /// services' `daikai_token_refreshes_total`). Replaces any observer set before.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn RefreshObserver>) -> Self {
        self.observer = Some(observer);
        self
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
            // No suites row: no ticket was ever stored, so the token cannot be refreshed.
            let refresh = Refresh {
                kind: RefreshKind::Suite,
                suite_id,
                corp_id: None,
            };
            let err = TokenError::NoSuiteTicket(suite_id.clone());
            return self.settle(&refresh, None, Utc::now(), Err(err));
        };
        if let Some(token) = self.fresh(row.token.as_ref(), row.now)? {
            return Ok(token);
        }
        let fetched = self
            .fetch_suite_token(tx, suite_id, suite_secret, row.now)
            .await;
        let refresh = Refresh {
            kind: RefreshKind::Suite,
            suite_id,
            corp_id: None,
        };
        self.settle(&refresh, row.token.as_ref(), row.now, fetched)
    }

    /// The suite token from WeCom, stored; `tx` holds the suite row's lock until it commits.
    async fn fetch_suite_token(
        &self,
        mut tx: Transaction<'static, Postgres>,
        suite_id: &SuiteId,
        suite_secret: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<Token, TokenError> {
        let Some(ticket) = suites::ticket(&mut tx, &self.secrets, suite_id).await? else {
            return Err(TokenError::NoSuiteTicket(suite_id.clone()));
        };
        let ticket =
            Ticket::parse(ticket.ticket.expose_secret()).map_err(store::StoreError::from)?;
        // The row lock is held across this call: it is what keeps the other replicas waiting.
        let fetched = self
            .client
            .get_suite_token(suite_id, suite_secret.expose_secret(), &ticket)
            .await
            .map_err(|source| TokenError::Fetch {
                kind: "suite",
                source,
            })?;
        let expires_at = now + lifetime(fetched.expires_in);
        store_suite_token(
            &mut tx,
            &self.secrets,
            suite_id,
            &fetched.access_token,
            now,
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
        let fetched = self
            .fetch_corp_token(tx, suite_id, corp_id, &tenant, row.now)
            .await;
        let refresh = Refresh {
            kind: RefreshKind::Corp,
            suite_id,
            corp_id: Some(corp_id),
        };
        self.settle(&refresh, row.token.as_ref(), row.now, fetched)
    }

    /// The corp token from WeCom (`gettoken` with the permanent code), stored; `tx` holds the
    /// tenant row's lock until it commits.
    async fn fetch_corp_token(
        &self,
        mut tx: Transaction<'static, Postgres>,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        tenant: &LockedTenant,
        now: DateTime<Utc>,
    ) -> Result<Token, TokenError> {
        let code = tenant.permanent_code(&self.secrets)?;
        // The row lock is held across this call: it is what keeps the other replicas waiting.
        let fetched = self
            .client
            .get_token(corp_id, code.expose_secret())
            .await
            .map_err(|source| TokenError::Fetch {
                kind: "corp",
                source,
            })?;
        let expires_at = now + lifetime(fetched.expires_in);
        store_corp_token(
            &mut tx,
            &self.secrets,
            suite_id,
            corp_id,
            &fetched.access_token,
            now,
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
        let fetched = self
            .fetch_ticket(tx, suite_id, corp_id, kind, token, row.now)
            .await;
        let refresh = Refresh {
            kind: RefreshKind::of_ticket(kind),
            suite_id,
            corp_id: Some(corp_id),
        };
        self.settle(&refresh, row.ticket.as_ref(), row.now, fetched)
    }

    /// The ticket from WeCom, stored; `tx` holds the ticket row's lock until it commits.
    async fn fetch_ticket(
        &self,
        mut tx: Transaction<'static, Postgres>,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        kind: TicketKind,
        token: &Token,
        now: DateTime<Utc>,
    ) -> Result<Token, TokenError> {
        // The ticket row lock is held across this call: it keeps the other replicas waiting.
        let fetched = match kind {
            TicketKind::Corp => self.client.get_jsapi_ticket(token.expose()).await,
            TicketKind::Agent => self.client.get_agent_config_ticket(token.expose()).await,
        };
        let label = match kind {
            TicketKind::Corp => "corp jsapi ticket",
            TicketKind::Agent => "agent ticket",
        };
        let fetched = fetched.map_err(|source| TokenError::Fetch {
            kind: label,
            source,
        })?;
        let expires_at = now + lifetime(fetched.expires_in);
        store_ticket(
            &mut tx,
            &self.secrets,
            suite_id,
            corp_id,
            kind,
            &fetched.ticket,
            now,
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

    /// After a refresh attempt: reports it to the observer and, when it failed, logs it with
    /// the suite and corp and hands out the cached token while it is still valid and the
    /// failure is transient (returns the failure otherwise).
    fn settle(
        &self,
        refresh: &Refresh<'_>,
        cached: Option<&CachedToken>,
        now: DateTime<Utc>,
        attempt: Result<Token, TokenError>,
    ) -> Result<Token, TokenError> {
        if let Some(observer) = &self.observer {
            observer.refreshed(refresh.kind, attempt.as_ref().map(|_| ()));
        }
        let err = match attempt {
            Ok(token) => return Ok(token),
            Err(err) => err,
        };
        let (suite_id, corp_id) = (refresh.suite_id, refresh.corp_id.map_or("", CorpId::as_str));
        match cached {
            Some(cached)
                if matches!(&err, TokenError::Fetch { source, .. } if source.is_retryable())
                    && now < cached.expires_at =>
            {
                tracing::warn!(
                    %suite_id,
                    corp_id,
                    refresh = %refresh.kind,
                    error = %err,
                    expires_at = %cached.expires_at,
                    "token refresh failed; using the cached token until it expires"
                );
                Ok(self.open(cached)?)
            }
            _ => {
                tracing::warn!(
                    %suite_id,
                    corp_id,
                    refresh = %refresh.kind,
                    error = %err,
                    "token refresh failed"
                );
                Err(err)
            }
        }
    }

    fn open(&self, cached: &CachedToken) -> Result<Token, StoreError> {
        Ok(Token::new(cached.open(&self.secrets)?, cached.expires_at))
    }
}

/// What a refresh attempt was for: its kind, the suite and (but for the suite token) the corp.
struct Refresh<'a> {
    kind: RefreshKind,
    suite_id: &'a SuiteId,
    corp_id: Option<&'a CorpId>,
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
