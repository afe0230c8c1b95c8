#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The AuthCode rules (docs/architecture.md §4.5): persisted on arrival, exchanged once, transient
//! failures retried only while the code lives, a burnt or expired code reported once and never
//! looped on; v1 used when v2 is unavailable.

mod common;

use chrono::TimeDelta;
use common::{Harness, SUITE_ID, messages_total};
use store::auth_codes::{AuthCodeHash, AuthCodeRecord, AuthCodeState};
use store::tenants::TenantStatus;
use test_support::wait_until;
use wecom::event::{CreateAuth, Event};
use wecom_sim::FaultConfig;

const EXCHANGE_APIS: [&str; 2] = [
    "service/v2/get_permanent_code",
    "service/get_permanent_code",
];

fn auth_code_of(event: &Event) -> String {
    match event {
        Event::CreateAuth(e) => e.auth_code.expose().to_owned(),
        other => panic!("{other:?}"),
    }
}

async fn record(h: &Harness, code: &str) -> Option<AuthCodeRecord> {
    let mut conn = h.pool().acquire().await.unwrap();
    store::auth_codes::auth_code(&mut conn, &AuthCodeHash::of(code))
        .await
        .unwrap()
}

fn failures(worker: &common::Worker, reason: &str) -> u64 {
    worker
        .metrics
        .auth_code_failures
        .with_label_values(&["create_auth", reason])
        .get()
}

