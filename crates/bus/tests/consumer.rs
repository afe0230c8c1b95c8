#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The consumer loop against the real RabbitMQ: ack only after the handler returned, retries with
//! backoff, dead letters with their reason, panic isolation, duplicates, reconnection and
//! graceful shutdown. Each test owns a namespace (`t<uuid>.`), so they run in parallel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::consumer::{
    ATTEMPT_HEADER, Consumer, ConsumerConfig, ERROR_HEADER, Handler, HandlerError, Message,
    QUEUE_HEADER, ROUTING_KEY_HEADER,
};
use bus::{
    BrokerUrl, CallbackOrigin, Envelope, Namespace, Publisher, PublisherConfig, Source, Topology,
    WorkQueue,
};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wecom::event::{Event, SuiteTicket};

const DEADLINE: Duration = Duration::from_secs(30);

fn amqp_url() -> BrokerUrl {
    BrokerUrl::parse(&bus::testkit::amqp_url()).unwrap()
}

/// The broker's address in `url`, for a [`bus::testkit::FaultProxy`] in front of it.
fn broker_addr(url: &str) -> std::net::SocketAddr {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .unwrap()
        .next()
        .unwrap()
}

/// What a test handler does with a delivery.
#[derive(Clone)]
enum Behaviour {
    Ok,
    Transient,
    Permanent(&'static str),
    Panic,
    /// Waits for a permit, then succeeds.
    Gate(Arc<Semaphore>),
}

type Script = dyn Fn(&Message) -> Behaviour + Send + Sync;

/// Records every call and does what the script says; `effects` is an inbox-guarded effect
/// counter (the in-memory stand-in for "inbox insert + effect in one transaction").
struct TestHandler {
    script: Box<Script>,
    calls: Arc<Mutex<Vec<(String, u32)>>>,
    inbox: Arc<Mutex<HashSet<String>>>,
    effects: Arc<Mutex<u32>>,
}

impl Handler for TestHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let ticket = ticket_of(message);
        self.calls.lock().unwrap().push((ticket, message.attempt));
        match (self.script)(message) {
            Behaviour::Ok => {}
            Behaviour::Transient => return Err(HandlerError::transient("database unavailable")),
            Behaviour::Permanent(reason) => return Err(HandlerError::permanent(reason)),
            Behaviour::Panic => panic!("boom"),
            Behaviour::Gate(gate) => gate.acquire().await.unwrap().forget(),
        }
        let first = self
            .inbox
            .lock()
            .unwrap()
            .insert(message.envelope.dedupe_key.as_str().to_owned());
        if first {
            *self.effects.lock().unwrap() += 1;
        }
        Ok(())
    }
}

fn ticket_of(message: &Message) -> String {
    match message.envelope.wecom_event() {
        Some(Event::SuiteTicket(t)) => t.suite_ticket.expose().to_owned(),
        _ => String::new(),
    }
}

/// One test's broker world: a namespace, a publisher, an admin channel.
struct World {
    url: BrokerUrl,
    topology: Topology,
    publisher: Publisher,
    admin: Channel,
    admin_conn: Connection,
}

impl World {
    async fn new() -> Self {
        let url = amqp_url();
        let ns = Namespace::new(&format!("t{}.", uuid::Uuid::new_v4().simple())).unwrap();
        let topology = Topology::new(ns);
        let conn = bus::connect(&url, "consumer-test-admin").await.unwrap();
        let admin = conn.create_channel().await.unwrap();
        topology.declare(&admin).await.unwrap();
        let publisher = Publisher::start(PublisherConfig::new(
            url.clone(),
            topology.clone(),
            "consumer-test",
        ))
        .unwrap();
        assert!(publisher.wait_ready(DEADLINE).await);
        Self {
            url,
            topology,
            publisher,
            admin,
            admin_conn: conn,
        }
    }

    fn config(&self) -> ConsumerConfig {
        let mut config = ConsumerConfig::new(
            self.url.clone(),
            self.topology.clone(),
            WorkQueue::Auth,
            "consumer-test",
        );
        config.prefetch = 4;
        config
    }

