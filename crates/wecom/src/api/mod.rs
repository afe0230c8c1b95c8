//! The WeCom server API client: a thin typed layer over `https://qyapi.weixin.qq.com/cgi-bin`.
//!
//! Why it exists: the auth worker and contact sync must call WeCom, and WeCom's failure modes are
//! unusual (errors as HTTP 200 with an `errcode`, success answers without one, tokens in the query
//! string). This module hides those quirks behind one method per endpoint returning typed values
//! or an [`ApiError`] whose [`ErrorClass`] tells the caller what to do. It holds no tokens and has
//! no retry policy: caching, single-flight refresh and backoff live in the workers.
//!
//! Every type serializes to WeCom's real JSON shape, so the simulator (`wecom-sim`) serves the
//! same structs this client decodes; [`Envelope`] adds the `errcode`/`errmsg` pair.
//!
//! Nothing here logs a URL, a token or a secret: the access token travels in the query string, so
//! transport errors are stripped of their URL, and secret-bearing types redact their `Debug`.
//!
//! A [`CallObserver`] given to [`Client::with_observer`] hears the outcome of every call the
//! client makes (the services count them by API and [`ErrorClass`] on their `/metrics`).

mod agent;
mod contact;
mod envelope;
mod error;
mod exchange;
mod jsapi;
mod service;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::RequestBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::ids::{AgentId, CorpId, DepartmentId, SuiteId, TagId, Ticket, UserId};

pub use agent::{
    Agent, AgentPermissions, AllowPartys, AllowTags, AllowUser, AllowUserInfos, PermissionExt,
};
pub use contact::{
    Department, DepartmentGetResponse, DepartmentListResponse, DepartmentRef,
    DepartmentSimpleListResponse, DeptUser, ExtAttr, ExtAttrItem, ExtMiniprogram, ExtText, ExtWeb,
    ListIdRequest, Tag, TagListResponse, TagMembers, TagUser, User, UserIdPage, UserListResponse,
    UserRef, UserSimpleListResponse,
};
pub use envelope::{Envelope, MAX_BODY_BYTES, Status};
pub use error::{
    ApiError, CONCURRENCY_LIMIT_BACKOFF, ErrorClass, FREQUENCY_LIMIT_BACKOFF, TokenKind, classify,
};
pub use jsapi::{AGENT_CONFIG_TICKET_TYPE, JsapiTicket, OauthUserInfo};
pub use service::{
    AccessToken, AuthAgent, AuthCorpInfo, AuthInfo, AuthInfoRequest, AuthInfoResponse,
    AuthUserInfo, CorpExName, DealerCorpInfo, PermanentCodeRequest, PermanentCodeV1,
    PermanentCodeV2, Privilege, ProviderAccessToken, ProviderTokenRequest, RegisterCodeInfo,
    SharedFrom, SuiteAccessToken, SuiteTokenRequest,
};

/// The real WeCom API host; endpoint paths start with `/cgi-bin/`.
pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";

