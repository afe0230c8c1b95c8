//! Where lapin logs a message the broker returned. It logs the whole message, body included, and
//! a body can carry an AuthCode, so every service's log filter (`runtime::telemetry`) silences
//! that target below `error`. This pins the target: if a lapin upgrade moves the line, this
//! fails instead of the filter silently letting bodies through.
//!
//! Its own test binary: lapin logs from its I/O thread, so the recorder is the global subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bus::testkit::{LogRecorder, amqp_url, test_namespace};
use bus::{BrokerUrl, Outgoing, PublishError, Publisher, PublisherConfig, Topology, connect};

/// The target `runtime::telemetry` filters to `error`.
const RETURNED_TARGET: &str = "lapin::returned_messages";

#[tokio::test]
async fn lapin_logs_a_returned_message_under_the_target_the_services_silence() {
    let recorder = LogRecorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    let url = BrokerUrl::parse(&amqp_url()).unwrap();
    let topology = Topology::new(test_namespace());
    let publisher = Publisher::start(PublisherConfig::new(
        url.clone(),
        topology.clone(),
        "bus-returned-log-test",
    ))
    .unwrap();
    assert!(publisher.wait_ready(Duration::from_secs(30)).await);

    let missing = format!("{}missing", topology.namespace().as_str());
    let outgoing = Outgoing {
        exchange: "",
        routing_key: &missing,
        message_id: "m1",
        correlation_id: "r1",
        kind: "test",
    };
    let body = b"{\"AuthCode\":\"secret-code\"}";
    let result = publisher.publish_raw(outgoing, body).await;
    assert!(
        matches!(result, Err(PublishError::Unroutable { .. })),
        "{result:?}"
    );

    let logged = recorder.at(tracing::Level::WARN, RETURNED_TARGET);
    assert_eq!(logged.len(), 1, "{:#?}", recorder.lines());
    // The reason it is silenced: lapin's line carries the body (as its `Debug` bytes).
    let body_bytes = format!("{:?}", body.to_vec());
    assert!(logged[0].contains(&body_bytes), "{}", logged[0]);
    // Nothing else logs the body.
    let elsewhere: Vec<_> = recorder
        .lines()
        .into_iter()
        .filter(|(_, line)| {
            !line.starts_with(RETURNED_TARGET)
                && (line.contains(&body_bytes) || line.contains("secret-code"))
        })
        .collect();
    assert!(elsewhere.is_empty(), "{elsewhere:#?}");

    publisher.close().await;
    let connection = connect(&url, "bus-returned-log-cleanup").await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    topology.delete(&channel).await.unwrap();
}