    async fn publish_ticket(&self, ticket: &str) -> Envelope {
        let event = Event::SuiteTicket(SuiteTicket {
            suite_id: "dk1".parse().unwrap(),
            suite_ticket: ticket.parse().unwrap(),
            timestamp: 1_700_000_000,
        });
        let xml = event.to_xml();
        let suite = "dk1".parse().unwrap();
        let origin = CallbackOrigin {
            source: Source::Suite,
            suite_id: &suite,
            corp_id: None,
            receive_id: "dk1",
        };
        let envelope = Envelope::from_callback(origin, xml, event);
        self.publisher
            .publish(&envelope, &format!("req-{ticket}"))
            .await
            .unwrap();
        envelope
    }

    async fn ready_count(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.admin
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    fn work(&self) -> String {
        self.topology.queue(WorkQueue::Auth).work.clone()
    }

    fn dead(&self) -> String {
        self.topology.queue(WorkQueue::Auth).dead.clone()
    }

    /// Polls the dead queue until a message arrives; returns its headers and body.
    async fn next_dead(&self) -> (FieldTable, Vec<u8>) {
        let dead = self.dead();
        let got = wait_for(|| async {
            self.admin
                .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
        })
        .await;
        let headers = got
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        (headers, got.delivery.data)
    }

    async fn close(self) {
        self.publisher.close().await;
        self.topology.delete(&self.admin).await.unwrap();
    }
}

fn test_handler(
    script: impl Fn(&Message) -> Behaviour + Send + Sync + 'static,
) -> (TestHandler, Probe) {
    let probe = Probe::default();
    let handler = TestHandler {
        script: Box::new(script),
        calls: probe.calls.clone(),
        inbox: Arc::default(),
        effects: probe.effects.clone(),
    };
    (handler, probe)
}

#[derive(Default, Clone)]
struct Probe {
    calls: Arc<Mutex<Vec<(String, u32)>>>,
    effects: Arc<Mutex<u32>>,
}

impl Probe {
    fn calls(&self) -> Vec<(String, u32)> {
        self.calls.lock().unwrap().clone()
    }

    fn effects(&self) -> u32 {
        *self.effects.lock().unwrap()
    }
}

/// Polls `probe` until it returns `Some`, failing the test after [`DEADLINE`].
async fn wait_for<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    wait_for(|| {
        let met = condition();
        async move { met.then_some(()) }
    })
    .await;
}

fn header_str(headers: &FieldTable, name: &str) -> String {
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {name}: {other:?}"),
    }
}

fn spawn(consumer: Consumer<TestHandler>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    (shutdown, task)
}

/// Spawns the consumer and waits until it consumes (its topology declared).
async fn spawn_consuming(
    consumer: Consumer<TestHandler>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let status = consumer.status();
    let spawned = spawn(consumer);
    wait_until(|| status.is_consuming()).await;
    spawned
}

async fn stop(shutdown: CancellationToken, task: tokio::task::JoinHandle<()>) {
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
}

#[tokio::test]
async fn acks_only_after_the_handler_returned() {
    let world = World::new().await;
    let gate = Arc::new(Semaphore::new(0));
    let (handler, probe) = test_handler({
        let gate = gate.clone();
        move |_| Behaviour::Gate(gate.clone())
    });
    let mut config = world.config();
    config.prefetch = 1;
    let (shutdown, task) = spawn(Consumer::new(config, handler));

    world.publish_ticket("a").await;
    world.publish_ticket("b").await;
    wait_until(|| probe.calls().len() == 1).await;
    // With prefetch 1, "b" can only be delivered once "a" is acked: while a's handler has not
    // returned, b is still waiting in the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.ready_count(&world.work()).await, 1);
    assert_eq!(probe.calls().len(), 1);

    gate.add_permits(1);
    wait_until(|| probe.calls().len() == 2).await;
    gate.add_permits(1);
    wait_until(|| probe.effects() == 2).await;
    stop(shutdown, task).await;
    assert_eq!(world.ready_count(&world.work()).await, 0);
    world.close().await;
}

#[tokio::test]
async fn transient_failure_is_retried_then_succeeds() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|m| {
        if m.attempt == 1 {
            Behaviour::Transient
        } else {
            Behaviour::Ok
        }
    });
    let (shutdown, task) = spawn(Consumer::new(world.config(), handler));

    world.publish_ticket("t").await;
    wait_until(|| probe.effects() == 1).await;
    assert_eq!(probe.calls(), [("t".to_owned(), 1), ("t".to_owned(), 2)]);
    stop(shutdown, task).await;
    assert_eq!(world.ready_count(&world.dead()).await, 0);
    world.close().await;
}

