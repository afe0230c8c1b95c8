//! Provider-side endpoints: suite and provider tokens, the AuthCode exchange (v1/v2) and
//! auth info (v1/v2).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use wecom::api::{
    AuthAgent, AuthCorpInfo, AuthInfo, AuthInfoRequest, AuthInfoResponse, AuthUserInfo, CorpExName,
    PermanentCodeV1, PermanentCodeV2, Privilege, ProviderAccessToken, ProviderTokenRequest,
    SuiteAccessToken, SuiteTokenRequest, paths,
};
use wecom::ids::{CorpId, SuiteId};

use super::{Call, Query, Shape, json_body, param, respond};
use crate::errcode::{self, ApiFailure};
use crate::sim::Sim;
use crate::state::{Authorization, Corp, World};

/// `POST /cgi-bin/service/get_suite_token`.
pub(crate) async fn get_suite_token(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    respond(&sim, paths::GET_SUITE_TOKEN, Shape::Bare, |call| {
        let req: SuiteTokenRequest = json_body(&body)?;
        call.admit(&req.suite_id)?;
        let issued = call.sim.write().suite_token(&req, call.now_ms)?;
        if issued.new {
            call.sim.stats.update(|s| s.tokens_issued.suite += 1);
        }
        Ok(SuiteAccessToken {
            suite_access_token: issued.token,
            expires_in: issued.expires_in,
        })
    })
    .await
}

/// `POST /cgi-bin/service/get_provider_token`.
pub(crate) async fn get_provider_token(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    respond(&sim, paths::GET_PROVIDER_TOKEN, Shape::Bare, |call| {
        let req: ProviderTokenRequest = json_body(&body)?;
        call.admit(&req.corpid)?;
        let corp_id: CorpId = req.corpid.parse().map_err(|_| errcode::INVALID_CORPID)?;
        let issued =
            call.sim
                .write()
                .provider_token(&corp_id, &req.provider_secret, call.now_ms)?;
        if issued.new {
            call.sim.stats.update(|s| s.tokens_issued.provider += 1);
        }
        Ok(ProviderAccessToken {
            provider_access_token: issued.token,
            expires_in: issued.expires_in,
        })
    })
    .await
}

#[derive(Deserialize)]
struct AuthCodeBody {
    #[serde(default)]
    auth_code: String,
}

/// Consumes the AuthCode of the body; the corp it authorized.
fn exchange(
    call: &mut Call<'_>,
    world: &mut World,
    query: &Query,
    body: &[u8],
) -> Result<(SuiteId, CorpId), ApiFailure> {
    let suite_id = world.suite_of_token(param(query, "suite_access_token"), call.now_ms)?;
    call.admit(suite_id.as_str())?;
    let req: AuthCodeBody = json_body(body)?;
    if req.auth_code.is_empty() {
        return Err(errcode::MISSING_PARAMETER);
    }
    match world.exchange_auth_code(&suite_id, &req.auth_code, call.now_ms) {
        Ok(corp_id) => {
            call.sim.stats.update(|s| s.auth_codes.consumed += 1);
            Ok((suite_id, corp_id))
        }
        Err(failure) => {
            call.sim.stats.update(|s| s.auth_codes.rejected += 1);
            Err(failure)
        }
    }
}

fn active<'w>(
    world: &'w World,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<(&'w Corp, &'w Authorization), ApiFailure> {
    let corp = world
        .corp(corp_id)
        .map_err(|_| errcode::INVALID_AUTH_CODE)?;
    let auth = corp.auth(suite_id).ok_or(errcode::INVALID_AUTH_CODE)?;
    Ok((corp, auth))
}

/// `POST /cgi-bin/service/get_permanent_code` (v1: with the agent list; no access_token for
/// 代开发).
pub(crate) async fn get_permanent_code(
    sim: web::Data<Sim>,
    query: Query,
    body: web::Bytes,
) -> HttpResponse {
    respond(&sim, paths::GET_PERMANENT_CODE, Shape::WithStatus, |call| {
        let mut world = call.sim.write();
        let (suite_id, corp_id) = exchange(call, &mut world, &query, &body)?;
        let (corp, auth) = active(&world, &suite_id, &corp_id)?;
        Ok(PermanentCodeV1 {
            access_token: None,
            expires_in: None,
            permanent_code: auth.permanent_code.clone(),
            dealer_corp_info: None,
            auth_corp_info: corp_info(corp, Version::V1),
            auth_info: auth_info(corp, auth),
            auth_user_info: Some(admin(corp)),
            register_code_info: None,
            state: auth.state.clone(),
        })
    })
    .await
}

/// `POST /cgi-bin/service/v2/get_permanent_code` (slim).
pub(crate) async fn get_permanent_code_v2(
    sim: web::Data<Sim>,
    query: Query,
    body: web::Bytes,
) -> HttpResponse {
    respond(
        &sim,
        paths::GET_PERMANENT_CODE_V2,
        Shape::WithStatus,
        |call| {
            let mut world = call.sim.write();
            let (suite_id, corp_id) = exchange(call, &mut world, &query, &body)?;
            let (corp, auth) = active(&world, &suite_id, &corp_id)?;
            Ok(PermanentCodeV2 {
                permanent_code: auth.permanent_code.clone(),
                auth_corp_info: AuthCorpInfo {
                    corpid: corp.id.to_string(),
                    corp_name: Some(corp.name.clone()),
                    ..AuthCorpInfo::default()
                },
                auth_user_info: Some(admin(corp)),
                register_code_info: None,
                state: auth.state.clone(),
            })
        },
    )
    .await
}

