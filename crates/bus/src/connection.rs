//! Getting (and keeping) a broker connection: the pieces the publisher and the consumers share.
//!
//! - [`BrokerUrl`]: `AMQP_URL`, validated once, with the password kept out of every log line.
//! - [`connect`]: one attempt, bounded in time, with lapin running on the current Tokio runtime.
//! - [`Backoff`]: exponential delays with jitter between attempts, so a fleet of replicas does not
//!   reconnect in lockstep when the broker comes back.
//! - [`connect_with_backoff`]: retry [`connect`] until it works or shutdown is requested.
//! - [`ConnectionLost`]: a sticky signal that fires once the connection or any of its channels
//!   fails, which is when a service must drop its channels and reconnect.
//!
//! A broker that refuses the login (ACCESS_REFUSED: wrong user, password or vhost in `AMQP_URL`)
//! is a configuration problem that retrying at 100 ms cannot heal: those retries start at
//! [`REFUSED_MIN_DELAY`] and double from there. A run of identical failures is said once, at
//! `warn`, naming what was refused for whom at which (redacted) URL; the repeats go to `debug`
//! until the service is connected again, so a misconfigured replica does not flood its log.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties, ErrorKind, Event};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `AMQP_URL` does not parse.
    #[error("invalid AMQP URL: {0}")]
    InvalidUrl(String),
    /// The broker refused or dropped the connection, or the handshake failed.
    #[error("cannot connect to {url}: {source}")]
    Amqp {
        /// The URL, password redacted.
        url: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused the login or the vhost (ACCESS_REFUSED): the credentials or vhost in
    /// `AMQP_URL` are wrong, or the user lacks access. Retrying soon will not help.
    #[error(
        "the broker at {url} refused user {user:?}: {reason} (check the user, password and vhost \
         in AMQP_URL)"
    )]
    Refused {
        /// The URL, password redacted.
        url: String,
        /// The user it refused.
        user: String,
        /// The broker's reason (starts with `ACCESS_REFUSED`).
        reason: String,
    },
    /// The TCP connect and AMQP handshake took longer than allowed.
    #[error("connecting to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL, password redacted.
        url: String,
        /// The limit.
        timeout: Duration,
    },
}

impl ConnectError {
    /// Whether the broker refused the login or the vhost (ACCESS_REFUSED).
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

/// Whether `error` is the broker's ACCESS_REFUSED (a refused login or vhost, or a resource the
/// user has no permission for).
pub(crate) fn is_access_refused(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if is_access_refused_kind(e.kind()))
}

fn is_access_refused_kind(kind: &AMQPErrorKind) -> bool {
    *kind == AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
}

/// `AMQP_URL` when unset: the local broker with the guest account (services and tests alike).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A validated AMQP URL. `Debug` and `Display` show it with the password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    raw: String,
    redacted: String,
    user: String,
}

impl BrokerUrl {
    /// Parses an `amqp://` or `amqps://` URL.
    pub fn parse(raw: &str) -> Result<Self, ConnectError> {
        let uri: AMQPUri = raw.parse().map_err(ConnectError::InvalidUrl)?;
        let auth = &uri.authority;
        let scheme = raw.split("://").next().unwrap_or("amqp");
        let redacted = format!(
            "{scheme}://{}:***@{}:{}/{}",
            auth.userinfo.username,
            auth.host,
            auth.port,
            uri.vhost.replace('/', "%2f")
        );
        Ok(Self {
            raw: raw.to_owned(),
            redacted,
            user: auth.userinfo.username.clone(),
        })
    }

    /// The user name the URL logs in with.
    pub fn username(&self) -> &str {
        &self.user
    }

    /// The URL with its password, for the connection call only.
    pub fn expose(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// How long one connection attempt (TCP + AMQP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection attempt, named `connection_name` in the broker's management UI. lapin's
/// background work (its socket readiness and timers) runs on the Tokio runtime this is called
/// from. lapin's own recovery stays off (its default): on a lost connection the services start
/// over with [`connect_with_backoff`], declaring the topology again.
pub async fn connect(url: &BrokerUrl, connection_name: &str) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(connection_name.into());
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url.expose(), properties),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(match error.kind() {
            ErrorKind::ProtocolError(refusal) if is_access_refused_kind(refusal.kind()) => {
                ConnectError::Refused {
                    url: url.to_string(),
                    user: url.username().to_owned(),
                    reason: refusal.get_message().as_str().to_owned(),
                }
            }
            _ => ConnectError::Amqp {
                url: url.to_string(),
                source: error,
            },
        }),
        Err(_) => Err(ConnectError::Timeout {
            url: url.to_string(),
            timeout: CONNECT_TIMEOUT,
        }),
    }
}

/// Exponential backoff with ±25 % jitter: `min`, `2·min`, … capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// Starts at `min`, doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt (jittered), and doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(rand::random::<f64>().mul_add(0.5, 0.75))
    }

    /// Back to `min`, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// Makes the next delay at least `floor` (still capped at `max`); later ones double from
    /// there.
    pub fn at_least(&mut self, floor: Duration) {
        self.next = self.next.max(floor).min(self.max);
    }
}

/// The shortest delay before retrying after the broker refused the login (ACCESS_REFUSED).
pub const REFUSED_MIN_DELAY: Duration = Duration::from_secs(1);

/// A connection (or session) that lasted this long was healthy: the backoff starts over after it.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Says a run of failures once: the first failure, and any that fails differently from the one
/// before, at `warn`; identical repeats at `debug`; and at `info` how many attempts failed once
/// the service is connected again.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    last: Option<String>,
    count: u32,
}

