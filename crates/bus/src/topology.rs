//! The RabbitMQ topology every service declares at start (docs/architecture.md §3.3), and the names
//! publishers and consumers use.
//!
//! ```text
//! wecom.events (topic) ──suite.suite_ticket, suite.*_auth, suite.reset_permanent_code──▶ wecom.auth
//!        │            ──*.change_contact.#, internal.tenant.#──────────────────────────▶ wecom.contacts
//!        └─ alternate-exchange ─▶ wecom.unrouted (fanout) ─▶ wecom.unrouted (capped)
//!
//! {queue}.retry.{delay} ──TTL expires, dead-letters via the default exchange──▶ {queue}
//! {queue}.dead          ◀── consumers park poison messages here (and the broker, past the
//!                           delivery limit)
//! ```
//!
//! Retries use a few fixed delay tiers, one queue per tier with a queue-wide `x-message-ttl`,
//! rather than one queue with per-message TTLs: RabbitMQ only expires messages at the head of a
//! queue, so a 10-minute message would hold back a 1-second one behind it. Within a tier every
//! message has the same TTL, so the head is always the next to expire.
//!
//! Work, retry and dead queues are quorum queues (replicated, durable). Work queues carry an
//! explicit delivery limit ([`DELIVERY_LIMIT`]) and dead-letter to `{queue}.dead`, so a message
//! that keeps crashing consumers is parked there instead of looping, never dropped. Retry queues
//! are never consumed: messages leave them by TTL, dead-lettered `at-least-once` into the work
//! queue, so a message is never lost between the two. Dead queues have no dead-letter target and
//! no delivery-limit argument; on RabbitMQ 4 they still get the broker's default limit (20), so
//! nothing may give a letter back to them by a requeue: the operator CLI re-publishes what it
//! reads instead (`crates/cli/src/commands/dead.rs`, docs/operations.md §8). Every name takes the namespace prefix (`AMQP_NAMESPACE`) so parallel tests each own
//! a topology on one broker. Declaring is idempotent: same names, same arguments, every start.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

/// Base name of the topic exchange all events are published to.
pub const EVENTS_EXCHANGE: &str = "wecom.events";
/// Base name of the fanout exchange (and its queue) that keeps what no queue took.
pub const UNROUTED: &str = "wecom.unrouted";
/// Messages `wecom.unrouted` keeps; the oldest are dropped beyond that.
pub const UNROUTED_MAX_LENGTH: i64 = 100_000;
/// Deliveries after which the broker dead-letters a work queue's message to `{queue}.dead`
/// (explicit, so it is the same on RabbitMQ 3.x, which has no default, and on 4.x).
pub const DELIVERY_LIMIT: i64 = 20;
/// The delay tiers of every work queue's retry queues, shortest first.
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(600),
];

/// Why declaring (or deleting) the topology failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The namespace prefix is not usable in AMQP names.
    #[error("AMQP namespace {0:?} must be at most 64 characters of [A-Za-z0-9._-]")]
    InvalidNamespace(String),
    /// The broker refused a declaration (often: it exists with other arguments).
    #[error("declaring {what} failed: {source}")]
    Declare {
        /// The exchange, queue or binding.
        what: String,
        /// The broker's answer.
        #[source]
        source: lapin::Error,
    },
}

/// A prefix for every exchange and queue name, e.g. `t0193…` in tests; empty in production.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    /// Validates a prefix: at most 64 characters of `[A-Za-z0-9._-]` (empty is fine).
    pub fn new(prefix: &str) -> Result<Self, TopologyError> {
        let valid = prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(TopologyError::InvalidNamespace(prefix.to_owned()))
        }
    }

    /// Reads the value of `AMQP_NAMESPACE`: surrounding whitespace is ignored, the rest is
    /// validated as by [`Namespace::new`]. Every service parses the variable through this.
    pub fn parse(value: &str) -> Result<Self, TopologyError> {
        Self::new(value.trim())
    }

    /// `prefix + base`.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", self.0)
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The queues workers consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkQueue {
    /// `wecom.auth`: suite tickets and the authorization lifecycle (auth-worker).
    Auth,
    /// `wecom.contacts`: directory changes and tenant events (contact-sync).
    Contacts,
}

impl WorkQueue {
    /// Every work queue.
    pub const ALL: [WorkQueue; 2] = [WorkQueue::Auth, WorkQueue::Contacts];

