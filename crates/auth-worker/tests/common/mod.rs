//! Test harness: a migrated database of its own, a namespace of its own on the real broker, the
//! simulator in-process on port 0, and any number of auth-worker replicas in-process. Events are
//! published to the broker exactly as the ingress would publish them (the ingress itself is
//! exercised by the end-to-end tests in `tests/`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_worker::{Application, Config, LogFormat};
use bus::{CallbackOrigin, Envelope, Publisher, PublisherConfig, Source, Topology, WorkQueue};
use lapin::options::BasicGetOptions;
use lapin::{Channel, Connection};
use secrecy::SecretString;
use sqlx::PgPool;
use store::tenants::Tenant;
use store::testing::TestDatabase;
use store::{Keyring, SecretBox, SuiteId};
use test_support::{DEADLINE, init_logs, wait_for, wait_until};
use tokens::TokenService;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wecom::api::{Client, ClientConfig};
use wecom::event::{CreateAuth, Event, SuiteTicket};
use wecom::suite::Suites;
use wecom_sim::{CorpSpec, PushOpts, Sim, SimConfig};

pub const SUITE_ID: &str = "dkauthworker01";
pub const SUITE_SECRET: &str = "suite-secret-for-tests";
pub const TOKEN: &str = "QDG6eK";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
/// 32 bytes of 0x07, base64, with key id `test1`.
pub const SECRET_KEY: &str = "test1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

pub const NO_PUSH: PushOpts = PushOpts {
    push: false,
    wait: false,
};

pub fn suites() -> Suites {
    Suites::from_toml(&format!(
        r#"
        [suites.{SUITE_ID}]
        suite_secret = "{SUITE_SECRET}"
        token = "{TOKEN}"
        encoding_aes_key = "{AES_KEY}"
        "#
    ))
    .unwrap()
}

/// A running auth-worker replica.
pub struct Worker {
    pub health: SocketAddr,
    pub metrics: auth_worker::Metrics,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    /// Graceful stop; returns once in-flight messages are settled.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("worker stops in time")
            .unwrap()
            .unwrap();
    }
}

/// An auth-worker running as a child process.
pub struct WorkerProcess {
    child: tokio::process::Child,
}

impl WorkerProcess {
    /// `kill -9`: no shutdown, no settling, connections dropped by the kernel.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// One test's world.
pub struct Harness {
    pub db: TestDatabase,
    pub db_url: String,
    pub sim: Arc<Sim>,
    pub sim_base: String,
    pub client: Client,
    pub topology: Topology,
    pub publisher: Publisher,
    pub admin: Channel,
    pub secrets: SecretBox,
    admin_conn: Connection,
    sim_shutdown: CancellationToken,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts everything but the workers; `tweak` adjusts the simulator's configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut SimConfig)) -> Self {
        init_logs();
        let db = test_support::test_db().await;
        let db_url = db.url().to_owned();

        let mut config = SimConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            ticket_interval: Duration::ZERO,
            ticket_on_start: false,
            suites: suites().iter().cloned().collect(),
            ..SimConfig::default()
        };
        tweak(&mut config);
        let app = wecom_sim::build(config).unwrap();
        let sim_base = app.base_url();
        let sim = app.sim();
        let sim_shutdown = CancellationToken::new();
        tokio::spawn(app.run(sim_shutdown.clone()));
        let client = Client::new(ClientConfig::new(sim_base.parse().unwrap())).unwrap();

