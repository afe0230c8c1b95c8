#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Nothing WeCom gives only once is lost on the auth path: the permanent code is committed the
//! moment WeCom answers, a retried commit keeps its claim, an odd answer or an odd event body
//! does not burn the code, AuthCode retries stay within the code's life, revocation wins within
//! one second, and an identical change_auth push is not mistaken for a duplicate.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Harness, SUITE_ID, messages_total};
use store::auth_codes::{AuthCodeHash, AuthCodeRecord, AuthCodeState};
use store::tenants::TenantStatus;
use test_support::{wait_for, wait_until};
use wecom::event::{CancelAuth, ChangeAuth, CreateAuth, Event, SuiteTicket};
use wecom_sim::FaultConfig;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EXCHANGE_V2: &str = "/cgi-bin/service/v2/get_permanent_code";
const AUTH_INFO_V2: &str = "/cgi-bin/service/v2/get_auth_info";

fn ok(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A WeCom whose suite token always works; the exchange and auth info are mounted per test.
async fn mock_wecom() -> MockServer {
    let wecom = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_suite_token"))
        .respond_with(ok(serde_json::json!({
            "errcode": 0, "suite_access_token": "suite-token", "expires_in": 7200
        })))
        .mount(&wecom)
        .await;
    wecom
}

fn exchange_answer(corp: &str) -> serde_json::Value {
    serde_json::json!({
        "errcode": 0, "errmsg": "ok",
        "permanent_code": format!("perm-{corp}"),
        "auth_corp_info": {"corpid": corp, "corp_name": "Mocked"}
    })
}

fn auth_info_answer(corp: &str) -> serde_json::Value {
    serde_json::json!({
        "errcode": 0, "errmsg": "ok",
        "auth_corp_info": {"corpid": corp, "corp_name": "Mocked Corp"},
        "auth_info": {"agent": [{"agentid": 1_000_042, "privilege": {"allow_party": [1]}}]}
    })
}

fn ticket(timestamp: i64) -> Event {
    Event::SuiteTicket(SuiteTicket {
        suite_id: SUITE_ID.parse().unwrap(),
        suite_ticket: "ticket".parse().unwrap(),
        timestamp,
    })
}

fn create_auth(code: &str, timestamp: i64) -> Event {
    Event::CreateAuth(CreateAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_code: code.parse().unwrap(),
        timestamp,
        state: None,
        extra_info: None,
    })
}

async fn record(h: &Harness, code: &str) -> Option<AuthCodeRecord> {
    let mut conn = h.pool().acquire().await.unwrap();
    store::auth_codes::auth_code(&mut conn, &AuthCodeHash::of(code))
        .await
        .unwrap()
}

fn requests_to(received: &[wiremock::Request], api: &str) -> usize {
    received.iter().filter(|r| r.url.path() == api).count()
}

async fn calls(wecom: &MockServer, api: &str) -> usize {
    requests_to(&wecom.received_requests().await.unwrap_or_default(), api)
}

/// Scenario 1: WeCom answered the exchange; `get_auth_info` hangs; the worker is killed. The
/// permanent code was committed before `get_auth_info` was even asked, and the next replica
/// completes the tenant without a second exchange.
#[tokio::test]
async fn a_worker_killed_while_fetching_auth_info_has_already_stored_the_permanent_code() {
    let h = Harness::start().await;
    let wecom = mock_wecom().await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE_V2))
        .respond_with(ok(exchange_answer("wwkilled")))
        .expect(1)
        .mount(&wecom)
        .await;
    // get_auth_info never answers in time (every call times out after 10 s).
    Mock::given(method("POST"))
        .and(path(AUTH_INFO_V2))
        .respond_with(ok(auth_info_answer("wwkilled")).set_delay(Duration::from_secs(120)))
        .mount(&wecom)
        .await;
    let mut vars = h.worker_vars();
    vars.retain(|(k, _)| *k != "WECOM_API_BASE");
    vars.push(("WECOM_API_BASE", wecom.uri()));
    let process = h.worker_process(&vars).await;

    let now = Utc::now().timestamp();
    h.publish(&ticket(now)).await;
    h.publish(&create_auth("code-killed", now)).await;
    wait_until("get_auth_info is in flight", || async {
        calls(&wecom, AUTH_INFO_V2).await == 1
    })
    .await;
    // While WeCom is still being asked for auth info (its first call times out only after
    // 10 s), the secret is already durable.
    let asked = tokio::time::Instant::now();
    let tenant = loop {
        let active = h
            .tenant("wwkilled")
            .await
            .filter(|t| t.status == TenantStatus::Active);
        if let Some(tenant) = active {
            break tenant;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(8),
            "the permanent code waits for get_auth_info"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(tenant.permanent_code_key_id.is_some());
    assert_eq!(
        record(&h, "code-killed").await.unwrap().state,
        AuthCodeState::Exchanged
    );
    process.kill().await;
    // WeCom answers auth info again for the next replica.
    Mock::given(method("POST"))
        .and(path(AUTH_INFO_V2))
        .respond_with(ok(auth_info_answer("wwkilled")))
        .with_priority(1)
        .mount(&wecom)
        .await;

    let worker = h.worker_on(&wecom.uri()).await;
    let tenant = h
        .wait_tenant("wwkilled", |t| t.agent_id == Some(1_000_042))
        .await;
    assert_eq!(tenant.corp_name.as_deref(), Some("Mocked Corp"));
    assert!(tenant.auth_info.is_some());
    let activated = h.wait_internal("tenant.activated").await;
    assert_eq!(
        activated.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
        Some("wwkilled")
    );
    let mut conn = h.pool().acquire().await.unwrap();
    let code = store::tenants::permanent_code(
        &mut conn,
        &h.secrets,
        &common::suite_id(),
        &store::CorpId::parse("wwkilled").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&code), "perm-wwkilled");
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    wecom.verify().await; // exactly one exchange
    h.close().await;
}

