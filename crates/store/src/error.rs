//! The one error type of the query functions. It never carries a secret: values that could be
//! secret are not formatted into any variant, and database errors are Postgres' own messages
//! (which name constraints, not row contents).

use crate::secret::SecretError;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres (or the connection to it) failed. Usually transient: retry the message.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A secret could not be sealed or opened (wrong or missing key, tampered row).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// An input value was rejected before reaching the database.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// Why it was rejected (never the value itself).
        reason: String,
    },
    /// The tenant does not exist.
    #[error("tenant {suite_id}/{corp_id} does not exist")]
    TenantNotFound {
        /// The suite.
        suite_id: String,
        /// The corp.
        corp_id: String,
    },
    /// The operation is not allowed in the tenant's current status.
    #[error("tenant {suite_id}/{corp_id} is {status}: {action} is not allowed")]
    InvalidTransition {
        /// The suite.
        suite_id: String,
        /// The corp.
        corp_id: String,
        /// Its current status.
        status: String,
        /// What was attempted.
        action: &'static str,
    },
    /// A row holds a value this binary does not understand (e.g. an unknown status written by a
    /// newer version, or a sealed column with a malformed nonce).
    #[error("unexpected value in {column}: {detail}")]
    Corrupt {
        /// `table.column`.
        column: &'static str,
        /// What was wrong (never a secret).
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// True when retrying the same operation later may succeed (connection trouble, pool
    /// exhaustion, serialization failures, deadlocks); false for bad input, missing keys and
    /// corrupt rows.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => is_transient_db_error(err),
            _ => false,
        }
    }
}

fn is_transient_db_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available,
            // 57P01 admin_shutdown, 08xxx connection exceptions, 53xxx insufficient resources
            matches!(code.as_ref(), "40001" | "40P01" | "55P03" | "57P01")
                || code.starts_with("08")
                || code.starts_with("53")
        }),
        _ => false,
    }
}
