//! daikai-ingress: WeCom callbacks in, confirmed RabbitMQ messages out
//! (docs/architecture.md §1, §3.1).
//!
//! The ingress is stateless and holds no database. For every push it verifies the signature,
//! checks freshness, decrypts, checks the receiveid, parses the event, publishes the envelope and
//! waits for the broker's confirm; only then does it answer `success`. Anything it cannot make
//! durable is answered 503, so WeCom retries and nothing is lost in between.
//!
//! - [`config`]: the environment, parsed once into [`Config`].
//! - [`callback`]: authentication of a callback (signature, freshness, decryption, receiveid).
//! - [`routes`]: the HTTP routes and how outcomes map to status codes, metrics and logs.
//! - [`startup`]: [`Application::build`] and [`Application::run_until_stopped`].
//! - [`metrics`], [`request_id`]: observability (logging setup is in the `runtime` crate).

pub mod callback;
pub mod config;
pub mod metrics;
pub mod request_id;
pub mod routes;
pub mod startup;

pub use config::{Config, ConfigError, LogFormat};
pub use startup::Application;