#[tokio::test]
async fn a_burnt_auth_code_is_marked_failed_without_a_retry_loop() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let ticket = h.deliver_ticket().await;
    let corp = h.corp("Burnt");
    let (event, _) = h.authorize(&corp);
    let code = auth_code_of(&event);
    // Someone else used the code first (a lost answer, another system): WeCom now says 40078.
    let suite_token = h
        .client
        .get_suite_token(
            &SUITE_ID.parse().unwrap(),
            common::SUITE_SECRET,
            &ticket.suite_ticket.expose().parse().unwrap(),
        )
        .await
        .unwrap();
    h.client
        .get_permanent_code_v2(&suite_token.access_token, &code)
        .await
        .unwrap();

    h.publish(&event).await;
    wait_until("the create_auth is settled", || async {
        messages_total(&worker.metrics, "create_auth", "acked") == 1
    })
    .await;

    let row = record(&h, &code).await.unwrap();
    assert_eq!(row.state, AuthCodeState::Failed);
    let reason = row.failure_reason.unwrap();
    assert!(reason.contains("40078"), "{reason}");
    assert!(!reason.contains(&code), "the reason never holds the code");
    assert_eq!(failures(&worker, "burnt"), 1);
    assert_eq!(messages_total(&worker.metrics, "create_auth", "retried"), 0);
    assert_eq!(h.exchange_calls(), 2, "ours and exactly one by the worker");
    assert!(h.tenant(&corp).await.is_none());
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn an_expired_auth_code_is_marked_failed_and_never_sent() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Late");
    let (event, _) = h.authorize(&corp);
    let code = auth_code_of(&event);
    // The push waited eleven minutes somewhere: its TimeStamp says the code is dead.
    let Event::CreateAuth(mut late) = event else {
        unreachable!()
    };
    late.timestamp -= 11 * 60;
    h.publish(&Event::CreateAuth(late)).await;

    wait_until("the create_auth is settled", || async {
        messages_total(&worker.metrics, "create_auth", "acked") == 1
    })
    .await;
    let row = record(&h, &code).await.unwrap();
    assert_eq!(row.state, AuthCodeState::Failed);
    assert!(row.failure_reason.unwrap().contains("expired"));
    // Reported once, by the handler or by the sweep, whichever saw it first.
    wait_until("the expiry is counted", || async {
        failures(&worker, "expired") == 1
    })
    .await;
    assert_eq!(h.exchange_calls(), 0);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn busy_faults_are_retried_then_the_exchange_succeeds() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Busy");
    let (event, _) = h.authorize(&corp);
    h.sim.faults.set(FaultConfig {
        fault_rate: 1.0,
        fault_apis: EXCHANGE_APIS.map(str::to_owned).to_vec(),
        ..FaultConfig::default()
    });
    h.publish(&event).await;
    wait_until("WeCom answered -1", || async {
        h.sim
            .stats
            .snapshot()
            .errcodes
            .get("-1")
            .copied()
            .unwrap_or(0)
            >= 2
    })
    .await;
    h.sim.faults.set(FaultConfig::default());

    h.wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    let row = record(&h, &auth_code_of(&event)).await.unwrap();
    assert_eq!(row.state, AuthCodeState::Exchanged);
    assert_eq!(h.sim.stats.snapshot().auth_codes.consumed, 1);
    assert!(h.exchange_calls() >= 3);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn transient_failures_are_retried_only_while_the_code_lives() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Doomed");
    let (event, _) = h.authorize(&corp);
    let code = auth_code_of(&event);
    // WeCom stays busy, and the code has two seconds left.
    h.sim.faults.set(FaultConfig {
        fault_rate: 1.0,
        fault_apis: EXCHANGE_APIS.map(str::to_owned).to_vec(),
        ..FaultConfig::default()
    });
    let Event::CreateAuth(short) = event else {
        unreachable!()
    };
    let short = CreateAuth {
        timestamp: short.timestamp - (TimeDelta::minutes(10) - TimeDelta::seconds(2)).num_seconds(),
        ..short
    };
    h.publish(&Event::CreateAuth(short)).await;

    wait_until("the create_auth is finally acked", || async {
        messages_total(&worker.metrics, "create_auth", "acked") == 1
    })
    .await;
    let row = record(&h, &code).await.unwrap();
    assert_eq!(row.state, AuthCodeState::Failed);
    assert!(row.failure_reason.unwrap().contains("expired"));
    assert!(row.attempts >= 1);
    assert!(row.last_error.unwrap_or_default().contains("-1"));
    assert!(messages_total(&worker.metrics, "create_auth", "retried") >= 1);
    assert_eq!(failures(&worker, "expired"), 1);
    // Nothing is sent once the code is dead.
    let calls = h.exchange_calls();
    assert!(calls >= 4, "{calls}");
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn v1_is_used_when_v2_is_unavailable() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let h = Harness::start().await;
    let wecom = MockServer::start().await;
    let ok = |body: serde_json::Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_suite_token"))
        .respond_with(ok(serde_json::json!({
            "suite_access_token": "suite-token", "expires_in": 7200
        })))
        .mount(&wecom)
        .await;
    for v2 in [
        "/cgi-bin/service/v2/get_permanent_code",
        "/cgi-bin/service/v2/get_auth_info",
    ] {
        Mock::given(method("POST"))
            .and(path(v2))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&wecom)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_permanent_code"))
        .respond_with(ok(serde_json::json!({
            "errcode": 0, "errmsg": "ok",
            "permanent_code": "v1-permanent-code",
            "auth_corp_info": {"corpid": "wwv1corp", "corp_name": "V1"},
            "auth_info": {"agent": [{"agentid": 7, "is_customized_app": true}]}
        })))
        .expect(1)
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_auth_info"))
        .respond_with(ok(serde_json::json!({
            "errcode": 0, "errmsg": "ok",
            "auth_corp_info": {"corpid": "wwv1corp", "corp_name": "V1 Corp"},
            "auth_info": {"agent": [{"agentid": 7, "privilege": {"allow_party": [1]}}]}
        })))
        .expect(1)
        .mount(&wecom)
        .await;
    let worker = h.worker_on(&wecom.uri()).await;

    h.publish(&Event::SuiteTicket(wecom::event::SuiteTicket {
        suite_id: SUITE_ID.parse().unwrap(),
        suite_ticket: "ticket".parse().unwrap(),
        timestamp: chrono::Utc::now().timestamp(),
    }))
    .await;
    h.publish(&Event::CreateAuth(CreateAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_code: "v1-auth-code".parse().unwrap(),
        timestamp: chrono::Utc::now().timestamp(),
        state: None,
        extra_info: None,
    }))
    .await;

    // The permanent code is committed first; get_auth_info's corp name follows.
    let tenant = h
        .wait_tenant("wwv1corp", |t| {
            t.status == TenantStatus::Active && t.corp_name.as_deref() == Some("V1 Corp")
        })
        .await;
    assert_eq!(tenant.agent_id, Some(7));
    assert_eq!(tenant.corp_name.as_deref(), Some("V1 Corp"));
    let v1 = worker
        .metrics
        .exchanges
        .with_label_values(&["create_auth", "v1"])
        .get();
    assert_eq!(v1, 1);
    worker.stop().await;
    wecom.verify().await;
    h.close().await;
}
