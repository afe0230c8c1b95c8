//! What the integration tests of every crate share (a dev-dependency only; the end-to-end crate
//! `tests/` is test code throughout): where the shared Postgres and RabbitMQ are, logs on demand,
//! polling with one deadline, a database and a namespace per test, and the tenant rows tests
//! set up and wait on.
//!
//! It depends only on the crates below the services (`bus`, `store`), so every service's tests,
//! and contact sync's, can use it. Per-test AMQP namespaces are [`bus::testkit`]'s, re-exported
//! here. Helpers panic instead of returning errors: a panic naming the failing step is the
//! clearest test failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::PgPool;
use store::tenants::{Activation, Tenant};
use store::testing::TestDatabase;
use store::{CorpId, KeyId, Keyring, SecretBox, SecretKey, SuiteId};

pub use bus::testkit::{amqp_url, test_namespace};

/// How long a poll waits before the test fails: generous, because it is a deadline for a
/// loaded machine, not a timing assertion.
pub const DEADLINE: Duration = Duration::from_mins(1);

/// How often [`wait_for`] probes.
const POLL: Duration = Duration::from_millis(50);

/// `DATABASE_URL` from the environment, or the local Postgres ([`store::testing::DEFAULT_URL`]).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| store::testing::DEFAULT_URL.to_owned())
}

/// [`amqp_url`], parsed.
pub fn broker_url() -> bus::BrokerUrl {
    bus::BrokerUrl::parse(&amqp_url()).unwrap()
}

/// A database of this test's own on the server of [`database_url`], migrated.
pub async fn test_db() -> TestDatabase {
    TestDatabase::create(&database_url()).await.unwrap()
}

/// Logs to the test output when `TEST_LOG` is set (e.g. `TEST_LOG=auth_worker=debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        drop(
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init(),
        );
    }
}

/// Polls `probe` until it returns `Some`, failing after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `condition` until it holds, failing after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await;
}

/// `id`, which the test knows to be a valid suite id.
pub fn suite(id: &str) -> SuiteId {
    SuiteId::parse(id).unwrap()
}

/// `id`, which the test knows to be a valid corp id.
pub fn corp(id: &str) -> CorpId {
    CorpId::parse(id).unwrap()
}

/// A 32-byte key of `byte`s with key id `id`.
pub fn key(id: &str, byte: u8) -> SecretKey {
    SecretKey::from_bytes(KeyId::parse(id).unwrap(), &[byte; 32])
}

/// Sealing under the single key `k1`.
pub fn secrets() -> SecretBox {
    SecretBox::new(Keyring::single(key("k1", 1)))
}

/// An active tenant (corp name `Acme`, agent 1000002) with `code` as its permanent code,
/// written straight to the store.
pub async fn active_tenant(
    pool: &PgPool,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    code: &str,
) -> Tenant {
    let code = SecretString::from(code.to_owned());
    let mut conn = pool.acquire().await.unwrap();
    store::tenants::activate_tenant(
        &mut conn,
        secrets,
        &Activation {
            suite_id,
            corp_id,
            corp_name: Some("Acme"),
            agent_id: Some(1_000_002),
            permanent_code: &code,
            auth_info: None,
            state: None,
            event_time: 1_700_000_000,
        },
    )
    .await
    .unwrap()
    .tenant
}

/// The tenant row of (`suite_id`, `corp_id`), if any.
pub async fn tenant(pool: &PgPool, suite_id: &SuiteId, corp_id: &CorpId) -> Option<Tenant> {
    let mut conn = pool.acquire().await.unwrap();
    store::tenants::tenant(&mut conn, suite_id, corp_id)
        .await
        .unwrap()
}

/// Polls the tenant row of (`suite_id`, `corp_id`) until it exists and `ready` holds.
pub async fn wait_tenant(
    pool: &PgPool,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    ready: impl Fn(&Tenant) -> bool,
) -> Tenant {
    wait_for("the tenant reaches the expected state", || async {
        tenant(pool, suite_id, corp_id).await.filter(|t| ready(t))
    })
    .await
}

/// Sessions of `database` currently waiting for a lock (a replica queued on a row lock).
pub async fn lock_waiters(pool: &PgPool, database: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
    )
    .bind(database)
    .fetch_one(pool)
    .await
    .unwrap()
}
