//! The consumer loop every worker runs (docs/architecture.md §3.3, §4.12).
//!
//! Why it exists: "process a message exactly once, lose none" is the same problem for every
//! worker, and getting it right takes more than `basic_consume` + `ack`. This module owns that
//! part once; a worker only writes a [`Handler`].
//!
//! The contract with the handler:
//! - The handler applies the message's effect in **one database transaction that also inserts the
//!   message's `dedupe_key` into the inbox**, commits, and only then returns `Ok`. The loop acks
//!   only after that, so a crash at any point either loses nothing (no ack: the broker redelivers)
//!   or doubles nothing (the inbox row makes the redelivery a no-op that is simply acked).
//! - [`HandlerError::Transient`]: something that time may heal (database down, WeCom busy). The
//!   message is republished to the work queue's retry tier for its attempt (1 s, 10 s, 60 s,
//!   600 s: see [`crate::topology::RETRY_DELAYS`]), which dead-letters it back into the work queue
//!   when the delay has passed. The attempt number travels in the [`ATTEMPT_HEADER`]; after
//!   [`ConsumerConfig::max_attempts`] deliveries the message goes to `{queue}.dead` instead.
//! - [`HandlerError::Waiting`]: not yet, through no failure: another holder has what the message
//!   needs (an AuthCode another replica is exchanging) and releases it by a known time at the
//!   latest (its lease). The message goes to the longest retry tier within that time **without
//!   spending an attempt**: a holder that died must not make its waiters run out of attempts
//!   before its lease lapses. The lease bounds the wait, so this cannot loop forever.
//! - [`HandlerError::Permanent`]: retrying cannot help (bad payload, unknown suite). The message
//!   goes straight to `{queue}.dead` with the reason in the [`ERROR_HEADER`].
//! - A body that is not an [`Envelope`] never reaches the handler: it is dead-lettered at once.
//! - A **panicking handler** is caught (the panic is contained in its delivery's task; the loop
//!   and the other in-flight messages carry on). The panic counts as *permanent*: a panic is a bug,
//!   and a bug does not heal with time; retrying it would only repeat the side effects that ran
//!   before the panic (WeCom calls, for instance) up to `max_attempts` times. The message waits in
//!   `{queue}.dead` with `handler panicked: …` as its reason until the fix is deployed and an
//!   operator replays it.
//!
//! Retries and dead letters are republished on a confirm-mode channel of the consumer's own
//! connection, and the original is acked only after the broker confirmed the copy: a crash in
//! between can duplicate a message (the inbox absorbs that), never lose it. Copies go through the
//! publisher's confirmed publish: `mandatory`, so a copy to a queue that does not exist comes back
//! (basic.return) and counts as not published rather than confirmed into nowhere. If the copy cannot be published (returned,
//! nacked during a memory alarm, not confirmed in time), the original goes back onto the work
//! queue after a pause that grows with each failure (500 ms doubling to 30 s), and the failure
//! counts as an attempt: the consumer remembers, per message id, how many copies failed and adds
//! that to the attempt the handler sees and the next copy's header, so such a message still
//! reaches its last attempt and `{queue}.dead` instead of re-running the handler forever.
//!
//! In-flight work is bounded by the prefetch ([`ConsumerConfig::prefetch`], `basic.qos`): the
//! broker never has more unacked deliveries out to this consumer, and each runs in its own task.
//! The loop reconnects with backoff when the connection or a channel fails, and on shutdown stops
//! consuming (`basic.cancel`), lets the in-flight messages finish and settle, then closes.
//!
//! Each handler call runs in a `message` tracing span carrying the message id, kind, attempt and
//! the AMQP `correlation_id` (the ingress request id), so a worker's log lines continue the
//! ingress's trace. Nothing here logs a message body: WeCom payloads carry AuthCodes.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::confirm::publish_confirmed;
use crate::connection::{
    Backoff, BrokerUrl, ConnectionLost, Failures, HEALTHY_AFTER, REFUSED_MIN_DELAY, connect_until,
    is_access_refused,
};
use crate::envelope::Envelope;
use crate::publisher::PublishError;
use crate::topology::{QueueNames, Topology, TopologyError, WorkQueue, long_string};