impl Failures {
    /// Logs one failure (`what` says what failed) and the delay before the next attempt.
    pub(crate) fn failed(&mut self, what: &str, error: &dyn fmt::Display, retry_in: Duration) {
        self.count = self.count.saturating_add(1);
        let error = error.to_string();
        let retry_in_ms = retry_in.as_millis();
        if self.last.as_ref() == Some(&error) {
            tracing::debug!(%error, retry_in_ms, attempts = self.count, "{what} (again)");
        } else {
            tracing::warn!(
                %error,
                retry_in_ms,
                "{what}; retrying with backoff (the same failure again is logged at debug)"
            );
            self.last = Some(error);
        }
    }

    /// Ends the run: the service is connected (and working) again.
    pub(crate) fn recovered(&mut self, what: &str) {
        if self.count > 0 {
            tracing::info!(failed_attempts = self.count, "{what} after failed attempts");
        }
        *self = Self::default();
    }
}

/// Retries [`connect`] with `backoff` until it succeeds (`Some`) or `shutdown` fires (`None`),
/// and resets `backoff` on success. The first failure is logged at `warn` with the redacted URL,
/// identical repeats at `debug`; a refused login waits at least [`REFUSED_MIN_DELAY`].
pub async fn connect_with_backoff(
    url: &BrokerUrl,
    connection_name: &str,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut failures = Failures::default();
    let connection = connect_until(url, connection_name, backoff, shutdown, &mut failures).await;
    if connection.is_some() {
        backoff.reset();
        failures.recovered("connected to the broker");
    }
    connection
}

/// [`connect_with_backoff`] without the resets: the caller decides when it is healthy again (a
/// connection the broker accepts is not yet one that works, e.g. when declaring is refused).
pub(crate) async fn connect_until(
    url: &BrokerUrl,
    connection_name: &str,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
    failures: &mut Failures,
) -> Option<Connection> {
    loop {
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return None,
            attempt = connect(url, connection_name) => attempt,
        };
        match attempt {
            Ok(connection) => return Some(connection),
            Err(error) => {
                if error.is_refused() {
                    backoff.at_least(REFUSED_MIN_DELAY);
                }
                let delay = backoff.next_delay();
                failures.failed("broker connection failed", &error, delay);
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Fires (once, and stays fired) when the watched connection, or any channel on it, fails.
#[derive(Debug, Clone, Default)]
pub struct ConnectionLost {
    inner: Arc<LostInner>,
}

#[derive(Debug, Default)]
struct LostInner {
    lost: AtomicBool,
    notify: Notify,
}

impl ConnectionLost {
    /// Watches `connection` and its channels: lapin reports a failed connection and a channel
    /// the broker closed with an error (e.g. after a publish to a missing exchange) as an
    /// [`Event::Error`] of the connection. Must be called from within a Tokio runtime (a task
    /// listens for those events until the connection is gone).
    pub fn watch(connection: &Connection) -> Self {
        let this = Self::default();
        let signal = this.clone();
        let mut events = connection.events_listener();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Event::Error(error) = event {
                    tracing::warn!(%error, "broker connection or channel failed");
                    signal.fire();
                }
            }
        });
        this
    }

    /// Marks the connection lost and wakes every waiter.
    pub fn fire(&self) {
        self.inner.lost.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether it has fired.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.load(Ordering::SeqCst)
    }

    /// Resolves once it has fired (immediately if it already has).
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_lost() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_redacted_everywhere() {
        let url = BrokerUrl::parse("amqp://user:hunter2@broker:5673/%2f").unwrap();
        assert_eq!(url.to_string(), "amqp://user:***@broker:5673/%2f");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(url.expose().contains("hunter2"));
        assert!(BrokerUrl::parse("http://x").is_err());
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<Duration> = (0..5).map(|_| backoff.next_delay()).collect();
        for (delay, base) in delays.iter().zip([100u64, 200, 400, 400, 400]) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base.mul_f64(0.75) && *delay <= base.mul_f64(1.25),
                "{delay:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(125));
    }

    #[test]
    fn at_least_raises_the_next_delay_within_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        backoff.at_least(Duration::from_secs(1));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(750), "{first:?}");
        let second = backoff.next_delay();
        assert!(second >= Duration::from_millis(1500), "{second:?}");
        let mut capped = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        capped.at_least(Duration::from_secs(1));
        assert!(capped.next_delay() <= Duration::from_millis(25));
    }

    #[test]
    fn the_url_knows_its_user() {
        let url = BrokerUrl::parse("amqp://daikai:pw@broker/%2f").unwrap();
        assert_eq!(url.username(), "daikai");
    }

    #[tokio::test]
    async fn lost_signal_is_sticky() {
        let lost = ConnectionLost::default();
        assert!(!lost.is_lost());
        let waiter = tokio::spawn({
            let lost = lost.clone();
            async move { lost.wait().await }
        });
        tokio::task::yield_now().await;
        lost.fire();
        waiter.await.unwrap();
        lost.wait().await; // already fired: returns at once
        assert!(lost.is_lost());
    }

    #[tokio::test]
    async fn connect_fails_fast_when_nothing_listens() {
        // Port 9 (discard) on localhost: nothing listens there.
        let url = BrokerUrl::parse("amqp://guest:guest@127.0.0.1:9/%2f").unwrap();
        let err = connect(&url, "test").await.unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
        assert!(!err.to_string().contains("guest:guest"), "{err}");
    }
}