        let url = test_support::broker_url();
        let topology = Topology::new(test_support::test_namespace());
        let admin_conn = bus::connect(&url, "auth-worker-test-admin").await.unwrap();
        let admin = admin_conn.create_channel().await.unwrap();
        topology.declare(&admin).await.unwrap();
        let publisher = Publisher::start(PublisherConfig::new(
            url,
            topology.clone(),
            "auth-worker-test",
        ))
        .unwrap();
        assert!(publisher.wait_ready(DEADLINE).await, "broker reachable");
        let secrets = SecretBox::new(Keyring::parse(SECRET_KEY, "").unwrap());
        Self {
            db,
            db_url,
            sim,
            sim_base,
            client,
            topology,
            publisher,
            admin,
            secrets,
            admin_conn,
            sim_shutdown,
        }
    }

    pub fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    /// The configuration a replica gets (health on port 0).
    pub fn worker_config(&self) -> Config {
        let vars: HashMap<&str, String> = self.worker_vars().into_iter().collect();
        let mut config =
            Config::from_lookup(|name| vars.get(name).cloned(), |_| unreachable!()).unwrap();
        config.log_format = LogFormat::Pretty;
        config
    }

    /// The environment of a replica.
    pub fn worker_vars(&self) -> Vec<(&'static str, String)> {
        [
            ("DATABASE_URL", self.db_url.clone()),
            ("AMQP_URL", test_support::amqp_url()),
            (
                "AMQP_NAMESPACE",
                self.topology.namespace().as_str().to_owned(),
            ),
            ("WECOM_API_BASE", self.sim_base.clone()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
            ("WECOM_SUITE_ID", SUITE_ID.to_owned()),
            ("WECOM_SUITE_SECRET", SUITE_SECRET.to_owned()),
            ("WECOM_TOKEN", TOKEN.to_owned()),
            ("WECOM_ENCODING_AES_KEY", AES_KEY.to_owned()),
            ("HEALTH_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "10".to_owned()),
            ("AUTH_WORKER_PREFETCH", "4".to_owned()),
            ("AUTH_WORKER_SWEEP_SECS", "1".to_owned()),
        ]
        .into()
    }

    /// Starts the real `daikai-auth-worker` binary as a child process with `vars` (so a test
    /// can `kill -9` it), and waits until its `/readyz` answers 200.
    pub async fn worker_process(&self, vars: &[(&'static str, String)]) -> WorkerProcess {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_daikai-auth-worker"))
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HEALTH_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ready = format!("http://127.0.0.1:{port}/readyz");
        wait_until("the worker process is ready", || async {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        WorkerProcess { child }
    }

    /// Builds and starts a replica.
    pub async fn worker(&self) -> Worker {
        self.worker_with(self.worker_config()).await
    }

    /// Builds and starts a replica that calls `wecom_base` instead of the simulator (a
    /// wiremock WeCom).
    pub async fn worker_on(&self, wecom_base: &str) -> Worker {
        let mut config = self.worker_config();
        config.wecom_api_base = wecom_base.parse().unwrap();
        self.worker_with(config).await
    }

    pub async fn worker_with(&self, config: Config) -> Worker {
        let app = Application::build(config).await.unwrap();
        let health = app.health_addr();
        let metrics = app.metrics().clone();
        let status = app.consumer_status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        wait_until("the worker consumes", || {
            let consuming = status.is_consuming();
            async move { consuming }
        })
        .await;
        Worker {
            health,
            metrics,
            shutdown,
            task,
        }
    }

    /// Publishes `event` as the ingress would after a template callback.
    pub async fn publish(&self, event: &Event) -> Envelope {
        let xml = event.to_xml();
        self.publish_raw(event, &xml).await
    }

    /// Same, with the exact plaintext (WeCom retries resend the same plaintext).
    pub async fn publish_raw(&self, event: &Event, plaintext: &str) -> Envelope {
        let origin = CallbackOrigin {
            source: Source::Suite,
            suite_id: &suite_id(),
            corp_id: None,
            receive_id: SUITE_ID,
        };
        let envelope = Envelope::from_callback(origin, plaintext.to_owned(), event.clone());
        self.publisher
            .publish(&envelope, &format!("req-{}", envelope.id))
            .await
            .unwrap();
        envelope
    }

    /// A fresh ticket from the simulator, delivered to the workers; waits until it is stored.
    pub async fn deliver_ticket(&self) -> SuiteTicket {
        let (issued, _) = self.sim.push_ticket(Some(&suite_id()), NO_PUSH).unwrap();
        let ticket = SuiteTicket {
            suite_id: SUITE_ID.parse().unwrap(),
            suite_ticket: issued.suite_ticket.parse().unwrap(),
            timestamp: issued.timestamp,
        };
        self.publish(&Event::SuiteTicket(ticket.clone())).await;
        let suite = suite_id();
        wait_for("the ticket is stored", || async {
            let mut conn = self.pool().acquire().await.unwrap();
            let stored = store::suites::ticket(&mut conn, &self.secrets, &suite)
                .await
                .unwrap();
            stored
                .filter(|t| t.wecom_time.timestamp() >= ticket.timestamp)
                .map(|_| ())
        })
        .await;
        ticket
    }

    /// A corp of `users` members in the simulator.
    pub fn corp(&self, name: &str) -> String {
        let spec = CorpSpec {
            name: Some(name.to_owned()),
            users: Some(5),
            ..CorpSpec::default()
        };
        let (summary, _) = self.sim.create_corp(&spec, NO_PUSH).unwrap();
        summary.corp_id.into()
    }

    /// The corp admin scans the QR: the create_auth event WeCom would push (not published).
    pub fn authorize(&self, corp_id: &str) -> (Event, i64) {
        let (granted, _) = self
            .sim
            .authorize(
                &test_support::corp(corp_id),
                Some(&suite_id()),
                None,
                NO_PUSH,
            )
            .unwrap();
        let event = Event::CreateAuth(CreateAuth {
            suite_id: SUITE_ID.parse().unwrap(),
            auth_code: granted.auth_code.parse().unwrap(),
            timestamp: self.sim.clock.now_secs(),
            state: None,
            extra_info: None,
        });
        (event, granted.agentid.get())
    }

    /// Ticket delivered, corp authorized, create_auth processed: an active tenant.
    pub async fn active_tenant(&self, name: &str) -> (String, Tenant) {
        self.deliver_ticket().await;
        let corp = self.corp(name);
        let (event, _) = self.authorize(&corp);
        self.publish(&event).await;
        // Active with its auth info: the exchange and the get_auth_info that follows it.
        let tenant = self
            .wait_tenant(&corp, |t| {
                t.status == store::tenants::TenantStatus::Active && t.auth_info.is_some()
            })
            .await;
        (corp, tenant)
    }

    pub async fn tenant(&self, corp_id: &str) -> Option<Tenant> {
        test_support::tenant(self.pool(), &suite_id(), &test_support::corp(corp_id)).await
    }

    /// Polls the tenant row until `ready` holds.
    pub async fn wait_tenant(&self, corp_id: &str, ready: impl Fn(&Tenant) -> bool) -> Tenant {
        test_support::wait_tenant(
            self.pool(),
            &suite_id(),
            &test_support::corp(corp_id),
            ready,
        )
        .await
    }

    /// The permanent code the simulator issued for the corp's app.
    pub fn permanent_code(&self, corp_id: &str) -> String {
        let world = self.sim.read();
        let corp = world.corp(&test_support::corp(corp_id)).unwrap();
        corp.auths[&suite_id()].permanent_code.clone()
    }

    /// A token service on its own pool: another replica's view.
    pub async fn token_service(&self) -> TokenService {
        let pool = self.db.new_pool().await.unwrap();
        TokenService::new(pool, self.client.clone(), self.secrets.clone())
    }

    /// The next `internal.tenant.*` envelope routed to `wecom.contacts`, if any.
    pub async fn next_internal(&self) -> Option<Envelope> {
        let queue = &self.topology.queue(WorkQueue::Contacts).work;
        let got = self
            .admin
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()?;
        Some(Envelope::from_json(&got.delivery.data).unwrap())
    }

    /// Waits for the next internal envelope of `kind` (skipping others).
    pub async fn wait_internal(&self, kind: &str) -> Envelope {
        wait_for("a tenant event is published", || async {
            self.next_internal().await.filter(|e| e.kind == kind)
        })
        .await
    }

    /// Messages in `{wecom.auth}.dead`.
    pub async fn dead_letters(&self) -> Vec<(Envelope, String)> {
        let queue = &self.topology.queue(WorkQueue::Auth).dead;
        let mut out = Vec::new();
        while let Some(got) = self
            .admin
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let headers = got
                .delivery
                .properties
                .headers()
                .clone()
                .unwrap_or_default();
            let reason = match headers.inner().get(bus::consumer::ERROR_HEADER) {
                Some(lapin::types::AMQPValue::LongString(s)) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                _ => String::new(),
            };
            out.push((Envelope::from_json(&got.delivery.data).unwrap(), reason));
        }
        out
    }

    pub fn api_calls(&self, api: &str) -> u64 {
        self.sim
            .stats
            .snapshot()
            .api_calls
            .get(api)
            .copied()
            .unwrap_or(0)
    }

    /// Exchange calls, both versions.
    pub fn exchange_calls(&self) -> u64 {
        self.api_calls("service/v2/get_permanent_code")
            + self.api_calls("service/get_permanent_code")
    }

    pub async fn close(self) {
        self.publisher.close().await;
        self.topology.delete(&self.admin).await.unwrap();
        drop(self.admin_conn.close(200, "bye".into()).await);
        self.sim_shutdown.cancel();
        self.db.drop_database().await.unwrap();
    }
}

pub fn suite_id() -> SuiteId {
    test_support::suite(SUITE_ID)
}

pub fn suite_secret() -> SecretString {
    SecretString::from(SUITE_SECRET)
}

/// The `daikai_auth_messages_total` sample of (kind, outcome) in a metrics text.
pub fn messages_total(metrics: &auth_worker::Metrics, kind: &str, outcome: &str) -> u64 {
    metrics
        .messages
        .get_metric_with_label_values(&[kind, outcome])
        .map_or(0, |c| c.get())
}
