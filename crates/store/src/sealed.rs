//! Helpers shared by the query modules: reading a sealed value out of its three columns, a
//! cached access token as read from its row, and WeCom's unix-second `TimeStamp`s.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::error::StoreError;
use crate::secret::{Sealed, SecretBox, SecretContext};

/// A cached access token (suite or corp) as read from its row: still sealed, with the times the
/// refresh policy needs. [`CachedToken::open`] opens it; the policy (when to refresh, when a stale
/// token may still be used) belongs to the caller, the `tokens` crate.
#[derive(Debug, Clone)]
pub struct CachedToken {
    sealed: Sealed,
    context: SecretContext,
    /// When WeCom stops accepting it (as estimated when it was fetched).
    pub expires_at: DateTime<Utc>,
    /// When it was fetched.
    pub refreshed_at: DateTime<Utc>,
}

impl CachedToken {
    /// The cached token from its nullable columns; `None` unless all of them are set.
    pub(crate) fn from_columns(
        context: SecretContext,
        ciphertext: Option<Vec<u8>>,
        nonce: Option<Vec<u8>>,
        key_id: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        refreshed_at: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        Some(Self {
            sealed: from_columns(ciphertext, nonce, key_id)?,
            context,
            expires_at: expires_at?,
            refreshed_at: refreshed_at?,
        })
    }

    /// The token in clear, opened with the keyring it was sealed under.
    pub fn open(&self, secrets: &SecretBox) -> Result<SecretString, StoreError> {
        Ok(secrets.open(&self.context, &self.sealed)?)
    }
}

/// Reassembles a sealed value from its `*_ciphertext`, `*_nonce`, `*_key_id` columns (all set or
/// all null, as the tables' check constraints guarantee).
pub(crate) fn from_columns(
    ciphertext: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    key_id: Option<String>,
) -> Option<Sealed> {
    match (ciphertext, nonce, key_id) {
        (Some(ciphertext), Some(nonce), Some(key_id)) => Some(Sealed {
            key_id,
            nonce,
            ciphertext,
        }),
        _ => None,
    }
}

/// A WeCom `TimeStamp` (unix seconds) as a timestamp.
pub(crate) fn wecom_time(seconds: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| StoreError::invalid("WeCom TimeStamp", "out of range"))
}
