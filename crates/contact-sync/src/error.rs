//! The worker's one error type, and the one place it becomes the consumer loop's decision
//! (retry later or dead-letter now).

use bus::consumer::HandlerError;
use store::StoreError;
use tokens::TokenError;
use wecom::api::{ApiError, ErrorClass};

/// Why applying a message failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Postgres failed (or refused a value).
    #[error("{doing}: {source}")]
    Store {
        /// What was being done.
        doing: &'static str,
        /// The store's error.
        source: StoreError,
    },
    /// No token could be had for the tenant (or it is not active any more).
    #[error("{doing}: {source}")]
    Token {
        /// What was being done.
        doing: &'static str,
        /// The token service's error.
        source: TokenError,
    },
    /// WeCom refused a call (after the retries its class allows).
    #[error("WeCom {api}: {source}")]
    Api {
        /// The API (`user/get`, …).
        api: &'static str,
        /// WeCom's answer.
        source: ApiError,
    },
    /// The message cannot be applied by any retry.
    #[error("{0}")]
    Invalid(String),
}

impl SyncError {
    /// WeCom's errcode, when WeCom refused the call.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Api { source, .. }
            | Self::Token {
                source: TokenError::Call(source),
                ..
            } => source.code(),
            _ => None,
        }
    }

    /// Whether no retry can help (the consumer dead-letters the message).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::TenantBroken | ErrorClass::Permanent
        )
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::Store { source, .. } if source.is_transient() || source.is_key_mismatch() => {
                ErrorClass::Retryable
            }
            Self::Store { .. } | Self::Invalid(_) => ErrorClass::Permanent,
            Self::Token { source, .. } => source.class(),
            Self::Api { source, .. } => source.class(),
        }
    }
}

impl From<SyncError> for HandlerError {
    fn from(error: SyncError) -> Self {
        let reason = error.to_string();
        match error.class() {
            ErrorClass::Retryable | ErrorClass::TokenExpired(_) => HandlerError::transient(reason),
            ErrorClass::RateLimited { retry_after } => {
                HandlerError::transient_after(reason, retry_after)
            }
            ErrorClass::TenantBroken | ErrorClass::Permanent => HandlerError::permanent(reason),
        }
    }
}

/// Says what was being done when the store or the token service failed.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, SyncError>;
}

impl<T> Doing<T> for Result<T, StoreError> {
    fn doing(self, doing: &'static str) -> Result<T, SyncError> {
        self.map_err(|source| SyncError::Store { doing, source })
    }
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T, SyncError> {
        self.map_err(|source| SyncError::Store {
            doing,
            source: source.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(error: SyncError) -> HandlerError {
        error.into()
    }

    #[test]
    fn wecom_refusals_map_onto_retry_or_dead_letter() {
        let api = |code| SyncError::Api {
            api: "user/get",
            source: ApiError::wecom(code, "x"),
        };
        assert!(matches!(decided(api(-1)), HandlerError::Transient { .. }));
        assert!(matches!(
            decided(api(45009)),
            HandlerError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            decided(api(40013)),
            HandlerError::Permanent { .. }
        ));
        assert_eq!(api(60011).errcode(), Some(60011));
    }

    #[test]
    fn database_failures_are_retried() {
        let error = Err::<(), _>(sqlx::Error::PoolTimedOut)
            .doing("writing members")
            .unwrap_err();
        assert!(error.to_string().starts_with("writing members: "));
        assert!(matches!(decided(error), HandlerError::Transient { .. }));
    }
}
