//! What every request handler shares: the pool, the token service, the keys, the metrics and the
//! OpenAPI document.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sqlx::PgPool;
use tokens::TokenService;

use crate::auth::Keys;
use crate::metrics::Metrics;

/// The application state behind `web::Data`.
#[derive(Debug)]
pub struct AppState {
    /// Postgres.
    pub pool: PgPool,
    /// Corp tokens and JS-SDK tickets, shared with every replica of every service.
    pub tokens: TokenService,
    /// API keys and their rate limits.
    pub keys: Keys,
    /// Metrics.
    pub metrics: Metrics,
    /// `GET /openapi.json`, rendered once at start.
    pub openapi: Arc<String>,
    /// Set when shutdown begins: `/readyz` turns 503 so balancers stop sending requests.
    pub shutting_down: Arc<AtomicBool>,
}