/// Header holding the 1-based number of the delivery attempt (absent on the first).
pub const ATTEMPT_HEADER: &str = "x-daikai-attempt";
/// Header holding why a message was dead-lettered (or, on a retry, why the last attempt failed).
pub const ERROR_HEADER: &str = "x-daikai-error";
/// Header holding the routing key the message originally arrived with (kept across retries, so a
/// dead letter can be replayed onto the events exchange).
pub const ROUTING_KEY_HEADER: &str = "x-daikai-routing-key";
/// Header holding the work queue that gave up on a dead letter.
pub const QUEUE_HEADER: &str = "x-daikai-queue";

/// Longest reason kept in a header; the rest is cut (headers are not a log).
const MAX_REASON_LEN: usize = 1000;

/// What a handler reports when it could not apply a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Time may heal it: retry later (with backoff), then dead-letter after the last attempt.
    #[error("transient: {reason}")]
    Transient {
        /// What went wrong (no secrets: it ends up in logs and headers).
        reason: String,
        /// The earliest useful retry, if the failure says so (e.g. a rate-limit window); the
        /// shortest retry tier at least this long is used.
        retry_after: Option<Duration>,
        /// The latest useful retry, if the failure says so (e.g. before an AuthCode expires):
        /// the longest retry tier no longer than this is used, even when the attempt's own tier
        /// is longer (the shortest tier when none is that short).
        retry_before: Option<Duration>,
    },
    /// Not yet: another holder has what this message needs and releases it within
    /// `retry_before` at the latest. Retried without spending an attempt.
    #[error("waiting: {reason}")]
    Waiting {
        /// What it waits for (no secrets).
        reason: String,
        /// When the holder's lease lapses, from now: the retry comes no later.
        retry_before: Duration,
    },
    /// Retrying cannot help: dead-letter now.
    #[error("permanent: {reason}")]
    Permanent {
        /// What went wrong (no secrets: it ends up in logs and headers).
        reason: String,
    },
}

impl HandlerError {
    /// A transient failure with the default backoff.
    pub fn transient(reason: impl fmt::Display) -> Self {
        Self::Transient {
            reason: reason.to_string(),
            retry_after: None,
            retry_before: None,
        }
    }

    /// A transient failure that should not be retried before `retry_after`.
    pub fn transient_after(reason: impl fmt::Display, retry_after: Duration) -> Self {
        Self::Transient {
            reason: reason.to_string(),
            retry_after: Some(retry_after),
            retry_before: None,
        }
    }

    /// The same failure, to be retried no later than `deadline` from now (a permanent failure
    /// stays as it is).
    #[must_use]
    pub fn retry_before(self, deadline: Duration) -> Self {
        match self {
            Self::Transient {
                reason,
                retry_after,
                ..
            } => Self::Transient {
                reason,
                retry_after,
                retry_before: Some(deadline),
            },
            other @ (Self::Waiting { .. } | Self::Permanent { .. }) => other,
        }
    }

    /// Waiting for a holder whose lease lapses within `retry_before`.
    pub fn waiting(reason: impl fmt::Display, retry_before: Duration) -> Self {
        Self::Waiting {
            reason: reason.to_string(),
            retry_before,
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl fmt::Display) -> Self {
        Self::Permanent {
            reason: reason.to_string(),
        }
    }

    /// The reason, whichever the variant.
    pub fn reason(&self) -> &str {
        match self {
            Self::Transient { reason, .. }
            | Self::Waiting { reason, .. }
            | Self::Permanent { reason } => reason,
        }
    }
}

/// One decoded delivery, as a handler sees it.
pub struct Message {
    /// The event.
    pub envelope: Envelope,
    /// 1 for the first delivery, 2 for the first retry, …
    pub attempt: u32,
    /// The broker's redelivered flag: an earlier delivery of this very message was not acked
    /// (a consumer died or lost its connection). The inbox makes that harmless.
    pub redelivered: bool,
    /// The AMQP `correlation_id` (the ingress request id), if the publisher set one.
    pub correlation_id: Option<String>,
}

impl Message {
    /// The correlation id to pass on when this message causes another publish: the incoming
    /// `correlation_id`, else the message id.
    pub fn correlation(&self) -> String {
        self.correlation_id
            .clone()
            .unwrap_or_else(|| self.envelope.id.to_string())
    }
}

impl fmt::Debug for Message {
    /// Ids and kind only: payloads may hold AuthCodes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.envelope.id)
            .field("kind", &self.envelope.kind)
            .field("dedupe_key", &self.envelope.dedupe_key.as_str())
            .field("attempt", &self.attempt)
            .field("redelivered", &self.redelivered)
            .field("correlation_id", &self.correlation_id)
            .finish_non_exhaustive()
    }
}

