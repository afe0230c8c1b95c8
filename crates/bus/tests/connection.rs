//! Connecting to the real broker with credentials it refuses: services back off exponentially,
//! say once what was refused, and stay not ready. A [`FaultProxy`] in front of the broker counts
//! the connection attempts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bus::consumer::{Consumer, ConsumerConfig, Handler, HandlerError, Message};
use bus::testkit::{FaultProxy, LogRecorder, amqp_url, test_namespace};
use bus::{BrokerUrl, Publisher, PublisherConfig, Topology, WorkQueue};
use tokio_util::sync::CancellationToken;
use tracing::Level;

/// How long each test watches the refused service.
const WATCH: Duration = Duration::from_secs(6);
/// Attempts in [`WATCH`]: a refused login waits at least 1 s, doubling (±25 %), so attempts
/// come at 0, ~1, ~3 and perhaps ~5.25 s at the earliest. The plain 100 ms backoff made 6–7
/// (0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s); at full speed it would be dozens.
const MOST_ATTEMPTS: u64 = 4;

fn broker_addr() -> std::net::SocketAddr {
    let url = amqp_url();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .unwrap()
        .next()
        .unwrap()
}

/// The broker's URL through `proxy`, with a password it refuses.
fn wrong_password_url(proxy: &FaultProxy) -> BrokerUrl {
    let url = proxy.amqp_url(&amqp_url());
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.rsplit_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    BrokerUrl::parse(&format!("{scheme}://{user}:not-the-password@{host}")).unwrap()
}

struct Never;

impl Handler for Never {
    async fn handle(&self, _: &Message) -> Result<(), HandlerError> {
        panic!("nothing can be consumed with a refused login")
    }
}

/// Asserts the refusal was said once, loudly, naming what was refused and for whom (without the
/// password), and repeated only quietly.
fn assert_said_once(recorder: &LogRecorder, attempts: u64) {
    let loud = recorder.at_least(Level::WARN, "bus");
    assert_eq!(loud.len(), 1, "{loud:#?}");
    let line = &loud[0];
    println!("said once: {line}");
    assert!(line.contains("ACCESS_REFUSED"), "{line}");
    assert!(line.contains("guest:***@"), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
    let quiet = recorder.at(Level::DEBUG, "bus");
    assert!(
        quiet.len() as u64 >= attempts.saturating_sub(2),
        "{attempts} attempts, repeats: {quiet:#?}"
    );
    assert!(quiet.iter().all(|l| !l.contains("not-the-password")));
}

#[tokio::test]
async fn a_consumer_with_a_refused_password_backs_off_says_so_once_and_is_not_ready() {
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let proxy = FaultProxy::start(broker_addr()).await.unwrap();
    let topology = Topology::new(test_namespace());
    let config = ConsumerConfig::new(
        wrong_password_url(&proxy),
        topology,
        WorkQueue::Auth,
        "refused-consumer",
    );
    let consumer = Consumer::new(config, Never);
    let status = consumer.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(shutdown.clone()));

    let until = tokio::time::Instant::now() + WATCH;
    while tokio::time::Instant::now() < until {
        assert!(!status.is_consuming());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts = proxy.accepted();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    println!("consumer: {attempts} connection attempts in {WATCH:?}");
    assert!(
        (2..=MOST_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
    assert_said_once(&recorder, attempts);
}

#[tokio::test]
async fn a_publisher_with_a_refused_password_backs_off_says_so_once_and_is_not_ready() {
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let proxy = FaultProxy::start(broker_addr()).await.unwrap();
    let topology = Topology::new(test_namespace());
    let config = PublisherConfig::new(wrong_password_url(&proxy), topology, "refused-publisher");
    let publisher = Publisher::start(config).unwrap();

    let until = tokio::time::Instant::now() + WATCH;
    while tokio::time::Instant::now() < until {
        assert!(!publisher.is_ready());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts = proxy.accepted();
    publisher.close().await;
    println!("publisher: {attempts} connection attempts in {WATCH:?}");
    assert!(
        (2..=MOST_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
    assert_said_once(&recorder, attempts);
}