/// The backends in the test database that wait on a lock.
async fn lock_waiters(h: &Harness) -> Vec<i32> {
    sqlx::query_scalar(
        "select pid from pg_stat_activity
         where datname = $1 and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
    )
    .bind(h.db.name())
    .fetch_all(h.pool())
    .await
    .unwrap()
}

/// Scenario 2: the commit of the exchanged code fails (its backend is terminated) and, while
/// the worker retries, a duplicate create_auth with the same AuthCode (another push, another
/// dedupe key) arrives. The duplicate must not send the code to WeCom again (which would answer
/// 40078 and get the code marked failed), and the retry must store the permanent code.
#[tokio::test]
async fn a_retried_commit_keeps_its_claim_on_the_code() {
    let h = Harness::start().await;
    let wecom = mock_wecom().await;
    // WeCom answers the first exchange; any second one is refused as a used code.
    Mock::given(method("POST"))
        .and(path(EXCHANGE_V2))
        .respond_with(ok(exchange_answer("wwretry")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE_V2))
        .respond_with(ok(
            serde_json::json!({"errcode": 40078, "errmsg": "invalid auth_code"}),
        ))
        .with_priority(2)
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path(AUTH_INFO_V2))
        .respond_with(ok(auth_info_answer("wwretry")))
        .mount(&wecom)
        .await;
    let worker = h.worker_on(&wecom.uri()).await;
    let now = Utc::now().timestamp();
    h.publish(&ticket(now)).await;

    // Hold the tenants table so the worker's write waits, then kill the waiting backend.
    let mut blocker = h.pool().begin().await.unwrap();
    sqlx::query("lock table tenants in access exclusive mode")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let event = create_auth("code-retry", now);
    h.publish(&event).await;
    let waiting = wait_for("the worker's commit waits on the lock", || async {
        let pids = lock_waiters(&h).await;
        (!pids.is_empty()).then_some(pids)
    })
    .await;
    for pid in waiting {
        sqlx::query("select pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut *blocker)
            .await
            .unwrap();
    }
    // The same AuthCode in a push with other text: another dedupe key.
    let other_text = event
        .to_xml()
        .replace("</xml>", "<ExtraInfo></ExtraInfo></xml>");
    h.publish_raw(&event, &other_text).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocker.commit().await.unwrap();

    let tenant = h
        .wait_tenant("wwretry", |t| t.status == TenantStatus::Active)
        .await;
    assert!(tenant.permanent_code_key_id.is_some());
    wait_until("both deliveries are settled", || async {
        messages_total(&worker.metrics, "create_auth", "acked") == 2
    })
    .await;
    let row = record(&h, "code-retry").await.unwrap();
    assert_eq!(row.state, AuthCodeState::Exchanged, "{row:?}");
    assert_eq!(row.superseded_failure, None, "nobody burnt it meanwhile");
    assert_eq!(calls(&wecom, EXCHANGE_V2).await, 1, "one exchange call");
    let failures = worker
        .metrics
        .auth_code_failures
        .with_label_values(&["create_auth", "burnt"])
        .get();
    assert_eq!(failures, 0);
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    h.close().await;
}

