//! daikai as an operator runs it: every service its own process, started from the binaries the
//! workspace builds, on the machine's Postgres and RabbitMQ, with wecom-sim (also a process)
//! playing WeCom. docs/reliability.md describes the scenarios built on it.
//!
//! Each [`System`] has its own database and AMQP namespace, and reaches Postgres and RabbitMQ
//! through a [`FaultProxy`] each, so a test can take the broker or the database away from its
//! services (and only from its own) while the processes run. Processes are killed with SIGKILL
//! or stopped with SIGTERM; their logs are kept in `{temp}/daikai-e2e/{namespace}/`.

mod clients;
pub mod mutations;
mod process;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use bus::testkit::FaultProxy;
use bus::{Topology, WorkQueue};
use lapin::options::QueueDeclareOptions;
use lapin::{Channel, Connection};
use serde_json::Value;
use sqlx::PgPool;
use store::testing::TestDatabase;
use test_support::{amqp_url, init_logs};

pub use clients::{ApiClient, SimClient, normalized};
pub use process::{Binary, Process};

use crate::{SECRET_KEY, SUITE_ID, suite_vars};

/// Members in a directory of [`wait_converged`]'s shape.
pub fn member_count(directory: &serde_json::Value) -> usize {
    directory["users"].as_array().map_or(0, Vec::len)
}

/// How a [`System`] starts; each `*_env` adds to (or overrides) its service's environment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Auth-worker replicas started at once.
    pub auth_workers: usize,
    /// Contact-sync replicas started at once.
    pub contact_syncs: usize,
    /// Extra environment of wecom-sim.
    pub sim_env: Vec<(String, String)>,
    /// Extra environment of every auth worker.
    pub auth_env: Vec<(String, String)>,
    /// Extra environment of every contact-sync replica.
    pub sync_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth_workers: 2,
            contact_syncs: 2,
            sim_env: Vec::new(),
            auth_env: Vec::new(),
            sync_env: Vec::new(),
        }
    }
}

/// The services of daikai and wecom-sim as child processes.
pub struct System {
    /// This system's database.
    pub db: TestDatabase,
    /// This system's exchanges and queues.
    pub topology: Topology,
    /// Between every service and RabbitMQ.
    pub broker: FaultProxy,
    /// Between every service and Postgres.
    pub database: FaultProxy,
    /// The simulator's control API.
    pub sim: SimClient,
    /// The provider API, with a key of every scope.
    pub api: ApiClient,
    /// Where the ingress listens.
    pub ingress_addr: SocketAddr,
    /// The running auth workers.
    pub auth_workers: Vec<Process>,
    /// The running contact-sync replicas.
    pub contact_syncs: Vec<Process>,
    services: Vec<Process>,
    options: Options,
    log_dir: PathBuf,
    started: usize,
    admin: Channel,
    admin_conn: Connection,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("database", &self.db.name())
            .field("namespace", &self.topology.namespace())
            .field("logs", &self.log_dir)
            .finish_non_exhaustive()
    }
}

impl System {
    /// Starts the ingress, wecom-sim, the workers of `options` and the provider API, each once
    /// ready (its `/readyz` answers 200), and creates an API key.
    pub async fn start(options: Options) -> Self {
        init_logs();
        let db = test_support::test_db().await;
        let topology = Topology::new(test_support::test_namespace());
        let admin_conn = bus::connect(&test_support::broker_url(), "e2e-admin")
            .await
            .unwrap();
        let admin = admin_conn.create_channel().await.unwrap();
        topology.declare(&admin).await.unwrap();
        let broker = FaultProxy::start(upstream(&amqp_url(), 5672))
            .await
            .unwrap();
        let database = FaultProxy::start(upstream(db.url(), 5432)).await.unwrap();
        let log_dir = std::env::temp_dir()
            .join("daikai-e2e")
            .join(topology.namespace().as_str().trim_end_matches('.'));
        let ingress_addr = free_addr();
        let sim_addr = free_addr();
        let api_addr = free_addr();
        let api = ApiClient::new(format!("http://{api_addr}"), api_key(db.url()).await);
        let mut system = Self {
            sim: SimClient::new(format!("http://{sim_addr}")),
            api,
            db,
            topology,
            broker,
            database,
            ingress_addr,
            auth_workers: Vec::new(),
            contact_syncs: Vec::new(),
            services: Vec::new(),
            options,
            log_dir,
            started: 0,
            admin,
            admin_conn,
        };
        system.start_ingress().await;
        system.start_sim(sim_addr).await;
        for _ in 0..system.options.auth_workers {
            system.start_auth_worker().await;
        }
        for _ in 0..system.options.contact_syncs {
            system.start_contact_sync().await;
        }
        system.start_api(api_addr).await;
        system
    }

