//! The provider API against real Postgres, with wecom-sim in-process playing WeCom.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod auth;
mod credentials;
mod directory;
mod helpers;
mod metrics;
mod openapi;
mod tenants;
