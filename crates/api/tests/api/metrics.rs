//! The metrics the API shares with the workers, as its `/metrics` exports them after the calls
//! that move them: every WeCom call by endpoint and errcode class, and every token or ticket
//! refresh by kind and outcome.

use serde_json::json;
use store::api_keys::Scope;
use wecom_sim::FaultConfig;

use crate::helpers::{SUITE_ID, start, tenant_path};

/// The value of the sample named exactly `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn refreshes_and_wecom_calls_are_exported_by_kind_and_class() {
    let stack = start().await;
    stack.tenant(SUITE_ID, "wwmetrics", 3).await;
    let key = stack.key(&[Scope::Jssdk], None).await;
    let path = format!("{}/jssdk-config", tenant_path(SUITE_ID, "wwmetrics"));
    let page = json!({"url": "https://app.example.com/"});
    // WeCom refuses the app's agent_config ticket (48002, API not allowed): a permanent class.
    stack.sim.faults.set(FaultConfig {
        refuse: [("ticket/get".to_owned(), 48002)].into(),
        ..FaultConfig::default()
    });
    let refused = stack.post(&path, &key, page.clone()).await;
    assert_eq!(refused.status, 502, "{:?}", refused.body);
    let metrics = stack.call("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap().to_owned();
    for (series, value) in [
        (
            r#"daikai_token_refreshes_total{kind="corp",outcome="ok"}"#,
            1,
        ),
        (
            r#"daikai_token_refreshes_total{kind="jsapi",outcome="ok"}"#,
            1,
        ),
        (
            r#"daikai_token_refreshes_total{kind="agent_config",outcome="error"}"#,
            1,
        ),
        (
            r#"daikai_token_refreshes_total{kind="agent_config",outcome="ok"}"#,
            0,
        ),
        (r#"daikai_wecom_calls_total{api="gettoken",class="ok"}"#, 1),
        (
            r#"daikai_wecom_calls_total{api="get_jsapi_ticket",class="ok"}"#,
            1,
        ),
        (
            r#"daikai_wecom_calls_total{api="ticket/get",class="permanent"}"#,
            1,
        ),
    ] {
        assert_eq!(sample(&text, series), value, "{series} in\n{text}");
    }

    // WeCom allows it again: the next request fetches the ticket; the others come from the cache.
    stack.sim.faults.set(FaultConfig::default());
    let signed = stack.post(&path, &key, page).await;
    assert_eq!(signed.status, 200, "{:?}", signed.body);
    let text = stack.call("GET", "/metrics", None, None).await.body;
    let text = text.as_str().unwrap();
    for (series, value) in [
        (
            r#"daikai_token_refreshes_total{kind="agent_config",outcome="ok"}"#,
            1,
        ),
        (
            r#"daikai_token_refreshes_total{kind="jsapi",outcome="ok"}"#,
            1,
        ),
        (
            r#"daikai_token_refreshes_total{kind="corp",outcome="ok"}"#,
            1,
        ),
        (
            r#"daikai_wecom_calls_total{api="ticket/get",class="ok"}"#,
            1,
        ),
        (r#"daikai_wecom_calls_total{api="gettoken",class="ok"}"#, 1),
    ] {
        assert_eq!(sample(text, series), value, "{series} in\n{text}");
    }
    assert_eq!(stack.wecom_calls("ticket/get"), 2);
}