#[tokio::test]
async fn permanent_failure_goes_to_the_dead_queue_with_its_reason() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Permanent("unknown suite dk1"));
    let (shutdown, task) = spawn(Consumer::new(world.config(), handler));

    let envelope = world.publish_ticket("p").await;
    let (headers, body) = world.next_dead().await;
    assert_eq!(header_str(&headers, ERROR_HEADER), "unknown suite dk1");
    assert_eq!(
        header_str(&headers, ROUTING_KEY_HEADER),
        "suite.suite_ticket"
    );
    assert_eq!(header_str(&headers, QUEUE_HEADER), world.work());
    assert_eq!(Envelope::from_json(&body).unwrap(), envelope);
    // Dead-lettered at once: one call, no retry.
    assert_eq!(probe.calls(), [("p".to_owned(), 1)]);
    assert_eq!(probe.effects(), 0);
    stop(shutdown, task).await;
    world.close().await;
}

#[tokio::test]
async fn transient_failures_dead_letter_after_the_last_attempt() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Transient);
    let mut config = world.config();
    config.max_attempts = 2;
    let (shutdown, task) = spawn(Consumer::new(config, handler));

    world.publish_ticket("x").await;
    let (headers, _) = world.next_dead().await;
    assert_eq!(
        header_str(&headers, ERROR_HEADER),
        "gave up after 2 attempts: database unavailable"
    );
    assert_eq!(
        headers.inner().get(ATTEMPT_HEADER),
        Some(&AMQPValue::LongLongInt(2))
    );
    assert_eq!(probe.calls(), [("x".to_owned(), 1), ("x".to_owned(), 2)]);
    stop(shutdown, task).await;
    world.close().await;
}

#[tokio::test]
async fn a_panicking_handler_does_not_kill_the_loop() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|m| {
        if ticket_of(m) == "bad" {
            Behaviour::Panic
        } else {
            Behaviour::Ok
        }
    });
    let (shutdown, task) = spawn(Consumer::new(world.config(), handler));

    world.publish_ticket("bad").await;
    let (headers, _) = world.next_dead().await;
    assert_eq!(header_str(&headers, ERROR_HEADER), "handler panicked: boom");

    world.publish_ticket("good").await;
    wait_until(|| probe.effects() == 1).await;
    assert!(!task.is_finished());
    stop(shutdown, task).await;
    world.close().await;
}

#[tokio::test]
async fn an_undecodable_body_is_dead_lettered_without_reaching_the_handler() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Ok);
    let (shutdown, task) = spawn(Consumer::new(world.config(), handler));

    world
        .admin
        .basic_publish(
            "".into(),
            world.work().into(),
            BasicPublishOptions::default(),
            b"{not json",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let (headers, body) = world.next_dead().await;
    assert!(header_str(&headers, ERROR_HEADER).starts_with("undecodable envelope"));
    assert_eq!(body, b"{not json");
    assert!(probe.calls().is_empty());
    stop(shutdown, task).await;
    world.close().await;
}

#[tokio::test]
async fn duplicates_of_one_event_have_one_effect() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Ok);
    let (shutdown, task) = spawn(Consumer::new(world.config(), handler));

    // WeCom retrying one push: three envelopes, three ids, one dedupe key.
    for _ in 0..3 {
        world.publish_ticket("same").await;
    }
    world.publish_ticket("other").await;
    wait_until(|| probe.calls().len() == 4).await;
    assert_eq!(probe.effects(), 2);
    stop(shutdown, task).await;
    world.close().await;
}

#[tokio::test]
async fn shutdown_finishes_and_acks_the_in_flight_message() {
    let world = World::new().await;
    let gate = Arc::new(Semaphore::new(0));
    let (handler, probe) = test_handler({
        let gate = gate.clone();
        move |_| Behaviour::Gate(gate.clone())
    });
    let (shutdown, task) = spawn(Consumer::new(world.config(), handler));

    world.publish_ticket("inflight").await;
    wait_until(|| probe.calls().len() == 1).await;
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !task.is_finished(),
        "run() must wait for the in-flight message"
    );
    gate.add_permits(1);
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    assert_eq!(probe.effects(), 1);
    // Acked, not returned to the queue.
    assert_eq!(world.ready_count(&world.work()).await, 0);
    world.close().await;
}

