//! Tokens, suite tickets and AuthCodes, with WeCom's validity rules (always on, never faults):
//! a token is re-issued unchanged while valid and answers "expired" after its TTL; a suite ticket
//! is valid 30 minutes; an AuthCode is valid 10 minutes and single-use.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use wecom::ids::{CorpId, SuiteId};

use crate::clock::ms;
use crate::rng::secret;

/// Lifetimes, all configurable (short in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ttls {
    /// Suite access token lifetime (WeCom: 7200 s).
    pub suite_token_secs: u64,
    /// Corp access token lifetime (WeCom: 7200 s).
    pub corp_token_secs: u64,
    /// Provider access token lifetime (WeCom: 7200 s).
    pub provider_token_secs: u64,
    /// AuthCode lifetime (WeCom: 600 s).
    pub auth_code_secs: u64,
    /// Suite ticket lifetime (WeCom: 1800 s, three push intervals).
    pub suite_ticket_secs: u64,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            suite_token_secs: 7200,
            corp_token_secs: 7200,
            provider_token_secs: 7200,
            auth_code_secs: 600,
            suite_ticket_secs: 1800,
        }
    }
}

/// Whose token it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenOwner {
    /// A suite access token.
    Suite(SuiteId),
    /// A corp access token of the app a suite has in a corp.
    Corp {
        /// The corp.
        corp_id: CorpId,
        /// The suite whose app it is.
        suite_id: SuiteId,
    },
    /// The provider access token.
    Provider,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Never issued, or revoked.
    Unknown,
    /// Issued, but past its lifetime.
    Expired,
}

/// A token handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The token.
    pub token: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
    /// False when an existing valid token was returned again.
    pub new: bool,
}

#[derive(Debug, Clone)]
struct TokenEntry {
    owner: TokenOwner,
    expires_ms: i64,
}

#[derive(Debug, Clone)]
struct AuthCode {
    suite_id: SuiteId,
    corp_id: CorpId,
    expires_ms: i64,
    used: bool,
}

/// Everything credential-like the simulated WeCom has handed out.
#[derive(Debug, Default)]
pub struct Credentials {
    ttl: Ttls,
    tokens: HashMap<String, TokenEntry>,
    current: HashMap<TokenOwner, String>,
    tickets: HashMap<SuiteId, Vec<(String, i64)>>,
    auth_codes: HashMap<String, AuthCode>,
    /// JS-SDK tickets and OAuth2 login codes.
    pub(crate) jsapi: super::jsapi::JsApi,
}

/// Forget expired entries this long after they expire (keeps "expired" answers meaningful).
const KEEP_EXPIRED_MS: i64 = 24 * 3600 * 1000;

