#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The metrics the worker shares with contact sync and the API (`daikai_wecom_calls_total`,
//! `daikai_token_refreshes_total`) and its tenants-by-status gauge, as `/metrics` exports them
//! after the events that move them: an activation, a revocation, a corp whose app WeCom no
//! longer accepts, and a suite token WeCom will not issue.

mod common;

use common::{Harness, SUITE_ID, suite_id};
use store::tenants::TenantStatus;
use test_support::wait_for;
use wecom::event::{CancelAuth, ChangeAuth, Event};
use wecom_sim::FaultConfig;

async fn scrape(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until `/metrics` has every one of `lines`; returns the text.
async fn scrape_until(addr: std::net::SocketAddr, what: &str, lines: &[&str]) -> String {
    wait_for(what, || async {
        let text = scrape(addr).await;
        lines.iter().all(|l| text.contains(l)).then_some(text)
    })
    .await
}

#[tokio::test]
async fn an_activation_and_a_revocation_move_the_wecom_token_and_tenant_metrics() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    // The sweep (every second here) reports every status, zero included, before any tenant.
    scrape_until(
        worker.health,
        "the empty tenant counts",
        &[
            r#"daikai_tenants{status="active"} 0"#,
            r#"daikai_tenants{status="pending"} 0"#,
            r#"daikai_tenants{status="revoked"} 0"#,
            r#"daikai_tenants{status="suspended"} 0"#,
        ],
    )
    .await;

    let (corp, _) = h.active_tenant("Counted").await;
    let text = scrape_until(
        worker.health,
        "the active tenant is counted",
        &[r#"daikai_tenants{status="active"} 1"#],
    )
    .await;
    // One suite token fetched for the exchange, and each WeCom call by endpoint and class.
    for line in [
        r#"daikai_token_refreshes_total{kind="suite",outcome="ok"} 1"#,
        r#"daikai_wecom_calls_total{api="service/get_suite_token",class="ok"} 1"#,
        r#"daikai_wecom_calls_total{api="service/v2/get_permanent_code",class="ok"} 1"#,
        r#"daikai_wecom_calls_total{api="service/v2/get_auth_info",class="ok"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(!text.contains(r#"outcome="error""#), "{text}");
    assert_eq!(
        worker
            .metrics
            .wecom_calls
            .get("service/v2/get_permanent_code", "ok"),
        h.exchange_calls()
    );

    h.publish(&Event::CancelAuth(CancelAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
    }))
    .await;
    h.wait_tenant(&corp, |t| t.status == TenantStatus::Revoked)
        .await;
    scrape_until(
        worker.health,
        "the revoked tenant is counted",
        &[
            r#"daikai_tenants{status="active"} 0"#,
            r#"daikai_tenants{status="revoked"} 1"#,
        ],
    )
    .await;
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn a_corp_wecom_refuses_is_counted_by_errcode_class_and_as_suspended() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Refused").await;
    // The app is removed in WeCom and the cancel_auth push is lost: at the next change_auth
    // WeCom refuses the tenant's permanent code (a tenant_broken errcode).
    h.sim
        .cancel(
            &test_support::corp(&corp),
            Some(&suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    h.publish(&Event::ChangeAuth(ChangeAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
        state: None,
        extra_info: None,
    }))
    .await;
    h.wait_tenant(&corp, |t| t.status == TenantStatus::Suspended)
        .await;
    let text = scrape_until(
        worker.health,
        "the suspended tenant is counted",
        &[
            r#"daikai_tenants{status="active"} 0"#,
            r#"daikai_tenants{status="suspended"} 1"#,
        ],
    )
    .await;
    for line in [
        r#"daikai_wecom_calls_total{api="service/v2/get_auth_info",class="ok"} 1"#,
        r#"daikai_wecom_calls_total{api="service/v2/get_auth_info",class="tenant_broken"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn a_suite_token_wecom_will_not_issue_is_a_refresh_error() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Busy");
    let (create_auth, _) = h.authorize(&corp);
    // WeCom answers -1 (system busy) to every get_suite_token: the exchange cannot begin.
    h.sim.faults.set(FaultConfig {
        refuse: [("service/get_suite_token".to_owned(), -1)].into(),
        ..FaultConfig::default()
    });
    h.publish(&create_auth).await;
    let text = wait_for("the failed refresh is exported", || async {
        let text = scrape(worker.health).await;
        let failed = sample(
            &text,
            r#"daikai_token_refreshes_total{kind="suite",outcome="error"}"#,
        );
        let busy = sample(
            &text,
            r#"daikai_wecom_calls_total{api="service/get_suite_token",class="retryable"}"#,
        );
        (failed >= 1 && busy >= failed).then_some(text)
    })
    .await;
    assert_eq!(
        sample(
            &text,
            r#"daikai_token_refreshes_total{kind="suite",outcome="ok"}"#
        ),
        0,
        "{text}"
    );
    assert_eq!(h.exchange_calls(), 0, "no exchange without a suite token");
    h.sim.faults.set(FaultConfig::default());
    worker.stop().await;
    h.close().await;
}

/// The value of the sample named exactly `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}
