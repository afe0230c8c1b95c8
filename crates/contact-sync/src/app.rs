//! Wiring: configuration in, a worker ready to run out.
//!
//! [`Application::build`] connects to Postgres (refusing an older schema and a secret key that
//! cannot open what the database holds), builds the token
//! service and the consumer of `wecom.contacts`, and binds the health listener.
//! [`Application::run`] consumes and ticks the schedule until the shutdown token fires, then
//! stops in order: no new messages, in-flight ones finished and acked, the schedule stopped
//! (its background runs dropped: their leases lapse and another replica resumes them), the
//! health server closed, the pool closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use anyhow::Context;
use bus::consumer::{Consumer, ConsumerConfig, ConsumerStatus};
use bus::{Topology, WorkQueue};
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
use crate::schedule;
use crate::syncer::{SyncSettings, Syncer};
use crate::wecom_calls::Wecom;

/// How long to wait for the database at start.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A built worker: connected to the database, listening for probes, not yet consuming.
pub struct Application {
    health_addr: SocketAddr,
    server: Server,
    consumer: Consumer<Syncer>,
    status: ConsumerStatus,
    syncer: Syncer,
    pool: PgPool,
    tick: Duration,
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
        let secrets = SecretBox::new(config.keyring.clone());
        // It seals the corp tokens it refreshes: a wrong key would lock the other replicas out.
        runtime::keys::check_keys(&pool, &secrets).await?;
        let metrics = Metrics::new().context("registering metrics")?;
        let client = Client::new(ClientConfig::new(config.wecom_api_base.clone()))
            .context("WECOM_API_BASE")?;
        let client = metrics.wecom_calls.counting(client);
        let tokens = TokenService::new(pool.clone(), client, secrets);
        let tokens = metrics.token_refreshes.counting(tokens);
        let syncer = Syncer {
            pool: pool.clone(),
            wecom: Wecom::new(
                tokens,
                pool.clone(),
                metrics.clone(),
                config.api_limit_per_minute,
                config.rate_limit_hold,
            ),
            metrics: metrics.clone(),
            settings: SyncSettings {
                concurrency: config.sync_concurrency,
                lease: config.sync_lease,
                reconcile_every: config.reconcile_every,
            },
            owner: replica_name(),
        };
        let mut consumer_config = ConsumerConfig::new(
            config.amqp_url.clone(),
            Topology::new(config.amqp_namespace.clone()),
            WorkQueue::Contacts,
            "daikai-contact-sync",
        );
        consumer_config.prefetch = config.prefetch;
        consumer_config.max_attempts = config.max_attempts;
        let consumer =
            Consumer::with_observer(consumer_config, syncer.clone(), Arc::new(metrics.clone()));
        let status = consumer.status();
        let probes = Probes {
            consumer: status.clone(),
            pool: pool.clone(),
            metrics,
        };
        let (health_addr, server) = runtime::health::serve(config.health_addr, probes)?;
        tracing::info!(%health_addr, broker = %config.amqp_url, owner = syncer.owner, "contact sync built");
        Ok(Self {
            health_addr,
            server,
            consumer,
            status,
            syncer,
            pool,
            tick: config.tick,
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// Whether the consumer is attached to `wecom.contacts`.
    pub fn consumer_status(&self) -> ConsumerStatus {
        self.status.clone()
    }

    /// This replica's name in `sync_runs.owner`.
    pub fn owner(&self) -> &str {
        &self.syncer.owner
    }

    /// Consumes until `shutdown` fires, then stops gracefully (see the module docs).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let schedule_stop = CancellationToken::new();
        let schedule = tokio::spawn(schedule::run(
            self.syncer.clone(),
            self.tick,
            schedule_stop.clone(),
        ));
        self.consumer.run(shutdown).await;
        tracing::info!("consumer drained; stopping");
        schedule_stop.cancel();
        if let Err(error) = schedule.await {
            tracing::error!(%error, "the schedule task failed");
        }
        handle.stop(true).await;
        let served = server.await;
        self.pool.close().await;
        tracing::info!("contact sync stopped");
        served
            .context("the health server task panicked")?
            .context("the health server failed")
    }
}

/// `HOSTNAME` (the pod name in Kubernetes) plus a random suffix, so two processes never share
/// a name even on one host.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "contact-sync".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}