/// A worker's message handler. Implement it with `async fn handle(&self, message: &Message)`.
///
/// Return `Ok` only once the effect **and** the inbox row are committed; see the module docs.
pub trait Handler: Send + Sync + 'static {
    /// Applies one message.
    fn handle(&self, message: &Message) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// What became of one delivery, reported to the [`Observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled and acked.
    Acked,
    /// Republished to a retry tier, then acked.
    Retried,
    /// Republished to `{queue}.dead`, then acked.
    DeadLettered,
    /// Could not be settled (the retry/dead copy or the ack failed): back on the work queue, or
    /// redelivered once the broker notices the lost channel.
    Requeued,
}

impl Outcome {
    /// `acked`, `retried`, `dead_lettered`, `requeued` (metric label values).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acked => "acked",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Requeued => "requeued",
        }
    }
}

/// Receives every delivery's outcome, e.g. to count it in Prometheus metrics.
pub trait Observer: Send + Sync + 'static {
    /// `kind` is the envelope kind, or `undecodable` for a body that is not an envelope;
    /// `elapsed` runs from the delivery to its settlement.
    fn observe(&self, kind: &str, outcome: Outcome, elapsed: Duration);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn observe(&self, _kind: &str, _outcome: Outcome, _elapsed: Duration) {}
}

/// How a consumer connects and what it consumes.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The broker.
    pub url: BrokerUrl,
    /// The topology (declared on every (re)connect).
    pub topology: Topology,
    /// The work queue to consume.
    pub queue: WorkQueue,
    /// Name shown in the broker's management UI.
    pub connection_name: String,
    /// Unacked deliveries the broker may have out to this consumer, which is also the number of
    /// messages handled concurrently.
    pub prefetch: u16,
    /// Deliveries of one message (first one included) before a transient failure dead-letters.
    pub max_attempts: u32,
    /// How long to wait for the broker to confirm a retry or dead-letter copy.
    pub confirm_timeout: Duration,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
}

impl ConsumerConfig {
    /// Defaults: prefetch 16, 5 attempts (retries after 1 s, 10 s, 60 s, 600 s), 5 s confirm
    /// timeout, 100 ms…10 s reconnect backoff.
    pub fn new(
        url: BrokerUrl,
        topology: Topology,
        queue: WorkQueue,
        connection_name: impl Into<String>,
    ) -> Self {
        Self {
            url,
            topology,
            queue,
            connection_name: connection_name.into(),
            prefetch: 16,
            max_attempts: 5,
            confirm_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }
}

/// Whether a consumer is currently attached to its queue (for `/readyz`). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ConsumerStatus(Arc<AtomicBool>);

impl ConsumerStatus {
    /// True while connected and consuming.
    pub fn is_consuming(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, consuming: bool) {
        self.0.store(consuming, Ordering::SeqCst);
    }
}

/// The consumer loop of one work queue. Build it, keep [`Consumer::status`] for readiness, then
/// [`Consumer::run`] it until shutdown.
pub struct Consumer<H> {
    shared: Arc<Shared<H>>,
    backoff: Backoff,
}

impl<H> fmt::Debug for Consumer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.shared.names.work)
            .field("prefetch", &self.shared.config.prefetch)
            .finish_non_exhaustive()
    }
}

/// What every delivery task needs.
struct Shared<H> {
    config: ConsumerConfig,
    names: QueueNames,
    handler: H,
    observer: Arc<dyn Observer>,
    status: ConsumerStatus,
    unsettled: Unsettled,
    /// One retry or dead-letter copy in flight at a time: lapin hands a returned message to the
    /// next confirm of the channel, which with several copies in flight (and the broker
    /// confirming several at once) may be another copy's. Copies are rare; exactness matters.
    copying: tokio::sync::Mutex<()>,
}

impl<H: Handler> Consumer<H> {
    /// A consumer of `config.queue` calling `handler`.
    pub fn new(config: ConsumerConfig, handler: H) -> Self {
        Self::with_observer(config, handler, Arc::new(NoObserver))
    }

    /// Same, reporting every outcome to `observer`.
    pub fn with_observer(config: ConsumerConfig, handler: H, observer: Arc<dyn Observer>) -> Self {
        let names = config.topology.queue(config.queue).clone();
        let backoff = config.backoff.clone();
        Self {
            shared: Arc::new(Shared {
                config,
                names,
                handler,
                observer,
                status: ConsumerStatus::default(),
                unsettled: Unsettled::default(),
                copying: tokio::sync::Mutex::new(()),
            }),
            backoff,
        }
    }

