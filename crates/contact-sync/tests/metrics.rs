//! The metrics contact sync shares with the auth worker and the API, as `/metrics` exports them
//! after a full sync whose corp token WeCom at first will not issue: every WeCom call by
//! endpoint and errcode class (`daikai_wecom_calls_total{api, class}`) and every corp token
//! refresh (`daikai_token_refreshes_total{kind, outcome}`). Real Postgres and RabbitMQ,
//! wecom-sim as WeCom.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bus::TenantEvent;
use common::Bench;
use reqwest::Method;
use serde_json::json;

async fn scrape(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample named exactly `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_calls_by_class_and_corp_token_refreshes_are_exported() {
    let bench = Bench::new().await;
    let corp = "wwmetrics01";
    let tenant = bench
        .authorized_corp(
            corp,
            json!({"users": 20, "departments": 3, "tags": 2, "seed": 5}),
        )
        .await;
    let worker = bench.worker().await;
    // WeCom is busy for gettoken: the corp token cannot be refreshed, and the sync's calls wait.
    bench
        .sim(
            Method::POST,
            "/sim/faults",
            json!({"refuse": {"gettoken": -1}}),
        )
        .await;
    bench
        .publish_tenant_event(TenantEvent::Activated, corp)
        .await;
    let failing = test_support::wait_for("the failed refresh is exported", || async {
        let text = scrape(worker.health).await;
        let failed = sample(
            &text,
            r#"daikai_token_refreshes_total{kind="corp",outcome="error"}"#,
        );
        let busy = sample(
            &text,
            r#"daikai_wecom_calls_total{api="gettoken",class="retryable"}"#,
        );
        (failed >= 1 && busy >= failed).then_some(text)
    })
    .await;
    assert_eq!(
        sample(
            &failing,
            r#"daikai_token_refreshes_total{kind="corp",outcome="ok"}"#
        ),
        0,
        "{failing}"
    );

    // WeCom recovers: the sync's retries get the token (one refresh for every call) and finish.
    bench.sim(Method::POST, "/sim/faults", json!({})).await;
    bench.completed_runs(tenant, 1).await;
    bench.assert_converges(corp, tenant).await;
    let text = scrape(worker.health).await;
    assert_eq!(
        sample(
            &text,
            r#"daikai_token_refreshes_total{kind="corp",outcome="ok"}"#
        ),
        1,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"daikai_wecom_calls_total{api="gettoken",class="ok"}"#
        ),
        1,
        "{text}"
    );
    // The listings of the full sync, each counted under the endpoint's name, all answered.
    for api in ["department/list", "tag/list", "user/list"] {
        let series = format!(r#"daikai_wecom_calls_total{{api="{api}",class="ok"}}"#);
        assert!(sample(&text, &series) >= 1, "{series} missing from\n{text}");
    }
    // Every call WeCom saw, counted once under its endpoint, whatever its class.
    let stats = bench.sim(Method::GET, "/sim/stats", json!(null)).await;
    for (api, seen) in stats["api_calls"].as_object().unwrap() {
        let prefix = format!(r#"daikai_wecom_calls_total{{api="{api}","#);
        let counted: u64 = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(Some(counted), seen.as_u64(), "{api}:\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| l.starts_with("daikai_wecom_calls_total{"))
    {
        assert!(
            line.contains(r#"class="ok""#) || line.contains(r#"class="retryable""#),
            "only the refused gettoken failed: {line}"
        );
    }
    worker.stop().await;
    bench.close().await;
}
