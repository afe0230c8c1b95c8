//! The directory end to end: create_auth pushed by wecom-sim through the ingress, the auth worker
//! activating the tenant, contact sync mirroring the corp; then directory changes pushed as
//! app-framed `change_contact` callbacks through the ingress, and finally the corp removing the
//! app. After each step the mirror must equal what WeCom's API shows the app.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use daikai_tests::{PUSH_AND_WAIT, SUITE_ID, Stack};
use serde_json::{Value, json};
use store::directory::{self, departments, tags, users};
use test_support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_s_directory_follows_wecom_from_authorization_to_removal() {
    let mut stack = Stack::start().await;
    stack.add_contact_sync().await;
    stack.push_ticket().await;
    let http = reqwest::Client::new();
    let corp = "wwdirectoryflow1";
    let spec = json!({"corp_id": corp, "users": 300, "departments": 20, "tags": 3, "seed": 12});
    sim(&http, &stack, reqwest::Method::POST, "/sim/corps", &spec).await;
    stack.authorize(corp).await;
    let tenant = stack
        .wait_tenant(corp, |t| t.status == store::tenants::TenantStatus::Active)
        .await;
    converge(&http, &stack, corp, tenant.id).await;

    // Changes WeCom pushes to the app URL, through the ingress.
    let base = format!("/sim/corps/{corp}");
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            format!("{base}/users"),
            json!({"userid": "flow1", "name": "流程", "department": [1, 2], "is_leader_in_dept": [0, 1]}),
        ),
        (
            reqwest::Method::PATCH,
            format!("{base}/users/flow1"),
            json!({"new_userid": "flow2", "position": "经理"}),
        ),
        (
            reqwest::Method::DELETE,
            format!("{base}/users/u000003"),
            Value::Null,
        ),
        (
            reqwest::Method::PATCH,
            format!("{base}/departments/2"),
            json!({"name": "改名"}),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/tags/1/members"),
            json!({"add_users": ["flow2"]}),
        ),
    ] {
        sim(&http, &stack, method, &format!("{path}?wait=true"), &body).await;
    }
    converge(&http, &stack, corp, tenant.id).await;

    // The corp removes the app: the directory is purged.
    let (_, pending) = stack
        .sim
        .cancel(
            &test_support::corp(corp),
            Some(&test_support::suite(SUITE_ID)),
            PUSH_AND_WAIT,
        )
        .unwrap();
    daikai_tests::delivered(pending).await;
    wait_until("the directory is purged", || async {
        let mut conn = stack.pool().acquire().await.unwrap();
        directory::counts(&mut conn, tenant.id).await.unwrap() == directory::Counts::default()
    })
    .await;
    stack.close().await;
}

async fn sim(
    http: &reqwest::Client,
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> Value {
    let response = http
        .request(
            method,
            format!("{}{path}", stack.sim_base.trim_end_matches('/')),
        )
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Waits until the mirror equals the simulator's `view=app` snapshot.
async fn converge(http: &reqwest::Client, stack: &Stack, corp: &str, tenant_id: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let truth = sim(
            http,
            stack,
            reqwest::Method::GET,
            &format!("/sim/corps/{corp}/directory?view=app"),
            &Value::Null,
        )
        .await;
        let truth = json!({"departments": truth["departments"], "users": truth["users"], "tags": truth["tags"]});
        let mirror = {
            let mut conn = stack.pool().acquire().await.unwrap();
            let mut members = users::read_users(&mut conn, tenant_id).await.unwrap();
            members.sort_by(|a, b| a.userid.cmp(&b.userid));
            json!({
                "departments": departments::read_departments(&mut conn, tenant_id).await.unwrap(),
                "users": members,
                "tags": tags::read_tags(&mut conn, tenant_id).await.unwrap(),
            })
        };
        if truth == mirror {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror did not converge on {corp}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
