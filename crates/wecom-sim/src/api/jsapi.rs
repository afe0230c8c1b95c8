//! The JS-SDK ticket endpoints and the OAuth2 login of a 代开发 app, with the app's corp token
//! (rules in `state::jsapi`): `get_jsapi_ticket`, `ticket/get?type=agent_config` and
//! `auth/getuserinfo`. Each goes through the app gate (`corp::with_app`), so a disabled app gets
//! 50003 and a cancelled one 48004, like every other app API.

use actix_web::{HttpResponse, web};
use wecom::api::{AGENT_CONFIG_TICKET_TYPE, JsapiTicket, paths};

use super::corp::with_app;
use super::{Call, Query, Shape, param, respond};
use crate::errcode::{self, ApiFailure};
use crate::sim::Sim;
use crate::state::{AppRef, TicketKind};

/// `GET /cgi-bin/get_jsapi_ticket?access_token`.
pub(crate) async fn get_jsapi_ticket(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::GET_JSAPI_TICKET, Shape::WithStatus, |call| {
        ticket(call, &query, TicketKind::Corp)
    })
    .await
}

/// `GET /cgi-bin/ticket/get?access_token&type=agent_config` (any other type: 40058).
pub(crate) async fn ticket_get(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::TICKET_GET, Shape::WithStatus, |call| {
        if param(&query, "type") != Some(AGENT_CONFIG_TICKET_TYPE) {
            return Err(errcode::INVALID_PARAMETER);
        }
        ticket(call, &query, TicketKind::Agent)
    })
    .await
}

fn ticket(call: &mut Call<'_>, query: &Query, kind: TicketKind) -> Result<JsapiTicket, ApiFailure> {
    let app = app_of(call, query)?;
    let issued = call.sim.write().js_ticket(&app, kind, call.now_ms)?;
    Ok(JsapiTicket {
        ticket: issued.ticket,
        expires_in: issued.expires_in,
    })
}

/// `GET /cgi-bin/auth/getuserinfo?access_token&code`.
pub(crate) async fn auth_getuserinfo(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::AUTH_GETUSERINFO, Shape::WithStatus, |call| {
        let app = app_of(call, &query)?;
        let code = param(&query, "code").ok_or(errcode::MISSING_CODE)?;
        call.sim.write().login(&app, code, call.now_ms)
    })
    .await
}

/// The app the token belongs to, through the app gate.
fn app_of(call: &mut Call<'_>, query: &Query) -> Result<AppRef, ApiFailure> {
    with_app(call, query, |corp, auth| {
        Ok(AppRef {
            corp_id: corp.id.clone(),
            suite_id: auth.suite_id.clone(),
        })
    })
}
