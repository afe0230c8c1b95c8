//! `daikai`, the operator CLI: schema migrations, secret keys and their rotation, and the
//! operator's view of the running system — `status` as a check, tenants, directory syncs, dead
//! letters, AuthCodes (reference: docs/operations.md §8; runbooks: docs/operations.md §9).
//!
//! Why a separate binary: services never change the schema, re-encrypt secrets or replay dead
//! letters on their own (several replicas and services share one database and broker); those
//! are deliberate operator steps. The library half ([`Cli`], [`run`]) is what the tests drive;
//! `main.rs` only wires arguments, environment and exit codes.

mod command;
pub mod commands;
mod env;
pub mod exit;
mod output;
mod run;

pub use command::{
    AuthCodeFilter, AuthCodesArgs, AuthCodesCommand, Cli, CodeState, Command, DeadCommand,
    EXIT_CODES_HELP, Global, SecretKeyCommand, SecretsCommand, SyncArgs, SyncCommand, TenantArg,
    TenantsCommand,
};
pub use env::{Env, mask_url};
pub use run::run;
