//! The confirmed publisher against the real broker, with a fault proxy in between to take the
//! broker away (cut) or keep it from confirming (stall) without touching the shared broker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bus::testkit::{FaultProxy, amqp_url, test_namespace};
use bus::{
    BrokerUrl, Envelope, Outgoing, PublishError, Publisher, PublisherConfig, Tenant, TenantEvent,
    TenantStatus, Topology, WorkQueue, connect,
};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection};

fn broker_addr() -> std::net::SocketAddr {
    let url = amqp_url();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .unwrap()
        .next()
        .unwrap()
}

async fn inspector() -> (Connection, Channel) {
    let connection = connect(
        &BrokerUrl::parse(&amqp_url()).unwrap(),
        "bus-publisher-test",
    )
    .await
    .unwrap();
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

fn config(url: &str, topology: Topology, confirm_timeout: Duration) -> PublisherConfig {
    let mut config = PublisherConfig::new(BrokerUrl::parse(url).unwrap(), topology, "bus-test");
    config.confirm_timeout = confirm_timeout;
    config.backoff = bus::Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
    config
}

fn tenant_event(corp: &str) -> Envelope {
    Envelope::internal(
        TenantEvent::Activated(Tenant {
            suite_id: "dk1".parse().unwrap(),
            corp_id: corp.parse().unwrap(),
            corp_name: None,
            agent_id: Some(1),
            status: TenantStatus::Active,
        }),
        corp,
    )
}

async fn get(channel: &Channel, queue: &str) -> Option<BasicGetMessage> {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if message.is_some() || tokio::time::Instant::now() >= until {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes until one succeeds (the publisher reconnects in the background).
async fn publish_eventually(publisher: &Publisher, envelope: &Envelope) {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match publisher.publish(envelope, "req-1").await {
            Ok(()) => return,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < until,
                    "never recovered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn confirmed_publish_carries_the_contract_properties() {
    let (_conn, channel) = inspector().await;
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(config(
        &amqp_url(),
        topology.clone(),
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);
    assert!(publisher.is_ready());

    let envelope = tenant_event("wwcorp");
    publisher.publish(&envelope, "req-42").await.unwrap();

    let message = get(&channel, &topology.queue(WorkQueue::Contacts).work)
        .await
        .expect("the event reaches wecom.contacts");
    let props = &message.delivery.properties;
    assert_eq!(props.delivery_mode(), &Some(2));
    assert_eq!(
        props
            .content_type()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some("application/json")
    );
    let id = envelope.id.to_string();
    assert_eq!(
        props
            .message_id()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some(id.as_str())
    );
    assert_eq!(
        props
            .correlation_id()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some("req-42")
    );
    assert_eq!(
        props.kind().as_ref().map(lapin::types::ShortString::as_str),
        Some("tenant.activated")
    );
    assert_eq!(
        message.delivery.routing_key.as_str(),
        "internal.tenant.activated"
    );
    assert_eq!(
        Envelope::from_json(&message.delivery.data).unwrap(),
        envelope
    );

    publisher.close().await;
    assert!(!publisher.is_ready());
    assert!(matches!(
        publisher.publish(&envelope, "req-43").await,
        Err(PublishError::NotConnected)
    ));
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn broker_nack_is_an_error() {
    let (_conn, channel) = inspector().await;
    let topology = Topology::new(test_namespace());
    let full = format!("{}full", topology.namespace().as_str());
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    channel
        .queue_declare(full.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let publisher = Publisher::start(config(
        &amqp_url(),
        topology.clone(),
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);
    let outgoing = Outgoing {
        exchange: "",
        routing_key: &full,
        message_id: "m1",
        correlation_id: "r1",
        kind: "test",
    };
    let result = publisher.publish_raw(outgoing, b"{}").await;
    assert!(matches!(result, Err(PublishError::Nacked)), "{result:?}");
    publisher.close().await;
    channel
        .queue_delete(full.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn broker_unreachable_fails_fast_then_recovers_without_restart() {
    let (_conn, channel) = inspector().await;
    let proxy = FaultProxy::start(broker_addr()).await.unwrap();
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(config(
        &proxy.amqp_url(&amqp_url()),
        topology.clone(),
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);
    publisher.publish(&tenant_event("c1"), "r").await.unwrap();

    proxy.cut();
    // The loss is noticed asynchronously; from then on publishing fails without waiting.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while publisher.is_ready() {
        assert!(tokio::time::Instant::now() < until, "loss never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed = publisher.publish(&tenant_event("c2"), "r").await;
    assert!(failed.is_err(), "{failed:?}");

    proxy.restore();
    publish_eventually(&publisher, &tenant_event("c3")).await;
    assert!(publisher.is_ready());

    let contacts = &topology.queue(WorkQueue::Contacts).work;
    let mut corps = Vec::new();
    while let Some(message) = get(&channel, contacts).await {
        corps.push(
            Envelope::from_json(&message.delivery.data)
                .unwrap()
                .corp_id
                .unwrap(),
        );
        if corps.len() == 2 {
            break;
        }
    }
    assert_eq!(corps, ["c1", "c3"]);
    publisher.close().await;
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn missing_confirm_times_out_and_late_confirms_do_not_break_the_channel() {
    let (_conn, channel) = inspector().await;
    let proxy = FaultProxy::start(broker_addr()).await.unwrap();
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(config(
        &proxy.amqp_url(&amqp_url()),
        topology.clone(),
        Duration::from_millis(300),
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);

    proxy.stall();
    let result = publisher.publish(&tenant_event("stalled"), "r").await;
    assert!(
        matches!(result, Err(PublishError::Timeout(_))),
        "{result:?}"
    );

    proxy.restore();
    publish_eventually(&publisher, &tenant_event("after")).await;
    publisher.close().await;
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn publisher_never_connected_is_not_ready() {
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(config(
        "amqp://guest:guest@127.0.0.1:9/%2f",
        topology,
        Duration::from_secs(1),
    ))
    .unwrap();
    assert!(!publisher.wait_ready(Duration::from_millis(300)).await);
    assert!(matches!(
        publisher.publish(&tenant_event("x"), "r").await,
        Err(PublishError::NotConnected)
    ));
    publisher.close().await;
}

/// An app push whose `Event` is 300+ characters with odd ones among them, as WeCom (or anyone
/// with the app's key) could send.
fn envelope_with_an_outsized_kind() -> Envelope {
    let name = format!("Odd Ünï/#*{}", "X".repeat(320));
    let xml = format!(
        "<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{name}]]></Event><CreateTime>1700000000</CreateTime></xml>"
    );
    let event = wecom::event::Event::parse(&xml).unwrap();
    assert!(event.kind().len() > 300);
    let (suite, corp) = ("dk1".parse().unwrap(), "wwcorp".parse().unwrap());
    let origin = bus::CallbackOrigin {
        source: bus::Source::App,
        suite_id: &suite,
        corp_id: Some(&corp),
        receive_id: "wwcorp",
    };
    Envelope::from_callback(origin, xml, event)
}

#[tokio::test]
async fn an_outsized_or_odd_kind_is_published_and_the_connection_survives() {
    let (_conn, channel) = inspector().await;
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(config(
        &amqp_url(),
        topology.clone(),
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);

    // Built from the XML: 300+ characters, spaces, '/', '#', '*' and non-ASCII.
    let long = envelope_with_an_outsized_kind();
    let result = publisher.publish(&long, "req-long").await;
    assert!(result.is_ok(), "{result:?}");
    // A kind set by hand after construction is made safe on the way out too.
    let mut odd = tenant_event("odd");
    odd.kind = format!("Tenant Ödd/kind #{}", "y".repeat(400));
    let result = publisher.publish(&odd, "req-odd").await;
    assert!(result.is_ok(), "{result:?}");

    // A raw publish with an outsized routing key is refused before it reaches the wire.
    let key = "k".repeat(300);
    let outgoing = Outgoing {
        exchange: &topology.events_exchange,
        routing_key: &key,
        message_id: &"m".repeat(300),
        correlation_id: "r",
        kind: "test",
    };
    let result = publisher.publish_raw(outgoing, b"{}").await;
    assert!(
        matches!(result, Err(PublishError::RoutingKeyTooLong(300))),
        "{result:?}"
    );

    // The shared connection is still up, and a normal publish right after goes through.
    assert!(publisher.is_ready());
    publisher
        .publish(&tenant_event("after"), "r")
        .await
        .unwrap();
    let contacts = &topology.queue(WorkQueue::Contacts).work;
    let message = get(&channel, contacts)
        .await
        .expect("the normal event arrives");
    let got = Envelope::from_json(&message.delivery.data).unwrap();
    assert_eq!(
        got.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
        Some("after")
    );

    // Both odd events reached the unrouted queue with keys and types within the AMQP limit and
    // of the safe characters only.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = get(&channel, &topology.unrouted_queue)
            .await
            .expect("the odd events are kept in wecom.unrouted");
        let key = message.delivery.routing_key.as_str().to_owned();
        let kind = message
            .delivery
            .properties
            .kind()
            .as_ref()
            .map(|k| k.as_str().to_owned())
            .unwrap();
        for text in [&key, &kind] {
            assert!(text.len() <= 255, "{} bytes: {text}", text.len());
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'.')),
                "{text}"
            );
        }
        seen.push(key);
    }
    assert!(seen[0].starts_with("app.event.odd_"), "{}", seen[0]);
    assert!(
        seen[1].starts_with("internal.tenant__dd_kind__y"),
        "{}",
        seen[1]
    );
    publisher.close().await;
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn a_message_no_queue_takes_is_not_called_durable() {
    let (_conn, channel) = inspector().await;
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(config(
        &amqp_url(),
        topology.clone(),
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);

    // Straight to a queue that does not exist: the broker confirms the publish, but only after
    // returning it unrouted. That is not durable.
    let missing = format!("{}missing", topology.namespace().as_str());
    let outgoing = Outgoing {
        exchange: "",
        routing_key: &missing,
        message_id: "m1",
        correlation_id: "r1",
        kind: "test",
    };
    let result = publisher.publish_raw(outgoing, b"{}").await;
    assert!(
        matches!(result, Err(PublishError::Unroutable { .. })),
        "{result:?}"
    );
    assert!(publisher.is_ready());

    // An event kind no work queue is bound to still goes to wecom.unrouted through the
    // alternate exchange: routed, not returned.
    let mut unbound = tenant_event("unbound");
    unbound.kind = "tenant_unbound".into();
    publisher.publish(&unbound, "r2").await.unwrap();
    assert!(get(&channel, &topology.unrouted_queue).await.is_some());
    // And a publish right after a returned one is confirmed as usual.
    publisher.publish(&tenant_event("c1"), "r3").await.unwrap();
    assert!(
        get(&channel, &topology.queue(WorkQueue::Contacts).work)
            .await
            .is_some()
    );
    publisher.close().await;
    topology.delete(&channel).await.unwrap();
}
