//! Wiring: configuration in, a worker ready to run out.
//!
//! [`Application::build`] connects to Postgres and refuses an older schema (with the message to
//! run `daikai migrate`) and a secret key that cannot open what the database holds (naming the
//! key ids), starts the publisher connecting, builds the consumer and binds the
//! health listener (port 0 in tests; read it back with [`Application::health_addr`]).
//! [`Application::run`] consumes until the shutdown token fires, then stops in order: no new
//! messages, in-flight ones finished and acked, the sweep stopped, the health server closed,
//! the publisher and the pool closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use anyhow::Context;
use bus::consumer::{Consumer, ConsumerConfig, ConsumerStatus};
use bus::{Publisher, PublisherConfig, Topology, WorkQueue};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use store::SecretBox;
use tokens::TokenService;
use tokio_util::sync::CancellationToken;
use wecom::api::{Client, ClientConfig};

use crate::config::Config;
use crate::health::Probes;
use crate::metrics::Metrics;
use crate::state::AuthHandler;
use crate::sweep::{self, SweepConfig};

/// How long to wait for the database at start.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A built worker: connected to the database, listening for probes, not yet consuming.
pub struct Application {
    health_addr: SocketAddr,
    server: Server,
    consumer: Consumer<AuthHandler>,
    status: ConsumerStatus,
    publisher: Publisher,
    pool: PgPool,
    metrics: Metrics,
    sweep: SweepConfig,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("health_addr", &self.health_addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects, checks the schema, and binds the health listener. Must run within Tokio.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(DB_CONNECT_TIMEOUT)
            .connect(config.database_url.expose_secret())
            .await
            .context("DATABASE_URL: cannot connect to Postgres")?;
        store::check_schema(&pool).await?;
        let inbox_retention = chrono::TimeDelta::from_std(config.inbox_retention)
            .context("INBOX_RETENTION_HOURS: out of range")?;
        let secrets = SecretBox::new(config.keyring.clone());
        runtime::keys::check_keys(&pool, &secrets).await?;
        let metrics = Metrics::new().context("registering metrics")?;
        let client = Client::new(ClientConfig::new(config.wecom_api_base.clone()))
            .context("WECOM_API_BASE")?;
        let client = metrics.wecom_calls.counting(client);
        let tokens = TokenService::new(pool.clone(), client, secrets.clone());
        let tokens = metrics.token_refreshes.counting(tokens);
        let topology = Topology::new(config.amqp_namespace.clone());
        let mut publisher_config = PublisherConfig::new(
            config.amqp_url.clone(),
            topology.clone(),
            "daikai-auth-worker-publisher",
        );
        publisher_config.confirm_timeout = config.publish_timeout;
        let publisher = Publisher::start(publisher_config)?;
        let handler = AuthHandler::new(
            pool.clone(),
            secrets,
            tokens,
            config.suites.clone(),
            publisher.clone(),
            metrics.clone(),
        )
        .with_claim_lease(config.claim_lease);
        let mut consumer_config = ConsumerConfig::new(
            config.amqp_url.clone(),
            topology,
            WorkQueue::Auth,
            "daikai-auth-worker",
        );
        consumer_config.prefetch = config.prefetch;
        consumer_config.max_attempts = config.max_attempts;
        let consumer = Consumer::with_observer(consumer_config, handler, Arc::new(metrics.clone()));
        let status = consumer.status();
        let probes = Probes {
            consumer: status.clone(),
            publisher: publisher.clone(),
            pool: pool.clone(),
            metrics: metrics.clone(),
        };
        let (health_addr, server) = runtime::health::serve(config.health_addr, probes)?;
        tracing::info!(
            %health_addr,
            broker = %config.amqp_url,
            suites = config.suites.len(),
            "auth worker built"
        );
        Ok(Self {
            health_addr,
            server,
            consumer,
            status,
            publisher,
            pool,
            metrics,
            sweep: SweepConfig {
                suite_ids: config.suites.iter().map(|s| s.suite_id.clone()).collect(),
                interval: config.sweep_interval,
                inbox_retention,
            },
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// Whether the consumer is attached to `wecom.auth`.
    pub fn consumer_status(&self) -> ConsumerStatus {
        self.status.clone()
    }

    /// The metrics (tests read them directly).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Consumes until `shutdown` fires, then stops gracefully (see the module docs).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let sweep_stop = CancellationToken::new();
        let sweeper = tokio::spawn(sweep::run(
            self.pool.clone(),
            self.metrics.clone(),
            self.sweep,
            sweep_stop.clone(),
        ));
        self.consumer.run(shutdown).await;
        tracing::info!("consumer drained; stopping");
        sweep_stop.cancel();
        if let Err(error) = sweeper.await {
            tracing::error!(%error, "the sweep task failed");
        }
        handle.stop(true).await;
        let served = server.await;
        self.publisher.close().await;
        self.pool.close().await;
        tracing::info!("auth worker stopped");
        served
            .context("the health server task panicked")?
            .context("the health server failed")
    }
}
