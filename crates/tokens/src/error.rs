//! Why no token (or no result) could be had, and what a worker should do about it.

use store::tenants::TenantStatus;
use store::{CorpId, StoreError, SuiteId};
use wecom::api::{ApiError, ErrorClass};

/// Why no token (or no result) could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The tenant does not exist.
    #[error("tenant {suite_id}/{corp_id} is unknown: no WeCom call made")]
    UnknownTenant {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
    },
    /// The tenant exists but is not `active`.
    #[error("tenant {suite_id}/{corp_id} is {status}, not active: no WeCom call made")]
    TenantNotActive {
        /// The suite.
        suite_id: SuiteId,
        /// The corp.
        corp_id: CorpId,
        /// Its status.
        status: TenantStatus,
    },
    /// No suite_ticket has been stored for the suite yet.
    #[error(
        "no suite_ticket stored for suite {0} yet: WeCom pushes one every 10 minutes (or force \
         one from the provider console)"
    )]
    NoSuiteTicket(SuiteId),
    /// WeCom refused or failed to issue the token.
    #[error("fetching the {kind} access token failed: {source}")]
    Fetch {
        /// `suite` or `corp`.
        kind: &'static str,
        /// WeCom's answer.
        #[source]
        source: ApiError,
    },
    /// The call made with the token failed (after the one retry a token error gets).
    #[error("WeCom call failed: {0}")]
    Call(#[source] ApiError),
    /// The database or a secret failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(err))
    }
}

impl TokenError {
    /// What a worker should do about it, in the vocabulary of WeCom errors: a missing ticket or a
    /// database hiccup is retryable, a tenant that is not active is broken, WeCom's own answers
    /// keep their class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::TenantNotActive { .. } => ErrorClass::TenantBroken,
            Self::NoSuiteTicket(_) => ErrorClass::Retryable,
            Self::Fetch { source, .. } | Self::Call(source) => source.class(),
            Self::Store(err) if err.is_transient() => ErrorClass::Retryable,
            Self::UnknownTenant { .. } | Self::Store(_) => ErrorClass::Permanent,
        }
    }

    /// WeCom's error, when WeCom answered one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Fetch { source, .. } | Self::Call(source) => Some(source),
            _ => None,
        }
    }
}
