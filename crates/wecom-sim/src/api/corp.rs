//! The 代开发 app's own endpoints: `gettoken` (corpid + permanent code as the secret) and the
//! app's description and permissions, plus the gate every app API goes through ([`with_app`]):
//! a disabled app keeps its secret and tokens (gettoken works) and `agent/get` says `close: 1`,
//! while every other app API answers 50003.

use actix_web::{HttpResponse, web};
use wecom::api::{
    AccessToken, Agent, AgentPermissions, AllowPartys, AllowTags, AllowUser, AllowUserInfos,
    PermissionExt, paths,
};
use wecom::ids::CorpId;

use super::service::app_name;
use super::{Call, Query, Shape, number_param, param, respond};
use crate::errcode::{self, ApiFailure};
use crate::sim::Sim;
use crate::state::{Authorization, Corp};

/// `GET /cgi-bin/gettoken?corpid&corpsecret`.
pub(crate) async fn gettoken(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::GET_TOKEN, Shape::WithStatus, |call| {
        let corp_id = param(&query, "corpid").ok_or(errcode::MISSING_CORPID)?;
        call.admit(corp_id)?;
        let secret = param(&query, "corpsecret").ok_or(errcode::MISSING_SECRET)?;
        let corp_id: CorpId = corp_id.parse().map_err(|_| errcode::INVALID_CORPID)?;
        let sim = call.sim;
        let issued = sim.write().corp_token(&corp_id, secret, call.now_ms)?;
        if issued.new {
            sim.stats.update(|s| s.tokens_issued.corp += 1);
        }
        Ok(AccessToken {
            access_token: issued.token,
            expires_in: issued.expires_in,
        })
    })
    .await
}

/// Runs `f` for the app the `access_token` belongs to, after admitting the call for its corp;
/// 50003 while the app is disabled.
pub(crate) fn with_app<T>(
    call: &mut Call<'_>,
    query: &Query,
    f: impl FnOnce(&Corp, &Authorization) -> Result<T, ApiFailure>,
) -> Result<T, ApiFailure> {
    with_app_even_disabled(call, query, |corp, auth| {
        if auth.disabled {
            return Err(errcode::APP_DISABLED);
        }
        f(corp, auth)
    })
}

/// [`with_app`] that also serves a disabled app: `agent/get` is how a provider learns that the
/// app is disabled (`close: 1`), so it must keep answering.
fn with_app_even_disabled<T>(
    call: &mut Call<'_>,
    query: &Query,
    f: impl FnOnce(&Corp, &Authorization) -> Result<T, ApiFailure>,
) -> Result<T, ApiFailure> {
    let sim = call.sim;
    let world = sim.read();
    let app = world.app_of_token(param(query, "access_token"), call.now_ms)?;
    call.admit(app.corp_id.as_str())?;
    let corp = world
        .corp(&app.corp_id)
        .map_err(|_| errcode::INVALID_ACCESS_TOKEN)?;
    let auth = corp
        .auth(&app.suite_id)
        .ok_or(errcode::INVALID_ACCESS_TOKEN)?;
    f(corp, auth)
}

/// `GET /cgi-bin/agent/get?access_token&agentid`.
pub(crate) async fn agent_get(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::AGENT_GET, Shape::WithStatus, |call| {
        with_app_even_disabled(call, &query, |corp, auth| {
            let agent_id: i64 = number_param(&query, "agentid", errcode::MISSING_AGENTID)?;
            if agent_id != auth.agent_id.get() {
                return Err(errcode::INVALID_AGENTID);
            }
            Ok(Agent {
                agentid: auth.agent_id,
                name: Some(app_name(&auth.suite_id)),
                square_logo_url: Some(format!("https://p.qlogo.cn/sim/{}/square", auth.suite_id)),
                description: Some("wecom-sim 代开发应用".to_owned()),
                allow_userinfos: Some(AllowUserInfos {
                    user: corp
                        .scope
                        .users
                        .iter()
                        .map(|u| AllowUser { userid: u.clone() })
                        .collect(),
                }),
                allow_partys: Some(AllowPartys {
                    partyid: corp.scope.departments.clone(),
                }),
                allow_tags: Some(AllowTags {
                    tagid: corp.scope.tags.clone(),
                }),
                close: Some(i64::from(auth.disabled)),
                redirect_domain: Some("daikai.example.com".to_owned()),
                report_location_flag: Some(0),
                isreportenter: Some(0),
                home_url: Some("https://daikai.example.com/".to_owned()),
                customized_publish_status: Some(1),
            })
        })
    })
    .await
}

/// `POST /cgi-bin/agent/get_permissions?access_token`.
pub(crate) async fn agent_get_permissions(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(
        &sim,
        paths::AGENT_GET_PERMISSIONS,
        Shape::WithStatus,
        |call| {
            with_app(call, &query, |corp, _| {
                let names: Vec<String> = corp.grants.names().map(str::to_owned).collect();
                Ok(AgentPermissions {
                    app_permissions_ext: names
                        .iter()
                        .map(|name| PermissionExt {
                            permission_name: name.clone(),
                            expire_time: None,
                        })
                        .collect(),
                    app_permissions: names,
                })
            })
        },
    )
    .await
}
