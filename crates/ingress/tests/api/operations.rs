//! Health, readiness, metrics and the request id.

use crate::helpers::{Options, TestApp, spawn_app, suite_path};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app(Options::default()).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(app.get("/readyz").await.status(), 200);

    let ticket = format!(
        "<xml><SuiteId>{}</SuiteId><InfoType>suite_ticket</InfoType><TimeStamp>1</TimeStamp>\
         <SuiteTicket>t</SuiteTicket></xml>",
        crate::helpers::SUITE_ID
    );
    assert_eq!(
        app.post(&suite_path(), &TestApp::suite_push(&ticket))
            .await
            .status(),
        200
    );
    let metrics = app.metrics().await;
    for name in [
        "ingress_requests_total",
        "ingress_publish_confirm_seconds_bucket",
        "ingress_request_duration_seconds_bucket",
        "ingress_published_total",
        "ingress_broker_ready 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_well_formed_incoming_request_id_is_kept_and_a_bad_one_replaced() {
    let app = spawn_app(Options::default()).await;
    let kept = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "edge-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "edge-123");
    let replaced = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "no spaces allowed")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "no spaces allowed");
    app.stop().await;
}
