//! Exit codes (docs/operations.md §8) and the failures that choose them.
//!
//! A command fails with an `anyhow::Error`; where the failure has a code of its own, a [`Fault`]
//! is in its chain (as the error or a context), and [`code_of`] finds it.

/// Done; for `status`: nothing needs attention.
pub const OK: u8 = 0;
/// The command failed.
pub const FAILED: u8 = 1;
/// The command line is wrong (clap's own code).
pub const USAGE: u8 = 2;
/// `status`: something needs attention.
pub const ATTENTION: u8 = 3;
/// The database is unreachable or refused the login.
pub const DATABASE_UNREACHABLE: u8 = 4;
/// The broker is unreachable or refused the login.
pub const BROKER_UNREACHABLE: u8 = 5;
/// What the command names does not exist.
pub const NOT_FOUND: u8 = 6;

/// A failure with its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// A setting is missing or invalid (exit 1).
    #[error("{0}")]
    Config(String),
    /// No database at the (masked) URL.
    #[error("cannot connect to the database at {0}")]
    Database(String),
    /// No broker at the (masked) URL.
    #[error("cannot connect to the broker at {0}")]
    Broker(String),
    /// A tenant, dead letter or queue that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `status` found something to look at (its report says what).
    #[error("{0} thing(s) need attention (see above)")]
    Attention(usize),
}

/// The exit code for `error`.
pub fn code_of(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Fault>() {
        Some(Fault::Database(_)) => DATABASE_UNREACHABLE,
        Some(Fault::Broker(_)) => BROKER_UNREACHABLE,
        Some(Fault::NotFound(_)) => NOT_FOUND,
        Some(Fault::Attention(_)) => ATTENTION,
        Some(Fault::Config(_)) | None => FAILED,
    }
}