/// Scenario 3: an exchange answer with an optional field of an unexpected type still yields
/// the tenant and its permanent code.
#[tokio::test]
async fn an_exchange_answer_with_an_odd_optional_field_keeps_the_permanent_code() {
    let h = Harness::start().await;
    let wecom = mock_wecom().await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE_V2))
        .respond_with(ok(serde_json::json!({
            "errcode": 0, "errmsg": "ok",
            "permanent_code": "perm-odd",
            "auth_corp_info": {"corpid": "wwodd", "corp_name": "Odd", "corp_user_max": "200",
                               "verified_end_time": "never"},
            "auth_user_info": "not an object"
        })))
        .expect(1)
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path(AUTH_INFO_V2))
        .respond_with(ok(auth_info_answer("wwodd")))
        .mount(&wecom)
        .await;
    let worker = h.worker_on(&wecom.uri()).await;
    let now = Utc::now().timestamp();
    h.publish(&ticket(now)).await;
    h.publish(&create_auth("code-odd", now)).await;

    let tenant = h
        .wait_tenant("wwodd", |t| t.status == TenantStatus::Active)
        .await;
    assert!(tenant.permanent_code_key_id.is_some());
    assert_eq!(
        record(&h, "code-odd").await.unwrap().state,
        AuthCodeState::Exchanged
    );
    worker.stop().await;
    wecom.verify().await;
    h.close().await;
}

/// Scenario 4a: a code that keeps failing transiently is retried while it lives — every
/// attempt the consumer allows happens before its deadline, none is scheduled past it.
#[tokio::test]
async fn auth_code_retries_are_scheduled_within_the_codes_life() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Busy");
    let (event, _) = h.authorize(&corp);
    let Event::CreateAuth(mut create) = event else {
        unreachable!()
    };
    // Issued 9 minutes 30 seconds ago: 30 seconds left.
    create.timestamp = h.sim.clock.now_secs() - 570;
    h.sim.faults.set(FaultConfig {
        fault_rate: 1.0,
        fault_apis: vec![
            "service/v2/get_permanent_code".to_owned(),
            "service/get_permanent_code".to_owned(),
        ],
        ..FaultConfig::default()
    });
    h.publish(&Event::CreateAuth(create.clone())).await;
    let expires_at = chrono::DateTime::from_timestamp(create.timestamp + 600, 0).unwrap();

    // Five deliveries (the consumer's default), each with its inline retries.
    wait_until("the last attempt is made", || async {
        messages_total(&worker.metrics, "create_auth", "dead_lettered") == 1
    })
    .await;
    assert!(
        Utc::now() < expires_at,
        "all five attempts fit in the 30 seconds"
    );
    let row = record(&h, create.auth_code.expose()).await.unwrap();
    assert_eq!(row.attempts, 5);
    assert!(row.last_attempt_at.unwrap() < expires_at);
    assert_eq!(messages_total(&worker.metrics, "create_auth", "retried"), 4);
    // The sweep records the expiry as such once the deadline has passed.
    wait_for("the code is recorded expired", || async {
        record(&h, create.auth_code.expose())
            .await
            .filter(|r| r.state == AuthCodeState::Failed)
    })
    .await;
    let row = record(&h, create.auth_code.expose()).await.unwrap();
    assert!(row.failure_reason.unwrap().starts_with("expired"));
    worker.stop().await;
    h.close().await;
}

/// Scenario 4b: WeCom refuses a code (40078) that expired while the call was under way: it is
/// recorded as expired, not as a refusal.
#[tokio::test]
async fn a_code_refused_after_its_deadline_is_recorded_as_expired() {
    let h = Harness::start().await;
    let wecom = mock_wecom().await;
    Mock::given(method("POST"))
        .and(path(EXCHANGE_V2))
        .respond_with(
            ok(serde_json::json!({"errcode": 40078, "errmsg": "invalid auth_code"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&wecom)
        .await;
    let worker = h.worker_on(&wecom.uri()).await;
    let now = Utc::now().timestamp();
    h.publish(&ticket(now)).await;
    // About three seconds left when it is claimed; WeCom answers after five.
    h.publish(&create_auth("code-late", now - 597)).await;

    let row = wait_for("the code fails", || async {
        record(&h, "code-late")
            .await
            .filter(|r| r.state == AuthCodeState::Failed)
    })
    .await;
    assert!(row.failure_reason.unwrap().starts_with("expired"));
    let failures = |label| {
        worker
            .metrics
            .auth_code_failures
            .with_label_values(&["create_auth", label])
            .get()
    };
    assert_eq!((failures("expired"), failures("burnt")), (1, 0));
    worker.stop().await;
    h.close().await;
}

/// Scenario 8: an authentic create_auth whose `TimeStamp` is not a number reaches the auth
/// worker (the ingress routes it by the kind it announced) and its AuthCode is exchanged.
#[tokio::test]
async fn a_create_auth_that_does_not_fit_its_type_still_gets_its_code_exchanged() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Drifted");
    let (event, _) = h.authorize(&corp);
    let xml = event.to_xml().replace(
        &format!("<TimeStamp>{}", h.sim.clock.now_secs()),
        "<TimeStamp>x",
    );
    let drifted = Event::parse_or_unknown(&xml).unwrap();
    assert!(matches!(drifted, Event::Unknown(_)), "{drifted:?}");
    let envelope = h.publish_raw(&drifted, &xml).await;
    assert_eq!(envelope.routing_key(), "suite.create_auth");

    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    assert!(tenant.permanent_code_key_id.is_some());
    assert_eq!(h.exchange_calls(), 1);
    worker.stop().await;
    h.close().await;
}

/// Scenario 8b: any other auth event that does not fit its type is dead-lettered with its raw
/// XML, never dropped.
#[tokio::test]
async fn a_cancel_auth_that_does_not_fit_its_type_is_dead_lettered_with_its_xml() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let xml = format!(
        "<xml><SuiteId>{SUITE_ID}</SuiteId><InfoType>cancel_auth</InfoType>\
         <TimeStamp>1</TimeStamp></xml>"
    );
    let drifted = Event::parse_or_unknown(&xml).unwrap();
    h.publish_raw(&drifted, &xml).await;
    wait_until("dead-lettered", || async {
        messages_total(&worker.metrics, "cancel_auth", "dead_lettered") == 1
    })
    .await;
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.raw_xml.as_deref(), Some(xml.as_str()));
    assert!(dead[0].1.contains("AuthCorpId"), "{}", dead[0].1);
    worker.stop().await;
    h.close().await;
}