    /// The readiness handle.
    pub fn status(&self) -> ConsumerStatus {
        self.shared.status.clone()
    }

    /// Consumes until `shutdown` fires, reconnecting with backoff whenever the broker goes away.
    /// Returns once the in-flight messages are settled and the connection is closed.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let queue = self.shared.names.work.clone();
        // One backoff and one failure log across connection attempts and sessions: a connection
        // the broker accepts is not yet a working one (declaring may be refused), so only a
        // session that ran for a while starts either over.
        let mut failures = Failures::default();
        loop {
            let connection = connect_until(
                &self.shared.config.url,
                &self.shared.config.connection_name,
                &mut self.backoff,
                &shutdown,
                &mut failures,
            )
            .await;
            let Some(connection) = connection else { break };
            let started = Instant::now();
            let end = self.session(&connection, &shutdown, &mut failures).await;
            close_connection(&connection).await;
            if started.elapsed() > HEALTHY_AFTER {
                self.backoff.reset();
            }
            let delay = match end {
                Ok(SessionEnd::Shutdown) => break,
                Ok(SessionEnd::Lost) => {
                    tracing::warn!(%queue, "consumer lost the broker; reconnecting");
                    self.backoff.next_delay()
                }
                Err(error) => {
                    if error.is_refused() {
                        self.backoff.at_least(REFUSED_MIN_DELAY);
                    }
                    let delay = self.backoff.next_delay();
                    failures.failed(
                        &format!("consumer session on {queue} failed"),
                        &error,
                        delay,
                    );
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.shared.status.set(false);
        tracing::info!(%queue, "consumer stopped");
    }

    /// One connection's worth of consuming.
    async fn session(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
        failures: &mut Failures,
    ) -> Result<SessionEnd, SessionError> {
        let lost = ConnectionLost::watch(connection);
        let channels = self.open_channels(connection).await?;
        let tag = format!(
            "{}-{}",
            self.shared.config.connection_name,
            uuid::Uuid::now_v7()
        );
        let mut deliveries = channels
            .consume
            .basic_consume(
                self.shared.names.work.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.shared.status.set(true);
        failures.recovered("consumer connected");
        tracing::info!(
            queue = %self.shared.names.work,
            prefetch = self.shared.config.prefetch,
            "consuming"
        );
        let limit = usize::from(self.shared.config.prefetch.max(1));
        let mut tasks = JoinSet::new();
        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break SessionEnd::Shutdown,
                () = lost.wait() => break SessionEnd::Lost,
                Some(joined) = tasks.join_next() => log_task_failure(joined),
                next = deliveries.next(), if tasks.len() < limit => match next {
                    Some(Ok(delivery)) => {
                        let shared = Arc::clone(&self.shared);
                        let publish = channels.publish.clone();
                        tasks.spawn(process(shared, publish, delivery, shutdown.clone()));
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "delivery stream failed");
                        break SessionEnd::Lost;
                    }
                    None => {
                        tracing::warn!(queue = %self.shared.names.work, "the broker cancelled the consumer");
                        break SessionEnd::Lost;
                    }
                },
            }
        };
        self.shared.status.set(false);
        if matches!(end, SessionEnd::Shutdown) {
            // Stop new deliveries; those already buffered go back to the queue on close.
            if let Err(error) = channels
                .consume
                .basic_cancel(tag.into(), BasicCancelOptions::default())
                .await
            {
                tracing::debug!(%error, "basic.cancel failed");
            }
        }
        // Finish and settle what is in flight (after a lost connection the acks fail and the
        // broker redelivers; the inbox absorbs the duplicates).
        while let Some(joined) = tasks.join_next().await {
            log_task_failure(joined);
        }
        for channel in [&channels.consume, &channels.publish] {
            if channel.status().connected() {
                drop(channel.close(200, "consumer done".into()).await);
            }
        }
        Ok(end)
    }

    async fn open_channels(&self, connection: &Connection) -> Result<Channels, SessionError> {
        let consume = connection.create_channel().await?;
        self.shared.config.topology.declare(&consume).await?;
        consume
            .basic_qos(
                self.shared.config.prefetch.max(1),
                BasicQosOptions::default(),
            )
            .await?;
        let publish = connection.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Channels { consume, publish })
    }
}

struct Channels {
    /// Deliveries and their acks.
    consume: Channel,
    /// Confirm mode: retry and dead-letter copies.
    publish: Channel,
}