    /// The name without namespace.
    pub fn base_name(self) -> &'static str {
        match self {
            Self::Auth => "wecom.auth",
            Self::Contacts => "wecom.contacts",
        }
    }

    /// The binding keys from the events exchange.
    pub fn binding_keys(self) -> &'static [&'static str] {
        match self {
            Self::Auth => &[
                "suite.suite_ticket",
                "suite.create_auth",
                "suite.change_auth",
                "suite.cancel_auth",
                "suite.reset_permanent_code",
            ],
            Self::Contacts => &["*.change_contact.#", "internal.tenant.#"],
        }
    }
}

/// One delay tier of a work queue's retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQueue {
    /// Full (namespaced) queue name, e.g. `wecom.auth.retry.10s`.
    pub name: String,
    /// How long a message waits there before going back to the work queue.
    pub delay: Duration,
}

/// The full names around one work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    /// Which work queue.
    pub queue: WorkQueue,
    /// The work queue itself, e.g. `wecom.auth`.
    pub work: String,
    /// Its retry tiers, shortest delay first. Publish to one through the default exchange
    /// (exchange `""`, routing key = the retry queue's name).
    pub retries: Vec<RetryQueue>,
    /// Where messages go when retries are exhausted or the payload is bad, e.g. `wecom.auth.dead`.
    pub dead: String,
}

impl QueueNames {
    fn new(ns: &Namespace, queue: WorkQueue) -> Self {
        let work = ns.name(queue.base_name());
        let retries = RETRY_DELAYS
            .iter()
            .map(|delay| RetryQueue {
                name: format!("{work}.retry.{}s", delay.as_secs()),
                delay: *delay,
            })
            .collect();
        Self {
            queue,
            dead: format!("{work}.dead"),
            retries,
            work,
        }
    }

    /// The retry tier for the `attempt`-th retry (0-based), the longest once past the last.
    pub fn retry_for_attempt(&self, attempt: usize) -> &RetryQueue {
        let last = self.retries.len().saturating_sub(1);
        &self.retries[attempt.min(last)]
    }
}

/// Every name of one namespace's topology, and how to declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: Namespace,
    /// The topic exchange events are published to.
    pub events_exchange: String,
    /// The alternate (fanout) exchange of `events_exchange`.
    pub unrouted_exchange: String,
    /// The capped queue behind `unrouted_exchange`.
    pub unrouted_queue: String,
    auth: QueueNames,
    contacts: QueueNames,
}

impl Topology {
    /// The topology under `namespace`.
    pub fn new(namespace: Namespace) -> Self {
        Self {
            events_exchange: namespace.name(EVENTS_EXCHANGE),
            unrouted_exchange: namespace.name(UNROUTED),
            unrouted_queue: namespace.name(UNROUTED),
            auth: QueueNames::new(&namespace, WorkQueue::Auth),
            contacts: QueueNames::new(&namespace, WorkQueue::Contacts),
            namespace,
        }
    }

    /// The namespace every name is prefixed with.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The names around one work queue.
    pub fn queue(&self, queue: WorkQueue) -> &QueueNames {
        match queue {
            WorkQueue::Auth => &self.auth,
            WorkQueue::Contacts => &self.contacts,
        }
    }

    /// Every queue name of the topology (work, retry, dead, unrouted).
    pub fn all_queues(&self) -> Vec<String> {
        let mut names = vec![self.unrouted_queue.clone()];
        for q in WorkQueue::ALL.map(|q| self.queue(q)) {
            names.push(q.work.clone());
            names.extend(q.retries.iter().map(|r| r.name.clone()));
            names.push(q.dead.clone());
        }
        names
    }

    /// Declares everything; safe to call on every start and from every service.
    pub async fn declare(&self, channel: &Channel) -> Result<(), TopologyError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        declare_exchange(
            channel,
            &self.unrouted_exchange,
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        let mut unrouted_args = quorum_args();
        unrouted_args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(UNROUTED_MAX_LENGTH),
        );
        unrouted_args.insert("x-overflow".into(), long_string("drop-head"));
        declare_queue(channel, &self.unrouted_queue, unrouted_args).await?;
        bind(channel, &self.unrouted_queue, &self.unrouted_exchange, "").await?;

