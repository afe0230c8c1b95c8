//! The worker's one error type, and the one place it becomes the consumer loop's decision.
//!
//! Event handlers use `?` with [`Doing::doing`] to say what they were doing when the store or
//! the token service failed; whether that means "retry later" or "dead-letter now" is decided
//! here, in `From<WorkerError> for HandlerError`, and nowhere else.

use bus::consumer::HandlerError;
use store::StoreError;
use tokens::TokenError;
use wecom::api::ErrorClass;

/// Why an event handler could not apply its message.
#[derive(Debug)]
pub(crate) enum WorkerError {
    /// Postgres, or a sealed secret.
    Store {
        /// What the handler was doing ("reading the tenant").
        doing: &'static str,
        source: StoreError,
    },
    /// The token service, or the WeCom call it made the token for.
    Token {
        doing: &'static str,
        source: TokenError,
    },
    /// A decision the handler made itself (a retry window, a payload it cannot use).
    Decided(HandlerError),
}

impl From<HandlerError> for WorkerError {
    fn from(decided: HandlerError) -> Self {
        Self::Decided(decided)
    }
}

impl From<WorkerError> for HandlerError {
    fn from(error: WorkerError) -> Self {
        match error {
            WorkerError::Store { doing, source } => store_failure(doing, &source),
            WorkerError::Token { doing, source } => token_failure(doing, &source),
            WorkerError::Decided(decided) => decided,
        }
    }
}

/// A database failure: transient when Postgres (or the connection) may recover, and when the
/// secret was sealed under a key this replica lacks (a correctly configured replica can apply
/// it: it must never be dead-lettered for that).
fn store_failure(doing: &str, error: &StoreError) -> HandlerError {
    let reason = format!("{doing}: {error}");
    if error.is_key_mismatch() {
        tracing::error!(
            %error,
            "this replica cannot open a stored secret: check DAIKAI_SECRET_KEY and \
             DAIKAI_SECRET_KEYS_PREVIOUS; the message is retried"
        );
        HandlerError::transient(reason)
    } else if error.is_transient() {
        HandlerError::transient(reason)
    } else {
        HandlerError::permanent(reason)
    }
}

/// A token-service or WeCom failure, by its class. A token error reaching here was already
/// retried once with a fresh token, and a tenant WeCom refuses cannot be fixed by retrying.
fn token_failure(doing: &str, error: &TokenError) -> HandlerError {
    let reason = format!("{doing}: {error}");
    match error.class() {
        ErrorClass::Retryable | ErrorClass::TokenExpired(_) => HandlerError::transient(reason),
        ErrorClass::RateLimited { retry_after } => {
            HandlerError::transient_after(reason, retry_after)
        }
        ErrorClass::TenantBroken | ErrorClass::Permanent => HandlerError::permanent(reason),
    }
}

/// Names what was being done when a store or token call failed.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, WorkerError>;
}

impl<T> Doing<T> for Result<T, StoreError> {
    fn doing(self, doing: &'static str) -> Result<T, WorkerError> {
        self.map_err(|source| WorkerError::Store { doing, source })
    }
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T, WorkerError> {
        self.map_err(|source| WorkerError::Store {
            doing,
            source: source.into(),
        })
    }
}

impl<T> Doing<T> for Result<T, TokenError> {
    fn doing(self, doing: &'static str) -> Result<T, WorkerError> {
        self.map_err(|source| WorkerError::Token { doing, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom::api::ApiError;

    fn decided(error: TokenError) -> HandlerError {
        Err::<(), _>(error).doing("x").unwrap_err().into()
    }

    #[test]
    fn token_failures_map_onto_retry_or_dead_letter() {
        let busy = TokenError::Call(ApiError::wecom(-1, "busy"));
        assert!(matches!(decided(busy), HandlerError::Transient { .. }));
        let limited = TokenError::Call(ApiError::wecom(45009, "limit"));
        assert!(matches!(
            decided(limited),
            HandlerError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        let refused = TokenError::Call(ApiError::wecom(40084, "bad code"));
        assert!(matches!(decided(refused), HandlerError::Permanent { .. }));
    }

    #[test]
    fn store_failures_say_what_was_being_done() {
        let error: HandlerError = Err::<(), _>(sqlx::Error::PoolTimedOut)
            .doing("reading the tenant")
            .unwrap_err()
            .into();
        assert!(matches!(error, HandlerError::Transient { .. }));
        assert!(
            error.reason().starts_with("reading the tenant: "),
            "{error}"
        );
    }
}