/// Endpoint paths, relative to the base URL (shared with the simulator's router).
pub mod paths {
    /// `POST`, body [`SuiteTokenRequest`](super::SuiteTokenRequest).
    pub const GET_SUITE_TOKEN: &str = "/cgi-bin/service/get_suite_token";
    /// `POST`, body [`ProviderTokenRequest`](super::ProviderTokenRequest).
    pub const GET_PROVIDER_TOKEN: &str = "/cgi-bin/service/get_provider_token";
    /// `POST ?suite_access_token`, body [`PermanentCodeRequest`](super::PermanentCodeRequest).
    pub const GET_PERMANENT_CODE: &str = "/cgi-bin/service/get_permanent_code";
    /// `POST ?suite_access_token`, body [`PermanentCodeRequest`](super::PermanentCodeRequest).
    pub const GET_PERMANENT_CODE_V2: &str = "/cgi-bin/service/v2/get_permanent_code";
    /// `POST ?suite_access_token`, body [`AuthInfoRequest`](super::AuthInfoRequest).
    pub const GET_AUTH_INFO: &str = "/cgi-bin/service/get_auth_info";
    /// `POST ?suite_access_token`, body [`AuthInfoRequest`](super::AuthInfoRequest).
    pub const GET_AUTH_INFO_V2: &str = "/cgi-bin/service/v2/get_auth_info";
    /// `GET ?corpid&corpsecret`.
    pub const GET_TOKEN: &str = "/cgi-bin/gettoken";
    /// `GET ?access_token&agentid`.
    pub const AGENT_GET: &str = "/cgi-bin/agent/get";
    /// `POST ?access_token`, body `{}`.
    pub const AGENT_GET_PERMISSIONS: &str = "/cgi-bin/agent/get_permissions";
    /// `GET ?access_token[&id]`.
    pub const DEPARTMENT_LIST: &str = "/cgi-bin/department/list";
    /// `GET ?access_token[&id]`.
    pub const DEPARTMENT_SIMPLELIST: &str = "/cgi-bin/department/simplelist";
    /// `GET ?access_token&id`.
    pub const DEPARTMENT_GET: &str = "/cgi-bin/department/get";
    /// `GET ?access_token&userid`.
    pub const USER_GET: &str = "/cgi-bin/user/get";
    /// `GET ?access_token&department_id`.
    pub const USER_LIST: &str = "/cgi-bin/user/list";
    /// `GET ?access_token&department_id`.
    pub const USER_SIMPLELIST: &str = "/cgi-bin/user/simplelist";
    /// `POST ?access_token`, body [`ListIdRequest`](super::ListIdRequest).
    pub const USER_LIST_ID: &str = "/cgi-bin/user/list_id";
    /// `GET ?access_token`.
    pub const TAG_LIST: &str = "/cgi-bin/tag/list";
    /// `GET ?access_token&tagid`.
    pub const TAG_GET: &str = "/cgi-bin/tag/get";
    /// `GET ?access_token`: the corp's jsapi_ticket.
    pub const GET_JSAPI_TICKET: &str = "/cgi-bin/get_jsapi_ticket";
    /// `GET ?access_token&type=agent_config`: the app's ticket.
    pub const TICKET_GET: &str = "/cgi-bin/ticket/get";
    /// `GET ?access_token&code`: the member behind an OAuth2 login code.
    pub const AUTH_GETUSERINFO: &str = "/cgi-bin/auth/getuserinfo";
}

/// How to reach WeCom.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme and host (and optional path prefix) the `/cgi-bin/…` paths are appended to.
    pub base_url: Url,
    /// Whole-request deadline, body included.
    pub timeout: Duration,
    /// Deadline for establishing the connection.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// The default timeouts (10 s total, 3 s connect) against `base_url`.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl Default for ClientConfig {
    /// The real WeCom with the default timeouts.
    #[allow(
        clippy::expect_used,
        reason = "DEFAULT_BASE_URL is a constant, valid URL"
    )]
    fn default() -> Self {
        Self::new(Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL parses"))
    }
}

/// Hears the outcome of every call a [`Client`] makes: for metrics. Called once per HTTP
/// request, after its answer is decoded, on the caller's task (keep it cheap and non-blocking).
pub trait CallObserver: Send + Sync + fmt::Debug {
    /// `api` is the endpoint's path without `/cgi-bin/` (`gettoken`, `user/list_id`,
    /// `service/v2/get_permanent_code`: one of [`paths`], so a bounded set); `outcome` is
    /// `Ok(())` or the error the caller receives.
    fn observe(&self, api: &'static str, outcome: Result<(), &ApiError>);
}

/// The name of an endpoint for metrics: its path without `/cgi-bin/`.
fn api_name(path: &'static str) -> &'static str {
    path.strip_prefix("/cgi-bin/").unwrap_or(path)
}

/// The WeCom API client. Cheap to clone: clones share one connection pool (and the observer).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Url,
    observer: Option<Arc<dyn CallObserver>>,
}

impl Client {
    /// Builds a client; fails on a base URL that is not http(s) or on zero timeouts.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        validate(&config)?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // WeCom never redirects; following one would hand the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("daikai-wecom/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ApiError::InvalidConfig(err.without_url().to_string()))?;
        Ok(Self {
            http,
            base_url: config.base_url,
            observer: None,
        })
    }

