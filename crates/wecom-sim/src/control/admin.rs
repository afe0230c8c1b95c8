//! Simulator-wide controls: health, suites and tickets, stats, faults, delivery settings and
//! reports, and the simulated clock.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{ControlError, Options, optional_json, required_json, suite_id, with_pushes};
use crate::faults::FaultConfig;
use crate::push::{DeliveryConfig, Destination};
use crate::sim::Sim;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/suites", web::get().to(suites))
        .route("/suites/{suite}/ticket", web::post().to(ticket))
        .route(
            "/suites/{suite}/verify-url",
            web::post().to(verify_suite_url),
        )
        .route("/stats", web::get().to(stats))
        .route("/stats/reset", web::post().to(reset_stats))
        .route("/faults", web::get().to(faults))
        .route("/faults", web::post().to(set_faults))
        .route("/delivery", web::get().to(delivery))
        .route("/delivery", web::post().to(set_delivery))
        .route("/deliveries", web::get().to(deliveries))
        .route("/clock", web::get().to(clock))
        .route("/clock/advance", web::post().to(advance_clock));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct SuiteView {
    suite_id: wecom::ids::SuiteId,
    template_callback_path: String,
    app_callback_path: String,
    latest_ticket: Option<String>,
}

/// `GET /sim/suites`: the configured suites (no secrets) and their newest valid ticket.
async fn suites(sim: web::Data<Sim>) -> HttpResponse {
    let now = sim.clock.now_ms();
    let world = sim.read();
    let views: Vec<SuiteView> = world
        .suites()
        .map(|s| SuiteView {
            suite_id: s.suite_id.clone(),
            template_callback_path: format!("/callback/suite/{}", s.suite_id),
            app_callback_path: format!("/callback/app/{}/{{corp_id}}", s.suite_id),
            latest_ticket: world
                .creds
                .latest_ticket(&s.suite_id, now)
                .map(str::to_owned),
        })
        .collect();
    HttpResponse::Ok().json(views)
}

/// `POST /sim/suites/{suite}/ticket`: issue a ticket now and push it.
async fn ticket(
    sim: web::Data<Sim>,
    suite: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (issued, pending) = sim.push_ticket(Some(&suite_id(&suite)?), options.push_opts())?;
    Ok(with_pushes(StatusCode::OK, issued, pending).await)
}

/// `POST /sim/suites/{suite}/verify-url`: WeCom's GET verification of the template URL.
async fn verify_suite_url(
    sim: web::Data<Sim>,
    suite: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let suite = suite_id(&suite)?;
    let destination = Destination::Suite {
        suite_id: suite.clone(),
    };
    let receive_id = options.into_inner().receive_id;
    super::verify_url(&sim, &suite, destination, false, receive_id).await
}

async fn stats(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.stats.snapshot())
}

async fn reset_stats(sim: web::Data<Sim>) -> HttpResponse {
    sim.stats.reset();
    HttpResponse::Ok().json(sim.stats.snapshot())
}

async fn faults(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.faults.config())
}

/// `POST /sim/faults`: replaces the fault settings (`{}` turns everything off).
async fn set_faults(sim: web::Data<Sim>, body: web::Bytes) -> Result<HttpResponse, ControlError> {
    let config: FaultConfig = optional_json(&body)?;
    config.validate().map_err(ControlError::BadRequest)?;
    sim.faults.set(config);
    Ok(HttpResponse::Ok().json(sim.faults.config()))
}

async fn delivery(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.pusher.config())
}

/// `POST /sim/delivery`: changes the delivery settings; absent fields keep their value.
async fn set_delivery(sim: web::Data<Sim>, body: web::Bytes) -> Result<HttpResponse, ControlError> {
    let patch: serde_json::Value = required_json(&body)?;
    let mut current = serde_json::to_value(sim.pusher.config())
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let (Some(current_fields), serde_json::Value::Object(patch)) = (current.as_object_mut(), patch)
    else {
        return Err(ControlError::BadRequest(
            "body must be a JSON object".to_owned(),
        ));
    };
    current_fields.extend(patch);
    let config: DeliveryConfig = serde_json::from_value(current)
        .map_err(|e| ControlError::BadRequest(format!("invalid delivery settings: {e}")))?;
    config.validate().map_err(ControlError::BadRequest)?;
    sim.pusher.set_config(config);
    Ok(HttpResponse::Ok().json(sim.pusher.config()))
}

/// `GET /sim/deliveries?limit=N`: the latest delivery reports, oldest first.
async fn deliveries(sim: web::Data<Sim>, options: web::Query<Options>) -> HttpResponse {
    HttpResponse::Ok().json(sim.pusher.recent(options.limit.unwrap_or(100)))
}

#[derive(Serialize)]
struct ClockView {
    now: i64,
    now_ms: i64,
    offset_secs: u64,
}

fn clock_view(sim: &Sim) -> ClockView {
    ClockView {
        now: sim.clock.now_secs(),
        now_ms: sim.clock.now_ms(),
        offset_secs: sim.clock.offset().as_secs(),
    }
}

async fn clock(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(clock_view(&sim))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    secs: u64,
    #[serde(default)]
    ms: u64,
}

/// `POST /sim/clock/advance {"secs": N}`: moves simulated time forward.
async fn advance_clock(
    sim: web::Data<Sim>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let advance: Advance = required_json(&body)?;
    sim.clock
        .advance(Duration::from_secs(advance.secs) + Duration::from_millis(advance.ms));
    Ok(HttpResponse::Ok().json(clock_view(&sim)))
}
