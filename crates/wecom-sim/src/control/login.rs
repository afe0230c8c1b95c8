//! OAuth2 logins: what WeCom's redirect hands an app's page after a member (or an outsider)
//! opened it, so the provider API's member login runs locally (`POST /sim/corps/{corp}/oauth-code`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use wecom::ids::{CorpId, SuiteId, UserId};

use super::{ControlError, Options, corp_id, required_json};
use crate::sim::Sim;
use crate::state::{LOGIN_CODE_TTL_MS, Visitor};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/corps/{corp}/oauth-code", web::post().to(oauth_code));
}

/// The body: `{"userid": …, "private_info": bool}` for a member, `{"openid": …,
/// "external_userid": …}` for someone who is not one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    #[serde(default)]
    userid: Option<String>,
    #[serde(default)]
    private_info: bool,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    external_userid: Option<String>,
}

#[derive(Debug, Serialize)]
struct Minted {
    code: String,
    corp_id: CorpId,
    suite_id: SuiteId,
    expires_in: i64,
}

/// `POST /sim/corps/{corp}/oauth-code[?suite=]`: a single-use login code for the app.
async fn oauth_code(
    sim: web::Data<Sim>,
    corp: web::Path<String>,
    options: web::Query<Options>,
    body: web::Bytes,
) -> Result<HttpResponse, ControlError> {
    let request: CodeRequest = required_json(&body)?;
    let visitor = match (request.userid, request.openid) {
        (Some(userid), None) => Visitor::Member {
            userid: UserId::parse(userid).map_err(|e| ControlError::BadRequest(e.to_string()))?,
            private_info: request.private_info,
        },
        (None, Some(openid)) if !openid.is_empty() => Visitor::Outsider {
            openid,
            external_userid: request.external_userid,
        },
        _ => {
            return Err(ControlError::BadRequest(
                "name either a member (`userid`) or an outsider (`openid`)".to_owned(),
            ));
        }
    };
    let now_ms = sim.clock.now_ms();
    let mut world = sim.write();
    let corp = corp_id(&corp)?;
    let suite_id = world.pick_suite(options.suite()?.as_ref())?;
    let code = world.mint_login_code(&corp, &suite_id, visitor, now_ms)?;
    Ok(HttpResponse::Ok().json(Minted {
        code,
        corp_id: corp,
        suite_id,
        expires_in: LOGIN_CODE_TTL_MS / 1000,
    }))
}
