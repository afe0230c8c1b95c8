//! End-to-end tests live in `tests/tests/`; this library holds their shared helpers.
//!
//! [`Stack`] runs the whole of daikai in-process against the real Postgres and RabbitMQ of the
//! machine, each test in its own database and AMQP namespace: wecom-sim (WeCom's APIs and its
//! side of the callbacks), the ingress (real HTTP on port 0, which wecom-sim pushes to), and any
//! number of auth-worker and contact-sync replicas. Nothing is mocked: a callback travels sim → HTTP → signature
//! and decryption → broker (confirmed) → worker → Postgres, and the worker calls the sim's APIs.
//!
//! Helpers panic instead of returning errors: this crate only runs tests, and a panic with the
//! failing step in its message is the clearest test failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod system;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bus::{Envelope, Topology, WorkQueue};
use lapin::options::BasicGetOptions;
use lapin::{Channel, Connection};
use sqlx::PgPool;
use store::tenants::Tenant;
use store::testing::TestDatabase;
use test_support::{DEADLINE, amqp_url, init_logs, wait_for, wait_until};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wecom::suite::Suites;
use wecom_sim::{CorpSpec, DeliveryConfig, DeliveryReport, Pending, PushOpts, Sim, SimConfig};

/// The suite every end-to-end test serves.
pub const SUITE_ID: &str = "dke2esuite0001";
/// Its secret.
pub const SUITE_SECRET: &str = "e2e-suite-secret";
/// Its callback Token.
pub const TOKEN: &str = "e2eToken";
/// Its callback EncodingAESKey.
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
/// `DAIKAI_SECRET_KEY` of the tests (32 bytes of 0x2a).
pub const SECRET_KEY: &str = "e2e:KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// Push the callback and wait for its delivery report.
pub const PUSH_AND_WAIT: PushOpts = PushOpts {
    push: true,
    wait: true,
};

/// A running service task and its stop button.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the service stops in time")
            .expect("the service task does not panic")
            .expect("the service stops cleanly");
    }
}

/// daikai and its WeCom, in-process.
pub struct Stack {
    /// This test's database (migrated).
    pub db: TestDatabase,
    /// The simulator.
    pub sim: Arc<Sim>,
    /// `http://127.0.0.1:{port}` of the simulator.
    pub sim_base: String,
    /// Where the ingress listens.
    pub ingress_addr: SocketAddr,
    /// This test's topology (namespaced).
    pub topology: Topology,
    db_url: String,
    admin: Channel,
    admin_conn: Connection,
    ingress: Running,
    workers: Vec<Running>,
    sim_shutdown: CancellationToken,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("database", &self.db.name())
            .field("namespace", &self.topology.namespace())
            .field("ingress_addr", &self.ingress_addr)
            .field("sim_base", &self.sim_base)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Database, broker namespace, simulator, ingress (the simulator pushes to it) and one
    /// auth worker.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Same, with the simulator's configuration adjusted by `tweak` (delivery modes, faults).
    pub async fn start_with(tweak: impl FnOnce(&mut SimConfig)) -> Self {
        init_logs();
        let db = test_support::test_db().await;
        let db_url = db.url().to_owned();
        let topology = Topology::new(test_support::test_namespace());
        let admin_conn = bus::connect(&test_support::broker_url(), "e2e-admin")
            .await
            .unwrap();
        let admin = admin_conn.create_channel().await.unwrap();
        topology.declare(&admin).await.unwrap();

        let ingress = start_ingress(&topology);
        let ingress_addr = ingress.0;

        let mut config = SimConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            ticket_interval: Duration::ZERO,
            ticket_on_start: false,
            suites: suites().iter().cloned().collect(),
            delivery: DeliveryConfig {
                callback_base: Some(format!("http://{ingress_addr}").parse().unwrap()),
                retry_interval_ms: 100,
                ..DeliveryConfig::default()
            },
            ..SimConfig::default()
        };
        tweak(&mut config);
        let app = wecom_sim::build(config).unwrap();
        let sim_base = app.base_url();
        let sim = app.sim();
        let sim_shutdown = CancellationToken::new();
        tokio::spawn(app.run(sim_shutdown.clone()));

