//! Wiring: configuration in, a bound HTTP server out.
//!
//! [`Application::build`] connects to Postgres and refuses an older schema (with the message to
//! run `daikai migrate`) and a secret key that cannot open what the database holds, renders the
//! OpenAPI document and binds the listener (port 0 in tests; read it back with
//! [`Application::port`]). [`Application::run_until_stopped`] serves until the shutdown token
//! fires, then stops gracefully: `/readyz` turns 503, the listener stops accepting, in-flight
//! requests finish, the pool closes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{self, Next};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpServer, ResponseError as _, web};
use anyhow::Context;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use store::SecretBox;
use tokens::TokenService;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use utoipa_actix_web::AppExt as _;
use wecom::api::{Client, ClientConfig};

use crate::auth::{KeyLabel, Keys};
use crate::config::Config;
use crate::error::{Outcome, Problem};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{openapi, routes};

/// How long graceful shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long to wait for the database at start, and for a pooled connection.
const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A built API: connected and listening, not yet serving.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    pool: PgPool,
    shutting_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects, checks the schema and the keys, and binds `config.addr`. Must run within Tokio.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(DB_ACQUIRE_TIMEOUT)
            .connect(config.database_url.expose_secret())
            .await
            .context("DATABASE_URL: cannot connect to Postgres")?;
        store::check_schema(&pool).await?;
        let secrets = SecretBox::new(config.keyring.clone());
        runtime::keys::check_keys(&pool, &secrets).await?;
        let metrics = Metrics::new().context("registering metrics")?;
        let client = Client::new(ClientConfig::new(config.wecom_api_base.clone()))
            .context("WECOM_API_BASE")?;
        let client = metrics.wecom_calls.counting(client);
        let tokens = TokenService::new(pool.clone(), client, secrets);
        let openapi = serde_json::to_string(&openapi::document())
            .context("rendering the OpenAPI document")?;
        let shutting_down = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            tokens: metrics.token_refreshes.counting(tokens),
            keys: Keys::new(pool.clone(), config.key_cache, config.default_rate_limit),
            metrics,
            openapi: Arc::new(openapi),
            shutting_down: shutting_down.clone(),
        });
        let listener = TcpListener::bind(config.addr)
            .with_context(|| format!("API_ADDR: cannot listen on {}", config.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let mut server = HttpServer::new(move || {
            App::new()
                .into_utoipa_app()
                .app_data(state.clone())
                .app_data(routes::json_config())
                .app_data(routes::query_config())
                .app_data(routes::path_config())
                .configure(routes::configure)
                .default_service(web::to(no_route))
                .into_app()
                .wrap(middleware::from_fn(observe))
        })
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
        tracing::info!(%addr, "provider API listening");
        Ok(Self {
            addr,
            server,
            pool,
            shutting_down,
        })
    }

    /// The address actually bound (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` fires, then stops gracefully (see the module docs).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let stopper = {
            let shutting_down = self.shutting_down.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: draining in-flight requests");
                shutting_down.store(true, Ordering::SeqCst);
                handle.stop(true).await;
            })
        };
        let served = server.await;
        stopper.abort();
        self.pool.close().await;
        tracing::info!("provider API stopped");
        served
            .context("the HTTP server task panicked")?
            .context("the HTTP server failed")
    }
}

async fn no_route(req: HttpRequest) -> actix_web::HttpResponse {
    Problem::no_route(req.path()).error_response()
}

/// Counts and times every request, by route pattern, key id and outcome, inside a span that
/// names the method and the route pattern (never a header value).
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", method = %req.method(), route = %route);
    let response = next.call(req).instrument(span).await?.map_into_boxed_body();
    if let Some(state) = state {
        let key = response
            .request()
            .extensions()
            .get::<KeyLabel>()
            .map_or_else(|| "-".to_owned(), |k| k.0.clone());
        let outcome = response.response().extensions().get::<Outcome>().map_or(
            if response.status().is_success() {
                "ok"
            } else {
                "error"
            },
            |o| o.0,
        );
        state
            .metrics
            .requests
            .with_label_values(&[route.as_str(), &key, outcome])
            .inc();
        state
            .metrics
            .request_seconds
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