/// `POST /cgi-bin/service/get_auth_info`.
pub(crate) async fn get_auth_info(
    sim: web::Data<Sim>,
    query: Query,
    body: web::Bytes,
) -> HttpResponse {
    respond(&sim, paths::GET_AUTH_INFO, Shape::WithStatus, |call| {
        auth_info_answer(call, &query, &body, Version::V1)
    })
    .await
}

/// `POST /cgi-bin/service/v2/get_auth_info`.
pub(crate) async fn get_auth_info_v2(
    sim: web::Data<Sim>,
    query: Query,
    body: web::Bytes,
) -> HttpResponse {
    respond(&sim, paths::GET_AUTH_INFO_V2, Shape::WithStatus, |call| {
        auth_info_answer(call, &query, &body, Version::V2)
    })
    .await
}

fn auth_info_answer(
    call: &mut Call<'_>,
    query: &Query,
    body: &[u8],
    version: Version,
) -> Result<AuthInfoResponse, ApiFailure> {
    let world = call.sim.read();
    let suite_id = world.suite_of_token(param(query, "suite_access_token"), call.now_ms)?;
    call.admit(suite_id.as_str())?;
    let req: AuthInfoRequest = json_body(body)?;
    // A corp id that cannot be one is as unknown as a corp that does not exist.
    let corp_id: CorpId = req
        .auth_corpid
        .parse()
        .map_err(|_| errcode::INVALID_PERMANENT_CODE)?;
    let (corp, auth) = world.auth_by_code(&suite_id, &corp_id, &req.permanent_code)?;
    Ok(AuthInfoResponse {
        dealer_corp_info: None,
        auth_corp_info: corp_info(corp, version),
        auth_info: auth_info(corp, auth),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

fn corp_info(corp: &Corp, version: Version) -> AuthCorpInfo {
    let users = corp.directory.counts().1;
    let scale = match users {
        0..=50 => "1-50人",
        51..=200 => "51-200人",
        201..=500 => "201-500人",
        501..=1000 => "501-1000人",
        _ => "1000人以上",
    };
    AuthCorpInfo {
        corpid: corp.id.to_string(),
        corp_name: Some(corp.name.clone()),
        corp_type: Some("verified".to_owned()),
        corp_square_logo_url: Some(format!("https://p.qlogo.cn/bizmail/sim-{}/0", corp.id)),
        corp_user_max: Some(u64::try_from(users.max(200)).unwrap_or(u64::MAX)),
        corp_full_name: Some(format!("{}有限公司", corp.name)),
        verified_end_time: Some(4_102_444_800),
        subject_type: Some(1),
        corp_wxqrcode: (version == Version::V1).then(|| {
            format!(
                "https://open.work.weixin.qq.com/wwopen/qrcode?sim={}",
                corp.id
            )
        }),
        corp_scale: Some(scale.to_owned()),
        corp_industry: Some("IT服务".to_owned()),
        corp_sub_industry: Some("计算机软件/硬件/信息服务".to_owned()),
        location: (version == Version::V2).then(|| "广东省广州市".to_owned()),
        corp_ex_name: (version == Version::V2).then(CorpExName::default),
    }
}

fn auth_info(corp: &Corp, auth: &Authorization) -> AuthInfo {
    AuthInfo {
        agent: vec![AuthAgent {
            agentid: auth.agent_id.get(),
            name: Some(app_name(&auth.suite_id)),
            round_logo_url: Some(format!("https://p.qlogo.cn/sim/{}/round", auth.suite_id)),
            square_logo_url: Some(format!("https://p.qlogo.cn/sim/{}/square", auth.suite_id)),
            appid: None,
            auth_mode: Some(0),
            is_customized_app: Some(true),
            auth_from_thirdapp: Some(false),
            privilege: Some(Privilege {
                level: Some(1),
                allow_party: corp
                    .scope
                    .departments
                    .iter()
                    .map(|d| d.get().unsigned_abs())
                    .collect(),
                allow_user: corp.scope.users.iter().map(ToString::to_string).collect(),
                allow_tag: corp
                    .scope
                    .tags
                    .iter()
                    .map(|t| t.get().unsigned_abs())
                    .collect(),
                extra_party: Vec::new(),
                extra_user: Vec::new(),
                extra_tag: Vec::new(),
            }),
            shared_from: None,
        }],
    }
}

/// The app's display name.
pub(crate) fn app_name(suite_id: &SuiteId) -> String {
    format!("代开发应用 {suite_id}")
}

/// The admin who authorized: the corp's first member, if any.
fn admin(corp: &Corp) -> AuthUserInfo {
    let first = corp.directory.users().next();
    AuthUserInfo {
        userid: first.map(|m| m.userid.to_string()),
        open_userid: None,
        name: first.map(|m| m.name.clone()),
        avatar: first.map(|m| crate::directory::avatar_url(&m.userid)),
    }
}
