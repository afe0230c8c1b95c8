//! `daikai-auth-worker`: consumes `wecom.auth` and owns the provider side of the relationship —
//! suite tickets, the AuthCode → permanent code exchange, the tenant lifecycle, and the
//! `internal.tenant.*` events contact-sync follows.
//!
//! Where a message goes, by kind:
//! - `suite_ticket` → `ticket.rs`: stored per suite, only ever replaced by a newer `TimeStamp`;
//! - `create_auth`, `reset_permanent_code` → `exchange.rs`: the single-use AuthCode, persisted on
//!   arrival, exchanged once, the tenant activated or its secret rotated;
//! - `change_auth`, `cancel_auth` → `lifecycle.rs`: auth info re-read, suspended/active,
//!   revoked with its secrets deleted;
//! - an auth event whose body did not fit its type → `unparsed.rs`: its AuthCode salvaged and
//!   exchanged, anything else dead-lettered with its raw XML;
//! - every `tenant.*` event → `notify.rs`: published from the committed state before the ack.
//!
//! The consumer loop itself (ack after commit, retries, dead letters, panics, reconnects) is
//! `bus::consumer`; the SQL, the sealed secrets and the token service are `store`.
//! [`Application::build`] wires it all from a [`Config`]; `main.rs` only adds signals and logs.

mod app;
pub mod config;
mod error;
mod exchange;
mod handler;
mod health;
mod lifecycle;
pub mod metrics;
mod notify;
mod state;
mod sweep;
mod ticket;
mod unparsed;
mod wecom_calls;

pub use app::Application;
pub use config::{Config, ConfigError, LogFormat};
pub use metrics::Metrics;
pub use state::{AuthHandler, CONSUMER};
pub use sweep::STALE_TICKET;
