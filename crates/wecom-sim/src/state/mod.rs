//! The simulated WeCom's state: suites, corps and their apps, and the credentials handed out.
//!
//! One [`World`] sits behind a lock in [`crate::Sim`]. Its methods are the rules of WeCom's
//! authorization lifecycle (authorize → AuthCode → permanent code → corp token; reset the
//! secret; cancel), each answering the errcode WeCom would; HTTP lives elsewhere.

mod corp;
mod credentials;
mod jsapi;

use std::collections::BTreeMap;

use wecom::api::SuiteTokenRequest;
use wecom::ids::{AgentId, CorpId, SuiteId};
use wecom::suite::SuiteConfig;

pub use corp::{AuthStatus, Authorization, AuthorizeWith, Corp, CorpSpec, CorpSummary};
pub use credentials::{Credentials, Issued, TokenError, TokenOwner, Ttls};
pub use jsapi::{LOGIN_CODE_TTL_MS, TicketKind, Visitor};

use crate::directory::Directory;
use crate::directory::seed::SeedSpec;
use crate::errcode::{self, ApiFailure};
use crate::rng::secret;
use crate::scope::Scope;

/// Why a control request on the state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// No such corp.
    #[error("corp {0} not found")]
    UnknownCorp(String),
    /// No such suite.
    #[error("suite {0} is not configured")]
    UnknownSuite(String),
    /// The suite must be named.
    #[error("several suites are configured: name one with ?suite=")]
    SuiteRequired,
    /// The corp id is taken.
    #[error("corp {0} already exists")]
    CorpExists(CorpId),
    /// The app is already installed.
    #[error("suite {suite_id} is already authorized in corp {corp_id}")]
    AlreadyAuthorized {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
    },
    /// The app is not installed.
    #[error("suite {suite_id} is not authorized in corp {corp_id}")]
    NotAuthorized {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
    },
    /// The app is already disabled (or already enabled).
    #[error("the app of suite {suite_id} in corp {corp_id} is already {state}")]
    AlreadySwitched {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
        /// `disabled` or `enabled`.
        state: &'static str,
    },
    /// A request field is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// A new authorization: the AuthCode to exchange and the app's agentid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The single-use AuthCode.
    pub auth_code: String,
    /// The app's agentid.
    pub agent_id: AgentId,
}

/// The app a corp token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// The corp.
    pub corp_id: CorpId,
    /// The suite.
    pub suite_id: SuiteId,
}

/// Everything the simulated WeCom knows.
#[derive(Debug)]
pub struct World {
    suites: BTreeMap<SuiteId, SuiteConfig>,
    corps: BTreeMap<CorpId, Corp>,
    /// Tokens, tickets and AuthCodes.
    pub(crate) creds: Credentials,
    provider_corp_id: CorpId,
    provider_secret: Option<String>,
    next_agent_id: i64,
}

impl World {
    /// A world with these suites and no corps.
    pub(crate) fn new(
        suites: impl IntoIterator<Item = SuiteConfig>,
        ttl: Ttls,
        provider_corp_id: &CorpId,
        provider_secret: Option<&str>,
    ) -> Self {
        Self {
            suites: suites
                .into_iter()
                .map(|s| (s.suite_id.clone(), s))
                .collect(),
            corps: BTreeMap::new(),
            creds: Credentials::new(ttl),
            provider_corp_id: provider_corp_id.clone(),
            provider_secret: provider_secret.map(str::to_owned),
            next_agent_id: 1_000_002,
        }
    }

    /// The provider's corp id.
    pub(crate) fn provider_corp_id(&self) -> &CorpId {
        &self.provider_corp_id
    }

    /// The suite `suite_id`.
    pub(crate) fn suite(&self, suite_id: &SuiteId) -> Option<&SuiteConfig> {
        self.suites.get(suite_id)
    }

    /// Every suite, by id.
    pub(crate) fn suites(&self) -> impl Iterator<Item = &SuiteConfig> {
        self.suites.values()
    }

    /// The named suite, or the only one when none is named.
    pub(crate) fn pick_suite(&self, suite_id: Option<&SuiteId>) -> Result<SuiteId, StateError> {
        match suite_id {
            Some(id) if self.suites.contains_key(id) => Ok(id.clone()),
            Some(id) => Err(StateError::UnknownSuite(id.to_string())),
            None if self.suites.len() == 1 => self
                .suites
                .keys()
                .next()
                .cloned()
                .ok_or(StateError::SuiteRequired),
            None => Err(StateError::SuiteRequired),
        }
    }

