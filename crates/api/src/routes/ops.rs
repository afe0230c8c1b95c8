//! The routes without a key: liveness, readiness, metrics and the OpenAPI document.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// How long `/readyz` waits for Postgres.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process answers.
#[utoipa::path(tag = "operations", responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The API can answer: Postgres is reachable and shutdown has not begun.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "not ready: why", body = String, content_type = "text/plain"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.shutting_down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("shutting_down=true\n");
    }
    let query = sqlx::query("select 1").execute(&state.pool);
    let database = matches!(tokio::time::timeout(READY_TIMEOUT, query).await, Ok(Ok(_)));
    state.metrics.database_ready.set(i64::from(database));
    let body = format!("database={database}\n");
    if database {
        HttpResponse::Ok().content_type("text/plain").body(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(body)
    }
}

/// Prometheus text exposition.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(error) => {
            tracing::error!(%error, "rendering metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// This document: OpenAPI 3.1, generated from the routes the server mounts.
#[utoipa::path(tag = "operations", responses((status = 200, description = "the OpenAPI document", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.as_str().to_owned())
}
