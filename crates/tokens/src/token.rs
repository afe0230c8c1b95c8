//! The token handed to a WeCom call: the value, redacted in `Debug`, and when it expires.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};

/// An access token handed to a WeCom call. Its `Debug` is redacted.
#[derive(Clone)]
pub struct Token {
    value: SecretString,
    expires_at: DateTime<Utc>,
    fetched: bool,
}

impl Token {
    /// A token read from the cache.
    pub(crate) fn new(value: SecretString, expires_at: DateTime<Utc>) -> Self {
        Self {
            value,
            expires_at,
            fetched: false,
        }
    }

    /// A token this call fetched from WeCom.
    pub(crate) fn fetched(value: SecretString, expires_at: DateTime<Utc>) -> Self {
        Self {
            value,
            expires_at,
            fetched: true,
        }
    }

    /// Whether this call fetched it from WeCom (rather than reading the shared cache): for
    /// metrics of cache hits and refreshes.
    pub fn was_fetched(&self) -> bool {
        self.fetched
    }

    /// The token, to put into the `access_token` / `suite_access_token` query parameter.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// When WeCom will stop accepting it (as estimated when it was fetched).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("fetched", &self.fetched)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_token_is_redacted() {
        let token = Token::new(SecretString::from("SECRET-TOKEN".to_owned()), Utc::now());
        let debug = format!("{token:?}");
        assert!(!debug.contains("SECRET-TOKEN"), "{debug}");
        assert_eq!(token.expose(), "SECRET-TOKEN");
    }
}