    /// This client, telling `observer` the outcome of every call it (and every clone made
    /// from it afterwards) makes. Replaces any observer set before.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The base URL this client calls.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// `POST /cgi-bin/service/get_suite_token`: the suite (template) access token.
    /// WeCom omits `errcode` on success here.
    pub async fn get_suite_token(
        &self,
        suite_id: &SuiteId,
        suite_secret: &str,
        suite_ticket: &Ticket,
    ) -> Result<AccessToken, ApiError> {
        let body = SuiteTokenRequest {
            suite_id: suite_id.as_str().to_owned(),
            suite_secret: suite_secret.to_owned(),
            suite_ticket: suite_ticket.expose().to_owned(),
        };
        let token: SuiteAccessToken = self.post(paths::GET_SUITE_TOKEN, &[], &body).await?;
        Ok(token.into())
    }

    /// `POST /cgi-bin/service/get_provider_token`: the provider access token.
    /// WeCom omits `errcode` on success here.
    pub async fn get_provider_token(
        &self,
        provider_corpid: &CorpId,
        provider_secret: &str,
    ) -> Result<AccessToken, ApiError> {
        let body = ProviderTokenRequest {
            corpid: provider_corpid.as_str().to_owned(),
            provider_secret: provider_secret.to_owned(),
        };
        let token: ProviderAccessToken = self.post(paths::GET_PROVIDER_TOKEN, &[], &body).await?;
        Ok(token.into())
    }

    /// `POST /cgi-bin/service/get_permanent_code`: exchanges a single-use AuthCode (v1 answer,
    /// with the agent list). A lost answer burns the code (a retry gets 40078).
    pub async fn get_permanent_code(
        &self,
        suite_token: &str,
        auth_code: &str,
    ) -> Result<PermanentCodeV1, ApiError> {
        self.exchange_auth_code(paths::GET_PERMANENT_CODE, suite_token, auth_code)
            .await
    }

    /// `POST /cgi-bin/service/v2/get_permanent_code`: the same exchange, slim v2 answer.
    pub async fn get_permanent_code_v2(
        &self,
        suite_token: &str,
        auth_code: &str,
    ) -> Result<PermanentCodeV2, ApiError> {
        self.exchange_auth_code(paths::GET_PERMANENT_CODE_V2, suite_token, auth_code)
            .await
    }

    async fn exchange_auth_code<T: DeserializeOwned>(
        &self,
        path: &'static str,
        suite_token: &str,
        auth_code: &str,
    ) -> Result<T, ApiError> {
        let body = PermanentCodeRequest {
            auth_code: auth_code.to_owned(),
        };
        let query = [("suite_access_token", suite_token)];
        // Observed once decoded: an answer that cannot be decoded is a failed call.
        let request = self.http.post(self.url(path, &query)?).json(&body);
        let answer = self
            .send::<serde_json::Value>(path, request)
            .await
            .and_then(|answer| exchange::decode(path, &answer));
        self.observed(path, answer)
    }

    /// `POST /cgi-bin/service/get_auth_info`: the corp, its agent and the visibility scope.
    pub async fn get_auth_info(
        &self,
        suite_token: &str,
        auth_corp_id: &CorpId,
        permanent_code: &str,
    ) -> Result<AuthInfoResponse, ApiError> {
        self.auth_info(
            paths::GET_AUTH_INFO,
            suite_token,
            auth_corp_id,
            permanent_code,
        )
        .await
    }

    /// `POST /cgi-bin/service/v2/get_auth_info` (adds `corp_ex_name`, drops `corp_wxqrcode`).
    pub async fn get_auth_info_v2(
        &self,
        suite_token: &str,
        auth_corp_id: &CorpId,
        permanent_code: &str,
    ) -> Result<AuthInfoResponse, ApiError> {
        self.auth_info(
            paths::GET_AUTH_INFO_V2,
            suite_token,
            auth_corp_id,
            permanent_code,
        )
        .await
    }