        let mut stack = Self {
            db,
            sim,
            sim_base,
            ingress_addr,
            topology,
            db_url,
            admin,
            admin_conn,
            ingress: ingress.1,
            workers: Vec::new(),
            sim_shutdown,
        };
        stack.wait_ingress_ready().await;
        stack.add_auth_worker().await;
        stack
    }

    /// Starts one more auth-worker replica and waits until it consumes.
    pub async fn add_auth_worker(&mut self) {
        let vars: HashMap<&str, String> = [
            ("DATABASE_URL", self.db_url.clone()),
            ("AMQP_URL", amqp_url()),
            (
                "AMQP_NAMESPACE",
                self.topology.namespace().as_str().to_owned(),
            ),
            ("WECOM_API_BASE", self.sim_base.clone()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
            ("HEALTH_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "10".to_owned()),
            ("AUTH_WORKER_PREFETCH", "4".to_owned()),
            ("LOG_FORMAT", "pretty".to_owned()),
        ]
        .into_iter()
        .chain(suite_vars())
        .collect();
        let config = auth_worker::Config::from_lookup(
            |name| vars.get(name).cloned(),
            |_| unreachable!("no suites file in tests"),
        )
        .unwrap();
        let app = auth_worker::Application::build(config).await.unwrap();
        let status = app.consumer_status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        wait_until("the auth worker consumes", || {
            let consuming = status.is_consuming();
            async move { consuming }
        })
        .await;
        self.workers.push(Running { shutdown, task });
    }

    /// Starts one contact-sync replica and waits until it consumes.
    pub async fn add_contact_sync(&mut self) {
        let vars: HashMap<&str, String> = [
            ("DATABASE_URL", self.db_url.clone()),
            ("AMQP_URL", amqp_url()),
            (
                "AMQP_NAMESPACE",
                self.topology.namespace().as_str().to_owned(),
            ),
            ("WECOM_API_BASE", self.sim_base.clone()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
            ("HEALTH_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "20".to_owned()),
            ("CONTACT_SYNC_PREFETCH", "8".to_owned()),
            ("LOG_FORMAT", "pretty".to_owned()),
        ]
        .into_iter()
        .collect();
        let config = contact_sync::Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let app = contact_sync::Application::build(config).await.unwrap();
        let status = app.consumer_status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        wait_until("contact sync consumes", || {
            let consuming = status.is_consuming();
            async move { consuming }
        })
        .await;
        self.workers.push(Running { shutdown, task });
    }

    async fn wait_ingress_ready(&self) {
        let url = format!("http://{}/readyz", self.ingress_addr);
        wait_until("the ingress is ready", || async {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        })
        .await;
    }

    /// This test's database pool.
    pub fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    /// WeCom pushes a fresh suite ticket through the ingress; waits until it is stored.
    pub async fn push_ticket(&self) {
        let suite = test_support::suite(SUITE_ID);
        let (issued, pending) = self.sim.push_ticket(Some(&suite), PUSH_AND_WAIT).unwrap();
        assert!(delivered(pending).await.iter().all(|r| r.delivered));
        wait_for("the ticket is stored", || async {
            let stored: Option<i64> = sqlx::query_scalar(
                "select extract(epoch from ticket_wecom_time)::bigint from suites
                 where suite_id = $1",
            )
            .bind(SUITE_ID)
            .fetch_optional(self.pool())
            .await
            .unwrap()
            .flatten();
            stored.filter(|t| *t >= issued.timestamp).map(drop)
        })
        .await;
    }

    /// A corp with a few members in the simulator.
    pub fn create_corp(&self, name: &str) -> String {
        let spec = CorpSpec {
            name: Some(name.to_owned()),
            users: Some(10),
            ..CorpSpec::default()
        };
        let (summary, _) = self.sim.create_corp(&spec, PushOpts::default()).unwrap();
        summary.corp_id.into()
    }

    /// The corp admin scans the template QR: WeCom pushes create_auth through the ingress.
    /// Returns the delivery reports (the original push and any duplicate).
    pub async fn authorize(&self, corp_id: &str) -> (i64, Vec<DeliveryReport>) {
        let (granted, pending) = self
            .sim
            .authorize(
                &test_support::corp(corp_id),
                Some(&test_support::suite(SUITE_ID)),
                None,
                PUSH_AND_WAIT,
            )
            .unwrap();
        (granted.agentid.get(), delivered(pending).await)
    }

    /// The tenant row of `corp_id`, if any.
    pub async fn tenant(&self, corp_id: &str) -> Option<Tenant> {
        let (suite, corp) = (test_support::suite(SUITE_ID), test_support::corp(corp_id));
        test_support::tenant(self.pool(), &suite, &corp).await
    }

    /// Polls the tenant row until `ready` holds.
    pub async fn wait_tenant(&self, corp_id: &str, ready: impl Fn(&Tenant) -> bool) -> Tenant {
        let (suite, corp) = (test_support::suite(SUITE_ID), test_support::corp(corp_id));
        test_support::wait_tenant(self.pool(), &suite, &corp, ready).await
    }

    /// Calls the simulator answered for `api` (e.g. `service/v2/get_permanent_code`).
    pub fn api_calls(&self, api: &str) -> u64 {
        self.sim
            .stats
            .snapshot()
            .api_calls
            .get(api)
            .copied()
            .unwrap_or(0)
    }

    /// Every `internal.tenant.*` envelope waiting on `wecom.contacts`, taken off the queue.
    pub async fn take_tenant_events(&self) -> Vec<Envelope> {
        let queue = &self.topology.queue(WorkQueue::Contacts).work;
        let mut out = Vec::new();
        while let Some(got) = self
            .admin
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let envelope = Envelope::from_json(&got.delivery.data).unwrap();
            if envelope.kind.starts_with("tenant.") {
                out.push(envelope);
            }
        }
        out
    }

    /// Stops everything (workers drain first) and drops the database and the topology.
    pub async fn close(self) {
        for worker in self.workers {
            worker.stop().await;
        }
        self.ingress.stop().await;
        self.sim_shutdown.cancel();
        self.topology.delete(&self.admin).await.unwrap();
        drop(self.admin_conn.close(200, "bye".into()).await);
        self.db.drop_database().await.unwrap();
    }
}

/// The test suite's configuration.
pub fn suites() -> Suites {
    Suites::from_lookup(|name| {
        suite_vars()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| value)
    })
    .unwrap()
}

/// The suite's variables, as the services and wecom-sim read them.
pub(crate) fn suite_vars() -> impl Iterator<Item = (&'static str, String)> {
    [
        ("WECOM_SUITE_ID", SUITE_ID),
        ("WECOM_SUITE_SECRET", SUITE_SECRET),
        ("WECOM_TOKEN", TOKEN),
        ("WECOM_ENCODING_AES_KEY", AES_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
}

/// Builds and spawns the ingress on port 0.
fn start_ingress(topology: &Topology) -> (SocketAddr, Running) {
    let vars: HashMap<&str, String> = [
        ("INGRESS_ADDR", "127.0.0.1:0".to_owned()),
        ("AMQP_URL", amqp_url()),
        ("AMQP_NAMESPACE", topology.namespace().as_str().to_owned()),
        ("INGRESS_WORKERS", "1".to_owned()),
        ("LOG_FORMAT", "pretty".to_owned()),
    ]
    .into_iter()
    .chain(suite_vars())
    .collect();
    let config = ingress::Config::from_lookup(
        |name| vars.get(name).cloned(),
        |_| unreachable!("no suites file in tests"),
    )
    .unwrap();
    let app = ingress::Application::build(config).unwrap();
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    (addr, Running { shutdown, task })
}

/// Waits for the delivery reports of `pending` pushes.
pub async fn delivered(pending: Vec<Pending>) -> Vec<DeliveryReport> {
    let mut reports = Vec::new();
    for push in pending {
        if let Some(done) = push.done {
            let report = tokio::time::timeout(DEADLINE, done)
                .await
                .expect("the push is delivered in time")
                .expect("the simulator reports the delivery");
            reports.push(report);
        }
    }
    reports
}
