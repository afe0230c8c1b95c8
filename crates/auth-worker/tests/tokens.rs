#![allow(clippy::unwrap_used, clippy::expect_used)]

//! One corp-token fetch across replicas (docs/architecture.md §4.4): replicas that need the
//! same corp token at the same moment make exactly one `gettoken` call between them.

mod common;

use std::sync::Arc;

use common::{Harness, SUITE_ID, messages_total, suite_id};
use store::CorpId;
use test_support::wait_until;
use tokio::sync::Barrier;
use wecom::event::{ChangeAuth, Event};
use wecom_sim::FaultConfig;

/// gettoken takes a while, so concurrent callers really overlap.
fn slow_gettoken() -> FaultConfig {
    FaultConfig {
        latency_ms: 300,
        fault_apis: vec!["gettoken".to_owned()],
        ..FaultConfig::default()
    }
}

#[tokio::test]
async fn two_replicas_needing_a_corp_token_at_once_call_gettoken_once() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Stampede").await;
    worker.stop().await;
    let corp_id = CorpId::parse(corp).unwrap();
    h.sim.faults.set(slow_gettoken());
    let before = h.api_calls("gettoken");

    // Two replicas (own pools), four callers each, released together.
    let replicas = [h.token_service().await, h.token_service().await];
    let barrier = Arc::new(Barrier::new(8));
    let mut calls = Vec::new();
    for i in 0..8 {
        let tokens = replicas[i % 2].clone();
        let barrier = barrier.clone();
        let corp_id = corp_id.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            tokens
                .corp_token(&suite_id(), &corp_id)
                .await
                .unwrap()
                .expose()
                .to_owned()
        }));
    }
    let mut seen = Vec::new();
    for call in calls {
        seen.push(call.await.unwrap());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "every caller got the same token");
    assert_eq!(h.api_calls("gettoken") - before, 1);
    h.close().await;
}

#[tokio::test]
async fn two_worker_replicas_handling_events_of_one_corp_fetch_its_token_once() {
    let h = Harness::start().await;
    let a = h.worker().await;
    let (corp, _) = h.active_tenant("Busy corp").await;
    let b = h.worker().await;
    h.sim.faults.set(slow_gettoken());
    let before = h.api_calls("gettoken");

    // Each change_auth needs the corp token (agent/get); the replicas take them concurrently.
    let now = h.sim.clock.now_secs();
    for i in 0..6 {
        let change = Event::ChangeAuth(ChangeAuth {
            suite_id: SUITE_ID.parse().unwrap(),
            auth_corp_id: corp.parse().unwrap(),
            timestamp: now + i,
            state: None,
            extra_info: None,
        });
        h.publish(&change).await;
    }
    wait_until("every change_auth is acked", || async {
        messages_total(&a.metrics, "change_auth", "acked")
            + messages_total(&b.metrics, "change_auth", "acked")
            == 6
    })
    .await;
    assert_eq!(h.api_calls("gettoken") - before, 1);
    assert_eq!(h.api_calls("agent/get"), 6);
    a.stop().await;
    b.stop().await;
    h.close().await;
}
