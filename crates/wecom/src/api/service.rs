//! Provider-side shapes: tokens, the AuthCode exchange (`get_permanent_code` v1/v2) and auth info
//! (docs/wecom.md §4.1–§4.4).
//!
//! These carry secrets (tokens, the permanent code that *is* the 代开发 app secret, AuthCodes), so
//! their `Debug` output redacts them; only what serde writes on the wire contains them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stands in for a secret in `Debug` output.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Redacts an optional secret while still showing whether it is there.
fn redact_opt(value: Option<&String>) -> Option<Redacted> {
    value.map(|_| Redacted)
}

fn default_expires_in() -> u64 {
    7200
}

/// A token and its lifetime, as returned by `gettoken` (and, renamed, by the suite/provider
/// token endpoints).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The token (WeCom reserves up to 512 bytes).
    pub access_token: String,
    /// Lifetime in seconds, normally 7200 (assumed when absent).
    #[serde(default = "default_expires_in")]
    pub expires_in: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &Redacted)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Body of `POST /cgi-bin/service/get_suite_token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteTokenRequest {
    /// The template id (`dk…`).
    pub suite_id: String,
    /// The template secret.
    pub suite_secret: String,
    /// The newest pushed suite_ticket.
    pub suite_ticket: String,
}

impl fmt::Debug for SuiteTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuiteTokenRequest")
            .field("suite_id", &self.suite_id)
            .field("suite_secret", &Redacted)
            .field("suite_ticket", &Redacted)
            .finish()
    }
}

/// Answer of `get_suite_token` (no `errcode` on success).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteAccessToken {
    /// The suite access token.
    pub suite_access_token: String,
    /// Lifetime in seconds.
    #[serde(default = "default_expires_in")]
    pub expires_in: u64,
}

impl fmt::Debug for SuiteAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuiteAccessToken")
            .field("suite_access_token", &Redacted)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl From<SuiteAccessToken> for AccessToken {
    fn from(token: SuiteAccessToken) -> Self {
        Self {
            access_token: token.suite_access_token,
            expires_in: token.expires_in,
        }
    }
}

/// Body of `POST /cgi-bin/service/get_provider_token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTokenRequest {
    /// The provider's corpid.
    pub corpid: String,
    /// The provider secret.
    pub provider_secret: String,
}

impl fmt::Debug for ProviderTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderTokenRequest")
            .field("corpid", &self.corpid)
            .field("provider_secret", &Redacted)
            .finish()
    }
}

/// Answer of `get_provider_token` (no `errcode` on success).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAccessToken {
    /// The provider access token.
    pub provider_access_token: String,
    /// Lifetime in seconds.
    #[serde(default = "default_expires_in")]
    pub expires_in: u64,
}

impl fmt::Debug for ProviderAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderAccessToken")
            .field("provider_access_token", &Redacted)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl From<ProviderAccessToken> for AccessToken {
    fn from(token: ProviderAccessToken) -> Self {
        Self {
            access_token: token.provider_access_token,
            expires_in: token.expires_in,
        }
    }
}

/// Body of `get_permanent_code` (v1 and v2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermanentCodeRequest {
    /// The single-use AuthCode from create_auth / reset_permanent_code.
    pub auth_code: String,
}

impl fmt::Debug for PermanentCodeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermanentCodeRequest")
            .field("auth_code", &Redacted)
            .finish()
    }
}

/// Body of `get_auth_info` (v1 and v2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfoRequest {
    /// The authorizing corp's id, as `auth_corp_info.corpid` returned it.
    pub auth_corpid: String,
    /// The corp's permanent code (the 代开发 app secret).
    pub permanent_code: String,
}

impl fmt::Debug for AuthInfoRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInfoRequest")
            .field("auth_corpid", &self.auth_corpid)
            .field("permanent_code", &Redacted)
            .finish()
    }
}

/// Answer of `POST /cgi-bin/service/get_permanent_code` (v1, the documented 代开发 path).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermanentCodeV1 {
    /// Third-party apps only; absent for 代开发.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Third-party apps only; absent for 代开发.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// For 代开发: the app secret, used with `gettoken`.
    pub permanent_code: String,
    /// The reseller, when the corp bought through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealer_corp_info: Option<DealerCorpInfo>,
    /// The authorizing corp.
    pub auth_corp_info: AuthCorpInfo,
    /// The authorized app(s); for 代开发 one agent with `is_customized_app: true`.
    #[serde(default)]
    pub auth_info: AuthInfo,
    /// The admin who authorized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user_info: Option<AuthUserInfo>,
    /// Present when the install came through a registration code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_code_info: Option<RegisterCodeInfo>,
    /// The `state` of the authorization QR, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl fmt::Debug for PermanentCodeV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermanentCodeV1")
            .field("access_token", &redact_opt(self.access_token.as_ref()))
            .field("expires_in", &self.expires_in)
            .field("permanent_code", &Redacted)
            .field("dealer_corp_info", &self.dealer_corp_info)
            .field("auth_corp_info", &self.auth_corp_info)
            .field("auth_info", &self.auth_info)
            .field("auth_user_info", &self.auth_user_info)
            .field("register_code_info", &self.register_code_info)
            .field("state", &self.state)
            .finish()
    }
}

