//! The simulated server APIs under `/cgi-bin/…`: every endpoint `wecom::api::Client` knows,
//! answering with the very `wecom::api` types the client decodes (so the two cannot drift) and
//! WeCom's errcodes as HTTP 200.
//!
//! Every call goes through `respond`: added latency first, then the handler, which names the
//! corp (or suite) it acts for through `Call::admit` so that rate limits and the `-1` fault
//! rate apply per corp and API, then the stats.

mod contact;
mod corp;
mod jsapi;
mod service;

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wecom::api::{Envelope, paths};

use crate::errcode::{self, ApiFailure};
use crate::sim::Sim;

/// The query string, as WeCom reads it (last value wins, unknown names ignored).
pub(crate) type Query = web::Query<HashMap<String, String>>;

/// Mounts every `/cgi-bin` route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        paths::GET_SUITE_TOKEN,
        web::post().to(service::get_suite_token),
    )
    .route(
        paths::GET_PROVIDER_TOKEN,
        web::post().to(service::get_provider_token),
    )
    .route(
        paths::GET_PERMANENT_CODE,
        web::post().to(service::get_permanent_code),
    )
    .route(
        paths::GET_PERMANENT_CODE_V2,
        web::post().to(service::get_permanent_code_v2),
    )
    .route(paths::GET_AUTH_INFO, web::post().to(service::get_auth_info))
    .route(
        paths::GET_AUTH_INFO_V2,
        web::post().to(service::get_auth_info_v2),
    )
    .route(paths::GET_TOKEN, web::get().to(corp::gettoken))
    .route(paths::AGENT_GET, web::get().to(corp::agent_get))
    .route(
        paths::AGENT_GET_PERMISSIONS,
        web::post().to(corp::agent_get_permissions),
    )
    .route(
        paths::DEPARTMENT_LIST,
        web::get().to(contact::department_list),
    )
    .route(
        paths::DEPARTMENT_SIMPLELIST,
        web::get().to(contact::department_simplelist),
    )
    .route(
        paths::DEPARTMENT_GET,
        web::get().to(contact::department_get),
    )
    .route(paths::USER_GET, web::get().to(contact::user_get))
    .route(paths::USER_LIST, web::get().to(contact::user_list))
    .route(
        paths::USER_SIMPLELIST,
        web::get().to(contact::user_simplelist),
    )
    .route(paths::USER_LIST_ID, web::post().to(contact::user_list_id))
    .route(paths::TAG_LIST, web::get().to(contact::tag_list))
    .route(paths::TAG_GET, web::get().to(contact::tag_get))
    .route(
        paths::GET_JSAPI_TICKET,
        web::get().to(jsapi::get_jsapi_ticket),
    )
    .route(paths::TICKET_GET, web::get().to(jsapi::ticket_get))
    .route(
        paths::AUTH_GETUSERINFO,
        web::get().to(jsapi::auth_getuserinfo),
    );
}

/// The API name used in stats, faults and rate limits: the path after `/cgi-bin/`.
pub(crate) fn api_name(path: &'static str) -> &'static str {
    path.strip_prefix("/cgi-bin/").unwrap_or(path)
}

/// One API call in progress.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) sim: &'a Sim,
    api: &'static str,
    key: Option<String>,
    pub(crate) now_ms: i64,
}

impl Call<'_> {
    /// Names the corp (or suite) the call acts for, counts it against the rate limit, and
    /// draws the fault rate: 45009 or -1 end the call here.
    pub(crate) fn admit(&mut self, key: &str) -> Result<(), ApiFailure> {
        self.key = Some(key.to_owned());
        self.sim.faults.check(key, self.api, self.now_ms)
    }
}

/// Whether a success answer carries `errcode`/`errmsg` (the token endpoints omit them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `{"errcode":0,"errmsg":"ok", …}`.
    WithStatus,
    /// The payload alone.
    Bare,
}

/// Runs `handler` as API `path` and answers as WeCom would.
pub(crate) async fn respond<T: Serialize>(
    sim: &Sim,
    path: &'static str,
    shape: Shape,
    handler: impl FnOnce(&mut Call<'_>) -> Result<T, ApiFailure>,
) -> HttpResponse {
    let api = api_name(path);
    let latency = sim.faults.latency(api);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut call = Call {
        sim,
        api,
        key: None,
        now_ms: sim.clock.now_ms(),
    };
    let result = handler(&mut call);
    let code = result.as_ref().map_or_else(|failure| failure.code, |_| 0);
    sim.stats.record_call(api, call.key.as_deref(), code);
    match result {
        Ok(body) if shape == Shape::Bare => HttpResponse::Ok().json(body),
        Ok(body) => HttpResponse::Ok().json(Envelope::ok(body)),
        Err(failure) => HttpResponse::Ok().json(failure.status(call.now_ms.div_euclid(1000))),
    }
}

/// Decodes a JSON body; anything else is 47001 data format error.
pub(crate) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiFailure> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|_| errcode::DATA_FORMAT_ERROR)
}

/// A query parameter, treating empty as absent.
pub(crate) fn param<'q>(query: &'q Query, name: &str) -> Option<&'q str> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// A numeric query parameter (a number, or a numeric id): `missing` when absent, 40058 when not
/// one.
pub(crate) fn number_param<T: std::str::FromStr>(
    query: &Query,
    name: &str,
    missing: ApiFailure,
) -> Result<T, ApiFailure> {
    param(query, name)
        .ok_or(missing)?
        .trim()
        .parse()
        .map_err(|_| errcode::INVALID_PARAMETER)
}
