//! Every WeCom call the auth worker makes, with WeCom's own retry advice and the v2 → v1
//! fallback in one place: the AuthCode exchange, `get_auth_info`, and `agent/get` to tell whether
//! an app is enabled. Event handlers decide what a failure means; this module only calls.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use store::{CorpId, SuiteId};
use tokens::TokenError;
use wecom::api::{Agent, ApiError, AuthInfoResponse, ErrorClass, PermanentCodeV1, PermanentCodeV2};
use wecom::ids::AgentId;

use crate::state::AuthHandler;

/// Inline retries of a WeCom call answering `-1` / a transport error, before the message itself
/// is retried through the retry queues (WeCom advises at most 3).
const BUSY_RETRIES: u32 = 3;
/// First pause between inline retries; doubles each time.
const BUSY_BACKOFF: Duration = Duration::from_millis(200);

/// Either answer of the AuthCode exchange.
pub(crate) enum ExchangeAnswer {
    V1(PermanentCodeV1),
    V2(PermanentCodeV2),
}

/// `get_permanent_code` v2, or v1 when v2 is unavailable, each retried while WeCom is busy, with
/// the suite token (refreshed once if WeCom says it is stale).
pub(crate) async fn exchange_auth_code(
    h: &AuthHandler,
    suite_id: &SuiteId,
    suite_secret: &SecretString,
    auth_code: &SecretString,
) -> Result<ExchangeAnswer, TokenError> {
    let client = h.client().clone();
    h.tokens
        .with_suite_token(suite_id, suite_secret, |token| {
            let client = client.clone();
            let code = auth_code.clone();
            async move {
                let (token, code) = (token.expose(), code.expose_secret());
                v2_or_v1(
                    "get_permanent_code",
                    || {
                        let call = client.get_permanent_code_v2(token, code);
                        async move { call.await.map(ExchangeAnswer::V2) }
                    },
                    || {
                        let call = client.get_permanent_code(token, code);
                        async move { call.await.map(ExchangeAnswer::V1) }
                    },
                )
                .await
            }
        })
        .await
}

/// `get_auth_info` v2, or v1 when v2 is unavailable, with the suite token.
pub(crate) async fn auth_info(
    h: &AuthHandler,
    suite_id: &SuiteId,
    suite_secret: &SecretString,
    corp_id: &CorpId,
    permanent_code: &SecretString,
) -> Result<AuthInfoResponse, TokenError> {
    let client = h.client().clone();
    h.tokens
        .with_suite_token(suite_id, suite_secret, |token| {
            let client = client.clone();
            let code = permanent_code.clone();
            async move {
                let (token, code) = (token.expose(), code.expose_secret());
                v2_or_v1(
                    "get_auth_info",
                    || client.get_auth_info_v2(token, corp_id, code),
                    || client.get_auth_info(token, corp_id, code),
                )
                .await
            }
        })
        .await
}

/// The v2 call, or the v1 one when v2 is unavailable; each retried while WeCom is busy.
async fn v2_or_v1<T, V2, V2Fut, V1, V1Fut>(api: &str, v2: V2, v1: V1) -> Result<T, ApiError>
where
    V2: FnMut() -> V2Fut,
    V2Fut: Future<Output = Result<T, ApiError>>,
    V1: FnMut() -> V1Fut,
    V1Fut: Future<Output = Result<T, ApiError>>,
{
    match retry_busy(v2).await {
        Err(err) if v2_unavailable(&err) => {
            tracing::info!(api, error = %err, "v2 unavailable; using v1");
            retry_busy(v1).await
        }
        other => other,
    }
}

/// `agent/get` with the tenant's cached corp token (one refresh across replicas).
pub(crate) async fn agent_with_cached_token(
    h: &AuthHandler,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    agent_id: AgentId,
) -> Result<Agent, TokenError> {
    let client = h.client().clone();
    h.tokens
        .with_corp_token(suite_id, corp_id, |token| {
            let client = client.clone();
            async move { retry_busy(|| client.agent_get(token.expose(), agent_id)).await }
        })
        .await
}

/// `agent/get` with a token fetched directly from the tenant's secret (`gettoken`), for a
/// tenant the token service gives no token to (a suspended one).
pub(crate) async fn agent_with_fresh_token(
    h: &AuthHandler,
    corp_id: &CorpId,
    permanent_code: &SecretString,
    agent_id: AgentId,
) -> Result<Agent, TokenError> {
    let client = h.client();
    let token = retry_busy(|| client.get_token(corp_id, permanent_code.expose_secret()))
        .await
        .map_err(|source| TokenError::Fetch {
            kind: "corp",
            source,
        })?;
    retry_busy(|| client.agent_get(&token.access_token, agent_id))
        .await
        .map_err(TokenError::Call)
}

/// Runs `call` up to [`BUSY_RETRIES`] more times while it fails with a retryable error (`-1`
/// system busy, timeouts, 5xx), with a short doubling pause.
pub(crate) async fn retry_busy<T, F, Fut>(mut call: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut pause = BUSY_BACKOFF;
    let mut retries = 0;
    loop {
        match call().await {
            Err(err) if err.class() == ErrorClass::Retryable && retries < BUSY_RETRIES => {
                tracing::info!(error = %err, retry_in_ms = pause.as_millis(), "WeCom busy; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                retries += 1;
            }
            result => return result,
        }
    }
}

/// True when a v2 endpoint is not available (so the v1 one should be used): HTTP 404/405/501,
/// or WeCom's "API not authorized / not permitted" answers (48001, 48002). None of these means
/// the call was executed, so an AuthCode sent to it is still unused.
fn v2_unavailable(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::Http {
            status: 404 | 405 | 501
        }
    ) || matches!(err.code(), Some(48001 | 48002))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn v2_unavailability_is_recognised() {
        assert!(v2_unavailable(&ApiError::Http { status: 404 }));
        assert!(v2_unavailable(&ApiError::wecom(48001, "api forbidden")));
        assert!(!v2_unavailable(&ApiError::wecom(
            40078,
            "invalid auth code"
        )));
        assert!(!v2_unavailable(&ApiError::wecom(-1, "system busy")));
        assert!(!v2_unavailable(&ApiError::Http { status: 400 }));
    }

    #[tokio::test(start_paused = true)]
    async fn busy_calls_are_retried_three_times_then_given_up() {
        let calls = AtomicU32::new(0);
        let result: Result<(), ApiError> = retry_busy(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ApiError::wecom(-1, "system busy")) }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Some(-1));
        assert_eq!(calls.load(Ordering::SeqCst), 1 + BUSY_RETRIES);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried_inline() {
        let calls = AtomicU32::new(0);
        let result: Result<u8, ApiError> = retry_busy(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(ApiError::wecom(40078, "invalid auth code"))
                } else {
                    Ok(1)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Some(40078));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