enum SessionEnd {
    Shutdown,
    Lost,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

impl SessionError {
    /// The broker refused a declaration or the queue (ACCESS_REFUSED).
    fn is_refused(&self) -> bool {
        match self {
            Self::Amqp(source) | Self::Topology(TopologyError::Declare { source, .. }) => {
                is_access_refused(source)
            }
            Self::Topology(TopologyError::InvalidNamespace(_)) => false,
        }
    }
}

fn log_task_failure(joined: Result<(), tokio::task::JoinError>) {
    // Handler panics are caught inside the task; this only sees a panic in the settling code
    // itself, or a task aborted at runtime shutdown.
    if let Err(error) = joined {
        tracing::error!(%error, "a delivery task failed");
    }
}

async fn close_connection(connection: &Connection) {
    if connection.status().connected()
        && let Err(error) = connection.close(200, "consumer closing".into()).await
    {
        tracing::debug!(%error, "closing the consumer connection failed");
    }
}

/// What to do with a delivery once the handler (or the decoder) is done with it.
#[derive(Debug)]
enum Disposition {
    Ack,
    Retry {
        attempt: u32,
        window: Window,
        reason: String,
    },
    /// Back after a retry tier, with the same attempt number.
    Wait {
        attempt: u32,
        retry_before: Duration,
        reason: String,
    },
    Dead {
        reason: String,
    },
}

/// Decodes, handles and settles one delivery.
async fn process<H: Handler>(
    shared: Arc<Shared<H>>,
    publish: Channel,
    delivery: Delivery,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    // Deliveries whose retry/dead copy could not be published count too (they came back with
    // the same header).
    let key = unsettled_key(&delivery);
    let attempt = attempt_of(&delivery).saturating_add(shared.unsettled.failures(&key));
    let (kind, disposition) = match Envelope::from_json(&delivery.data) {
        Err(error) => {
            tracing::error!(
                queue = %shared.names.work,
                message_id = ?delivery.properties.message_id().as_ref().map(ShortString::as_str),
                %error,
                "undecodable message; dead-lettering it"
            );
            (
                "undecodable".to_owned(),
                Disposition::Dead {
                    reason: format!("undecodable envelope: {error}"),
                },
            )
        }
        Ok(envelope) => {
            let message = Message {
                envelope,
                attempt,
                redelivered: delivery.redelivered,
                correlation_id: delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.as_str().to_owned()),
            };
            let kind = message.envelope.kind.clone();
            let disposition = handle(&shared, &message).await;
            (kind, disposition)
        }
    };
    let copy = Settling {
        channel: &publish,
        attempt,
        key: &key,
        shutdown: &shutdown,
    };
    let outcome = settle(&shared, copy, &delivery, disposition).await;
    shared.observer.observe(&kind, outcome, started.elapsed());
}

/// Runs the handler in the message's span, panics caught, and decides the disposition.
async fn handle<H: Handler>(shared: &Shared<H>, message: &Message) -> Disposition {
    let span = tracing::info_span!(
        "message",
        queue = %shared.names.work,
        kind = %message.envelope.kind,
        message_id = %message.envelope.id,
        correlation_id = message.correlation_id.as_deref().unwrap_or(""),
        attempt = message.attempt,
    );
    let result = AssertUnwindSafe(shared.handler.handle(message))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match result {
        Ok(Ok(())) => Disposition::Ack,
        Ok(Err(HandlerError::Permanent { reason })) => {
            tracing::error!(%reason, "permanent failure; dead-lettering the message");
            Disposition::Dead { reason }
        }
        Ok(Err(HandlerError::Transient {
            reason,
            retry_after,
            retry_before,
        })) => transient(
            shared.config.max_attempts,
            message.attempt,
            reason,
            Window {
                after: retry_after,
                before: retry_before,
            },
        ),
        Ok(Err(HandlerError::Waiting {
            reason,
            retry_before,
        })) => {
            tracing::info!(%reason, "waiting for another holder; will retry, same attempt");
            Disposition::Wait {
                attempt: message.attempt,
                retry_before,
                reason,
            }
        }
        Err(panic) => {
            let reason = format!("handler panicked: {}", panic_message(panic.as_ref()));
            tracing::error!(%reason, "handler panicked; dead-lettering the message");
            Disposition::Dead { reason }
        }
    }
}

/// When a failed message wants its retry, as its handler said.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    after: Option<Duration>,
    before: Option<Duration>,
}