    /// This system's database pool (direct, not through the proxy).
    pub fn pool(&self) -> &PgPool {
        self.db.pool()
    }

    /// Where the processes' logs are.
    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dir
    }

    /// The environment every daikai service shares: where Postgres, RabbitMQ (both through
    /// their proxies) and WeCom are, the namespace, the secret key, the suite.
    fn service_env(&self) -> Vec<(String, String)> {
        let database_url = self.database.amqp_url(self.db.url());
        [
            ("DATABASE_URL", database_url),
            ("AMQP_URL", self.broker.amqp_url(&amqp_url())),
            (
                "AMQP_NAMESPACE",
                self.topology.namespace().as_str().to_owned(),
            ),
            ("WECOM_API_BASE", self.sim.base.clone()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .chain(suite_vars())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn next_name(&mut self, role: &str) -> String {
        self.started += 1;
        format!("{role}-{}", self.started)
    }

    async fn start_ingress(&mut self) {
        let mut env = self.service_env();
        env.extend(vars(&[
            ("INGRESS_ADDR", &self.ingress_addr.to_string()),
            ("INGRESS_WORKERS", "1"),
        ]));
        let name = self.next_name("ingress");
        env.push(hostname(&name));
        let process = Process::spawn(Binary::Ingress, &name, &env, &self.log_dir);
        let process = ready(process, self.ingress_addr).await;
        self.services.push(process);
    }

    async fn start_sim(&mut self, addr: SocketAddr) {
        let mut env: Vec<(String, String)> = vars(&[
            ("SIM_ADDR", &addr.to_string()),
            ("SIM_WORKERS", "2"),
            (
                "SIM_CALLBACK_BASE",
                &format!("http://{}", self.ingress_addr),
            ),
            ("SIM_TICKET_INTERVAL_SECS", "0"),
            ("SIM_TICKET_ON_START", "false"),
            // WeCom retries a callback three times; the simulator keeps trying for a minute so
            // that a broker outage of 20 s delays callbacks without losing one.
            ("SIM_CALLBACK_RETRIES", "60"),
            ("SIM_CALLBACK_RETRY_INTERVAL_MS", "1000"),
            ("RUST_LOG", "info"),
            ("LOG_FORMAT", "json"),
        ]);
        env.extend(suite_vars().map(|(k, v)| (k.to_owned(), v)));
        env.extend(self.options.sim_env.iter().cloned());
        let process = Process::spawn(Binary::Sim, "wecom-sim", &env, &self.log_dir);
        let process = ready_at(process, &format!("http://{addr}/healthz")).await;
        self.services.push(process);
    }

    /// Starts one more auth worker and waits until it is ready.
    pub async fn start_auth_worker(&mut self) {
        let health = free_addr();
        let mut env = self.service_env();
        env.extend(vars(&[
            ("HEALTH_ADDR", &health.to_string()),
            ("DATABASE_MAX_CONNECTIONS", "10"),
            ("AUTH_WORKER_PREFETCH", "4"),
            ("AUTH_WORKER_SWEEP_SECS", "5"),
        ]));
        env.extend(self.options.auth_env.iter().cloned());
        let name = self.next_name("auth-worker");
        env.push(hostname(&name));
        let process = Process::spawn(Binary::AuthWorker, &name, &env, &self.log_dir);
        self.auth_workers.push(ready(process, health).await);
    }

    /// Starts one more contact-sync replica and waits until it is ready.
    pub async fn start_contact_sync(&mut self) {
        let health = free_addr();
        let mut env = self.service_env();
        env.extend(vars(&[
            ("HEALTH_ADDR", &health.to_string()),
            ("DATABASE_MAX_CONNECTIONS", "12"),
            ("CONTACT_SYNC_PREFETCH", "4"),
            ("SYNC_CONCURRENCY", "4"),
            ("SYNC_LEASE_SECS", "10"),
            ("SYNC_TICK_SECS", "2"),
        ]));
        env.extend(self.options.sync_env.iter().cloned());
        let name = self.next_name("contact-sync");
        env.push(hostname(&name));
        let process = Process::spawn(Binary::ContactSync, &name, &env, &self.log_dir);
        self.contact_syncs.push(ready(process, health).await);
    }

    async fn start_api(&mut self, addr: SocketAddr) {
        let mut env = self.service_env();
        env.extend(vars(&[
            ("API_ADDR", &addr.to_string()),
            ("API_WORKERS", "1"),
            ("API_RATE_LIMIT", "100000"),
            ("DATABASE_MAX_CONNECTIONS", "8"),
        ]));
        let process = Process::spawn(Binary::Api, "api", &env, &self.log_dir);
        let process = ready(process, addr).await;
        self.services.push(process);
    }

    /// The ingress process.
    pub fn ingress(&self) -> &Process {
        self.services
            .iter()
            .find(|p| p.name().starts_with("ingress"))
            .expect("the ingress runs")
    }

    /// Every process, services and workers.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.services
            .iter()
            .chain(&self.auth_workers)
            .chain(&self.contact_syncs)
    }

    /// Waits (up to `limit`) until the provider API shows `corp_id`'s tenant with `status`;
    /// returns it. Any other answer meanwhile (404, or 503 while the API reconnects to Postgres)
    /// means not yet.
    pub async fn wait_status(&self, corp_id: &str, status: &str, limit: Duration) -> Value {
        let path = format!("/v1/tenants/{SUITE_ID}/{corp_id}");
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (code, tenant) = self.api.request(reqwest::Method::GET, &path).await;
            if code.is_success() && tenant["status"] == status {
                return tenant;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{corp_id} is not {status}: {code} {tenant}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Panics if any daikai process's log contains one of `secrets` (wecom-sim, which plays
    /// WeCom, is not daikai and is not checked).
    pub fn assert_no_secret_logged(&self, secrets: &[String]) {
        for process in self.processes().filter(|p| p.name() != "wecom-sim") {
            let log = process.log();
            for secret in secrets {
                assert!(
                    !log.contains(secret.as_str()),
                    "{} logged a secret ({}…)",
                    process.name(),
                    &secret[..secret.len().min(4)]
                );
            }
        }
    }

    /// Panics (with its log) if any process has exited.
    pub fn assert_all_running(&mut self) {
        for process in self
            .services
            .iter_mut()
            .chain(&mut self.auth_workers)
            .chain(&mut self.contact_syncs)
        {
            process.assert_running();
        }
    }

    /// Messages ready in `queue`'s work queue and in its dead-letter queue.
    pub async fn queue_depth(&self, queue: WorkQueue) -> (u32, u32) {
        let names = self.topology.queue(queue);
        let depth = |name: String| async move {
            let declared = self
                .admin
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("queue {name}: {e}"));
            declared.message_count()
        };
        (
            depth(names.work.clone()).await,
            depth(names.dead.clone()).await,
        )
    }

    /// Terminates every backend of this system's database in Postgres but the caller's (what a
    /// failover or an administrator's `pg_terminate_backend` does); returns how many. The test's
    /// own pool reconnects too.
    pub async fn terminate_database_backends(&self) -> i64 {
        sqlx::query_scalar(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity
             where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(self.db.name())
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// Stops every process with SIGTERM (each must exit cleanly), then drops the database and
    /// the topology.
    pub async fn close(mut self) {
        self.assert_all_running();
        for process in self
            .contact_syncs
            .drain(..)
            .chain(self.auth_workers.drain(..))
        {
            process.stop().await;
        }
        for process in self.services.drain(..).rev() {
            process.stop().await;
        }
        self.topology.delete(&self.admin).await.unwrap();
        drop(self.admin_conn.close(200, "bye".into()).await);
        self.db.drop_database().await.unwrap();
        drop(std::fs::remove_dir_all(&self.log_dir));
    }
}

/// `(name, value)` pairs as owned strings (for [`Options`]' environments).
pub fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `HOSTNAME` as a container or pod would have it: the process's name, which contact sync puts
/// in the owner of the runs it works on.
fn hostname(name: &str) -> (String, String) {
    ("HOSTNAME".to_owned(), name.to_owned())
}

/// A free local port (bound and released: the service binds it a moment later).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `host:port` of a server URL such as `postgres://u@host:5432/db`.
fn upstream(url: &str, default_port: u16) -> SocketAddr {
    let parsed = url::Url::parse(url).expect("a server URL");
    let host = parsed.host_str().expect("a host");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", parsed.port().unwrap_or(default_port))
        .parse()
        .expect("an IP address in the server URL")
}

/// Waits until `GET http://{addr}/readyz` answers 200.
async fn ready(mut process: Process, addr: SocketAddr) -> Process {
    process.set_endpoint(addr);
    ready_at(process, &format!("http://{addr}/readyz")).await
}

async fn ready_at(mut process: Process, url: &str) -> Process {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        process.assert_running();
        let answered = reqwest::get(url)
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
        if answered {
            return process;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} is not ready after 60 s; its log ends:\n{}",
            process.name(),
            process.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an API key of every scope with the operator CLI; returns the key it prints once.
async fn api_key(database_url: &str) -> String {
    let output = tokio::process::Command::new(Binary::Cli.path())
        .args(["api-keys", "create", "--name", "e2e", "--scope", "all"])
        .env("DATABASE_URL", database_url)
        .output()
        .await
        .expect("running daikai api-keys create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "daikai api-keys create: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .next()
        .filter(|line| line.starts_with("dk_"))
        .unwrap_or_else(|| panic!("no key in: {stdout}"))
        .to_owned()
}

/// Waits until `condition` holds, for up to `limit` (longer than [`test_support::DEADLINE`]
/// where a scenario needs it: a full sync of a large corp on a loaded machine).
pub async fn wait_long<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to `limit`) until the provider API serves exactly the directory WeCom shows the
/// app of `corp_id`; returns it. On a timeout, names what differs.
pub async fn wait_converged(system: &System, corp_id: &str, limit: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let truth = system.sim.directory(corp_id).await;
        let served = system.api.directory(SUITE_ID, corp_id).await;
        if served.as_ref() == Some(&truth) {
            return truth;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            difference(corp_id, &truth, served.as_ref())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A short account of how the served directory differs from the truth.
fn difference(
    corp_id: &str,
    truth: &serde_json::Value,
    served: Option<&serde_json::Value>,
) -> String {
    let Some(served) = served else {
        return format!("the API does not serve {corp_id}'s directory");
    };
    let mut out = format!("{corp_id}: the directory did not converge");
    let rows = |v: &serde_json::Value, part: &str| -> Vec<String> {
        v[part]
            .as_array()
            .map(|items| items.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    };
    for part in ["departments", "users", "tags"] {
        let (want, got) = (rows(truth, part), rows(served, part));
        let want_set: std::collections::HashSet<&String> = want.iter().collect();
        let got_set: std::collections::HashSet<&String> = got.iter().collect();
        let missing: Vec<_> = want
            .iter()
            .filter(|w| !got_set.contains(w))
            .take(3)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|g| !want_set.contains(g))
            .take(3)
            .collect();
        let _ = write!(
            out,
            "\n{part}: {} want, {} served; first wanted not served: {missing:?}; first served not wanted: {extra:?}",
            want.len(),
            got.len()
        );
    }
    out
}
