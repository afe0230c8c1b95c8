//! Corps and the authorization lifecycle: create, authorize (scan the QR), reset the secret,
//! cancel, change the scope, disable and re-enable the app.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{ControlError, Options, corp_id, optional_json, with_pushes};
use crate::push::Destination;
use crate::sim::{ScopeChange, Sim};
use crate::state::CorpSpec;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/corps", web::get().to(list))
        .route("/corps", web::post().to(create))
        .route("/corps/{corp}", web::get().to(show))
        .route("/corps/{corp}/authorize", web::post().to(authorize))
        .route("/corps/{corp}/reset-secret", web::post().to(reset_secret))
        .route("/corps/{corp}/cancel", web::post().to(cancel))
        .route("/corps/{corp}/change-scope", web::post().to(change_scope))
        .route("/corps/{corp}/disable", web::post().to(disable))
        .route("/corps/{corp}/enable", web::post().to(enable))
        .route("/corps/{corp}/verify-url", web::post().to(verify_app_url));
}

async fn list(sim: web::Data<Sim>) -> HttpResponse {
    let summaries: Vec<_> = sim
        .read()
        .corps()
        .map(crate::state::Corp::summary)
        .collect();
    HttpResponse::Ok().json(summaries)
}

/// `POST /sim/corps`: create and seed a corp (seeding runs off the async workers).
async fn create(
    sim: web::Data<Sim>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let spec: CorpSpec = optional_json(&body)?;
    let opts = options.push_opts();
    let sim = sim.into_inner();
    let (summary, pending) = web::block(move || sim.create_corp(&spec, opts))
        .await
        .map_err(|e| ControlError::Internal(e.to_string()))??;
    Ok(with_pushes(StatusCode::CREATED, summary, pending).await)
}

async fn show(sim: web::Data<Sim>, corp: web::Path<String>) -> Result<HttpResponse, ControlError> {
    let summary = sim.read().corp(&corp_id(&corp)?)?.summary();
    Ok(HttpResponse::Ok().json(summary))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    #[serde(default)]
    state: Option<String>,
}

/// `POST /sim/corps/{corp}/authorize`: the admin scans the template QR.
async fn authorize(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let body: AuthorizeBody = optional_json(&body)?;
    let (granted, pending) = sim.authorize(
        &corp_id(&corp)?,
        options.suite()?.as_ref(),
        body.state,
        options.push_opts(),
    )?;
    Ok(with_pushes(StatusCode::OK, granted, pending).await)
}

/// `POST /sim/corps/{corp}/reset-secret`: the provider's 「重新获取secret」.
async fn reset_secret(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (granted, pending) = sim.reset_secret(
        &corp_id(&corp)?,
        options.suite()?.as_ref(),
        options.push_opts(),
    )?;
    Ok(with_pushes(StatusCode::OK, granted, pending).await)
}

/// `POST /sim/corps/{corp}/cancel`: the corp removes the app.
async fn cancel(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (suite_id, pending) = sim.cancel(
        &corp_id(&corp)?,
        options.suite()?.as_ref(),
        options.push_opts(),
    )?;
    let body = serde_json::json!({ "corp_id": corp.as_str(), "suite_id": suite_id });
    Ok(with_pushes(StatusCode::OK, body, pending).await)
}

/// `POST /sim/corps/{corp}/verify-url`: WeCom's GET verification of the app callback URL.
async fn verify_app_url(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let corp = corp_id(&corp)?;
    let (suite_id, agent_id) = {
        let world = sim.read();
        let suite_id = world.pick_suite(options.suite()?.as_ref())?;
        let agent_id = world
            .corp(&corp)?
            .auth(&suite_id)
            .map_or(0, |a| a.agent_id.get());
        (suite_id, agent_id)
    };
    let destination = Destination::App {
        suite_id: suite_id.clone(),
        corp_id: corp,
        agent_id,
    };
    let receive_id = options.into_inner().receive_id;
    super::verify_url(&sim, &suite_id, destination, true, receive_id).await
}

/// `POST /sim/corps/{corp}/change-scope`: new visibility scope and/or grants.
async fn change_scope(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let change: ScopeChange = optional_json(&body)?;
    let (summary, pending) = sim.change_scope(
        &corp_id(&corp)?,
        options.suite()?.as_ref(),
        change,
        options.push_opts(),
    )?;
    Ok(with_pushes(StatusCode::OK, summary, pending).await)
}

/// `POST /sim/corps/{corp}/disable`: the admin disables the app (`close: 1`, 50003).
async fn disable(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (switched, pending) = sim.disable(
        &corp_id(&corp)?,
        options.suite()?.as_ref(),
        options.push_opts(),
    )?;
    Ok(with_pushes(StatusCode::OK, switched, pending).await)
}

/// `POST /sim/corps/{corp}/enable`: the admin re-enables a disabled app.
async fn enable(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (switched, pending) = sim.enable(
        &corp_id(&corp)?,
        options.suite()?.as_ref(),
        options.push_opts(),
    )?;
    Ok(with_pushes(StatusCode::OK, switched, pending).await)
}
