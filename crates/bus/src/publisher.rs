//! The confirmed publisher: "published" means the broker said so.
//!
//! The ingress answers WeCom `success` only after [`Publisher::publish`] returns `Ok`, which
//! happens only when the broker acknowledged the message (publisher confirms) within the confirm
//! timeout. A nack, a timeout, or no connection is an error, and WeCom is asked to retry. So is a
//! message no queue took: publishes are `mandatory`, and the broker confirms an unroutable one
//! only after returning it ([`PublishError::Unroutable`]). Unbound kinds on the events exchange
//! are not returned: its alternate exchange keeps them in `wecom.unrouted`.
//!
//! Throughput comes from pipelining: many publishes are in flight on one (or a few) confirm-mode
//! channels of one connection, each waiting for its own confirm, instead of a channel (or a round
//! trip) per message. A background task owns the connection: it connects with backoff, declares the
//! topology, opens the channels, and starts over when the connection or a channel fails, so a
//! broker restart needs no service restart. Meanwhile [`Publisher::is_ready`] is false and
//! publishes fail fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::confirm::publish_confirmed;
use crate::connection::{
    Backoff, BrokerUrl, ConnectionLost, Failures, HEALTHY_AFTER, REFUSED_MIN_DELAY, connect,
    is_access_refused,
};
use crate::envelope::{Envelope, EnvelopeError, MAX_ROUTING_KEY_LEN};
use crate::topology::{Topology, TopologyError};

/// Why a publish is not known to be durable.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No broker connection right now (reconnecting in the background).
    #[error("not connected to the broker")]
    NotConnected,
    /// The broker did not confirm within the deadline.
    #[error("the broker did not confirm within {0:?}")]
    Timeout(Duration),
    /// The broker refused the message (basic.nack).
    #[error("the broker nacked the message")]
    Nacked,
    /// No queue took the message: the broker returned it (published `mandatory`) before
    /// confirming, so it is nowhere. For the events exchange this only happens when its
    /// alternate exchange is gone too; for a queue name on the default exchange, when the queue
    /// does not exist.
    #[error(
        "the broker returned the message unroutable ({reply_code} {reply_text}) from exchange {exchange:?} with routing key {routing_key:?}"
    )]
    Unroutable {
        /// The exchange it was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply code (312 `NO_ROUTE`).
        reply_code: u16,
        /// The broker's reason.
        reply_text: String,
    },
    /// The channel failed while publishing.
    #[error("publishing failed: {0}")]
    Amqp(#[from] lapin::Error),
    /// The envelope could not be serialized.
    #[error(transparent)]
    Encode(#[from] EnvelopeError),
    /// The routing key is longer than AMQP allows ([`MAX_ROUTING_KEY_LEN`] bytes); sending it
    /// would close the connection for every publish sharing it.
    #[error("routing key of {0} bytes is longer than AMQP allows ({MAX_ROUTING_KEY_LEN})")]
    RoutingKeyTooLong(usize),
}

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// [`Publisher::start`] must be called from within a Tokio runtime.
    #[error("the publisher must be started from within a Tokio runtime")]
    NoRuntime,
}

/// How the publisher connects and publishes.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// The broker.
    pub url: BrokerUrl,
    /// Names to publish to and declare (declared again after every reconnect).
    pub topology: Topology,
    /// Name shown in the broker's management UI.
    pub connection_name: String,
    /// How long to wait for the broker's confirm of one message.
    pub confirm_timeout: Duration,
    /// Confirm-mode channels on the connection; publishes are spread over them.
    pub channels: usize,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
}

impl PublisherConfig {
    /// Defaults: 2 s confirm timeout, 1 channel, 100 ms…10 s backoff. (One channel pipelines
    /// enough: in the ingress benchmark a second one only made the broker work harder.)
    pub fn new(url: BrokerUrl, topology: Topology, connection_name: impl Into<String>) -> Self {
        Self {
            url,
            topology,
            connection_name: connection_name.into(),
            confirm_timeout: Duration::from_secs(2),
            channels: 1,
            backoff: Backoff::default(),
        }
    }
}

/// What a publish needs from a message besides its body.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Exchange (`""` = the default exchange, routing straight to a queue by name).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// `message_id` property.
    pub message_id: &'a str,
    /// `correlation_id` property: the request id that caused it.
    pub correlation_id: &'a str,
    /// `type` property: the event kind.
    pub kind: &'a str,
}

/// Publishes with confirms over a self-healing connection. Cheap to clone; all clones share one
/// connection. Dropping the last clone does not close it: call [`Publisher::close`].
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    link: watch::Receiver<Option<Arc<Link>>>,
    topology: Topology,
    confirm_timeout: Duration,
    shutdown: CancellationToken,
    stopped: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// One live connection and its confirm-mode channels.
#[derive(Debug)]
struct Link {
    connection: Connection,
    channels: Vec<Channel>,
    next: AtomicUsize,
}

impl Link {
    fn channel(&self) -> &Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        &self.channels[i]
    }
}

