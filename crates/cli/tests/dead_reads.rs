//! Reading dead letters spends none of their deliveries (docs/operations.md §8): on RabbitMQ 4 a
//! quorum queue drops a message returned to it more than 20 times (the default delivery limit)
//! and the dead queues have no dead-letter target, so `dead list`/`show`/`purge --older-than`
//! must not give the letters they read back by a requeue. Here the dead queue is given that limit
//! explicitly, so the test means the same on the broker it runs against, whatever its version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bus::{Envelope, Tenant, TenantEvent, TenantStatus, WorkQueue};
use common::{World, json_of, stdout, success};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use serde_json::json;
use store::{CorpId, SuiteId};

/// RabbitMQ 4's default delivery limit of a quorum queue.
const RABBITMQ_4_DELIVERY_LIMIT: i64 = 20;
/// How often each letter is read: well past the limit.
const READS: usize = 30;

fn envelope(corp: &str) -> Envelope {
    Envelope::internal(
        TenantEvent::SyncRequested(Tenant {
            suite_id: SuiteId::parse("dkclisuite01").unwrap(),
            corp_id: CorpId::parse(corp).unwrap(),
            corp_name: None,
            agent_id: None,
            status: TenantStatus::Active,
        }),
        "dead-reads-test",
    )
}

/// `dead` declared again as the topology declares it (a quorum queue, no dead-letter target)
/// plus the delivery limit a RabbitMQ 4 broker gives such a queue by default.
async fn as_on_rabbitmq_4(channel: &Channel, dead: &str) {
    channel
        .queue_delete(dead.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(RABBITMQ_4_DELIVERY_LIMIT),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(dead.into(), durable, args)
        .await
        .unwrap();
}

/// Fetches the head of `queue` without acking it and gives it back by closing the channel, as
/// the CLI used to; false when the queue was empty.
async fn fetch_and_requeue(connection: &Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let got = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap();
    drop(channel.close(200, "requeue".into()).await);
    got.is_some()
}

#[tokio::test]
async fn dead_letters_read_thirty_times_are_all_still_there_in_order() {
    let world = World::new().await;
    let dead = world.topology().queue(WorkQueue::Contacts).dead.clone();
    let connection = bus::connect(&test_support::broker_url(), "cli-tests")
        .await
        .unwrap();
    as_on_rabbitmq_4(&connection.create_channel().await.unwrap(), &dead).await;

    // The limit is in force: a letter fetched and requeued READS times is dropped on the way.
    world
        .dead_letter(WorkQueue::Contacts, &envelope("wwcontrol"), 1)
        .await;
    let mut fetched = 0;
    while fetched < READS && fetch_and_requeue(&connection, &dead).await {
        fetched += 1;
    }
    assert!(
        fetched < READS,
        "the broker kept a letter requeued {READS} times: the delivery limit is not in force"
    );
    assert_eq!(world.depth(&dead).await, 0);

    let letters = ["wwread1", "wwread2", "wwread3"].map(envelope);
    for letter in &letters {
        world.dead_letter(WorkQueue::Contacts, letter, 1).await;
    }
    let ids: Vec<String> = letters.iter().map(|l| l.id.to_string()).collect();
    // Each of these reads every letter in the queue.
    for read in 0..READS {
        match read % 3 {
            0 => {
                let listed = json_of(&world.run(&["dead", "list", "contacts", "--json"]));
                assert_eq!(listed.as_array().unwrap().len(), 3, "read {read}: {listed}");
            }
            1 => {
                let shown = success(&world.run(&["dead", "show", &ids[2]]));
                assert!(shown.contains(&ids[2]), "read {read}: {shown}");
            }
            _ => {
                let purged = world.run(&["dead", "purge", "--older-than", "1d"]);
                assert!(
                    success(&purged).contains("purged 0 dead letter(s)"),
                    "read {read}: {}",
                    stdout(&purged)
                );
            }
        }
    }

    assert_eq!(world.depth(&dead).await, 3);
    let listed = json_of(&world.run(&["dead", "list", "--json"]));
    let listed_ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, ids, "every letter, in the order they came");
    for letter in listed.as_array().unwrap() {
        assert_eq!(letter["error"], json!("handler panicked: test"), "{letter}");
        assert_eq!(
            letter["routing_key"],
            json!("internal.tenant.sync_requested"),
            "{letter}"
        );
        assert_eq!(letter["attempt"], json!(1), "{letter}");
    }

    drop(connection.close(200, "done".into()).await);
    world.teardown().await;
}
