//! The worker's HTTP side: `/healthz` (the process answers), `/readyz` (it can do its job:
//! consuming `wecom.auth`, able to publish, database reachable) and `/metrics` (Prometheus).
//! Served on `HEALTH_ADDR` by one small actix-web worker; nothing else listens.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use bus::Publisher;
use bus::consumer::ConsumerStatus;
use sqlx::PgPool;

use crate::metrics::Metrics;

/// How long `/readyz` waits for the database.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probes look at.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    pub(crate) consumer: ConsumerStatus,
    pub(crate) publisher: Publisher,
    pub(crate) pool: PgPool,
    pub(crate) metrics: Metrics,
}

/// Binds `addr` and builds the server (not yet polled).
pub(crate) fn serve(addr: SocketAddr, probes: Probes) -> anyhow::Result<(SocketAddr, Server)> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("HEALTH_ADDR: cannot listen on {addr}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let probes = web::Data::new(probes);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(probes.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)
    .context("starting the health server")?
    .run();
    Ok((addr, server))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz(probes: web::Data<Probes>) -> HttpResponse {
    let consuming = probes.consumer.is_consuming();
    let publishing = probes.publisher.is_ready();
    let database = ping(&probes.pool).await;
    let body = format!("consuming={consuming} publisher={publishing} database={database}\n");
    if consuming && publishing && database {
        HttpResponse::Ok().content_type("text/plain").body(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(body)
    }
}

async fn ping(pool: &PgPool) -> bool {
    let query = sqlx::query("select 1").execute(pool);
    matches!(
        tokio::time::timeout(DB_PING_TIMEOUT, query).await,
        Ok(Ok(_))
    )
}

async fn metrics(probes: web::Data<Probes>) -> HttpResponse {
    match probes.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(error) => {
            tracing::error!(%error, "rendering metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}