#[tokio::test]
async fn the_consumer_comes_back_when_its_queue_vanishes() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Ok);
    let consumer = Consumer::new(world.config(), handler);
    let status = consumer.status();
    let (shutdown, task) = spawn(consumer);

    world.publish_ticket("before").await;
    wait_until(|| probe.effects() == 1).await;
    assert!(status.is_consuming());

    // The broker cancels the consumer when its queue is deleted; the loop must reconnect and
    // declare the topology again.
    world
        .admin
        .queue_delete(world.work().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let work = world.work();
    wait_for(|| async {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let probe_channel = world.admin_conn.create_channel().await.unwrap();
        let exists = probe_channel
            .queue_declare(work.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok();
        drop(probe_channel.close(200, "probe".into()).await);
        (exists && status.is_consuming()).then_some(())
    })
    .await;

    world.publish_ticket("after").await;
    wait_until(|| probe.effects() == 2).await;
    stop(shutdown, task).await;
    assert!(!status.is_consuming());
    world.close().await;
}

#[tokio::test]
async fn a_lost_connection_is_reestablished_and_the_unacked_message_applied_once() {
    use bus::Backoff;
    use bus::testkit::FaultProxy;

    let world = World::new().await;
    let url = bus::testkit::amqp_url();
    let proxy = FaultProxy::start(broker_addr(&url)).await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (handler, probe) = test_handler({
        let gate = gate.clone();
        move |m| {
            if ticket_of(m) == "inflight" {
                Behaviour::Gate(gate.clone())
            } else {
                Behaviour::Ok
            }
        }
    });
    let mut config = world.config();
    config.url = BrokerUrl::parse(&proxy.amqp_url(&url)).unwrap();
    config.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
    let consumer = Consumer::new(config, handler);
    let status = consumer.status();
    let (shutdown, task) = spawn(consumer);

    world.publish_ticket("before").await;
    wait_until(|| probe.effects() == 1).await;
    world.publish_ticket("inflight").await;
    wait_until(|| probe.calls().iter().any(|(t, _)| t == "inflight")).await;

    // The broker goes away while "inflight" is being handled; its ack cannot reach the broker.
    proxy.cut();
    wait_until(|| !status.is_consuming()).await;
    world.publish_ticket("during").await;
    gate.add_permits(10);
    wait_until(|| probe.effects() == 2).await;

    proxy.restore();
    // Back: "inflight" is redelivered (it was never acked) and found in the inbox; "during",
    // published while the consumer was away, is applied.
    wait_until(|| probe.effects() == 3).await;
    wait_until(|| {
        probe
            .calls()
            .iter()
            .filter(|(t, _)| t == "inflight")
            .count()
            == 2
    })
    .await;
    assert!(status.is_consuming());
    stop(shutdown, task).await;
    assert_eq!(probe.effects(), 3);
    world.close().await;
}

/// Replaces `queue` with one that refuses every publish (length 0, `reject-publish`), so the
/// broker nacks every copy sent there, as it does during a memory alarm.
async fn make_refusing(world: &World, queue: &str) {
    world
        .admin
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    world
        .admin
        .queue_declare(queue.into(), options, args)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dead_letter_copy_to_a_missing_queue_does_not_lose_the_message() {
    use bus::testkit::LogRecorder;

    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Permanent("unknown suite dk1"));
    let (shutdown, task) = spawn_consuming(Consumer::new(world.config(), handler)).await;
    // The dead queue is gone (after the consumer declared it): a dead-letter copy has nowhere to
    // go.
    world
        .admin
        .queue_delete(world.dead().into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    world.publish_ticket("keep").await;
    wait_until(|| !probe.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(shutdown, task).await;
    // Not acked: back on the work queue, waiting for the dead queue to exist again.
    assert_eq!(world.ready_count(&world.work()).await, 1);
    let warned = recorder.at_least(tracing::Level::WARN, "bus::consumer");
    assert!(
        warned
            .iter()
            .any(|l| l.contains("unroutable") && l.contains(&world.dead())),
        "{warned:#?}"
    );
    world.close().await;
}

#[tokio::test]
async fn a_retry_copy_the_broker_refuses_backs_off_and_counts_the_attempt() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Transient);
    let mut config = world.config();
    config.max_attempts = 3;
    let (shutdown, task) = spawn_consuming(Consumer::new(config, handler)).await;
    // After the consumer declared its topology: the broker now refuses every retry copy.
    for retry in &world.topology.queue(WorkQueue::Auth).retries {
        make_refusing(&world, &retry.name).await;
    }

    world.publish_ticket("r").await;
    // Attempt 1 fails, its retry copy is refused; so is attempt 2's. The attempts still count,
    // so attempt 3 is the last one and the message is dead-lettered.
    let (headers, _) = world.next_dead().await;
    assert_eq!(
        probe.calls(),
        [
            ("r".to_owned(), 1),
            ("r".to_owned(), 2),
            ("r".to_owned(), 3)
        ]
    );
    assert_eq!(
        headers.inner().get(ATTEMPT_HEADER),
        Some(&AMQPValue::LongLongInt(3))
    );
    stop(shutdown, task).await;
    world.close().await;
}

#[tokio::test]
async fn a_refused_retry_copy_does_not_rerun_the_handler_at_full_speed() {
    let world = World::new().await;
    let (handler, probe) = test_handler(|_| Behaviour::Transient);
    let mut config = world.config();
    config.max_attempts = 100;
    let (shutdown, task) = spawn_consuming(Consumer::new(config, handler)).await;
    for retry in &world.topology.queue(WorkQueue::Auth).retries {
        make_refusing(&world, &retry.name).await;
    }

    world.publish_ticket("slow").await;
    wait_until(|| !probe.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = probe.calls();
    stop(shutdown, task).await;
    println!("handler calls in 4 s with refused retry copies: {calls:?}");
    // Backing off 0.5 s, 1 s, 2 s …: at most a handful of calls, each a higher attempt.
    assert!(calls.len() <= 5, "{} calls", calls.len());
    let attempts: Vec<u32> = calls.iter().map(|(_, a)| *a).collect();
    assert!(
        attempts.windows(2).all(|w| w[1] == w[0] + 1),
        "{attempts:?}"
    );
    // Not lost either: back on the work queue (the requeue of the last delivery may still be
    // on its way when the consumer has stopped).
    let mut ready = 0;
    for _ in 0..50 {
        ready = world.ready_count(&world.work()).await;
        if ready == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 1);
    world.close().await;
}

#[tokio::test]
async fn a_copy_not_confirmed_in_time_requeues_the_message_and_the_channel_keeps_working() {
    use bus::testkit::{FaultProxy, LogRecorder};

    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let world = World::new().await;
    let url = bus::testkit::amqp_url();
    let proxy = Arc::new(FaultProxy::start(broker_addr(&url)).await.unwrap());
    // The first attempt fails while the broker stops answering: its retry copy gets no confirm.
    let (handler, probe) = test_handler({
        let proxy = proxy.clone();
        move |m| {
            if m.attempt == 1 {
                proxy.stall();
                Behaviour::Transient
            } else {
                Behaviour::Permanent("after the stall")
            }
        }
    });
    let mut config = world.config();
    config.url = BrokerUrl::parse(&proxy.amqp_url(&url)).unwrap();
    config.confirm_timeout = Duration::from_millis(300);
    let (shutdown, task) = spawn_consuming(Consumer::new(config, handler)).await;

    world.publish_ticket("stalled").await;
    wait_until(|| {
        recorder
            .at_least(tracing::Level::WARN, "bus::consumer")
            .iter()
            .any(|l| l.contains("did not confirm"))
    })
    .await;
    // The broker answers again: the late confirm arrives, the requeued original comes back, and
    // its dead-letter copy is confirmed on the same channel.
    proxy.restore();
    let (headers, _) = world.next_dead().await;
    assert_eq!(header_str(&headers, ERROR_HEADER), "after the stall");
    assert_eq!(probe.calls()[0], ("stalled".to_owned(), 1));
    stop(shutdown, task).await;
    world.close().await;
}
