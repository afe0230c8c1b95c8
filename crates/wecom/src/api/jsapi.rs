//! The JS-SDK tickets and the OAuth2 login of a 代开发 app (docs/wecom.md §4.6, §4.7): the calls a
//! page opened inside WeCom needs from the app's server, with the app's corp access token.
//!
//! - `GET /cgi-bin/get_jsapi_ticket`: the corp's jsapi_ticket, which signs `wx.config`;
//! - `GET /cgi-bin/ticket/get?type=agent_config`: the app's ticket, which signs `wx.agentConfig`;
//! - `GET /cgi-bin/auth/getuserinfo?code=…`: who is behind an OAuth2 login code.
//!
//! Both tickets live 7200 s and WeCom counts every fetch against a small hourly budget (400 per
//! corp, 100 per app), so they must be cached across processes; that is the `tokens` crate's job.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::service::Redacted;
use super::{ApiError, Client, paths};

fn default_expires_in() -> u64 {
    7200
}

/// Answer of `get_jsapi_ticket` and `ticket/get`: a ticket and its lifetime.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsapiTicket {
    /// The ticket.
    pub ticket: String,
    /// Lifetime in seconds, normally 7200 (assumed when absent).
    #[serde(default = "default_expires_in")]
    pub expires_in: u64,
}

impl fmt::Debug for JsapiTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsapiTicket")
            .field("ticket", &Redacted)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Answer of `auth/getuserinfo`: a member (`userid`, and `user_ticket` when the login asked for
/// `snsapi_privateinfo`) or a visitor who is not a member (`openid`, and `external_userid` when
/// they are an external contact of the corp).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthUserInfo {
    /// The member's userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    /// A ticket for `auth/getuserdetail` (sensitive details), for `snsapi_privateinfo` logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ticket: Option<String>,
    /// Lifetime of `user_ticket` in seconds (WeCom: 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// A visitor who is not a member: their openid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    /// A visitor who is an external contact of the corp: their external_userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
}

impl fmt::Debug for OauthUserInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OauthUserInfo")
            .field("userid", &self.userid)
            .field("user_ticket", &self.user_ticket.as_ref().map(|_| Redacted))
            .field("expires_in", &self.expires_in)
            .field("openid", &self.openid)
            .field("external_userid", &self.external_userid)
            .finish()
    }
}

/// The `type` of `ticket/get` that returns the app's ticket for `wx.agentConfig`.
pub const AGENT_CONFIG_TICKET_TYPE: &str = "agent_config";

impl Client {
    /// `GET /cgi-bin/get_jsapi_ticket`: the corp's jsapi_ticket (signs `wx.config`). WeCom allows
    /// 400 fetches an hour per corp: cache it.
    pub async fn get_jsapi_ticket(&self, token: &str) -> Result<JsapiTicket, ApiError> {
        let query = [("access_token", token)];
        self.get(paths::GET_JSAPI_TICKET, &query).await
    }

    /// `GET /cgi-bin/ticket/get?type=agent_config`: the app's ticket (signs `wx.agentConfig`).
    /// WeCom allows 100 fetches an hour per app: cache it.
    pub async fn get_agent_config_ticket(&self, token: &str) -> Result<JsapiTicket, ApiError> {
        let query = [("access_token", token), ("type", AGENT_CONFIG_TICKET_TYPE)];
        self.get(paths::TICKET_GET, &query).await
    }

    /// `GET /cgi-bin/auth/getuserinfo`: who logged in with an OAuth2 `code`. A code works once
    /// and for five minutes; a used or expired one is 40029, which no retry heals.
    pub async fn auth_getuserinfo(
        &self,
        token: &str,
        code: &str,
    ) -> Result<OauthUserInfo, ApiError> {
        let query = [("access_token", token), ("code", code)];
        self.get(paths::AUTH_GETUSERINFO, &query).await
    }
}
