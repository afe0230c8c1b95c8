//! Directory ground truth and mutations: each mutation changes the state and pushes the
//! matching change_contact to the corp's app callback URL (or not, with `?push=false`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use wecom::ids::{DepartmentId, TagId, UserId};

use super::{ControlError, Options, required_json, with_pushes};
use crate::directory::view::{app_snapshot, full_snapshot};
use crate::sim::{Mutation, Sim};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/corps/{corp}/directory", web::get().to(snapshot))
        .route("/corps/{corp}/users", web::post().to(create_user))
        .route("/corps/{corp}/users/{userid}", web::patch().to(update_user))
        .route(
            "/corps/{corp}/users/{userid}",
            web::delete().to(delete_user),
        )
        .route(
            "/corps/{corp}/departments",
            web::post().to(create_department),
        )
        .route(
            "/corps/{corp}/departments/{id}",
            web::patch().to(update_department),
        )
        .route(
            "/corps/{corp}/departments/{id}",
            web::delete().to(delete_department),
        )
        .route("/corps/{corp}/tags", web::post().to(create_tag))
        .route(
            "/corps/{corp}/tags/{tagid}/members",
            web::post().to(update_tag_members),
        );
}

/// `GET /sim/corps/{corp}/directory?view=full|app`: the canonical, sorted directory.
async fn snapshot(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let world = sim.read();
    let corp = world.corp(&super::corp_id(&corp)?)?;
    let snapshot = match options.view.as_deref().unwrap_or("full") {
        "full" => full_snapshot(&corp.id, &corp.directory),
        "app" => app_snapshot(&corp.id, &corp.directory, &corp.visibility(), &corp.grants),
        other => {
            return Err(ControlError::BadRequest(format!(
                "view must be full or app, not {other}"
            )));
        }
    };
    Ok(HttpResponse::Ok().json(snapshot))
}

async fn run(
    sim: &Sim,
    corp: &str,
    mutation: Mutation,
    options: &Options,
) -> Result<HttpResponse, ControlError> {
    let mut outcome = sim.mutate(&super::corp_id(corp)?, mutation, options.push_opts())?;
    let pending = std::mem::take(&mut outcome.pending);
    Ok(with_pushes(StatusCode::OK, outcome, pending).await)
}

async fn create_user(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let mutation = Mutation::CreateUser(required_json(&body)?);
    run(&sim, &corp, mutation, &options).await
}

async fn update_user(
    sim: web::Data<Sim>,
    path: web::Path<(String, UserId)>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let (corp, userid) = path.into_inner();
    let mutation = Mutation::UpdateUser(userid, required_json(&body)?);
    run(&sim, &corp, mutation, &options).await
}

async fn delete_user(
    sim: web::Data<Sim>,
    path: web::Path<(String, UserId)>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (corp, userid) = path.into_inner();
    run(&sim, &corp, Mutation::DeleteUser(userid), &options).await
}

async fn create_department(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let mutation = Mutation::CreateDepartment(required_json(&body)?);
    run(&sim, &corp, mutation, &options).await
}

async fn update_department(
    sim: web::Data<Sim>,
    path: web::Path<(String, DepartmentId)>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let (corp, id) = path.into_inner();
    let mutation = Mutation::UpdateDepartment(id, required_json(&body)?);
    run(&sim, &corp, mutation, &options).await
}

async fn delete_department(
    sim: web::Data<Sim>,
    path: web::Path<(String, DepartmentId)>,
    options: web::Query<Options>,
) -> Result<HttpResponse, ControlError> {
    let (corp, id) = path.into_inner();
    run(&sim, &corp, Mutation::DeleteDepartment(id), &options).await
}

async fn create_tag(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let mutation = Mutation::CreateTag(required_json(&body)?);
    run(&sim, &corp, mutation, &options).await
}

async fn update_tag_members(
    sim: web::Data<Sim>,
    path: web::Path<(String, TagId)>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let (corp, tagid) = path.into_inner();
    let mutation = Mutation::UpdateTagMembers(tagid, required_json(&body)?);
    run(&sim, &corp, mutation, &options).await
}
