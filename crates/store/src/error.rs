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

impl From<wecom::ids::IdError> for StoreError {
    fn from(error: wecom::ids::IdError) -> Self {
        Self::Invalid {
            what: error.what,
            reason: error.reason.to_owned(),
        }
    }
}

impl StoreError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// True when retrying the same operation later may succeed: connection trouble, pool
    /// exhaustion, serialization failures, deadlocks, timeouts, a server shutting down or
    /// restarting, a read-only primary after a failover (see `is_transient_sqlstate`); and a
    /// secret this process cannot open ([`StoreError::is_key_mismatch`]), because a replica
    /// configured with the right key (or this one, redeployed) can. False for bad input,
    /// missing rows, invalid transitions and corrupt rows.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => is_transient_db_error(err),
            Self::Secret(_) => self.is_key_mismatch(),
            _ => false,
        }
    }

    /// True when a secret is sealed under a key id this process's keyring lacks, or under an
    /// id whose key here does not open it (the same id with other key bytes). This is a
    /// deployment fault of this replica, never a fault of the message being handled.
    pub fn is_key_mismatch(&self) -> bool {
        matches!(
            self,
            Self::Secret(SecretError::UnknownKeyId { .. } | SecretError::Decrypt { .. })
        )
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
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// The SQLSTATEs after which the same statement, retried later, can succeed.
///
/// | code | condition | why it heals |
/// |---|---|---|
/// | `08xxx` | connection exception | a new connection |
/// | `40001`, `40P01` | serialization failure, deadlock | the other transaction finishes |
/// | `25P03` | idle-in-transaction timeout | a new transaction on a new connection |
/// | `25006` | read-only transaction | a failover demoted the primary; the pool reconnects to the new one |
/// | `53xxx` | insufficient resources (disk, memory, too many connections) | load drops, space is freed |
/// | `55P03` | lock not available (`lock_timeout`, `nowait`) | the lock is released |
/// | `57014` | query canceled (`statement_timeout`, `pg_cancel_backend`) | the blocker goes away |
/// | `57P01`, `57P02`, `57P03` | admin shutdown, crash shutdown, cannot connect now | the server comes back |
/// | `57P05` | idle session timeout | a new connection |
pub(crate) fn is_transient_sqlstate(code: &str) -> bool {
    matches!(
        code,
        "40001"
            | "40P01"
            | "25P03"
            | "25006"
            | "55P03"
            | "57014"
            | "57P01"
            | "57P02"
            | "57P03"
            | "57P05"
    ) || code.starts_with("08")
        || code.starts_with("53")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_that_heal_are_transient() {
        for code in [
            "08000", "08003", "08006", "08001", "08004", "40001", "40P01", "25P03", "25006",
            "53000", "53100", "53200", "53300", "55P03", "57014", "57P01", "57P02", "57P03",
            "57P05",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn sqlstates_of_bad_statements_are_permanent() {
        // unique, check and foreign-key violations, syntax, undefined column/table, bad data,
        // insufficient privilege: retrying the same statement gives the same answer
        for code in [
            "23505", "23514", "23503", "42601", "42703", "42P01", "22P02", "42501", "25P02",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn pool_and_connection_failures_are_transient() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_transient());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::from(sqlx::Error::Io(io)).is_transient());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_transient());
    }

    #[test]
    fn a_key_this_process_lacks_is_transient_other_secret_faults_are_not() {
        let unknown = StoreError::from(SecretError::UnknownKeyId {
            key_id: "k9".to_owned(),
            known: "k1".to_owned(),
        });
        assert!(unknown.is_key_mismatch() && unknown.is_transient());
        let wrong = StoreError::from(SecretError::Decrypt {
            key_id: "k1".to_owned(),
            context: "tenants.permanent_code".to_owned(),
        });
        assert!(wrong.is_key_mismatch() && wrong.is_transient());
        let malformed = StoreError::from(SecretError::BadNonce {
            context: "tenants.permanent_code".to_owned(),
            len: 3,
        });
        assert!(!malformed.is_key_mismatch() && !malformed.is_transient());
        assert!(!StoreError::invalid("x", "y").is_transient());
    }
}
