//! The contact-sync test bench: wecom-sim in-process on port 0, a per-test database and AMQP
//! namespace, contact-sync replicas in-process, and the ground truth to compare the mirror with
//! (`GET /sim/corps/{corp}/directory?view=app`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bus::{
    CallbackOrigin, Envelope, Namespace, Publisher, PublisherConfig, Source, Tenant, TenantEvent,
    TenantStatus, Topology,
};
use contact_sync::{Application, Config};
use serde_json::{Value, json};
use store::directory::{self, departments, tags, users};
use store::testing::TestDatabase;
use store::{CorpId, SecretBox, SuiteId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wecom::event::{ChangeContact, ContactChange, Event, Framing};
use wecom_sim::SimConfig;

pub const SUITE_ID: &str = "dkcontactsync01";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
/// 32 bytes of 0x01, base64, with key id `k1` (`test_support::secrets()`).
pub const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// One test's world.
pub struct Bench {
    pub db: TestDatabase,
    pub secrets: SecretBox,
    pub namespace: Namespace,
    pub publisher: Publisher,
    pub sim_base: String,
    pub http: reqwest::Client,
    sim_stop: CancellationToken,
}

/// A running contact-sync replica.
pub struct Worker {
    pub health: SocketAddr,
    pub owner: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    /// Stops gracefully (drains in-flight messages).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }

    /// Stops abruptly, like `kill -9` within the process: nothing is drained or released.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Bench {
    pub async fn new() -> Self {
        test_support::init_logs();
        let db = test_support::test_db().await;
        let namespace = Namespace::parse(&format!("t{}.", uuid::Uuid::new_v4().simple())).unwrap();
        let suites = wecom::suite::Suites::from_toml(&format!(
            r#"
            [suites.{SUITE_ID}]
            suite_secret = "suite-secret"
            token = "token"
            encoding_aes_key = "{AES_KEY}"
            "#
        ))
        .unwrap();
        let config = SimConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            workers: 2,
            ticket_interval: Duration::ZERO,
            ticket_on_start: false,
            suites: suites.iter().cloned().collect(),
            ..SimConfig::default()
        };
        let app = wecom_sim::build(config).unwrap();
        let sim_base = app.base_url().trim_end_matches('/').to_owned();
        let sim_stop = CancellationToken::new();
        tokio::spawn(app.run(sim_stop.clone()));
        let topology = Topology::new(namespace.clone());
        let publisher = Publisher::start(PublisherConfig::new(
            test_support::broker_url(),
            topology.clone(),
            "contact-sync-tests",
        ))
        .unwrap();
        let bench = Self {
            db,
            secrets: test_support::secrets(),
            namespace,
            publisher,
            sim_base,
            http: reqwest::Client::new(),
            sim_stop,
        };
        bench.declare_topology(&topology).await;
        bench
    }

    async fn declare_topology(&self, topology: &Topology) {
        let connection = bus::connect(&test_support::broker_url(), "contact-sync-tests-topology")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        topology.declare(&channel).await.unwrap();
        let _ = connection.close(0, "done".into()).await;
    }

    /// Deletes this test's queues and database (stop the workers first).
    pub async fn close(self) {
        let connection = bus::connect(&test_support::broker_url(), "contact-sync-tests-cleanup")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        Topology::new(self.namespace.clone())
            .delete(&channel)
            .await
            .unwrap();
        let _ = connection.close(0, "done".into()).await;
        self.publisher.close().await;
        self.sim_stop.cancel();
        self.db.drop_database().await.unwrap();
    }

    pub fn config(&self) -> Config {
        let vars = [
            ("DATABASE_URL", self.db.url().to_owned()),
            ("AMQP_URL", test_support::amqp_url()),
            ("AMQP_NAMESPACE", self.namespace.as_str().to_owned()),
            ("WECOM_API_BASE", self.sim_base.clone()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
            ("HEALTH_ADDR", "127.0.0.1:0".to_owned()),
            ("SYNC_LEASE_SECS", "3".to_owned()),
            ("SYNC_TICK_SECS", "1".to_owned()),
            ("SYNC_RATE_LIMIT_HOLD_SECS", "1".to_owned()),
            ("LOG_FORMAT", "pretty".to_owned()),
        ];
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap()
    }

    pub async fn worker(&self) -> Worker {
        self.worker_with(self.config()).await
    }

    pub async fn worker_with(&self, config: Config) -> Worker {
        let app = Application::build(config).await.unwrap();
        let health = app.health_addr();
        let owner = app.owner().to_owned();
        let status = app.consumer_status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        test_support::wait_until("the worker consumes", || {
            let status = status.clone();
            async move { status.is_consuming() }
        })
        .await;
        Worker {
            health,
            owner,
            shutdown,
            task,
        }
    }

    /// `POST /sim/…` (or any method) with a JSON body; panics on an error status.
    pub async fn sim(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.sim_base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// Creates and authorizes a corp in the simulator and an active tenant for it in the
    /// database (as the auth worker would have left it). Returns the tenant id.
    pub async fn authorized_corp(&self, corp: &str, spec: Value) -> i64 {
        let mut spec = spec;
        spec["corp_id"] = json!(corp);
        spec["authorize"] = json!([SUITE_ID]);
        self.sim(reqwest::Method::POST, "/sim/corps?push=false", spec)
            .await;
        let summary = self
            .sim(
                reqwest::Method::GET,
                &format!("/sim/corps/{corp}"),
                Value::Null,
            )
            .await;
        let code = summary["authorizations"][0]["permanent_code"]
            .as_str()
            .expect("permanent code in the corp summary")
            .to_owned();
        test_support::active_tenant(
            self.db.pool(),
            &self.secrets,
            &suite(),
            &corp_id(corp),
            &code,
        )
        .await
        .id
    }

    pub async fn publish_tenant_event(&self, make: fn(Tenant) -> TenantEvent, corp: &str) {
        let tenant = Tenant {
            suite_id: suite(),
            corp_id: corp_id(corp),
            corp_name: None,
            agent_id: None,
            status: TenantStatus::Active,
        };
        let envelope = Envelope::internal(make(tenant), &uuid::Uuid::new_v4().to_string());
        self.publisher.publish(&envelope, "test").await.unwrap();
    }

    /// Publishes a directory change as WeCom's app-framed push would arrive from the ingress.
    pub async fn publish_change(&self, corp: &str, change: ContactChange, time: i64) {
        let event = Event::ChangeContact(ChangeContact {
            framing: Framing::App,
            suite_id: None,
            auth_corp_id: Some(corp_id(corp)),
            from_user_name: Some("sys".to_owned()),
            agent_id: None,
            time: Some(time),
            change,
        });
        let xml = event.to_xml();
        let corp = corp_id(corp);
        let envelope = Envelope::from_callback(
            CallbackOrigin {
                source: Source::App,
                suite_id: &suite(),
                corp_id: Some(&corp),
                receive_id: corp.as_str(),
            },
            xml,
            event,
        );
        self.publisher.publish(&envelope, "test").await.unwrap();
    }

    /// What WeCom shows the app: departments, members and tags as canonical JSON.
    pub async fn ground_truth(&self, corp: &str) -> Value {
        let snapshot = self
            .sim(
                reqwest::Method::GET,
                &format!("/sim/corps/{corp}/directory?view=app"),
                Value::Null,
            )
            .await;
        json!({
            "departments": snapshot["departments"],
            "users": snapshot["users"],
            "tags": snapshot["tags"],
        })
    }

    /// The mirror, in the same shapes.
    pub async fn mirror(&self, tenant_id: i64) -> Value {
        let mut conn = self.db.pool().acquire().await.unwrap();
        let departments = departments::read_departments(&mut conn, tenant_id)
            .await
            .unwrap();
        let mut users = users::read_users(&mut conn, tenant_id).await.unwrap();
        users.sort_by(|a, b| a.userid.cmp(&b.userid));
        let tags = tags::read_tags(&mut conn, tenant_id).await.unwrap();
        json!({ "departments": departments, "users": users, "tags": tags })
    }

    /// Waits until the mirror equals the ground truth; panics with the first difference.
    pub async fn assert_converges(&self, corp: &str, tenant_id: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let truth = self.ground_truth(corp).await;
            let mirror = self.mirror(tenant_id).await;
            if truth == mirror {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the mirror did not converge: {}",
                first_difference(&truth, &mirror)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn counts(&self, tenant_id: i64) -> directory::Counts {
        let mut conn = self.db.pool().acquire().await.unwrap();
        directory::counts(&mut conn, tenant_id).await.unwrap()
    }

    pub async fn runs(&self, tenant_id: i64) -> Vec<directory::runs::SyncRun> {
        let mut conn = self.db.pool().acquire().await.unwrap();
        directory::runs::recent_runs(&mut conn, tenant_id, 100)
            .await
            .unwrap()
    }

    /// Waits until the tenant has `n` completed runs and returns the newest.
    pub async fn completed_runs(&self, tenant_id: i64, n: usize) -> directory::runs::SyncRun {
        test_support::wait_for("completed sync runs", || async {
            let runs = self.runs(tenant_id).await;
            let done: Vec<_> = runs
                .iter()
                .filter(|r| r.status == "completed")
                .cloned()
                .collect();
            (done.len() >= n).then(|| done[0].clone())
        })
        .await
    }

    /// The simulator's call counters for `api`.
    pub async fn api_calls(&self, api: &str) -> u64 {
        let stats = self
            .sim(reqwest::Method::GET, "/sim/stats", Value::Null)
            .await;
        stats["api_calls"][api].as_u64().unwrap_or(0)
    }
}

pub fn suite() -> SuiteId {
    SuiteId::parse(SUITE_ID).unwrap()
}

pub fn corp_id(corp: &str) -> CorpId {
    CorpId::parse(corp).unwrap()
}

/// The first place two JSON documents differ, for a readable failure.
pub fn first_difference(truth: &Value, mirror: &Value) -> String {
    fn walk(path: &str, a: &Value, b: &Value) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    walk(
                        &format!("{path}.{k}"),
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    )
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (a, b))| walk(&format!("{path}[{i}]"), a, b)),
            (Value::Array(x), Value::Array(y)) => Some(format!(
                "{path}: {} entries in WeCom, {} in the mirror",
                x.len(),
                y.len()
            )),
            _ if a == b => None,
            _ => Some(format!("{path}: WeCom {a}, mirror {b}")),
        }
    }
    walk("", truth, mirror).unwrap_or_else(|| "no difference".to_owned())
}
