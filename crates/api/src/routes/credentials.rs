//! What a provider's app needs to act for a tenant (docs/api.md §5, §6, §7): the corp access
//! token (scope `tokens`), JS-SDK signatures (`jssdk`) and the member behind an OAuth2 login
//! (`login`). Tokens and tickets come from the shared cache in Postgres, refreshed once across
//! every replica of every service (the `tokens` crate); a tenant that is not active gets no
//! WeCom call and a 409.

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use rand::RngExt as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use store::api_keys::Scope;
use tokens::{TicketKind, Token, TokenError};
use utoipa::ToSchema;
use wecom::jssdk;

use super::{TenantPath, load_tenant};
use crate::auth::Caller;
use crate::error::{Problem, ProblemBody};
use crate::state::AppState;

/// The longest page URL signed.
const MAX_URL_LEN: usize = 2048;
/// The longest OAuth2 code accepted (WeCom's are 32 to 64 characters).
const MAX_CODE_LEN: usize = 512;

/// A corp access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessTokenView {
    /// The token, for WeCom's `access_token` query parameter.
    access_token: String,
    /// When WeCom stops accepting it (daikai replaces it earlier, at 90 % of its life).
    expires_at: DateTime<Utc>,
    /// Seconds until `expires_at`.
    expires_in: i64,
}

impl AccessTokenView {
    fn of(token: &Token) -> Self {
        Self {
            access_token: token.expose().to_owned(),
            expires_at: token.expires_at(),
            expires_in: (token.expires_at() - Utc::now()).num_seconds().max(0),
        }
    }
}

/// The tenant's corp access token, from the shared cache (one `gettoken` across every replica).
#[utoipa::path(
    tag = "credentials",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, body = AccessTokenView),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "the tenant is revoked or suspended", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
        (status = 502, body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}/access-token")]
pub async fn access_token(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<web::Json<AccessTokenView>, Problem> {
    caller.require_for(Scope::Tokens, path.suite_id())?;
    let (suite_id, corp_id) = path.ids()?;
    let token = corp_token(&state, &suite_id, &corp_id).await?;
    Ok(web::Json(AccessTokenView::of(&token)))
}

async fn corp_token(
    state: &AppState,
    suite_id: &wecom::ids::SuiteId,
    corp_id: &wecom::ids::CorpId,
) -> Result<Token, Problem> {
    let token = state
        .tokens
        .corp_token(suite_id, corp_id)
        .await
        .map_err(|e| token_problem(state, "gettoken", "fetching the corp access token", &e))?;
    state.metrics.credential("corp_token", token.was_fetched());
    Ok(token)
}

fn token_problem(state: &AppState, call: &str, doing: &str, err: &TokenError) -> Problem {
    if let Some(api) = err.api_error() {
        state.metrics.wecom_error(call, api);
    }
    Problem::from_tokens(doing, err)
}

/// `POST …/access-token/invalidate` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InvalidateRequest {
    /// The token WeCom refused (40014 or 42001).
    access_token: String,
}

/// What the invalidation did, and the token to use now.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidateAnswer {
    /// True when the refused token was still the stored one and was dropped; false when it had
    /// already been replaced (by another caller, or a refresh).
    invalidated: bool,
    /// The token to use now.
    #[serde(flatten)]
    token: AccessTokenView,
}

