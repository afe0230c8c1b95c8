//! `daikai`, the operator CLI: schema migrations, secret-key handling and read-only views of
//! tenant and AuthCode state.
//!
//! Why a separate binary: services never change the schema or re-encrypt secrets on their own
//! (several replicas and services share one database); those are deliberate operator steps,
//! described in `docs/operations.md`. The library half ([`Command::parse`], [`run`]) is what the
//! tests drive; `main.rs` only wires arguments, environment and exit codes.

mod command;
mod env;
mod run;

pub use command::{Command, USAGE, UsageError};
pub use env::Env;
pub use run::run;
