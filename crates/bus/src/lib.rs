//! The message contract between daikai's services (docs/architecture.md §3.2–3.3).
//!
//! - [`envelope`]: the JSON body of every event message, its dedupe key and routing key.
//! - [`topology`]: the exchanges and queues (with namespace prefix), declared idempotently.
//! - [`connection`]: broker URL, connecting with backoff, noticing a lost connection.
//! - [`publisher`]: publishing with confirms over a self-healing connection.
//! - `testkit` (feature `testkit`, for tests): a TCP proxy that cuts or stalls the broker, and
//!   per-test namespaces.
//! - `stored` (feature `store`): a stored tenant and its status as the envelope carries them
//!   (`From` conversions from and to `store::tenants`).
//!
//! The consumer loop builds on [`connection`] and [`topology`]; its retry and dead-letter copies
//! go through the same confirmed publish as the [`publisher`]'s events. Nothing here reads the
//! environment or holds global state.

mod confirm;
pub mod connection;
pub mod consumer;
pub mod envelope;
pub mod publisher;
pub mod topology;

#[cfg(feature = "store")]
mod stored;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use connection::{
    Backoff, BrokerUrl, ConnectError, ConnectionLost, DEFAULT_AMQP_URL, connect,
    connect_with_backoff,
};
pub use envelope::{
    CallbackOrigin, DedupeKey, Envelope, EnvelopeError, MAX_ROUTING_KEY_LEN, Payload,
    SCHEMA_VERSION, Source, Tenant, TenantEvent, TenantStatus, safe_kind,
};
pub use publisher::{Outgoing, PublishError, Publisher, PublisherConfig, StartError};
pub use topology::{Namespace, QueueNames, RetryQueue, Topology, TopologyError, WorkQueue};
