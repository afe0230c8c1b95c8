//! The `wecom.auth` message handler: dispatch by event kind, and what every event handler
//! shares (the inbox step, suite lookup, the mapping of failures onto retry or dead letter).
//!
//! Each event handler follows the consumer contract of `bus::consumer`: its effect is committed
//! before it returns `Ok`. What makes a duplicate harmless differs by event (see the per-event
//! modules): the inbox row for suite tickets and cancel_auth, the AuthCode's own row and claim
//! for exchanges (no transaction is open during a WeCom call there), and for change_auth nothing
//! at all, because it settles the tenant to WeCom's current state on every delivery.

use std::time::Duration;

use bus::Publisher;
use bus::consumer::{Handler, HandlerError, Message};
use secrecy::SecretString;
use sqlx::{PgPool, Postgres, Transaction};
use store::{CorpId, SecretBox, StoreError, SuiteId, TokenError, TokenService};
use wecom::api::{ApiError, Client, ErrorClass};
use wecom::event::Event;
use wecom::suite::Suites;

use crate::metrics::Metrics;
use crate::{exchange, lifecycle, ticket, unparsed};

/// The inbox consumer name of this worker.
pub const CONSUMER: &str = "auth-worker";

/// Inline retries of a WeCom call answering `-1` / a transport error, before the message itself
/// is retried through the retry queues (WeCom advises at most 3).
const BUSY_RETRIES: u32 = 3;
/// First pause between inline retries; doubles each time.
const BUSY_BACKOFF: Duration = Duration::from_millis(200);

/// Everything the event handlers need. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthHandler {
    pub(crate) pool: PgPool,
    pub(crate) secrets: SecretBox,
    pub(crate) tokens: TokenService,
    pub(crate) suites: Suites,
    pub(crate) publisher: Publisher,
    pub(crate) metrics: Metrics,
}

impl AuthHandler {
    /// A handler over the database, the token service (which holds the WeCom client), the
    /// configured suites, a publisher for `tenant.*` events and the metrics.
    pub fn new(
        pool: PgPool,
        secrets: SecretBox,
        tokens: TokenService,
        suites: Suites,
        publisher: Publisher,
        metrics: Metrics,
    ) -> Self {
        Self {
            pool,
            secrets,
            tokens,
            suites,
            publisher,
            metrics,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        self.tokens.client()
    }

    /// The suite's id and secret; an unconfigured suite is a configuration error: dead-letter
    /// (replay once the worker knows the suite).
    pub(crate) fn suite(&self, suite_id: &str) -> Result<(SuiteId, SecretString), HandlerError> {
        let config = self.suites.get(suite_id).ok_or_else(|| {
            HandlerError::permanent(format!(
                "suite {suite_id} is not configured in this worker (DAIKAI_SUITES_FILE / \
                 WECOM_SUITE_ID)"
            ))
        })?;
        let id = SuiteId::parse(suite_id).map_err(|e| store_error("suite id", e))?;
        Ok((id, config.suite_secret.clone()))
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, HandlerError> {
        self.pool
            .begin()
            .await
            .map_err(|e| store_error("opening a transaction", e))
    }

    /// Inserts the message's inbox row in `tx`; `false` for a duplicate (apply nothing).
    pub(crate) async fn first_delivery(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &Message,
    ) -> Result<bool, HandlerError> {
        let first = store::inbox::record(tx, CONSUMER, message.envelope.dedupe_key.as_str())
            .await
            .map_err(|e| store_error("inbox", e))?;
        if !first {
            tracing::info!(
                dedupe_key = message.envelope.dedupe_key.as_str(),
                "duplicate delivery (dedupe key seen before)"
            );
        }
        Ok(first)
    }
}

impl Handler for AuthHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let Some(event) = message.envelope.wecom_event() else {
            return Err(HandlerError::permanent(format!(
                "{} is not a WeCom event; wecom.auth only takes suite events",
                message.envelope.kind
            )));
        };
        match event {
            Event::SuiteTicket(e) => ticket::suite_ticket(self, message, e).await,
            Event::CreateAuth(e) => exchange::create_auth(self, message, e).await,
            Event::ResetPermanentCode(e) => exchange::reset_permanent_code(self, message, e).await,
            Event::ChangeAuth(e) => lifecycle::change_auth(self, message, e).await,
            Event::CancelAuth(e) => lifecycle::cancel_auth(self, message, e).await,
            Event::Unknown(e) => unparsed::unparsed(self, message, e).await,
            other => Err(HandlerError::permanent(format!(
                "the auth worker does not handle {} events",
                other.kind()
            ))),
        }
    }
}

/// Commits the message's transaction.
pub(crate) async fn commit(tx: Transaction<'static, Postgres>) -> Result<(), HandlerError> {
    tx.commit().await.map_err(|e| store_error("commit", e))
}

/// Parses the corp id of an event; a malformed one can never succeed.
pub(crate) fn corp_id(value: &str) -> Result<CorpId, HandlerError> {
    CorpId::parse(value).map_err(|e| HandlerError::permanent(format!("AuthCorpId: {e}")))
}

/// A database failure: transient when Postgres (or the connection) may recover, and when a
/// secret is under a key this replica lacks (or holds with other bytes): that is this replica's
/// configuration, not the message's fault, so the message waits in the retry queues for a
/// correctly configured replica instead of being dead-lettered (a single-use AuthCode with it).
pub(crate) fn store_error(context: &str, err: impl Into<StoreError>) -> HandlerError {
    let err = err.into();
    if err.is_key_mismatch() {
        tracing::error!(
            error = %err,
            "this replica cannot open a stored secret: check DAIKAI_SECRET_KEY and \
             DAIKAI_SECRET_KEYS_PREVIOUS; the message is retried"
        );
        HandlerError::transient(format!("{context}: {err}"))
    } else if err.is_transient() {
        HandlerError::transient(format!("{context}: {err}"))
    } else {
        HandlerError::permanent(format!("{context}: {err}"))
    }
}

/// A token-service or WeCom failure, by its class. A token error reaching here was already
/// retried once with a fresh token, and a tenant WeCom refuses cannot be fixed by retrying.
pub(crate) fn token_error(context: &str, err: &TokenError) -> HandlerError {
    let reason = format!("{context}: {err}");
    match err.class() {
        ErrorClass::Retryable | ErrorClass::TokenExpired(_) => HandlerError::transient(reason),
        ErrorClass::RateLimited { retry_after } => {
            HandlerError::transient_after(reason, retry_after)
        }
        ErrorClass::TenantBroken | ErrorClass::Permanent => HandlerError::permanent(reason),
    }
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
pub(crate) fn v2_unavailable(err: &ApiError) -> bool {
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

    #[test]
    fn failures_map_onto_retry_or_dead_letter() {
        let busy = TokenError::Call(ApiError::wecom(-1, "busy"));
        assert!(matches!(
            token_error("x", &busy),
            HandlerError::Transient { .. }
        ));
        let limited = TokenError::Call(ApiError::wecom(45009, "limit"));
        assert!(matches!(
            token_error("x", &limited),
            HandlerError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        let refused = TokenError::Call(ApiError::wecom(40084, "bad code"));
        assert!(matches!(
            token_error("x", &refused),
            HandlerError::Permanent { .. }
        ));
    }
}
