//! daikai-api: the provider API (docs/api.md). The provider's own apps, in whatever language,
//! get from it what they need for each client enterprise: the tenants, a corp access token from
//! the one cache every replica of every daikai service shares, JS-SDK signatures (the tickets
//! never leave the service), the member behind an OAuth2 login, and the mirrored directory.
//!
//! - [`config`]: the environment, parsed once into [`Config`].
//! - [`auth`]: API keys (hash only, constant-time check), scopes, suites, the rate limit.
//! - [`routes`]: the routes; [`openapi`]: the OpenAPI document generated from them.
//! - [`error`]: every refusal as `application/problem+json`.
//! - [`startup`]: [`Application::build`] and [`Application::run_until_stopped`].
//! - [`metrics`], [`state`].

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;

pub use config::{Config, ConfigError, LogFormat};
pub use startup::Application;