    /// The corp `corp_id`.
    pub fn corp(&self, corp_id: &CorpId) -> Result<&Corp, StateError> {
        self.corps
            .get(corp_id)
            .ok_or_else(|| StateError::UnknownCorp(corp_id.to_string()))
    }

    /// The corp `corp_id`, mutably.
    pub(crate) fn corp_mut(&mut self, corp_id: &CorpId) -> Result<&mut Corp, StateError> {
        self.corps
            .get_mut(corp_id)
            .ok_or_else(|| StateError::UnknownCorp(corp_id.to_string()))
    }

    /// Every corp, by id.
    pub(crate) fn corps(&self) -> impl Iterator<Item = &Corp> {
        self.corps.values()
    }

    /// Whether `corp_id` is taken.
    pub(crate) fn has_corp(&self, corp_id: &CorpId) -> bool {
        self.corps.contains_key(corp_id)
    }

    /// Adds a corp with an already seeded directory.
    pub(crate) fn add_corp(
        &mut self,
        corp_id: &CorpId,
        name: &str,
        spec: &CorpSpec,
        seeded: SeedSpec,
        directory: Directory,
    ) -> Result<&Corp, StateError> {
        if self.corps.contains_key(corp_id) {
            return Err(StateError::CorpExists(corp_id.clone()));
        }
        let corp = Corp {
            id: corp_id.clone(),
            name: name.to_owned(),
            directory,
            scope: spec.scope.clone().unwrap_or_default(),
            grants: Corp::grants_of(spec),
            auths: BTreeMap::new(),
            seeded,
        };
        Ok(self.corps.entry(corp_id.clone()).or_insert(corp))
    }

    /// What a corp admin scanning the template QR does: installs the app (new agentid, new
    /// secret; a cancelled app comes back with a fresh secret) and mints the AuthCode.
    pub(crate) fn authorize(
        &mut self,
        corp_id: &CorpId,
        suite_id: &SuiteId,
        state: Option<String>,
        now_ms: i64,
    ) -> Result<Granted, StateError> {
        self.pick_suite(Some(suite_id))?;
        let next_agent_id = self.next_agent_id;
        let corp = self.corp_mut(corp_id)?;
        let agent_id = match corp.auths.get(suite_id) {
            Some(auth) if auth.status == AuthStatus::Active => {
                return Err(StateError::AlreadyAuthorized {
                    suite_id: suite_id.clone(),
                    corp_id: corp_id.clone(),
                });
            }
            Some(auth) => auth.agent_id,
            None => AgentId::new(next_agent_id)
                .map_err(|error| StateError::Invalid(error.to_string()))?,
        };
        corp.auths.insert(
            suite_id.clone(),
            Authorization {
                suite_id: suite_id.clone(),
                agent_id,
                permanent_code: secret(43),
                status: AuthStatus::Active,
                disabled: false,
                state,
                authorized_at: now_ms.div_euclid(1000),
            },
        );
        if agent_id.get() == next_agent_id {
            self.next_agent_id += 1;
        }
        // Tokens of an earlier, cancelled install must not come back to life.
        self.creds.revoke(&corp_owner(corp_id, suite_id));
        Ok(Granted {
            auth_code: self.creds.mint_auth_code(suite_id, corp_id, now_ms),
            agent_id,
        })
    }

    /// The provider's 「重新获取secret」: a new permanent code (the old one and its tokens stop
    /// working at once) and an AuthCode to fetch it with.
    pub(crate) fn reset_secret(
        &mut self,
        corp_id: &CorpId,
        suite_id: &SuiteId,
        now_ms: i64,
    ) -> Result<Granted, StateError> {
        let auth = self.active_auth_mut(corp_id, suite_id)?;
        auth.permanent_code = secret(43);
        let agent_id = auth.agent_id;
        self.creds.revoke(&corp_owner(corp_id, suite_id));
        Ok(Granted {
            auth_code: self.creds.mint_auth_code(suite_id, corp_id, now_ms),
            agent_id,
        })
    }

    /// The corp removes the app. Its tokens answer 48004 from now on.
    pub(crate) fn cancel(
        &mut self,
        corp_id: &CorpId,
        suite_id: &SuiteId,
    ) -> Result<(), StateError> {
        self.active_auth_mut(corp_id, suite_id)?.status = AuthStatus::Cancelled;
        Ok(())
    }

