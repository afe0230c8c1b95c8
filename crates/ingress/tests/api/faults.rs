//! The broker going away or not confirming: never `success` without a confirm, and no restart
//! needed when it comes back. A fault proxy between the ingress and the shared broker plays the
//! broken broker.

use std::time::Duration;

use bus::WorkQueue;

use crate::helpers::{CORP_ID, Options, TestApp, app_path, spawn_app};

fn delete_user(user: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_contact]]></Event><ChangeType>delete_user</ChangeType>\
         <UserID><![CDATA[{user}]]></UserID></xml>"
    )
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn broker_unreachable_is_503_and_recovers_without_restart() {
    let app = spawn_app(Options {
        via_proxy: true,
        ..Options::default()
    })
    .await;
    let proxy = app.proxy.as_ref().unwrap();
    let before = TestApp::app_push(&delete_user("before"));
    assert_eq!(app.post(&app_path(), &before).await.status(), 200);

    proxy.cut();
    wait_until("readyz turns 503", async || {
        app.get("/readyz").await.status() == 503
    })
    .await;
    let during = TestApp::app_push(&delete_user("during"));
    let response = app.post(&app_path(), &during).await;
    assert_eq!(response.status(), 503);
    assert_ne!(response.text().await.unwrap(), "success");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "alive while not ready"
    );

    proxy.restore();
    // WeCom retries the same push; once the publisher has reconnected it goes through.
    wait_until("the retried push is accepted", async || {
        app.post(&app_path(), &during).await.status() == 200
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    let contacts = app.queue(WorkQueue::Contacts);
    let first = app.next_envelope(&contacts).await;
    let second = app.next_envelope(&contacts).await;
    assert!(first.raw_xml.unwrap().contains("before"));
    assert!(second.raw_xml.unwrap().contains("during"));
    app.assert_all_queues_empty().await;
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"ingress_requests_total{outcome="unavailable",route="app_post"}"#));
    app.stop().await;
}

#[tokio::test]
async fn missing_confirm_is_503_never_success() {
    let app = spawn_app(Options {
        via_proxy: true,
        publish_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let proxy = app.proxy.as_ref().unwrap();
    let push = TestApp::app_push(&delete_user("stalled"));

    proxy.stall();
    let response = app.post(&app_path(), &push).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "broker unavailable");

    proxy.restore();
    wait_until("the retry is confirmed", async || {
        app.post(&app_path(), &push).await.status() == 200
    })
    .await;
    // The stalled copy did reach the broker (only its confirm was held back), so the queue has
    // it and the retry: same dedupe_key, which is what consumers dedupe on.
    let contacts = app.queue(WorkQueue::Contacts);
    let a = app.next_envelope(&contacts).await;
    let b = app.next_envelope(&contacts).await;
    assert_eq!(a.dedupe_key, b.dedupe_key);
    assert_ne!(a.id, b.id);
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_after_their_confirm() {
    let app = spawn_app(Options {
        via_proxy: true,
        publish_timeout: Duration::from_secs(60),
        ..Options::default()
    })
    .await;
    let proxy = app.proxy.as_ref().unwrap();
    let push = TestApp::app_push(&delete_user("in-flight"));

    proxy.stall();
    let in_flight = {
        let (http, url, push) = (
            app.http.clone(),
            format!("{}{}?{}", app.base, app_path(), push.query),
            push.clone(),
        );
        tokio::spawn(async move { http.post(url).body(push.body).send().await })
    };
    // The publish has reached the broker (only broker → ingress bytes are held): the request is
    // now waiting for its confirm.
    let contacts = app.queue(WorkQueue::Contacts);
    let published = app.next_message(&contacts).await;
    assert!(published.is_some(), "the publish never reached the broker");

    app.shutdown.cancel();
    let addr = app.addr;
    wait_until("the listener stops accepting", async || {
        let fresh = reqwest::Client::new();
        fresh
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    })
    .await;
    assert!(!in_flight.is_finished(), "answered before its confirm");

    proxy.restore();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "success");
    let mut app = app;
    app.server.take().unwrap().await.unwrap().unwrap();
    app.topology.delete(&app.channel).await.unwrap();
}
