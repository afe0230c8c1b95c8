//! What can go wrong calling WeCom, and what the caller should do about it.
//!
//! WeCom reports most failures as HTTP 200 with a non-zero `errcode`, so the HTTP layer alone
//! cannot tell a retry from a give-up. [`classify`] maps every errcode of docs/wecom.md §5 to an
//! [`ErrorClass`]; the workers decide their retry policy from that class alone.

use std::time::Duration;

/// Which token a `TokenExpired` error asks the caller to refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The suite (template) access token from `get_suite_token`.
    Suite,
    /// A corp access token from `gettoken` (the 代开发 app token).
    Corp,
    /// The provider access token from `get_provider_token`.
    Provider,
}

/// The reaction a failure calls for (docs/architecture.md §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: retry the same call with backoff (WeCom advises at most 3 retries for -1).
    Retryable,
    /// The token is invalid or expired: refresh it (once, if still the failing one) and retry once.
    TokenExpired(TokenKind),
    /// A frequency or concurrency limit: do not retry before `retry_after` has passed.
    RateLimited {
        /// How long to back off before the next attempt.
        retry_after: Duration,
    },
    /// The corp's authorization is gone or suspended: mark the tenant and stop calling for it.
    TenantBroken,
    /// Retrying cannot help (bad input, missing permission, config bug, burnt AuthCode, …).
    Permanent,
}

impl ErrorClass {
    /// The class as a metric label value: `retryable`, `token_expired`, `rate_limited`,
    /// `tenant_broken` or `permanent` (the token kind and the back-off are left out, so the label
    /// set stays small).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::TokenExpired(_) => "token_expired",
            Self::RateLimited { .. } => "rate_limited",
            Self::TenantBroken => "tenant_broken",
            Self::Permanent => "permanent",
        }
    }
}

/// A failed WeCom API call.
///
/// No variant ever carries a URL, a token or a secret: the access token travels in the query
/// string, so transport errors are stripped of their URL before they become strings.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// WeCom answered with `errcode != 0`.
    #[error("WeCom errcode {code}: {message}")]
    WeCom {
        /// The `errcode`.
        code: i64,
        /// The `errmsg` (informative only: its text may change).
        message: String,
        /// `classify(code)`.
        class: ErrorClass,
    },
    /// Timeout, connection failure, broken body or HTTP 5xx: retryable.
    #[error("transport error: {0}")]
    Transport(String),
    /// Any other non-success HTTP status.
    #[error("unexpected HTTP status {status}")]
    Http {
        /// The HTTP status code.
        status: u16,
    },
    /// The body is not the JSON the endpoint promises: permanent.
    #[error("cannot decode WeCom response: {0}")]
    Decode(String),
    /// The client configuration is unusable.
    #[error("invalid API client configuration: {0}")]
    InvalidConfig(String),
}

impl ApiError {
    /// Builds the error for a non-zero `errcode`, classified.
    pub fn wecom(code: i64, message: impl Into<String>) -> Self {
        Self::WeCom {
            code,
            message: message.into(),
            class: classify(code),
        }
    }

    /// What the caller should do about this error.
    ///
    /// HTTP 408 and 429 count as retryable (nothing WeCom documents, but a proxy in between may
    /// send them); other non-5xx statuses are permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::WeCom { class, .. } => *class,
            Self::Transport(_) | Self::Http { status: 408 | 429 } => ErrorClass::Retryable,
            Self::Http { .. } | Self::Decode(_) | Self::InvalidConfig(_) => ErrorClass::Permanent,
        }
    }

    /// The WeCom `errcode`, if WeCom answered one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::WeCom { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the very same call may succeed later without changing anything on our side:
    /// [`ErrorClass::Retryable`] now (with backoff), or [`ErrorClass::RateLimited`] after the wait.
    /// Token expiry is not included: it needs a refresh first.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Retryable | ErrorClass::RateLimited { .. }
        )
    }
}

/// Back-off for 45009: blocks last one window, and the binding one is the per-minute window.
pub const FREQUENCY_LIMIT_BACKOFF: Duration = Duration::from_mins(1);

/// Back-off for 45033 (too many concurrent calls). It is a concurrency cap, not a window, so a
/// short pause with reduced parallelism is enough; it is reported as `RateLimited` rather than
/// `Retryable` so that callers slow down instead of spending their -1 retry budget at once.
pub const CONCURRENCY_LIMIT_BACKOFF: Duration = Duration::from_secs(1);

/// Classifies a non-zero WeCom `errcode` (docs/wecom.md §5). Unknown codes are permanent.
#[allow(
    clippy::match_same_arms,
    reason = "one arm per errcode keeps the match readable as the table of docs/wecom.md §5"
)]
pub fn classify(code: i64) -> ErrorClass {
    match code {
        // system busy; official advice: retry, at most 3 times
        -1 => ErrorClass::Retryable,
        // data version conflict between concurrent writes
        6000 => ErrorClass::Retryable,
        // invalid / expired corp access_token: refresh once
        40014 | 42001 => ErrorClass::TokenExpired(TokenKind::Corp),
        // invalid / expired suite_access_token; 40082 is also WeCom's answer for a bad provider
        // token, which cannot be told apart by code: callers holding a provider token treat
        // Suite as "the token I passed"
        40082 | 42009 => ErrorClass::TokenExpired(TokenKind::Suite),
        // per-minute / per-hour frequency limit: the block lasts a window
        45009 => ErrorClass::RateLimited {
            retry_after: FREQUENCY_LIMIT_BACKOFF,
        },
        // concurrent-call limit: back off briefly, reduce parallelism
        45033 => ErrorClass::RateLimited {
            retry_after: CONCURRENCY_LIMIT_BACKOFF,
        },
        // invalid secret: for 代开发 the secret was reset or the app deleted
        40001 => ErrorClass::TenantBroken,
        // invalid permanent_code: auth cancelled or code replaced
        40084 => ErrorClass::TenantBroken,
        // authorization relation invalid (not authorised / cancelled)
        48004 => ErrorClass::TenantBroken,
        // interface permission withdrawn; needs the admin to re-enable
        48006 => ErrorClass::TenantBroken,
        // app disabled; wait for change_auth
        50003 => ErrorClass::TenantBroken,
        // invalid or already consumed AuthCode: needs a new one, never retry
        40078 => ErrorClass::Permanent,
        // invalid / expired suite_ticket: only the next push heals it
        40085 => ErrorClass::Permanent,
        // invalid CorpID, invalid suite_id, token not from that suite: config bugs
        40013 | 40083 | 48003 => ErrorClass::Permanent,
        // API not permitted for this token type
        48002 => ErrorClass::Permanent,
        // missing permanent_code: a bug on our side
        41025 => ErrorClass::Permanent,
        // invalid OAuth code: the OAuth flow must restart
        40029 => ErrorClass::Permanent,
        // no privilege for that user/party/tag; userid not found: skip the item
        60011 | 60111 => ErrorClass::Permanent,
        // invalid pagination cursor: restart list_id from scratch
        50100 => ErrorClass::Permanent,
        // source IP not whitelisted: an ops issue
        60020 => ErrorClass::Permanent,
        // response too large: paginate per department instead
        45029 => ErrorClass::Permanent,
        // interface licence (接口许可) errors: alert, do not retry
        701_000..=701_999 => ErrorClass::Permanent,
        // anything else, including codes WeCom adds later
        _ => ErrorClass::Permanent,
    }
}