    /// The corp admin disables (`true`) or re-enables (`false`) the app; its agentid. The app
    /// stays installed and its secret and tokens stay valid: only what its APIs answer changes
    /// (see `api::corp`). 409-style [`StateError::AlreadySwitched`] when nothing would change.
    pub(crate) fn set_disabled(
        &mut self,
        corp_id: &CorpId,
        suite_id: &SuiteId,
        disabled: bool,
    ) -> Result<AgentId, StateError> {
        let auth = self.active_auth_mut(corp_id, suite_id)?;
        if auth.disabled == disabled {
            return Err(StateError::AlreadySwitched {
                suite_id: suite_id.clone(),
                corp_id: corp_id.clone(),
                state: if disabled { "disabled" } else { "enabled" },
            });
        }
        auth.disabled = disabled;
        Ok(auth.agent_id)
    }

    /// Changes the corp's scope and/or grants.
    pub(crate) fn change_scope(
        &mut self,
        corp_id: &CorpId,
        scope: Option<Scope>,
        permissions: Option<Vec<String>>,
    ) -> Result<(), StateError> {
        let corp = self.corp_mut(corp_id)?;
        if let Some(scope) = scope {
            corp.scope = scope;
        }
        if let Some(names) = permissions {
            corp.grants = crate::scope::Grants::new(names);
        }
        Ok(())
    }

    fn active_auth_mut(
        &mut self,
        corp_id: &CorpId,
        suite_id: &SuiteId,
    ) -> Result<&mut Authorization, StateError> {
        self.pick_suite(Some(suite_id))?;
        self.corp_mut(corp_id)?
            .auths
            .get_mut(suite_id)
            .filter(|a| a.status == AuthStatus::Active)
            .ok_or_else(|| StateError::NotAuthorized {
                suite_id: suite_id.clone(),
                corp_id: corp_id.clone(),
            })
    }

    /// Issues a suite ticket (the push is the caller's business).
    pub(crate) fn issue_ticket(
        &mut self,
        suite_id: &SuiteId,
        now_ms: i64,
    ) -> Result<String, StateError> {
        self.pick_suite(Some(suite_id))?;
        Ok(self.creds.issue_ticket(suite_id, now_ms))
    }

    // ---- server API rules -------------------------------------------------------------

    /// `service/get_suite_token`: 40083 unknown suite, 40001 wrong secret, 40085 bad ticket.
    pub(crate) fn suite_token(
        &mut self,
        req: &SuiteTokenRequest,
        now_ms: i64,
    ) -> Result<Issued, ApiFailure> {
        let suite_id: SuiteId = req
            .suite_id
            .parse()
            .map_err(|_| errcode::INVALID_SUITE_ID)?;
        let suite = self
            .suites
            .get(&suite_id)
            .ok_or(errcode::INVALID_SUITE_ID)?;
        if suite.expose_suite_secret() != req.suite_secret {
            return Err(errcode::INVALID_CREDENTIAL);
        }
        if !self
            .creds
            .ticket_valid(&suite_id, &req.suite_ticket, now_ms)
        {
            return Err(errcode::INVALID_SUITE_TICKET);
        }
        Ok(self.creds.issue_token(TokenOwner::Suite(suite_id), now_ms))
    }

    /// `service/get_provider_token`: 40013 wrong corpid, 40001 wrong (or unset) secret.
    pub(crate) fn provider_token(
        &mut self,
        corp_id: &CorpId,
        provider_secret: &str,
        now_ms: i64,
    ) -> Result<Issued, ApiFailure> {
        if *corp_id != self.provider_corp_id {
            return Err(errcode::INVALID_CORPID);
        }
        if self.provider_secret.as_deref() != Some(provider_secret) {
            return Err(errcode::INVALID_CREDENTIAL);
        }
        Ok(self.creds.issue_token(TokenOwner::Provider, now_ms))
    }

