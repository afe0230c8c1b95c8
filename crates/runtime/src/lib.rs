//! What every daikai service binary shares, so the services read their configuration, log and stop
//! the same way: configuration errors that name the variable, `LOG_FORMAT`/`RUST_LOG` logging,
//! shutdown on SIGINT/SIGTERM, the workers' `/healthz`, `/readyz` and `/metrics` listener, and the
//! metrics every service that calls WeCom exports alike ([`metrics`]). Only binaries and their
//! `Config::from_env` use it; the protocol and storage libraries stay free of process concerns.

pub mod config;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, LogFormat};