    async fn auth_info(
        &self,
        path: &'static str,
        suite_token: &str,
        auth_corp_id: &CorpId,
        permanent_code: &str,
    ) -> Result<AuthInfoResponse, ApiError> {
        let body = AuthInfoRequest {
            auth_corpid: auth_corp_id.as_str().to_owned(),
            permanent_code: permanent_code.to_owned(),
        };
        let query = [("suite_access_token", suite_token)];
        self.post(path, &query, &body).await
    }

    /// `GET /cgi-bin/gettoken`: the 代开发 app's corp access token. For 代开发 the secret is the
    /// permanent code (never `service/get_corp_token`, which is for third-party apps).
    pub async fn get_token(
        &self,
        corp_id: &CorpId,
        corp_secret: &str,
    ) -> Result<AccessToken, ApiError> {
        let query = [("corpid", corp_id.as_str()), ("corpsecret", corp_secret)];
        self.get(paths::GET_TOKEN, &query).await
    }

    /// `GET /cgi-bin/agent/get`: the app's description and visibility scope.
    pub async fn agent_get(&self, token: &str, agent_id: AgentId) -> Result<Agent, ApiError> {
        let agent_id = agent_id.to_string();
        let query = [("access_token", token), ("agentid", agent_id.as_str())];
        self.get(paths::AGENT_GET, &query).await
    }

    /// `POST /cgi-bin/agent/get_permissions`: the permissions the admin granted the app.
    pub async fn agent_get_permissions(&self, token: &str) -> Result<AgentPermissions, ApiError> {
        let query = [("access_token", token)];
        let body = serde_json::Map::new();
        self.post(paths::AGENT_GET_PERMISSIONS, &query, &body).await
    }

    /// `GET /cgi-bin/department/list`: departments with names; `id` limits it to a subtree.
    pub async fn department_list(
        &self,
        token: &str,
        id: Option<DepartmentId>,
    ) -> Result<Vec<Department>, ApiError> {
        let id = id.map(|id| id.to_string());
        let answer: DepartmentListResponse = self
            .get(
                paths::DEPARTMENT_LIST,
                &with_optional_id(token, id.as_deref()),
            )
            .await?;
        Ok(answer.department)
    }

    /// `GET /cgi-bin/department/simplelist`: the department tree (ids, parents, order).
    pub async fn department_simplelist(
        &self,
        token: &str,
        id: Option<DepartmentId>,
    ) -> Result<Vec<DepartmentRef>, ApiError> {
        let id = id.map(|id| id.to_string());
        let answer: DepartmentSimpleListResponse = self
            .get(
                paths::DEPARTMENT_SIMPLELIST,
                &with_optional_id(token, id.as_deref()),
            )
            .await?;
        Ok(answer.department_id)
    }

    /// `GET /cgi-bin/department/get`: one department.
    pub async fn department_get(
        &self,
        token: &str,
        id: DepartmentId,
    ) -> Result<Department, ApiError> {
        let id = id.to_string();
        let query = [("access_token", token), ("id", id.as_str())];
        let answer: DepartmentGetResponse = self.get(paths::DEPARTMENT_GET, &query).await?;
        Ok(answer.department)
    }

    /// `GET /cgi-bin/user/get`: one member.
    pub async fn user_get(&self, token: &str, user_id: &UserId) -> Result<User, ApiError> {
        let query = [("access_token", token), ("userid", user_id.as_str())];
        self.get(paths::USER_GET, &query).await
    }

    /// `GET /cgi-bin/user/list`: a department's direct members (not recursive), in detail.
    pub async fn user_list(
        &self,
        token: &str,
        department_id: DepartmentId,
    ) -> Result<Vec<User>, ApiError> {
        let department_id = department_id.to_string();
        let query = [
            ("access_token", token),
            ("department_id", department_id.as_str()),
        ];
        let answer: UserListResponse = self.get(paths::USER_LIST, &query).await?;
        Ok(answer.userlist)
    }