    /// The suite a `suite_access_token` belongs to: 41022 missing, 40082 unknown, 42009 expired.
    pub(crate) fn suite_of_token(
        &self,
        token: Option<&str>,
        now_ms: i64,
    ) -> Result<SuiteId, ApiFailure> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(errcode::MISSING_SUITE_TOKEN)?;
        match self.creds.check_token(token, now_ms) {
            Ok(TokenOwner::Suite(suite_id)) => Ok(suite_id.clone()),
            Ok(_) | Err(TokenError::Unknown) => Err(errcode::INVALID_SUITE_TOKEN),
            Err(TokenError::Expired) => Err(errcode::SUITE_TOKEN_EXPIRED),
        }
    }

    /// `service/get_permanent_code`: consumes the AuthCode (40078 if unknown, used, expired or
    /// another suite's, or if the app was cancelled meanwhile); the corp it authorized.
    pub(crate) fn exchange_auth_code(
        &mut self,
        suite_id: &SuiteId,
        auth_code: &str,
        now_ms: i64,
    ) -> Result<CorpId, ApiFailure> {
        let corp_id = self
            .creds
            .consume_auth_code(suite_id, auth_code, now_ms)
            .ok_or(errcode::INVALID_AUTH_CODE)?;
        let active = self
            .corps
            .get(&corp_id)
            .and_then(|c| c.auth(suite_id))
            .is_some_and(|a| a.status == AuthStatus::Active);
        if active {
            Ok(corp_id)
        } else {
            Err(errcode::INVALID_AUTH_CODE)
        }
    }

    /// `service/get_auth_info`: the corp and app for (corpid, permanent_code); 40084 when the
    /// code is not the active app's secret.
    pub(crate) fn auth_by_code(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
        permanent_code: &str,
    ) -> Result<(&Corp, &Authorization), ApiFailure> {
        let corp = self
            .corps
            .get(corp_id)
            .ok_or(errcode::INVALID_PERMANENT_CODE)?;
        let auth = corp
            .auth(suite_id)
            .filter(|a| a.status == AuthStatus::Active && a.permanent_code == permanent_code)
            .ok_or(errcode::INVALID_PERMANENT_CODE)?;
        Ok((corp, auth))
    }

    /// `gettoken`: 41004 missing secret, 40013 unknown corp, 48004 the app was cancelled,
    /// 40001 wrong secret (including a secret replaced by reset-secret). (A missing or
    /// malformed corpid is answered before: 41002 / 40013.)
    pub(crate) fn corp_token(
        &mut self,
        corp_id: &CorpId,
        corp_secret: &str,
        now_ms: i64,
    ) -> Result<Issued, ApiFailure> {
        if corp_secret.is_empty() {
            return Err(errcode::MISSING_SECRET);
        }
        let corp = self.corps.get(corp_id).ok_or(errcode::INVALID_CORPID)?;
        let auth = corp
            .auths
            .values()
            .find(|a| a.permanent_code == corp_secret)
            .ok_or(errcode::INVALID_CREDENTIAL)?;
        if auth.status == AuthStatus::Cancelled {
            return Err(errcode::AUTHORIZATION_CANCELLED);
        }
        let owner = corp_owner(corp_id, &auth.suite_id);
        Ok(self.creds.issue_token(owner, now_ms))
    }

    /// The app an `access_token` belongs to: 41001 missing, 40014 unknown or revoked,
    /// 42001 expired, 48004 the app was cancelled.
    pub(crate) fn app_of_token(
        &self,
        token: Option<&str>,
        now_ms: i64,
    ) -> Result<AppRef, ApiFailure> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(errcode::MISSING_ACCESS_TOKEN)?;
        let (corp_id, suite_id) = match self.creds.check_token(token, now_ms) {
            Ok(TokenOwner::Corp { corp_id, suite_id }) => (corp_id, suite_id),
            Ok(_) | Err(TokenError::Unknown) => return Err(errcode::INVALID_ACCESS_TOKEN),
            Err(TokenError::Expired) => return Err(errcode::ACCESS_TOKEN_EXPIRED),
        };
        let status = self
            .corps
            .get(corp_id)
            .and_then(|c| c.auth(suite_id))
            .map(|a| a.status);
        match status {
            Some(AuthStatus::Active) => Ok(AppRef {
                corp_id: corp_id.clone(),
                suite_id: suite_id.clone(),
            }),
            Some(AuthStatus::Cancelled) => Err(errcode::AUTHORIZATION_CANCELLED),
            None => Err(errcode::INVALID_ACCESS_TOKEN),
        }
    }
}

fn corp_owner(corp_id: &CorpId, suite_id: &SuiteId) -> TokenOwner {
    TokenOwner::Corp {
        corp_id: corp_id.clone(),
        suite_id: suite_id.clone(),
    }
}