impl Credentials {
    /// Empty, with these lifetimes.
    pub fn new(ttl: Ttls) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }

    /// The owner's current token if still valid (same token, remaining lifetime), else a new one.
    pub fn issue_token(&mut self, owner: TokenOwner, now_ms: i64) -> Issued {
        let valid = self
            .current
            .get(&owner)
            .and_then(|token| Some((token, self.tokens.get(token)?)))
            .filter(|(_, entry)| entry.expires_ms > now_ms);
        if let Some((token, entry)) = valid {
            let remaining_ms = entry.expires_ms - now_ms;
            return Issued {
                token: token.clone(),
                expires_in: u64::try_from(remaining_ms.div_euclid(1000)).unwrap_or(0),
                new: false,
            };
        }
        let ttl_secs = match owner {
            TokenOwner::Suite(_) => self.ttl.suite_token_secs,
            TokenOwner::Corp { .. } => self.ttl.corp_token_secs,
            TokenOwner::Provider => self.ttl.provider_token_secs,
        };
        self.prune(now_ms);
        let token = secret(96);
        let expires_ms = now_ms.saturating_add(ms(std::time::Duration::from_secs(ttl_secs)));
        self.tokens.insert(
            token.clone(),
            TokenEntry {
                owner: owner.clone(),
                expires_ms,
            },
        );
        self.current.insert(owner, token.clone());
        Issued {
            token,
            expires_in: ttl_secs,
            new: true,
        }
    }

    /// Whose token `token` is, if it is valid at `now_ms`.
    pub fn check_token(&self, token: &str, now_ms: i64) -> Result<&TokenOwner, TokenError> {
        let entry = self.tokens.get(token).ok_or(TokenError::Unknown)?;
        if entry.expires_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(&entry.owner)
    }

    /// Invalidates every token of `owner` (they answer "invalid" from now on).
    pub fn revoke(&mut self, owner: &TokenOwner) {
        self.tokens.retain(|_, entry| entry.owner != *owner);
        self.current.remove(owner);
    }

    /// Issues a new suite ticket for `suite_id`.
    pub fn issue_ticket(&mut self, suite_id: &SuiteId, now_ms: i64) -> String {
        let ticket = secret(64);
        let keep_from = now_ms.saturating_sub(self.ticket_ttl_ms() + KEEP_EXPIRED_MS);
        let tickets = self.tickets.entry(suite_id.clone()).or_default();
        tickets.retain(|(_, issued)| *issued >= keep_from);
        tickets.push((ticket.clone(), now_ms));
        ticket
    }

    /// Whether `ticket` was issued for `suite_id` and is still valid.
    pub fn ticket_valid(&self, suite_id: &SuiteId, ticket: &str, now_ms: i64) -> bool {
        let ttl = self.ticket_ttl_ms();
        self.tickets.get(suite_id).is_some_and(|tickets| {
            tickets
                .iter()
                .any(|(t, issued)| t == ticket && now_ms.saturating_sub(*issued) < ttl)
        })
    }

    /// The newest ticket of `suite_id` still valid, if any.
    pub fn latest_ticket(&self, suite_id: &SuiteId, now_ms: i64) -> Option<&str> {
        let ttl = self.ticket_ttl_ms();
        self.tickets
            .get(suite_id)?
            .iter()
            .rev()
            .find(|(_, issued)| now_ms.saturating_sub(*issued) < ttl)
            .map(|(t, _)| t.as_str())
    }

    fn ticket_ttl_ms(&self) -> i64 {
        ms(std::time::Duration::from_secs(self.ttl.suite_ticket_secs))
    }

    /// Mints a single-use AuthCode for the app `suite_id` has in `corp_id`.
    pub fn mint_auth_code(&mut self, suite_id: &SuiteId, corp_id: &CorpId, now_ms: i64) -> String {
        self.prune(now_ms);
        let code = secret(64);
        let ttl = ms(std::time::Duration::from_secs(self.ttl.auth_code_secs));
        self.auth_codes.insert(
            code.clone(),
            AuthCode {
                suite_id: suite_id.clone(),
                corp_id: corp_id.clone(),
                expires_ms: now_ms.saturating_add(ttl),
                used: false,
            },
        );
        code
    }

    /// Consumes `code` for `suite_id`: the corp it authorizes, or `None` when it is unknown,
    /// already used, expired, or another suite's.
    pub fn consume_auth_code(
        &mut self,
        suite_id: &SuiteId,
        code: &str,
        now_ms: i64,
    ) -> Option<CorpId> {
        let entry = self.auth_codes.get_mut(code)?;
        if entry.used || entry.expires_ms <= now_ms || entry.suite_id != *suite_id {
            return None;
        }
        entry.used = true;
        Some(entry.corp_id.clone())
    }

    /// Drops tokens and AuthCodes that expired long ago.
    fn prune(&mut self, now_ms: i64) {
        let horizon = now_ms.saturating_sub(KEEP_EXPIRED_MS);
        self.tokens.retain(|_, e| e.expires_ms >= horizon);
        self.auth_codes.retain(|_, c| c.expires_ms >= horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new(Ttls {
            corp_token_secs: 10,
            auth_code_secs: 600,
            suite_ticket_secs: 1800,
            ..Ttls::default()
        })
    }

    fn corp() -> TokenOwner {
        TokenOwner::Corp {
            corp_id: ww("ww1"),
            suite_id: dk("dk1"),
        }
    }

    fn dk(id: &str) -> SuiteId {
        id.parse().unwrap()
    }

    fn ww(id: &str) -> CorpId {
        id.parse().unwrap()
    }

    #[test]
    fn token_is_stable_while_valid_then_expires_then_renews() {
        let mut c = creds();
        let first = c.issue_token(corp(), 0);
        assert!(first.new);
        assert_eq!(first.expires_in, 10);
        let again = c.issue_token(corp(), 4_000);
        assert_eq!(
            (again.token.as_str(), again.expires_in, again.new),
            (first.token.as_str(), 6, false)
        );
        assert_eq!(c.check_token(&first.token, 9_999), Ok(&corp()));
        assert_eq!(
            c.check_token(&first.token, 10_000),
            Err(TokenError::Expired)
        );
        let renewed = c.issue_token(corp(), 10_000);
        assert_ne!(renewed.token, first.token);
        assert_eq!(c.check_token("nope", 0), Err(TokenError::Unknown));
        c.revoke(&corp());
        assert_eq!(
            c.check_token(&renewed.token, 10_001),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn auth_code_single_use_expiring_and_suite_bound() {
        let mut c = creds();
        let code = c.mint_auth_code(&dk("dk1"), &ww("ww1"), 0);
        assert_eq!(c.consume_auth_code(&dk("dk2"), &code, 1), None);
        assert_eq!(c.consume_auth_code(&dk("dk1"), &code, 1), Some(ww("ww1")));
        assert_eq!(c.consume_auth_code(&dk("dk1"), &code, 2), None);
        let late = c.mint_auth_code(&dk("dk1"), &ww("ww1"), 0);
        assert_eq!(c.consume_auth_code(&dk("dk1"), &late, 600_000), None);
    }

    #[test]
    fn tickets_are_per_suite_and_expire() {
        let mut c = creds();
        let (dk1, dk2) = (dk("dk1"), dk("dk2"));
        let old = c.issue_ticket(&dk1, 0);
        let new = c.issue_ticket(&dk1, 600_000);
        assert!(c.ticket_valid(&dk1, &old, 1_799_999));
        assert!(!c.ticket_valid(&dk1, &old, 1_800_000));
        assert!(c.ticket_valid(&dk1, &new, 1_800_000));
        assert!(!c.ticket_valid(&dk2, &new, 1));
        assert_eq!(c.latest_ticket(&dk1, 1_000_000), Some(new.as_str()));
        assert_eq!(c.latest_ticket(&dk1, 10_000_000), None);
    }
}
