//! Helpers shared by the query modules: reading a sealed value out of its three columns, and
//! WeCom's unix-second `TimeStamp`s.

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::secret::Sealed;

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