fn cancel_auth(corp: &str, timestamp: i64) -> Event {
    Event::CancelAuth(CancelAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp,
    })
}

/// Scenario 10: create_auth and cancel_auth with the same `TimeStamp`, in both orders: the
/// corp ends revoked without a secret; only a create_auth of a later second re-activates it.
#[tokio::test]
async fn revocation_wins_within_one_second_whatever_the_order() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;

    // Order 1: the authorization first, then the revocation of the same second.
    let first = h.corp("CreateThenCancel");
    let (event, _) = h.authorize(&first);
    let second_of = event.wecom_time().unwrap();
    h.publish(&event).await;
    h.wait_tenant(&first, |t| t.status == TenantStatus::Active)
        .await;
    h.publish(&cancel_auth(&first, second_of)).await;
    let tenant = h
        .wait_tenant(&first, |t| t.status == TenantStatus::Revoked)
        .await;
    assert!(tenant.permanent_code_key_id.is_none());

    // Order 2: the revocation is processed first.
    let other = h.corp("CancelThenCreate");
    let (event, _) = h.authorize(&other);
    let Event::CreateAuth(create) = &event else {
        unreachable!()
    };
    h.publish(&cancel_auth(&other, create.timestamp)).await;
    h.wait_tenant(&other, |t| t.status == TenantStatus::Revoked)
        .await;
    h.publish(&event).await;
    let row = wait_for("the create_auth is settled", || async {
        record(&h, create.auth_code.expose())
            .await
            .filter(|r| r.state != AuthCodeState::Received)
    })
    .await;
    assert_eq!(row.state, AuthCodeState::Exchanged);
    let tenant = h.tenant(&other).await.unwrap();
    assert_eq!(tenant.status, TenantStatus::Revoked);
    assert!(tenant.permanent_code_key_id.is_none(), "no secret is kept");

    // A reinstall one second later is proven by its newer TimeStamp.
    h.sim
        .cancel(
            &test_support::corp(&other),
            Some(&common::suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    let (again, _) = h.authorize(&other);
    let Event::CreateAuth(mut again) = again else {
        unreachable!()
    };
    again.timestamp = create.timestamp + 1;
    h.publish(&Event::CreateAuth(again)).await;
    h.wait_tenant(&other, |t| t.status == TenantStatus::Active)
        .await;
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    h.close().await;
}

/// Scenario 11: the app is disabled and enabled within one second; WeCom sends two identical
/// change_auth pushes. The second is not skipped as a duplicate: the tenant ends active.
#[tokio::test]
async fn identical_change_auth_pushes_each_settle_the_tenant() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Flip").await;
    let change = Event::ChangeAuth(ChangeAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
        state: None,
        extra_info: None,
    });
    let xml = change.to_xml();

    h.sim
        .disable(
            &test_support::corp(&corp),
            Some(&common::suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    h.publish_raw(&change, &xml).await;
    h.wait_tenant(&corp, |t| t.status == TenantStatus::Suspended)
        .await;
    h.sim
        .enable(
            &test_support::corp(&corp),
            Some(&common::suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    let second = h.publish_raw(&change, &xml).await;
    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    assert!(tenant.permanent_code_key_id.is_some());
    assert_eq!(
        second.dedupe_key.as_str(),
        bus::Envelope::from_json(&second.to_json().unwrap())
            .unwrap()
            .dedupe_key
            .as_str()
    );
    wait_until("both are acked", || async {
        messages_total(&worker.metrics, "change_auth", "acked") == 2
    })
    .await;
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    h.close().await;
}
