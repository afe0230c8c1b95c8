//! JS-SDK tickets and OAuth2 login codes, with WeCom's rules (docs/wecom.md §4.6, §4.7):
//!
//! - a ticket (the corp's jsapi_ticket, or the app's agent_config ticket) lives 7200 s and, like
//!   a token, is handed out again unchanged while it is valid;
//! - every fetch counts against an hourly budget, valid ticket or not: 400 an hour per corp for
//!   corp tickets, 100 an hour per app for agent tickets; past it the fetch answers 45009;
//! - a login code is minted for one app and one visitor (a member, or an outsider with an openid),
//!   works once, for five minutes, and only with that app's token (40029 otherwise).

use std::collections::{HashMap, VecDeque};

use wecom::api::OauthUserInfo;
use wecom::ids::{CorpId, SuiteId, UserId};

use super::{AppRef, StateError, World};
use crate::errcode::{self, ApiFailure};
use crate::rng::secret;

/// Ticket lifetime (WeCom: 7200 s).
pub const TICKET_TTL_MS: i64 = 7_200_000;
/// Corp ticket fetches allowed per corp and hour.
pub const CORP_TICKETS_PER_HOUR: usize = 400;
/// Agent ticket fetches allowed per app and hour.
pub const AGENT_TICKETS_PER_HOUR: usize = 100;
/// Login code lifetime (WeCom: five minutes).
pub const LOGIN_CODE_TTL_MS: i64 = 300_000;
/// Lifetime of a `user_ticket` (WeCom: 1800 s).
pub const USER_TICKET_TTL_SECS: u64 = 1800;
const HOUR_MS: i64 = 3_600_000;

/// Which ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// The corp's jsapi_ticket (`get_jsapi_ticket`, signs `wx.config`).
    Corp,
    /// The app's ticket (`ticket/get?type=agent_config`, signs `wx.agentConfig`).
    Agent,
}

/// Who a login code stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visitor {
    /// A member of the corp; `private_info` when the login asked for `snsapi_privateinfo`.
    Member {
        /// The member.
        userid: UserId,
        /// Whether the answer carries a `user_ticket`.
        private_info: bool,
    },
    /// Someone who is not a member.
    Outsider {
        /// Their openid.
        openid: String,
        /// Their external_userid, when they are an external contact of the corp.
        external_userid: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct LoginCode {
    app: AppRef,
    visitor: Visitor,
    expires_ms: i64,
    used: bool,
}

type TicketKey = (CorpId, SuiteId, TicketKind);

/// Whose hourly budget a fetch counts against: the corp's (no suite) or one app's.
type BudgetKey = (CorpId, Option<SuiteId>, TicketKind);

/// Tickets handed out, the fetches counted against the hourly budgets, and login codes.
#[derive(Debug, Default)]
pub struct JsApi {
    tickets: HashMap<TicketKey, (String, i64)>,
    fetches: HashMap<BudgetKey, VecDeque<i64>>,
    codes: HashMap<String, LoginCode>,
}

impl JsApi {
    /// Counts a fetch against the budget of `key`: false when the budget of the past hour is
    /// spent (the fetch is refused and not counted).
    fn admit(&mut self, key: &TicketKey, now_ms: i64) -> bool {
        let (budget_key, limit) = match key.2 {
            // The corp's budget: every app of the corp draws on it.
            TicketKind::Corp => ((key.0.clone(), None, key.2), CORP_TICKETS_PER_HOUR),
            TicketKind::Agent => (
                (key.0.clone(), Some(key.1.clone()), key.2),
                AGENT_TICKETS_PER_HOUR,
            ),
        };
        let fetches = self.fetches.entry(budget_key).or_default();
        while fetches.front().is_some_and(|at| now_ms - at >= HOUR_MS) {
            fetches.pop_front();
        }
        if fetches.len() >= limit {
            return false;
        }
        fetches.push_back(now_ms);
        true
    }
}

/// A ticket handed out: the ticket, the seconds it stays valid, and whether it is a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicket {
    /// The ticket.
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
    /// False when the current, still valid ticket was returned again.
    pub new: bool,
}

impl World {
    /// `get_jsapi_ticket` / `ticket/get?type=agent_config` for `app`: the current ticket while it
    /// is valid, else a new one; 45009 once the hour's budget is spent.
    pub(crate) fn js_ticket(
        &mut self,
        app: &AppRef,
        kind: TicketKind,
        now_ms: i64,
    ) -> Result<IssuedTicket, ApiFailure> {
        let key = (app.corp_id.clone(), app.suite_id.clone(), kind);
        let jsapi = &mut self.creds.jsapi;
        if !jsapi.admit(&key, now_ms) {
            return Err(errcode::FREQUENCY_LIMIT);
        }
        if let Some((ticket, expires_ms)) = jsapi.tickets.get(&key)
            && *expires_ms > now_ms
        {
            return Ok(IssuedTicket {
                ticket: ticket.clone(),
                expires_in: u64::try_from((expires_ms - now_ms).div_euclid(1000)).unwrap_or(0),
                new: false,
            });
        }
        let ticket = secret(86);
        jsapi
            .tickets
            .insert(key, (ticket.clone(), now_ms + TICKET_TTL_MS));
        Ok(IssuedTicket {
            ticket,
            expires_in: u64::try_from(TICKET_TTL_MS / 1000).unwrap_or(7200),
            new: true,
        })
    }

