//! The HTTP side every worker shares: `/healthz` (the process answers), `/readyz` (it can do its
//! job, as its [`Probe`] says) and `/metrics` (Prometheus text). Served on `HEALTH_ADDR` by one
//! small actix-web worker; nothing else listens.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

/// What a worker reports on `/readyz` and `/metrics`.
pub trait Probe: Send + Sync + 'static {
    /// Whether the worker can do its job, and a one-line `name=bool …` description of why.
    fn ready(&self) -> impl Future<Output = (bool, String)>;
    /// The Prometheus text exposition of the worker's metrics.
    fn metrics(&self) -> Result<String, prometheus::Error>;
}

/// Binds `addr` and builds the server (not yet polled; spawn it). Returns the bound address, so
/// port 0 works in tests.
pub fn serve<P: Probe>(addr: SocketAddr, probe: P) -> anyhow::Result<(SocketAddr, Server)> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("HEALTH_ADDR: cannot listen on {addr}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let probe = web::Data::from(Arc::new(probe));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(probe.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz::<P>))
            .route("/metrics", web::get().to(metrics::<P>))
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

async fn readyz<P: Probe>(probe: web::Data<P>) -> HttpResponse {
    let (ready, why) = probe.ready().await;
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.content_type("text/plain").body(format!("{why}\n"))
}

async fn metrics<P: Probe>(probe: web::Data<P>) -> HttpResponse {
    match probe.metrics() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(error) => {
            tracing::error!(%error, "rendering metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}