fn transient(max_attempts: u32, attempt: u32, reason: String, window: Window) -> Disposition {
    if attempt >= max_attempts {
        tracing::error!(
            %reason,
            attempts = attempt,
            "transient failure, no attempts left; dead-lettering the message"
        );
        return Disposition::Dead {
            reason: format!("gave up after {attempt} attempts: {reason}"),
        };
    }
    tracing::warn!(%reason, "transient failure; will retry");
    Disposition::Retry {
        attempt,
        window,
        reason,
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Acks, or republishes (retry / dead letter) and then acks; nacks back to the queue if the copy
/// cannot be published.
async fn settle<H>(
    shared: &Shared<H>,
    copy: Settling<'_>,
    delivery: &Delivery,
    disposition: Disposition,
) -> Outcome {
    let (outcome, copy_to) = match disposition {
        Disposition::Ack => (Outcome::Acked, None),
        Disposition::Retry {
            attempt,
            window,
            reason,
        } => {
            let tier = retry_tier(&shared.names, attempt, window);
            let headers = copy_headers(delivery, &shared.names, attempt + 1, &reason);
            (Outcome::Retried, Some((tier, headers)))
        }
        Disposition::Wait {
            attempt,
            retry_before,
            reason,
        } => {
            let tier = longest_tier_within(&shared.names, retry_before);
            let headers = copy_headers(delivery, &shared.names, attempt, &reason);
            (Outcome::Retried, Some((tier, headers)))
        }
        Disposition::Dead { reason } => {
            let headers = copy_headers(delivery, &shared.names, copy.attempt, &reason);
            (
                Outcome::DeadLettered,
                Some((shared.names.dead.clone(), headers)),
            )
        }
    };
    if let Some((queue, headers)) = copy_to {
        let timeout = shared.config.confirm_timeout;
        let published = {
            let _one_at_a_time = shared.copying.lock().await;
            republish(copy.channel, &queue, delivery, headers, timeout).await
        };
        if let Err(error) = published {
            return requeue_later(shared, copy, delivery, &queue, &error).await;
        }
    }
    shared.unsettled.forget(copy.key);
    match delivery.acker.ack(BasicAckOptions::default()).await {
        Ok(true) => outcome,
        // lapin answers false when the delivery's channel is already closed or failed.
        Ok(false) => {
            tracing::warn!("ack failed: the channel is gone; the broker will redeliver");
            Outcome::Requeued
        }
        Err(error) => {
            tracing::warn!(%error, "ack failed; the broker will redeliver");
            Outcome::Requeued
        }
    }
}

/// What settling a delivery needs besides the delivery itself.
#[derive(Clone, Copy)]
struct Settling<'a> {
    /// The confirm-mode channel for retry and dead-letter copies.
    channel: &'a Channel,
    /// The attempt the handler saw (header plus copies that failed).
    attempt: u32,
    /// The delivery's key in [`Unsettled`].
    key: &'a str,
    /// Cuts the wait before the nack short.
    shutdown: &'a CancellationToken,
}

/// A copy could not be published: count it as an attempt, wait (longer each time), then return
/// the message to its queue. Without the wait the broker would hand it straight back and the
/// handler (WeCom calls included) would run again every few milliseconds; without the count it
/// would never reach its last attempt.
async fn requeue_later<H>(
    shared: &Shared<H>,
    copy: Settling<'_>,
    delivery: &Delivery,
    queue: &str,
    error: &PublishError,
) -> Outcome {
    let failures = shared.unsettled.failed(copy.key);
    let delay = requeue_delay(failures);
    tracing::warn!(
        %queue,
        %error,
        attempt = copy.attempt,
        copies_failed = failures,
        requeue_in_ms = delay.as_millis(),
        "cannot republish the message; it counts as an attempt and returns to its queue after a pause"
    );
    tokio::select! {
        () = copy.shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    match delivery.acker.nack(requeue).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("nack failed: the channel is gone; the broker will redeliver"),
        Err(error) => tracing::warn!(%error, "nack failed; the broker will redeliver"),
    }
    Outcome::Requeued
}

/// The pause before returning a message whose copy failed for the `failures`-th time: 500 ms,
/// doubling, at most 30 s.
fn requeue_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    (Duration::from_millis(500) * 2_u32.pow(doublings)).min(Duration::from_secs(30))
}

/// How long a count of failed copies is kept for a message that does not come back (another
/// consumer took it).
const UNSETTLED_TTL: Duration = Duration::from_secs(3600);