    /// `GET /cgi-bin/user/simplelist`: a department's direct members (not recursive).
    pub async fn user_simplelist(
        &self,
        token: &str,
        department_id: DepartmentId,
    ) -> Result<Vec<UserRef>, ApiError> {
        let department_id = department_id.to_string();
        let query = [
            ("access_token", token),
            ("department_id", department_id.as_str()),
        ];
        let answer: UserSimpleListResponse = self.get(paths::USER_SIMPLELIST, &query).await?;
        Ok(answer.userlist)
    }

    /// `POST /cgi-bin/user/list_id`: one page of (userid, department) rows. Pass `None` for the
    /// first page, then [`UserIdPage::next_page`] until it is `None`.
    pub async fn user_list_id(
        &self,
        token: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<UserIdPage, ApiError> {
        let body = ListIdRequest {
            cursor: cursor.filter(|c| !c.is_empty()).map(str::to_owned),
            limit,
        };
        let query = [("access_token", token)];
        self.post(paths::USER_LIST_ID, &query, &body).await
    }

    /// `GET /cgi-bin/tag/list`: the tags visible to the app.
    pub async fn tag_list(&self, token: &str) -> Result<Vec<Tag>, ApiError> {
        let query = [("access_token", token)];
        let answer: TagListResponse = self.get(paths::TAG_LIST, &query).await?;
        Ok(answer.taglist)
    }

    /// `GET /cgi-bin/tag/get`: a tag's members and departments inside the app's scope.
    pub async fn tag_get(&self, token: &str, tag_id: TagId) -> Result<TagMembers, ApiError> {
        let tag_id = tag_id.to_string();
        let query = [("access_token", token), ("tagid", tag_id.as_str())];
        self.get(paths::TAG_GET, &query).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &'static str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let request = self.http.get(self.url(path, query)?);
        self.execute(path, request).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &'static str,
        query: &[(&str, &str)],
        body: &B,
    ) -> Result<T, ApiError> {
        let request = self.http.post(self.url(path, query)?).json(body);
        self.execute(path, request).await
    }

    /// Sends and decodes (see [`Self::send`]), and tells the observer.
    async fn execute<T: DeserializeOwned>(
        &self,
        path: &'static str,
        request: RequestBuilder,
    ) -> Result<T, ApiError> {
        let result = self.send(path, request).await;
        self.observed(path, result)
    }

    /// Tells the observer, if any, how the call to `path` ended.
    fn observed<T>(&self, path: &'static str, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Some(observer) = &self.observer {
            observer.observe(api_name(path), result.as_ref().map(|_| ()));
        }
        result
    }

    /// Sends, checks the HTTP status, reads the capped body and decodes the envelope.
    async fn send<T: DeserializeOwned>(
        &self,
        path: &'static str,
        request: RequestBuilder,
    ) -> Result<T, ApiError> {
        let result = async {
            let response = request.send().await.map_err(envelope::transport_error)?;
            if !response.status().is_success() {
                return Err(envelope::status_error(response.status()));
            }
            let body = envelope::read_body(response).await?;
            envelope::decode(&body)
        }
        .await;
        if let Err(err) = &result {
            // `path` only: the query string holds the token.
            tracing::debug!(path, error = %err, "WeCom API call failed");
        }
        result
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ApiError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::InvalidConfig("base URL cannot have a path".to_owned()))?
            .pop_if_empty()
            .extend(path.trim_start_matches('/').split('/'));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }
}

fn with_optional_id<'a>(token: &'a str, id: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut query = vec![("access_token", token)];
    if let Some(id) = id {
        query.push(("id", id));
    }
    query
}

fn validate(config: &ClientConfig) -> Result<(), ApiError> {
    let url = &config.base_url;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ApiError::InvalidConfig(format!(
            "base URL must be http(s), got scheme {:?}",
            url.scheme()
        )));
    }
    if config.timeout.is_zero() || config.connect_timeout.is_zero() {
        return Err(ApiError::InvalidConfig(
            "timeouts must be greater than zero".to_owned(),
        ));
    }
    Ok(())
}
