#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The worker as a service: its probes and metrics, its refusal to run on an old schema, what
//! it does with messages it cannot use, and a restart that keeps the suite ticket.

mod common;

use common::{Harness, SUITE_ID, messages_total, suite_id, suite_secret};
use secrecy::ExposeSecret as _;
use store::testing::TestDatabase;
use test_support::wait_for;
use wecom::event::{Event, SuiteTicket};

async fn get(addr: std::net::SocketAddr, route: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{route}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn probes_and_metrics_answer_on_the_health_address() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    assert_eq!(get(worker.health, "/healthz").await, (200, "ok".to_owned()));
    // Ready once consuming, able to publish, and the database answers.
    let body = wait_for("/readyz says ready", || async {
        let (status, body) = get(worker.health, "/readyz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body, "consuming=true publisher=true database=true\n");

    // Before any ticket the suite is reported missing, not silently absent.
    let missing = format!("daikai_suite_ticket_missing{{suite_id=\"{SUITE_ID}\"}}");
    wait_for("the missing ticket is exported", || async {
        let (_, text) = get(worker.health, "/metrics").await;
        text.contains(&format!("{missing} 1")).then_some(())
    })
    .await;

    h.deliver_ticket().await;
    // The sweep (every second in tests) turns the stored ticket into the age gauge.
    let metrics = wait_for("the ticket age is exported", || async {
        let (_, text) = get(worker.health, "/metrics").await;
        text.contains(&format!(
            "daikai_suite_ticket_age_seconds{{suite_id=\"{SUITE_ID}\"}}"
        ))
        .then_some(text)
    })
    .await;
    assert!(
        metrics.contains("daikai_auth_messages_total{kind=\"suite_ticket\",outcome=\"acked\"} 1")
    );
    assert!(metrics.contains(&format!("{missing} 0")), "{metrics}");
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn the_worker_refuses_to_start_on_an_unmigrated_database() {
    let h = Harness::start().await;
    let empty = TestDatabase::create_empty(&test_support::database_url())
        .await
        .unwrap();
    let mut config = h.worker_config();
    config.database_url = empty.url().to_owned().into();
    let err = auth_worker::Application::build(config).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("daikai migrate"), "{message}");
    empty.drop_database().await.unwrap();
    h.close().await;
}

#[tokio::test]
async fn events_of_an_unconfigured_suite_are_dead_lettered_with_the_reason() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.publish(&Event::SuiteTicket(SuiteTicket {
        suite_id: "dkunknown".parse().unwrap(),
        suite_ticket: "t".parse().unwrap(),
        timestamp: 1,
    }))
    .await;
    let dead = wait_for("the message is dead-lettered", || async {
        let dead = h.dead_letters().await;
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("dkunknown is not configured"),
        "{}",
        dead[0].1
    );
    assert_eq!(
        messages_total(&worker.metrics, "suite_ticket", "dead_lettered"),
        1
    );
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn the_suite_ticket_survives_a_restart() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let ticket = h.deliver_ticket().await;
    worker.stop().await;

    // A new replica, a new pool: the ticket is in Postgres, so the suite token is obtainable at
    // once, without waiting up to ten minutes for the next push (docs/architecture.md §4.3).
    let worker = h.worker().await;
    let tokens = h.token_service().await;
    let token = tokens
        .suite_token(&suite_id(), &suite_secret())
        .await
        .unwrap();
    assert!(!token.expose().is_empty());
    let mut conn = h.pool().acquire().await.unwrap();
    let stored = store::suites::ticket(&mut conn, &h.secrets, &suite_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.ticket.expose_secret(), ticket.suite_ticket.expose());
    drop(conn);
    worker.stop().await;
    h.close().await;
}