/// Per message, how many of its retry/dead-letter copies could not be published. The broker
/// redelivers such a message with its old attempt header; this count is added to it.
#[derive(Default)]
struct Unsettled(std::sync::Mutex<HashMap<String, (u32, Instant)>>);

impl Unsettled {
    fn failures(&self, key: &str) -> u32 {
        self.0
            .lock()
            .ok()
            .and_then(|map| map.get(key).map(|(n, _)| *n))
            .unwrap_or(0)
    }

    /// Counts one more failed copy; returns the count.
    fn failed(&self, key: &str) -> u32 {
        let Ok(mut map) = self.0.lock() else { return 1 };
        let now = Instant::now();
        map.retain(|_, (_, at)| now.duration_since(*at) < UNSETTLED_TTL);
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
        entry.0
    }

    /// The message is settled: its copy went out, or it was acked.
    fn forget(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }
}

/// The delivery's `message_id`, or a hash of its body when it has none.
fn unsettled_key(delivery: &Delivery) -> String {
    delivery.properties.message_id().as_ref().map_or_else(
        || {
            crate::envelope::DedupeKey::of_parts(&[&String::from_utf8_lossy(&delivery.data)])
                .to_string()
        },
        |id| id.as_str().to_owned(),
    )
}

/// The retry queue for the retry after delivery `attempt` (1-based): the tier of that attempt,
/// or the shortest tier at least `window.after` long, whichever is longer; then, if that is
/// past `window.before`, the longest tier within it (the shortest tier if none is).
fn retry_tier(names: &QueueNames, attempt: u32, window: Window) -> String {
    let by_attempt =
        names.retry_for_attempt(usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX));
    let chosen = match window.after {
        Some(wanted) if wanted > by_attempt.delay => names
            .retries
            .iter()
            .find(|tier| tier.delay >= wanted)
            .or(names.retries.last())
            .unwrap_or(by_attempt),
        _ => by_attempt,
    };
    let chosen = match window.before {
        Some(latest) if chosen.delay > latest => names
            .retries
            .iter()
            .rev()
            .find(|tier| tier.delay <= latest)
            .or(names.retries.first())
            .unwrap_or(chosen),
        _ => chosen,
    };
    chosen.name.clone()
}

/// The longest retry tier no longer than `limit` (the shortest when none is that short).
fn longest_tier_within(names: &QueueNames, limit: Duration) -> String {
    let window = Window {
        after: None,
        before: Some(limit),
    };
    retry_tier(names, u32::MAX, window)
}

/// The delivery's attempt number: the [`ATTEMPT_HEADER`], 1 when absent or unreadable.
fn attempt_of(delivery: &Delivery) -> u32 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER))
        .and_then(integer)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