    /// Whether `ticket` is the current, valid ticket of `kind` for the app (tests check a
    /// signature with it).
    pub fn js_ticket_valid(
        &self,
        app: &AppRef,
        kind: TicketKind,
        ticket: &str,
        now_ms: i64,
    ) -> bool {
        let key = (app.corp_id.clone(), app.suite_id.clone(), kind);
        self.creds
            .jsapi
            .tickets
            .get(&key)
            .is_some_and(|(t, expires_ms)| t == ticket && *expires_ms > now_ms)
    }

    /// What the OAuth2 redirect gives the app's page: a code for `visitor` logging in to the app
    /// `suite_id` has in `corp_id`. A member must exist in the corp.
    pub(crate) fn mint_login_code(
        &mut self,
        corp_id: &CorpId,
        suite_id: &SuiteId,
        visitor: Visitor,
        now_ms: i64,
    ) -> Result<String, StateError> {
        let suite_id = self.pick_suite(Some(suite_id))?;
        let corp = self.corp(corp_id)?;
        if corp
            .auth(&suite_id)
            .is_none_or(|a| a.status != super::AuthStatus::Active)
        {
            return Err(StateError::NotAuthorized {
                suite_id,
                corp_id: corp_id.clone(),
            });
        }
        if let Visitor::Member { userid, .. } = &visitor
            && corp.directory.user(userid).is_none()
        {
            return Err(StateError::Invalid(format!(
                "corp {corp_id} has no member {userid}"
            )));
        }
        let codes = &mut self.creds.jsapi.codes;
        codes.retain(|_, c| c.expires_ms + HOUR_MS > now_ms);
        let code = secret(32);
        codes.insert(
            code.clone(),
            LoginCode {
                app: AppRef {
                    corp_id: corp_id.clone(),
                    suite_id,
                },
                visitor,
                expires_ms: now_ms + LOGIN_CODE_TTL_MS,
                used: false,
            },
        );
        Ok(code)
    }

    /// `auth/getuserinfo` for `app`: consumes the code (40029 when it is unknown, used, expired
    /// or another app's).
    pub(crate) fn login(
        &mut self,
        app: &AppRef,
        code: &str,
        now_ms: i64,
    ) -> Result<OauthUserInfo, ApiFailure> {
        let entry = self
            .creds
            .jsapi
            .codes
            .get_mut(code)
            .filter(|c| !c.used && c.expires_ms > now_ms && c.app == *app)
            .ok_or(errcode::INVALID_CODE)?;
        entry.used = true;
        Ok(match &entry.visitor {
            Visitor::Member {
                userid,
                private_info,
            } => OauthUserInfo {
                userid: Some(userid.as_str().to_owned()),
                user_ticket: private_info.then(|| secret(64)),
                expires_in: private_info.then_some(USER_TICKET_TTL_SECS),
                ..OauthUserInfo::default()
            },
            Visitor::Outsider {
                openid,
                external_userid,
            } => OauthUserInfo {
                openid: Some(openid.clone()),
                external_userid: external_userid.clone(),
                ..OauthUserInfo::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: TicketKind) -> TicketKey {
        ("ww1".parse().unwrap(), "dk1".parse().unwrap(), kind)
    }

    #[test]
    fn agent_tickets_have_a_budget_per_app_and_hour() {
        let mut jsapi = JsApi::default();
        for _ in 0..AGENT_TICKETS_PER_HOUR {
            assert!(jsapi.admit(&key(TicketKind::Agent), 0));
        }
        assert!(!jsapi.admit(&key(TicketKind::Agent), HOUR_MS - 1));
        assert!(jsapi.admit(&key(TicketKind::Agent), HOUR_MS));
    }

    #[test]
    fn corp_tickets_share_the_corp_budget_across_apps() {
        let mut jsapi = JsApi::default();
        let other_app: TicketKey = (
            "ww1".parse().unwrap(),
            "dk2".parse().unwrap(),
            TicketKind::Corp,
        );
        for i in 0..CORP_TICKETS_PER_HOUR {
            let key = if i % 2 == 0 {
                key(TicketKind::Corp)
            } else {
                other_app.clone()
            };
            assert!(jsapi.admit(&key, 0));
        }
        assert!(!jsapi.admit(&other_app, 1));
        assert!(jsapi.admit(&key(TicketKind::Agent), 1));
    }
}