/// Drops the refused token if it is still the stored one (compare-and-delete), and answers the
/// current one: a caller holding an already replaced token never kills its replacement.
#[utoipa::path(
    tag = "credentials",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
    ),
    request_body = InvalidateRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, body = InvalidateAnswer),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
        (status = 502, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tenants/{suite_id}/{corp_id}/access-token/invalidate")]
pub async fn invalidate(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    body: web::Json<InvalidateRequest>,
) -> Result<web::Json<InvalidateAnswer>, Problem> {
    caller.require_for(Scope::Tokens, path.suite_id())?;
    let (suite_id, corp_id) = path.ids()?;
    let failing = body.into_inner().access_token;
    if failing.is_empty() || failing.len() > 1024 {
        return Err(Problem::bad_request(
            "access_token must be the token WeCom refused",
        ));
    }
    // The tenant's status first: a revoked tenant answers 409 whatever token is sent.
    let tenant = load_tenant(&state, &suite_id, &corp_id).await?;
    if tenant.status != store::tenants::TenantStatus::Active {
        return Err(Problem::tenant_not_active(
            suite_id.as_str(),
            corp_id.as_str(),
            tenant.status,
        ));
    }
    let mut conn = state.pool.acquire().await?;
    let invalidated =
        store::corp_tokens::invalidate_corp_token(&mut conn, &suite_id, &corp_id, &failing).await?;
    drop(conn);
    tracing::info!(%suite_id, %corp_id, key_id = caller.key_id(), invalidated,
        "corp access token reported invalid");
    let token = corp_token(&state, &suite_id, &corp_id).await?;
    Ok(web::Json(InvalidateAnswer {
        invalidated,
        token: AccessTokenView::of(&token),
    }))
}

/// `POST …/jssdk-config` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct JssdkRequest {
    /// The full URL of the page that calls `wx.config` (its `#` fragment is not signed).
    #[schema(example = "https://app.example.com/orders?id=7")]
    url: String,
}

/// The arguments of `wx.config` (signed with the corp's jsapi_ticket).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WxConfig {
    /// The corp id.
    app_id: String,
    /// Unix seconds the signature was made at.
    timestamp: i64,
    /// The random string signed.
    nonce_str: String,
    /// `sha1(jsapi_ticket=…&noncestr=…&timestamp=…&url=…)`, hex.
    signature: String,
}

/// The arguments of `wx.agentConfig` (signed with the app's agent_config ticket).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WxAgentConfig {
    /// The corp id.
    corpid: String,
    /// The app's agentid.
    agentid: i64,
    /// Unix seconds the signature was made at.
    timestamp: i64,
    /// The random string signed.
    nonce_str: String,
    /// The signature, hex.
    signature: String,
}

/// Both signed configs of one page.
#[derive(Debug, Serialize, ToSchema)]
pub struct JssdkConfig {
    /// The URL signed (the request's, without its fragment).
    url: String,
    /// For `wx.config`.
    config: WxConfig,
    /// For `wx.agentConfig`; absent while the tenant's agentid is unknown.
    agent_config: Option<WxAgentConfig>,
}

