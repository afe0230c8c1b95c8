//! `daikai-contact-sync`: consumes `wecom.contacts` and keeps every active tenant's directory —
//! departments, members with their memberships, tags with their members and departments —
//! mirrored in Postgres, equal to what the WeCom API shows the app once events go quiet, whatever
//! their order, duplication or interleaving with full syncs, crashes and restarts
//! (docs/contact-sync.md).
//!
//! Where a message goes (`handler.rs`):
//! - `change_contact` → `incremental.rs`: the entity re-read from WeCom and stored if newer;
//! - `tenant.activated` / `changed` / `sync_requested` → `full_sync.rs`: a resumable run, one
//!   per tenant across replicas, mark and sweep at the end;
//! - `tenant.revoked` → runs cancelled, directory purged.
//!
//! Every WeCom call goes through `wecom_calls.rs` (tokens, the shared per-corp budget, retries);
//! `schedule.rs` resumes abandoned runs and starts reconciliations; the SQL is
//! `store::directory`. [`Application::build`] wires it all from a [`Config`].

mod app;
pub mod config;
mod error;
mod full_sync;
mod handler;
mod health;
mod incremental;
pub mod metrics;
mod schedule;
mod syncer;
mod wecom_calls;

pub use app::Application;
pub use config::{Config, ConfigError, LogFormat};
pub use error::SyncError;
pub use metrics::Metrics;
pub use syncer::{SyncSettings, Syncer};
