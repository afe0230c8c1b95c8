//! Shared helpers of the token integration tests: a per-test database, a keyring, ids, an active
//! tenant, and a client for a WeCom double (wiremock).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use store::testing::{DEFAULT_URL, TestDatabase};
use store::{CorpId, KeyId, Keyring, SecretBox, SecretKey, SuiteId};

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

pub async fn test_db() -> TestDatabase {
    TestDatabase::create(&database_url()).await.unwrap()
}

pub fn key(id: &str, byte: u8) -> SecretKey {
    SecretKey::from_bytes(KeyId::parse(id).unwrap(), &[byte; 32])
}

pub fn secrets() -> SecretBox {
    SecretBox::new(Keyring::single(key("k1", 1)))
}

pub fn suite(id: &str) -> SuiteId {
    SuiteId::parse(id).unwrap()
}

pub fn corp(id: &str) -> CorpId {
    CorpId::parse(id).unwrap()
}

pub fn wecom_client(base: &str) -> wecom::api::Client {
    let mut config = wecom::api::ClientConfig::new(url::Url::parse(base).unwrap());
    config.timeout = Duration::from_secs(30);
    wecom::api::Client::new(config).unwrap()
}

/// Polls `check` until it is true; panics after a generous deadline.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An active tenant with `code` as its permanent code.
pub async fn active_tenant(
    pool: &sqlx::PgPool,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    code: &str,
) -> store::tenants::Tenant {
    let code = secrecy::SecretString::from(code.to_owned());
    let mut conn = pool.acquire().await.unwrap();
    store::tenants::activate_tenant(
        &mut conn,
        secrets,
        &store::tenants::Activation {
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

/// Sessions of `database` currently waiting for a lock (a replica queued on a row lock).
pub async fn lock_waiters(pool: &sqlx::PgPool, database: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
    )
    .bind(database)
    .fetch_one(pool)
    .await
    .unwrap()
}