fn integer(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

/// The original headers plus ours: attempt, reason, original routing key, work queue.
fn copy_headers(delivery: &Delivery, names: &QueueNames, attempt: u32, reason: &str) -> FieldTable {
    let mut headers: BTreeMap<ShortString, AMQPValue> = delivery
        .properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    headers.insert(
        ATTEMPT_HEADER.into(),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    headers.insert(ERROR_HEADER.into(), long_string(&truncate(reason)));
    headers.insert(QUEUE_HEADER.into(), long_string(&names.work));
    if !headers.contains_key(ROUTING_KEY_HEADER) {
        headers.insert(
            ROUTING_KEY_HEADER.into(),
            long_string(delivery.routing_key.as_str()),
        );
    }
    FieldTable::from(headers)
}

fn truncate(reason: &str) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

/// Publishes a copy of `delivery` (same body and properties, new headers) to `queue` through the
/// default exchange and waits for the broker's confirm.
async fn republish(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    headers: FieldTable,
    timeout: Duration,
) -> Result<(), PublishError> {
    let properties: BasicProperties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    // Mandatory (as every confirmed publish): a copy to a missing queue comes back instead of
    // being confirmed into nowhere (and the original acked: lost).
    publish_confirmed(channel, "", queue, &delivery.data, properties, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Namespace;

    fn names() -> QueueNames {
        Topology::new(Namespace::new("t.").unwrap())
            .queue(WorkQueue::Auth)
            .clone()
    }

    #[test]
    fn retry_tier_follows_the_attempt_then_stays_at_the_longest() {
        let names = names();
        let none = Window::default();
        assert_eq!(retry_tier(&names, 1, none), "t.wecom.auth.retry.1s");
        assert_eq!(retry_tier(&names, 2, none), "t.wecom.auth.retry.10s");
        assert_eq!(retry_tier(&names, 4, none), "t.wecom.auth.retry.600s");
        assert_eq!(retry_tier(&names, 40, none), "t.wecom.auth.retry.600s");
    }

    #[test]
    fn retry_after_picks_the_shortest_tier_long_enough() {
        let names = names();
        let wait = |secs| Window {
            after: Some(Duration::from_secs(secs)),
            before: None,
        };
        assert_eq!(retry_tier(&names, 1, wait(5)), "t.wecom.auth.retry.10s");
        assert_eq!(retry_tier(&names, 1, wait(60)), "t.wecom.auth.retry.60s");
        assert_eq!(retry_tier(&names, 1, wait(3600)), "t.wecom.auth.retry.600s");
        // A hint shorter than the attempt's own tier does not shorten the backoff.
        assert_eq!(retry_tier(&names, 3, wait(1)), "t.wecom.auth.retry.60s");
    }

    #[test]
    fn retry_before_caps_the_tier_within_the_deadline() {
        let names = names();
        let by = |secs| Window {
            after: None,
            before: Some(Duration::from_secs(secs)),
        };
        // The 4th attempt's own tier (600 s) would outlive an AuthCode with 5 minutes left.
        assert_eq!(retry_tier(&names, 4, by(300)), "t.wecom.auth.retry.60s");
        assert_eq!(retry_tier(&names, 2, by(300)), "t.wecom.auth.retry.10s");
        assert_eq!(retry_tier(&names, 3, by(30)), "t.wecom.auth.retry.10s");
        // Nothing fits: the shortest tier.
        assert_eq!(retry_tier(&names, 4, by(0)), "t.wecom.auth.retry.1s");
        let both = Window {
            after: Some(Duration::from_secs(60)),
            before: Some(Duration::from_secs(20)),
        };
        assert_eq!(retry_tier(&names, 1, both), "t.wecom.auth.retry.10s");
    }

    #[test]
    fn a_waiting_message_comes_back_within_the_holders_lease() {
        let names = names();
        let within = |secs| longest_tier_within(&names, Duration::from_secs(secs));
        assert_eq!(within(115), "t.wecom.auth.retry.60s");
        assert_eq!(within(30), "t.wecom.auth.retry.10s");
        assert_eq!(within(0), "t.wecom.auth.retry.1s");
        assert_eq!(within(5_000), "t.wecom.auth.retry.600s");
    }

    #[test]
    fn transient_failures_dead_letter_on_the_last_attempt() {
        assert!(matches!(
            transient(3, 2, "busy".into(), Window::default()),
            Disposition::Retry { attempt: 2, .. }
        ));
        match transient(3, 3, "busy".into(), Window::default()) {
            Disposition::Dead { reason } => assert_eq!(reason, "gave up after 3 attempts: busy"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_copy_waits_longer_each_time() {
        let delays: Vec<u64> = (1..=9)
            .map(|n| u64::try_from(requeue_delay(n).as_millis()).unwrap())
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn failed_copies_are_counted_per_message_until_settled() {
        let unsettled = Unsettled::default();
        assert_eq!(unsettled.failures("m1"), 0);
        assert_eq!(unsettled.failed("m1"), 1);
        assert_eq!(unsettled.failed("m1"), 2);
        assert_eq!(unsettled.failed("m2"), 1);
        assert_eq!(unsettled.failures("m1"), 2);
        unsettled.forget("m1");
        assert_eq!(unsettled.failures("m1"), 0);
        assert_eq!(unsettled.failures("m2"), 1);
    }

    #[test]
    fn integers_of_every_width_are_read_as_attempts() {
        assert_eq!(integer(&AMQPValue::LongLongInt(3)), Some(3));
        assert_eq!(integer(&AMQPValue::ShortShortUInt(2)), Some(2));
        assert_eq!(integer(&AMQPValue::LongString("3".into())), None);
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "失".repeat(MAX_REASON_LEN);
        let cut = truncate(&reason);
        assert!(cut.len() <= MAX_REASON_LEN + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn panic_payloads_become_reasons() {
        let s: Box<dyn Any + Send> = Box::new("boom");
        assert_eq!(panic_message(s.as_ref()), "boom");
        let s: Box<dyn Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_message(s.as_ref()), "bang");
        let s: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(s.as_ref()), "non-string panic payload");
    }
}
