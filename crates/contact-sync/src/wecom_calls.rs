//! Every WeCom call of the worker goes through [`Wecom::call`]: the tenant's corp token from the
//! shared cache (refreshed once on 40014/42001 by the `tokens` crate), a permit from the budget
//! all replicas share per corp and API (`store::directory::quota`), and the retry policy:
//! `-1` (system busy) with backoff, 45009 (frequency limit) by waiting for the window to end and
//! telling every replica to wait too. Anything else is the caller's to decide.
//!
//! Each attempt is counted by the WeCom client itself (`daikai_wecom_calls_total{api, class}`,
//! the client is instrumented where the application builds it), so a retried `-1` shows as
//! `retryable` and a 45009 as `rate_limited`; the `api` names given here are the same
//! endpoint names (`user/list_id`, …).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use store::directory::quota::{self, Reservation};
use store::{CorpId, SuiteId};
use tokens::{Token, TokenError, TokenService};
use wecom::api::{ApiError, Client, ErrorClass};

use crate::error::{Doing, SyncError};
use crate::metrics::Metrics;

/// `-1` answers retried per call before giving up (WeCom's advice is three; a full sync can
/// afford a little more patience than a user request).
const BUSY_RETRIES: u32 = 5;
/// 45009 answers waited out per call before giving up (the message is then retried later).
const RATE_LIMIT_WAITS: u32 = 8;
/// Calls reserved from the shared budget at a time.
const PERMIT_CHUNK: i32 = 20;

/// The tenant a call is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantRef {
    pub(crate) id: i64,
    pub(crate) suite_id: SuiteId,
    pub(crate) corp_id: CorpId,
}

/// The WeCom side of the worker. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Wecom {
    tokens: TokenService,
    pool: PgPool,
    metrics: Metrics,
    limit_per_minute: i32,
    rate_limit_hold: Duration,
    permits: Arc<Mutex<HashMap<(CorpId, &'static str), Permits>>>,
}

/// Calls reserved by this replica from the current window's shared budget.
#[derive(Debug, Clone, Copy)]
struct Permits {
    left: i32,
    until: DateTime<Utc>,
}

impl Wecom {
    pub(crate) fn new(
        tokens: TokenService,
        pool: PgPool,
        metrics: Metrics,
        limit_per_minute: u32,
        rate_limit_hold: Duration,
    ) -> Self {
        Self {
            tokens,
            pool,
            metrics,
            limit_per_minute: i32::try_from(limit_per_minute).unwrap_or(i32::MAX),
            rate_limit_hold,
            permits: Arc::default(),
        }
    }

    /// Calls `api` for the tenant: `call` gets the client and a corp token. Returns WeCom's
    /// answer, or its refusal once the retry policy gave up.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        tenant: &TenantRef,
        api: &'static str,
        call: F,
    ) -> Result<T, SyncError>
    where
        F: Fn(Client, Token) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (mut busy, mut limited) = (0, 0);
        loop {
            self.permit(&tenant.corp_id, api).await?;
            let client = self.tokens.client().clone();
            let answer = self
                .tokens
                .with_corp_token(&tenant.suite_id, &tenant.corp_id, |token| {
                    call(client.clone(), token)
                })
                .await;
            let error = match answer {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let class = match &error {
                TokenError::Call(source) | TokenError::Fetch { source, .. } => source.class(),
                _ => ErrorClass::Permanent,
            };
            match class {
                ErrorClass::Retryable if busy < BUSY_RETRIES => {
                    busy += 1;
                    tokio::time::sleep(backoff(busy)).await;
                }
                ErrorClass::RateLimited { .. } if limited < RATE_LIMIT_WAITS => {
                    limited += 1;
                    let hold = self.rate_limit_hold * 2_u32.pow(limited.min(4) - 1);
                    self.hold_off(&tenant.corp_id, api, hold).await?;
                }
                _ => {
                    return Err(match error {
                        TokenError::Call(source) => SyncError::Api { api, source },
                        source => SyncError::Token {
                            doing: "getting the corp access token",
                            source,
                        },
                    });
                }
            }
        }
    }

    /// One call's permit: from this replica's reserved chunk, else a new chunk from the shared
    /// budget, else a wait for the next window.
    async fn permit(&self, corp_id: &CorpId, api: &'static str) -> Result<(), SyncError> {
        let key = (corp_id.clone(), api);
        loop {
            if self.take_reserved(&key) {
                return Ok(());
            }
            let reservation = {
                let mut conn = self.pool.acquire().await.doing("reserving WeCom calls")?;
                quota::reserve(
                    &mut conn,
                    corp_id,
                    api,
                    PERMIT_CHUNK.min(self.limit_per_minute),
                    self.limit_per_minute,
                )
                .await
                .doing("reserving WeCom calls")?
            };
            match reservation {
                Reservation::Granted { until } => {
                    let mut permits = self
                        .permits
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    permits.insert(
                        key.clone(),
                        Permits {
                            left: PERMIT_CHUNK.min(self.limit_per_minute) - 1,
                            until,
                        },
                    );
                    return Ok(());
                }
                Reservation::Exhausted { until, now } => {
                    self.metrics.rate_limit_waits.inc();
                    tracing::info!(%corp_id, api, %until, "shared WeCom budget spent: waiting");
                    tokio::time::sleep(until_then(now, until)).await;
                }
            }
        }
    }

    fn take_reserved(&self, key: &(CorpId, &'static str)) -> bool {
        let mut permits = self
            .permits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match permits.get_mut(key) {
            Some(reserved) if reserved.left > 0 && Utc::now() < reserved.until => {
                reserved.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// WeCom answered 45009: the corp is blocked for the rest of WeCom's window, which WeCom does
    /// not say. Every replica holds off the API for `hold` (`SYNC_RATE_LIMIT_HOLD_SECS`, doubled
    /// for each further 45009 of one call, up to eight times); this call waits in `permit`.
    async fn hold_off(
        &self,
        corp_id: &CorpId,
        api: &'static str,
        hold: Duration,
    ) -> Result<(), SyncError> {
        {
            let mut conn = self.pool.acquire().await.doing("recording a rate limit")?;
            quota::block(&mut conn, corp_id, api, hold)
                .await
                .doing("recording a rate limit")?;
        }
        self.permits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(corp_id.clone(), api));
        tracing::warn!(%corp_id, api, ?hold, "WeCom frequency limit (45009): every replica holds off");
        Ok(())
    }
}

/// 200 ms, 400 ms, 800 ms, … capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.min(6)).min(Duration::from_secs(5))
}

fn until_then(now: DateTime<Utc>, until: DateTime<Utc>) -> Duration {
    (until - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