/// Answer of `POST /cgi-bin/service/v2/get_permanent_code`: slim, no agent list (fetch it with
/// `get_auth_info`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermanentCodeV2 {
    /// For 代开发: the app secret, used with `gettoken`.
    pub permanent_code: String,
    /// The authorizing corp (v2 sends only `corpid` and `corp_name`).
    pub auth_corp_info: AuthCorpInfo,
    /// The admin who authorized; may be absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user_info: Option<AuthUserInfo>,
    /// Present when the install came through a registration code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_code_info: Option<RegisterCodeInfo>,
    /// The `state` of the authorization QR, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl fmt::Debug for PermanentCodeV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermanentCodeV2")
            .field("permanent_code", &Redacted)
            .field("auth_corp_info", &self.auth_corp_info)
            .field("auth_user_info", &self.auth_user_info)
            .field("register_code_info", &self.register_code_info)
            .field("state", &self.state)
            .finish()
    }
}

/// Answer of `get_auth_info` (v1 and v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfoResponse {
    /// The reseller, when the corp bought through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealer_corp_info: Option<DealerCorpInfo>,
    /// The authorizing corp.
    pub auth_corp_info: AuthCorpInfo,
    /// The authorized app(s); `agent[0].agentid` is the 代开发 app's agentid.
    #[serde(default)]
    pub auth_info: AuthInfo,
}

/// `dealer_corp_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealerCorpInfo {
    /// The reseller's corpid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpid: Option<String>,
    /// The reseller's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_name: Option<String>,
}

/// `auth_corp_info`: who authorized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCorpInfo {
    /// The corp id: provider-scoped and encrypted for installs after 2022-06-20, and then
    /// case-sensitive. Never normalize it.
    pub corpid: String,
    /// Short name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_name: Option<String>,
    /// `verified` / `unverified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_type: Option<String>,
    /// Logo URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_square_logo_url: Option<String>,
    /// Member cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_user_max: Option<u64>,
    /// Full legal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_full_name: Option<String>,
    /// Unix seconds the verification ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_end_time: Option<i64>,
    /// 1 enterprise, 2 government/institution, 3 other, 4 group, 5 sole proprietor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<i64>,
    /// Join QR code URL (v1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_wxqrcode: Option<String>,
    /// Size bracket, e.g. `1-50人`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_scale: Option<String>,
    /// Industry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_industry: Option<String>,
    /// Sub-industry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_sub_industry: Option<String>,
    /// Location (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Other verified short names (v2, verified corps only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_ex_name: Option<CorpExName>,
}

/// `auth_corp_info.corp_ex_name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpExName {
    /// Other verified short names, not including `corp_name`.
    #[serde(default)]
    pub name_list: Vec<String>,
}

/// `auth_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// The authorized apps (one for 代开发).
    #[serde(default)]
    pub agent: Vec<AuthAgent>,
}

/// `auth_info.agent[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAgent {
    /// The app's agentid inside the authorizing corp.
    pub agentid: i64,
    /// App name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Round logo URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_logo_url: Option<String>,
    /// Square logo URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub square_logo_url: Option<String>,
    /// Legacy multi-app suite id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<i64>,
    /// 0 admin authorization, 1 member authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<i64>,
    /// `true` for a 代开发 app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_customized_app: Option<bool>,
    /// Authorized from a third-party app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_from_thirdapp: Option<bool>,
    /// The app's visibility scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege: Option<Privilege>,
    /// Set when shared from an upstream corp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_from: Option<SharedFrom>,
}

/// `auth_info.agent[].privilege`: the visibility scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privilege {
    /// Permission level (legacy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i64>,
    /// Visible departments.
    #[serde(default)]
    pub allow_party: Vec<u64>,
    /// Visible members.
    #[serde(default)]
    pub allow_user: Vec<String>,
    /// Visible tags.
    #[serde(default)]
    pub allow_tag: Vec<u64>,
    /// Extra departments (legacy).
    #[serde(default)]
    pub extra_party: Vec<u64>,
    /// Extra members (legacy).
    #[serde(default)]
    pub extra_user: Vec<String>,
    /// Extra tags (legacy).
    #[serde(default)]
    pub extra_tag: Vec<u64>,
}

/// `auth_info.agent[].shared_from`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFrom {
    /// The sharing corp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpid: Option<String>,
    /// 0 enterprise interconnection, 1 upstream/downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_type: Option<i64>,
}

/// `auth_user_info`: the admin who authorized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUserInfo {
    /// The admin's userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    /// The admin's open_userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_userid: Option<String>,
    /// The admin's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The admin's avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// `register_code_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterCodeInfo {
    /// The registration code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_code: Option<String>,
    /// The template it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// The state given when the code was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}
