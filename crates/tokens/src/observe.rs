//! The metrics hook: a [`RefreshObserver`] given to [`TokenService::with_observer`] hears every
//! refresh the service attempts and how it ended. The crate itself counts nothing and knows no
//! metrics library; each service registers the counter on its own registry
//! (`runtime::metrics::TokenRefreshes`, `daikai_token_refreshes_total{kind, outcome}`).
//!
//! [`TokenService::with_observer`]: crate::TokenService::with_observer

use std::fmt;

use store::jsapi_tickets::TicketKind;

use crate::error::TokenError;

/// What a refresh fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshKind {
    /// The suite access token (`get_suite_token`, with the stored suite_ticket).
    Suite,
    /// A tenant's corp access token (`gettoken`).
    Corp,
    /// A corp's jsapi_ticket (`get_jsapi_ticket`).
    Jsapi,
    /// An app's agent_config ticket (`ticket/get?type=agent_config`).
    AgentConfig,
}

impl RefreshKind {
    /// The metric label value: `suite`, `corp`, `jsapi` or `agent_config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suite => "suite",
            Self::Corp => "corp",
            Self::Jsapi => "jsapi",
            Self::AgentConfig => "agent_config",
        }
    }

    pub(crate) fn of_ticket(kind: TicketKind) -> Self {
        match kind {
            TicketKind::Corp => Self::Jsapi,
            TicketKind::Agent => Self::AgentConfig,
        }
    }
}

impl fmt::Display for RefreshKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Hears every refresh a [`TokenService`](crate::TokenService) attempts: once the cache, re-read
/// under the row lock, proved stale (a replica that finds the token refreshed by another makes
/// no attempt, so the count across replicas is the count of WeCom fetches). Called on the
/// caller's task: keep it cheap.
///
/// `outcome` is `Err` when no fresh token was had: WeCom refused or failed (even if the still
/// valid cached token was handed out instead), no suite_ticket was stored, or the new token
/// could not be stored. A tenant that is unknown or not active is no refresh attempt.
pub trait RefreshObserver: Send + Sync + fmt::Debug {
    /// One refresh attempt of `kind` and how it ended.
    fn refreshed(&self, kind: RefreshKind, outcome: Result<(), &TokenError>);
}