        let mut events_args = FieldTable::default();
        events_args.insert(
            "alternate-exchange".into(),
            long_string(&self.unrouted_exchange),
        );
        declare_exchange(
            channel,
            &self.events_exchange,
            ExchangeKind::Topic,
            durable,
            events_args,
        )
        .await?;
        for queue in WorkQueue::ALL {
            self.declare_work_queue(channel, self.queue(queue)).await?;
        }
        Ok(())
    }

    async fn declare_work_queue(
        &self,
        channel: &Channel,
        names: &QueueNames,
    ) -> Result<(), TopologyError> {
        // No `x-delivery-limit` here, deliberately, although RabbitMQ 4 drops a message requeued
        // more than 20 times into a queue without one: `-1` (unlimited on 4.x) means 0 on 3.x,
        // dropping every letter on its first return, and any new argument fails the redeclare
        // of an existing dead queue (PRECONDITION_FAILED), which would stop every service at
        // start after an upgrade. Readers hand letters back as new messages instead
        // (docs/operations.md §8).
        declare_queue(channel, &names.dead, quorum_args()).await?;
        let mut work_args = quorum_args();
        work_args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        dead_letter_to(&mut work_args, &names.dead);
        declare_queue(channel, &names.work, work_args).await?;
        for key in names.queue.binding_keys() {
            bind(channel, &names.work, &self.events_exchange, key).await?;
        }
        for retry in &names.retries {
            let mut args = quorum_args();
            let ttl = i64::try_from(retry.delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            dead_letter_to(&mut args, &names.work);
            args.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            // at-least-once dead-lettering requires reject-publish (there is no length limit,
            // so it never rejects anything).
            args.insert("x-overflow".into(), long_string("reject-publish"));
            declare_queue(channel, &retry.name, args).await?;
        }
        Ok(())
    }

    /// Deletes every exchange and queue of the topology (tests and tooling; never at start).
    pub async fn delete(&self, channel: &Channel) -> Result<(), TopologyError> {
        for queue in self.all_queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|source| TopologyError::Declare {
                    what: format!("deletion of queue {queue}"),
                    source,
                })?;
        }
        for exchange in [&self.events_exchange, &self.unrouted_exchange] {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(|source| TopologyError::Declare {
                    what: format!("deletion of exchange {exchange}"),
                    source,
                })?;
        }
        Ok(())
    }
}

/// An AMQP long-string value (queue arguments, headers).
pub(crate) fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args
}

/// Dead-letters through the default exchange straight into `queue`.
fn dead_letter_to(args: &mut FieldTable, queue: &str) {
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert("x-dead-letter-routing-key".into(), long_string(queue));
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) -> Result<(), TopologyError> {
    channel
        .exchange_declare(name.into(), kind, options, args)
        .await
        .map_err(|source| TopologyError::Declare {
            what: format!("exchange {name}"),
            source,
        })
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), TopologyError> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, args)
        .await
        .map(drop)
        .map_err(|source| TopologyError::Declare {
            what: format!("queue {name}"),
            source,
        })
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), TopologyError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|source| TopologyError::Declare {
            what: format!("binding {exchange} -[{key}]-> {queue}"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_namespace() {
        let topology = Topology::new(Namespace::new("t1.").unwrap());
        assert_eq!(topology.events_exchange, "t1.wecom.events");
        assert_eq!(topology.unrouted_exchange, "t1.wecom.unrouted");
        let auth = topology.queue(WorkQueue::Auth);
        assert_eq!(auth.work, "t1.wecom.auth");
        assert_eq!(auth.dead, "t1.wecom.auth.dead");
        assert_eq!(
            auth.retries
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            [
                "t1.wecom.auth.retry.1s",
                "t1.wecom.auth.retry.10s",
                "t1.wecom.auth.retry.60s",
                "t1.wecom.auth.retry.600s"
            ]
        );
        assert_eq!(topology.all_queues().len(), 1 + 2 * (1 + 4 + 1));
    }

    #[test]
    fn empty_namespace_gives_the_production_names() {
        let topology = Topology::new(Namespace::default());
        assert_eq!(topology.queue(WorkQueue::Contacts).work, "wecom.contacts");
        assert_eq!(topology.events_exchange, EVENTS_EXCHANGE);
    }

    #[test]
    fn retry_tier_grows_then_stays_at_the_longest() {
        let topology = Topology::new(Namespace::default());
        let auth = topology.queue(WorkQueue::Auth);
        assert_eq!(auth.retry_for_attempt(0).delay, Duration::from_secs(1));
        assert_eq!(auth.retry_for_attempt(1).delay, Duration::from_secs(10));
        assert_eq!(auth.retry_for_attempt(99).delay, Duration::from_secs(600));
    }

    #[test]
    fn namespace_values_are_read_without_surrounding_whitespace() {
        assert_eq!(
            Namespace::parse(" t1.\n").unwrap(),
            Namespace::new("t1.").unwrap()
        );
        assert_eq!(Namespace::parse("  ").unwrap(), Namespace::default());
        assert!(Namespace::parse(" a b ").is_err());
    }

    #[test]
    fn namespace_refuses_characters_amqp_tooling_chokes_on() {
        assert!(Namespace::new("ok_1.-").is_ok());
        for bad in ["a b", "x/y", "é", &"a".repeat(65)] {
            assert!(Namespace::new(bad).is_err(), "{bad}");
        }
    }
}
