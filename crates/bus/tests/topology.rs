//! The topology against the real broker: declaring is idempotent, every routing key lands where
//! docs/architecture.md §3.3 says, retry tiers flow back into their work queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bus::testkit::{amqp_url, test_namespace};
use bus::{BrokerUrl, Topology, WorkQueue, connect};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};

async fn channel() -> (Connection, Channel) {
    let url = BrokerUrl::parse(&amqp_url()).unwrap();
    let connection = connect(&url, "bus-topology-test").await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (connection, channel)
}

async fn publish(channel: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
}

/// Polls `queue` until a message arrives (generous deadline, no timing assertion).
async fn get(channel: &Channel, queue: &str, deadline: Duration) -> Option<Vec<u8>> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let message = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if let Some(message) = message {
            return Some(message.delivery.data);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn declaring_twice_is_idempotent_and_routes_every_key() {
    let (_connection, channel) = channel().await;
    let topology = Topology::new(test_namespace());
    topology.declare(&channel).await.unwrap();
    topology.declare(&channel).await.unwrap();

    let auth = &topology.queue(WorkQueue::Auth).work;
    let contacts = &topology.queue(WorkQueue::Contacts).work;
    let cases = [
        ("suite.suite_ticket", auth),
        ("suite.create_auth", auth),
        ("suite.change_auth", auth),
        ("suite.cancel_auth", auth),
        ("suite.reset_permanent_code", auth),
        ("app.change_contact.update_user", contacts),
        ("suite.change_contact.create_party", contacts),
        ("app.change_contact.unknown", contacts),
        ("internal.tenant.activated", contacts),
        ("internal.tenant.revoked", contacts),
        ("app.event.subscribe", &topology.unrouted_queue),
        ("suite.unknown", &topology.unrouted_queue),
        ("app.create_auth", &topology.unrouted_queue),
    ];
    for (key, queue) in cases {
        publish(&channel, &topology.events_exchange, key, key.as_bytes()).await;
        let body = get(&channel, queue, Duration::from_secs(10)).await;
        assert_eq!(
            body.as_deref(),
            Some(key.as_bytes()),
            "{key} should reach {queue}"
        );
    }
    for queue in topology.all_queues() {
        assert!(
            get(&channel, &queue, Duration::ZERO).await.is_none(),
            "{queue} should be empty"
        );
    }
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn retry_tier_dead_letters_back_into_the_work_queue() {
    let (_connection, channel) = channel().await;
    let topology = Topology::new(test_namespace());
    topology.declare(&channel).await.unwrap();
    let auth = topology.queue(WorkQueue::Auth);
    let shortest = auth.retry_for_attempt(0);
    assert_eq!(shortest.delay, Duration::from_secs(1));

    publish(&channel, "", &shortest.name, b"again").await;
    let back = get(&channel, &auth.work, Duration::from_secs(30)).await;
    assert_eq!(back.as_deref(), Some(&b"again"[..]));
    topology.delete(&channel).await.unwrap();
}

#[tokio::test]
async fn namespaces_keep_topologies_apart() {
    let (_connection, channel) = channel().await;
    let a = Topology::new(test_namespace());
    let b = Topology::new(test_namespace());
    a.declare(&channel).await.unwrap();
    b.declare(&channel).await.unwrap();
    publish(&channel, &a.events_exchange, "suite.suite_ticket", b"a").await;
    let in_a = get(
        &channel,
        &a.queue(WorkQueue::Auth).work,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(in_a.as_deref(), Some(&b"a"[..]));
    assert!(
        get(&channel, &b.queue(WorkQueue::Auth).work, Duration::ZERO)
            .await
            .is_none()
    );
    a.delete(&channel).await.unwrap();
    b.delete(&channel).await.unwrap();
}
