//! What every event handler works with: the worker's shared state ([`AuthHandler`]), the
//! configured suites, and the inbox step. A leaf: it imports no other module of the worker.

use bus::Publisher;
use bus::consumer::{HandlerError, Message};
use chrono::TimeDelta;
use secrecy::SecretString;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Transaction};
use store::{SecretBox, SuiteId};
use tokens::TokenService;
use wecom::api::Client;
use wecom::suite::Suites;

use crate::error::{Doing, WorkerError};
use crate::metrics::Metrics;

/// The inbox consumer name of this worker.
pub const CONSUMER: &str = "auth-worker";

/// Everything the event handlers need. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthHandler {
    pub(crate) pool: PgPool,
    pub(crate) secrets: SecretBox,
    pub(crate) tokens: TokenService,
    pub(crate) suites: Suites,
    pub(crate) publisher: Publisher,
    pub(crate) metrics: Metrics,
    /// How long a claim on an AuthCode holds off other deliveries ([`Config::claim_lease`]).
    ///
    /// [`Config::claim_lease`]: crate::Config::claim_lease
    pub(crate) claim_lease: TimeDelta,
}

/// A configured suite: its id and secret.
pub(crate) struct Suite {
    pub(crate) id: SuiteId,
    pub(crate) secret: SecretString,
}

impl AuthHandler {
    /// A handler over the database, the token service (which holds the WeCom client), the
    /// configured suites, a publisher for `tenant.*` events and the metrics, claiming AuthCodes
    /// for [`store::auth_codes::CLAIM_LEASE`] (see [`Self::with_claim_lease`]).
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
            claim_lease: store::auth_codes::CLAIM_LEASE,
        }
    }

    /// Claims AuthCodes for `lease` instead.
    #[must_use]
    pub fn with_claim_lease(mut self, lease: TimeDelta) -> Self {
        self.claim_lease = lease;
        self
    }

    pub(crate) fn client(&self) -> &Client {
        self.tokens.client()
    }

    /// The suite's id and secret; an unconfigured suite is a configuration error: dead-letter
    /// (replay once the worker knows the suite).
    pub(crate) fn suite(&self, suite_id: &SuiteId) -> Result<Suite, WorkerError> {
        let config = self.suites.get(suite_id).ok_or_else(|| {
            HandlerError::permanent(format!(
                "suite {suite_id} is not configured in this worker (DAIKAI_SUITES_FILE / \
                 WECOM_SUITE_ID)"
            ))
        })?;
        Ok(Suite {
            id: suite_id.clone(),
            secret: config.suite_secret.clone(),
        })
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, WorkerError> {
        self.pool.begin().await.doing("opening a transaction")
    }

    pub(crate) async fn connection(
        &self,
        doing: &'static str,
    ) -> Result<PoolConnection<Postgres>, WorkerError> {
        self.pool.acquire().await.doing(doing)
    }
}

/// Inserts the message's inbox row in `tx`; `false` for a delivery whose dedupe key was seen
/// before (identical text: a WeCom retry, a redelivery, or a distinct push with the same text).
pub(crate) async fn first_delivery(
    tx: &mut Transaction<'static, Postgres>,
    message: &Message,
) -> Result<bool, WorkerError> {
    let first = store::inbox::record(tx, CONSUMER, message.envelope.dedupe_key.as_str())
        .await
        .doing("recording the delivery in the inbox")?;
    if !first {
        tracing::info!(
            dedupe_key = message.envelope.dedupe_key.as_str(),
            "duplicate delivery (dedupe key seen before)"
        );
    }
    Ok(first)
}