/// Signs a page for `wx.config` and `wx.agentConfig`. The tickets are cached and refreshed once
/// across every replica; they never leave the service.
#[utoipa::path(
    tag = "credentials",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
    ),
    request_body = JssdkRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, body = JssdkConfig),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
        (status = 502, body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tenants/{suite_id}/{corp_id}/jssdk-config")]
pub async fn jssdk_config(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    body: web::Json<JssdkRequest>,
) -> Result<web::Json<JssdkConfig>, Problem> {
    caller.require_for(Scope::Jssdk, path.suite_id())?;
    let (suite_id, corp_id) = path.ids()?;
    let url = body.into_inner().url;
    let parsed = url::Url::parse(&url)
        .map_err(|e| Problem::bad_request(format!("url: not an absolute URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || url.len() > MAX_URL_LEN {
        return Err(Problem::bad_request(format!(
            "url must be an http(s) URL of at most {MAX_URL_LEN} characters"
        )));
    }
    let signed_url = jssdk::signed_url(&url).to_owned();
    let tenant = load_tenant(&state, &suite_id, &corp_id).await?;
    let corp_ticket = ticket(&state, &suite_id, &corp_id, TicketKind::Corp).await?;
    let timestamp = Utc::now().timestamp();
    let nonce = nonce();
    let config = WxConfig {
        app_id: corp_id.to_string(),
        timestamp,
        signature: jssdk::signature(corp_ticket.expose(), &nonce, timestamp, &signed_url),
        nonce_str: nonce.clone(),
    };
    let agent_config = match tenant.agent_id {
        Some(agentid) => {
            let agent_ticket = ticket(&state, &suite_id, &corp_id, TicketKind::Agent).await?;
            Some(WxAgentConfig {
                corpid: corp_id.to_string(),
                agentid,
                timestamp,
                signature: jssdk::signature(agent_ticket.expose(), &nonce, timestamp, &signed_url),
                nonce_str: nonce,
            })
        }
        None => None,
    };
    Ok(web::Json(JssdkConfig {
        url: signed_url,
        config,
        agent_config,
    }))
}

async fn ticket(
    state: &AppState,
    suite_id: &wecom::ids::SuiteId,
    corp_id: &wecom::ids::CorpId,
    kind: TicketKind,
) -> Result<Token, Problem> {
    let (call, credential) = match kind {
        TicketKind::Corp => ("get_jsapi_ticket", "corp_ticket"),
        TicketKind::Agent => ("ticket/get", "agent_ticket"),
    };
    let ticket = state
        .tokens
        .jsapi_ticket(suite_id, corp_id, kind)
        .await
        .map_err(|e| token_problem(state, call, "fetching the JS-SDK ticket", &e))?;
    state.metrics.credential(credential, ticket.was_fetched());
    Ok(ticket)
}

/// 16 random letters and digits.
fn nonce() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// `POST …/oauth/userinfo` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The `code` WeCom's OAuth2 redirect gave the page.
    code: String,
}

/// Who logged in: a member (`userid`) or a visitor who is not one (`openid`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LoginAnswer {
    /// The member's userid.
    #[serde(skip_serializing_if = "Option::is_none")]
    userid: Option<String>,
    /// For `snsapi_privateinfo` logins: the ticket for the member's sensitive details.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_ticket: Option<String>,
    /// Seconds `user_ticket` stays valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_ticket_expires_in: Option<u64>,
    /// A visitor who is not a member: their openid.
    #[serde(skip_serializing_if = "Option::is_none")]
    openid: Option<String>,
    /// A visitor who is an external contact of the corp.
    #[serde(skip_serializing_if = "Option::is_none")]
    external_userid: Option<String>,
}

/// The member behind an OAuth2 login code (`auth/getuserinfo`). A code works once: a used or
/// expired one is a 400, and is never sent to WeCom again.
#[utoipa::path(
    tag = "credentials",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
    ),
    request_body = LoginRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, body = LoginAnswer),
        (status = 400, description = "malformed, or a code WeCom refused (`invalid-oauth-code`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
        (status = 502, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[post("/v1/tenants/{suite_id}/{corp_id}/oauth/userinfo")]
pub async fn oauth_userinfo(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<LoginAnswer>, Problem> {
    caller.require_for(Scope::Login, path.suite_id())?;
    let (suite_id, corp_id) = path.ids()?;
    let code = body.into_inner().code;
    if code.is_empty() || code.len() > MAX_CODE_LEN || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::bad_request(
            "code must be the code of the OAuth2 redirect",
        ));
    }
    let client = state.tokens.client().clone();
    // Only an invalid token is retried (once, with a fresh one): WeCom refuses it before it
    // looks at the code. A refused code is never sent again.
    let answer = state
        .tokens
        .with_corp_token(&suite_id, &corp_id, |token| {
            let (client, code) = (client.clone(), code.clone());
            async move { client.auth_getuserinfo(token.expose(), &code).await }
        })
        .await;
    let info = match answer {
        Ok(info) => info,
        Err(TokenError::Call(api)) if api.code() == Some(40029) => {
            state.metrics.wecom_error("auth/getuserinfo", &api);
            return Err(Problem::invalid_oauth_code());
        }
        Err(err) => {
            return Err(token_problem(
                &state,
                "auth/getuserinfo",
                "asking WeCom who logged in",
                &err,
            ));
        }
    };
    Ok(web::Json(LoginAnswer {
        userid: info.userid,
        user_ticket: info.user_ticket,
        user_ticket_expires_in: info.expires_in,
        openid: info.openid,
        external_userid: info.external_userid,
    }))
}
