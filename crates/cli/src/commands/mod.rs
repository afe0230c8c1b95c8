//! One module per command group, each a few functions printing to `out`; and what they share:
//! connecting to the database and the broker (failures carry the exit code and the masked URL),
//! and finding a tenant by corp id.

pub mod api_keys;
pub mod auth_codes;
pub mod dead;
pub mod schema;
pub mod secrets;
pub mod status;
pub mod sync;
pub mod tenants;

use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use store::tenants::{Tenant, list_tenants};

use crate::env::{Env, mask_url};
use crate::exit::Fault;

/// How long to wait for the database or the broker before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A small pool on `DATABASE_URL`.
pub async fn database(env: &Env) -> anyhow::Result<PgPool> {
    let url = env.database_url()?;
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
        .context(Fault::Database(mask_url(url)))
}

/// One connection to `AMQP_URL` (closed by the caller).
pub async fn broker(env: &Env) -> anyhow::Result<lapin::Connection> {
    let url = env.broker_url()?;
    bus::connect(&url, "daikai-cli")
        .await
        .context(Fault::Broker(url.to_string()))
}

/// A confirmed publisher on `AMQP_URL` under `AMQP_NAMESPACE`, connected (call `close`).
pub async fn publisher(env: &Env) -> anyhow::Result<bus::Publisher> {
    // One direct attempt first: its error says why (refused login, no route, timeout), where the
    // publisher's background reconnects would only say "not ready".
    let probe = broker(env).await?;
    drop(probe.close(200, "probe".into()).await);
    let url = env.broker_url()?;
    let publisher = bus::Publisher::start(bus::PublisherConfig::new(
        url.clone(),
        env.topology()?,
        "daikai-cli",
    ))?;
    if publisher.wait_ready(CONNECT_TIMEOUT).await {
        Ok(publisher)
    } else {
        publisher.close().await;
        Err(Fault::Broker(url.to_string()))
            .context("the publisher did not become ready (declaring the topology failed?)")
    }
}

/// The tenant of `corp` (in `suite`, when given); [`Fault::NotFound`] when there is none, an
/// error naming the suites when the corp authorized several and no suite was given.
pub async fn find_tenant(pool: &PgPool, corp: &str, suite: Option<&str>) -> anyhow::Result<Tenant> {
    store::check_schema(pool).await?;
    let mut conn = pool.acquire().await?;
    let mut matches: Vec<Tenant> = list_tenants(&mut conn, None)
        .await?
        .into_iter()
        .filter(|t| t.corp_id.as_str() == corp && suite.is_none_or(|s| t.suite_id.as_str() == s))
        .collect();
    match matches.len() {
        0 => Err(Fault::NotFound(format!(
            "no tenant with corp id `{corp}`{} (see `daikai tenants list`)",
            suite
                .map(|s| format!(" in suite `{s}`"))
                .unwrap_or_default()
        ))
        .into()),
        1 => Ok(matches.remove(0)),
        _ => {
            let suites: Vec<&str> = matches.iter().map(|t| t.suite_id.as_str()).collect();
            anyhow::bail!(
                "corp `{corp}` authorized several suites ({}): add --suite",
                suites.join(", ")
            )
        }
    }
}
