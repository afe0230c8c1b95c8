//! Wiring: configuration in, a bound HTTP server and a connecting publisher out.
//!
//! [`Application::build`] binds the listener right away (so tests can use port 0 and read the
//! port back) and starts the publisher connecting in the background; the server answers `/readyz`
//! 503 until the broker is connected. [`Application::run_until_stopped`] serves until the
//! shutdown token fires, then shuts down gracefully: `/readyz` turns false, the listener stops
//! accepting, in-flight requests finish (each still answering `success` only after its confirm),
//! and only then is the broker connection closed.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::KeepAlive;
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context;
use bus::{Publisher, PublisherConfig, Topology};
use tokio_util::sync::CancellationToken;

use crate::callback::Authenticator;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::request_id;
use crate::routes::{self, State};

/// How long graceful shutdown waits for in-flight requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long a connection the ingress is closing may take to acknowledge the close before it is
/// dropped.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A built ingress: listening, not yet serving.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    publisher: Publisher,
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
    /// Binds `config.addr` and starts the publisher. Must be called within a Tokio runtime.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let Config {
            addr,
            amqp_url,
            amqp_namespace,
            suites,
            provider_corp_id,
            publish_timeout,
            max_clock_skew,
            max_body_bytes,
            workers,
            header_timeout,
            body_timeout,
            keep_alive,
            max_connections,
            publish_channels,
            log_format: _,
            log_filter: _,
        } = config;
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("INGRESS_ADDR: cannot listen on {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(%addr, suites = suites.len(), broker = %amqp_url, "ingress listening");
        let mut publisher_config =
            PublisherConfig::new(amqp_url, Topology::new(amqp_namespace), "daikai-ingress");
        publisher_config.confirm_timeout = publish_timeout;
        publisher_config.channels = publish_channels;
        let publisher = Publisher::start(publisher_config)?;
        let shutting_down = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(State {
            auth: Authenticator::new(&suites, provider_corp_id, max_clock_skew)
                .context("building the callback crypto")?,
            publisher: publisher.clone(),
            metrics: Metrics::new().context("registering metrics")?,
            max_body_bytes,
            body_timeout,
            shutting_down: shutting_down.clone(),
        });
        // actix counts connections per worker; the setting is for the whole process.
        let worker_count = workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let max_connections_per_worker = max_connections.div_ceil(worker_count);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(request_id::middleware))
                .route("/healthz", web::get().to(routes::healthz))
                .route("/readyz", web::get().to(routes::readyz))
                .route("/metrics", web::get().to(routes::metrics))
                .default_service(web::to(routes::callback))
        })
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .client_request_timeout(header_timeout)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .keep_alive(keep_alive.map_or(KeepAlive::Disabled, KeepAlive::Timeout))
        .max_connections(max_connections_per_worker);
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
        Ok(Self {
            addr,
            server,
            publisher,
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

    /// The publisher (tests wait for it to be ready).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Serves until `shutdown` fires, then stops gracefully (see the module docs).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let stopper = {
            let shutting_down = self.shutting_down.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: draining in-flight requests");
                shutting_down.store(true, Ordering::SeqCst);
                handle.stop(true).await;
            })
        };
        let served = server.await;
        stopper.abort();
        self.publisher.close().await;
        tracing::info!("ingress stopped");
        served
            .context("the HTTP server task panicked")?
            .context("the HTTP server failed")
    }
}