impl Publisher {
    /// Starts connecting in the background (on the current Tokio runtime) and returns at once.
    /// Use [`Publisher::wait_ready`] to wait for the first connection.
    pub fn start(config: PublisherConfig) -> Result<Self, StartError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let (tx, rx) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let topology = config.topology.clone();
        let confirm_timeout = config.confirm_timeout;
        let task = runtime.spawn(supervise(config, tx, shutdown.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                link: rx,
                topology,
                confirm_timeout,
                shutdown,
                stopped: tokio::sync::Mutex::new(Some(task)),
            }),
        })
    }

    /// True while connected with the topology declared and channels open.
    pub fn is_ready(&self) -> bool {
        self.inner
            .link
            .borrow()
            .as_ref()
            .is_some_and(|link| link.connection.status().connected())
    }

    /// Waits up to `timeout` for the publisher to be ready; returns whether it is.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.link.clone();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The topology this publisher publishes to.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Publishes `envelope` to the events exchange with its routing key, persistent, and waits
    /// for the broker's confirm (at most the configured confirm timeout).
    pub async fn publish(
        &self,
        envelope: &Envelope,
        correlation_id: &str,
    ) -> Result<(), PublishError> {
        let body = envelope.to_json()?;
        let routing_key = envelope.routing_key();
        let message_id = envelope.id.to_string();
        let kind = envelope.amqp_type();
        let outgoing = Outgoing {
            exchange: &self.inner.topology.events_exchange,
            routing_key: &routing_key,
            message_id: &message_id,
            correlation_id,
            kind: &kind,
        };
        self.publish_raw(outgoing, &body).await
    }

    /// Publishes any body (e.g. a retry or dead letter) with the same guarantees as
    /// [`Publisher::publish`]: persistent, JSON, confirmed within the timeout. A routing key over
    /// [`MAX_ROUTING_KEY_LEN`] bytes is refused; `message_id`, `correlation_id` and `kind` are cut
    /// to that length (AMQP short strings).
    pub async fn publish_raw(&self, msg: Outgoing<'_>, body: &[u8]) -> Result<(), PublishError> {
        let link = self
            .inner
            .link
            .borrow()
            .clone()
            .ok_or(PublishError::NotConnected)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(short(msg.message_id).into())
            .with_correlation_id(short(msg.correlation_id).into())
            .with_type(short(msg.kind).into());
        publish_confirmed(
            link.channel(),
            msg.exchange,
            msg.routing_key,
            body,
            properties,
            self.inner.confirm_timeout,
        )
        .await
    }

    /// Stops reconnecting and closes the connection. Publishes still awaiting their confirm
    /// should be finished first (the ingress closes after its HTTP server drained).
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        let task = self.inner.stopped.lock().await.take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "publisher task failed");
        }
    }
}

/// Owns the connection: connect, declare, open channels, wait for loss, repeat.
async fn supervise(
    config: PublisherConfig,
    link_tx: watch::Sender<Option<Arc<Link>>>,
    shutdown: CancellationToken,
) {
    let mut backoff = config.backoff.clone();
    let mut failures = Failures::default();
    loop {
        let opened = tokio::select! {
            () = shutdown.cancelled() => break,
            opened = open_link(&config) => opened,
        };
        let delay = match opened {
            Ok((link, lost)) => {
                failures.recovered("publisher connected");
                tracing::info!(broker = %config.url, channels = link.channels.len(), "publisher connected");
                link_tx.send_replace(Some(link.clone()));
                let started = Instant::now();
                tokio::select! {
                    () = shutdown.cancelled() => {
                        link_tx.send_replace(None);
                        close_quietly(&link.connection).await;
                        break;
                    }
                    () = lost.wait() => {
                        link_tx.send_replace(None);
                        close_quietly(&link.connection).await;
                        tracing::warn!(broker = %config.url, "publisher lost the broker; reconnecting");
                    }
                }
                // Only a link that worked for a while starts the backoff over: one the broker
                // drops right after it opened keeps backing off.
                if started.elapsed() > HEALTHY_AFTER {
                    backoff.reset();
                }
                backoff.next_delay()
            }
            Err(error) => {
                if error.is_refused() {
                    backoff.at_least(REFUSED_MIN_DELAY);
                }
                let delay = backoff.next_delay();
                failures.failed("publisher cannot connect", &error, delay);
                delay
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!("publisher closed");
}

#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Connect(#[from] crate::connection::ConnectError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("cannot open a confirm-mode channel: {0}")]
    Channel(#[from] lapin::Error),
}

impl OpenError {
    /// The broker refused the login, the vhost, or a declaration (ACCESS_REFUSED).
    fn is_refused(&self) -> bool {
        match self {
            Self::Connect(error) => error.is_refused(),
            Self::Topology(TopologyError::Declare { source, .. }) | Self::Channel(source) => {
                is_access_refused(source)
            }
            Self::Topology(TopologyError::InvalidNamespace(_)) => false,
        }
    }
}

async fn open_link(config: &PublisherConfig) -> Result<(Arc<Link>, ConnectionLost), OpenError> {
    let connection = connect(&config.url, &config.connection_name).await?;
    let lost = ConnectionLost::watch(&connection);
    let result = open_channels(&connection, config).await;
    match result {
        Ok(channels) => Ok((
            Arc::new(Link {
                connection,
                channels,
                next: AtomicUsize::new(0),
            }),
            lost,
        )),
        Err(error) => {
            close_quietly(&connection).await;
            Err(error)
        }
    }
}

async fn open_channels(
    connection: &Connection,
    config: &PublisherConfig,
) -> Result<Vec<Channel>, OpenError> {
    let setup = connection.create_channel().await?;
    config.topology.declare(&setup).await?;
    drop(setup.close(200, "topology declared".into()).await);
    let mut channels = Vec::with_capacity(config.channels.max(1));
    for _ in 0..config.channels.max(1) {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.push(channel);
    }
    Ok(channels)
}

/// `text` cut to an AMQP short string (at most 255 bytes, on a character boundary).
fn short(text: &str) -> &str {
    let mut end = text.len().min(MAX_ROUTING_KEY_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn close_quietly(connection: &Connection) {
    if connection.status().connected()
        && let Err(error) = connection.close(200, "bye".into()).await
    {
        tracing::debug!(%error, "closing the broker connection failed");
    }
}
