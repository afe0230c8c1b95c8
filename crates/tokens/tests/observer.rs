//! The metrics hook of the token service: every refresh attempt is reported once, with its kind
//! and whether a fresh token was had; cache hits, a refresh another replica made and tenants
//! that get no WeCom call are not attempts (real Postgres, a wiremock WeCom).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use chrono::Utc;
use secrecy::SecretString;
use serde_json::json;
use store::suites::{NewTicket, store_ticket};
use store::tenants::{TenantStatus, set_tenant_status};
use store::testing::TestDatabase;
use store::{CorpId, SuiteId};
use tokens::{RefreshKind, RefreshObserver, TicketKind, TokenError, TokenService};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PERMANENT_CODE: &str = "PERM-CODE-OBS";

/// Every (kind, outcome) reported, `ok` or the error's class.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(RefreshKind, String)>>);

impl RefreshObserver for Recorder {
    fn refreshed(&self, kind: RefreshKind, outcome: Result<(), &TokenError>) {
        let outcome = outcome.map_or_else(|e| e.class().as_str(), |()| "ok");
        self.0.lock().unwrap().push((kind, outcome.to_owned()));
    }
}

impl Recorder {
    fn take(&self) -> Vec<(RefreshKind, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn seen(kind: RefreshKind, outcome: &str) -> (RefreshKind, String) {
    (kind, outcome.to_owned())
}

fn answer(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

struct Setup {
    db: TestDatabase,
    server: MockServer,
    suite: SuiteId,
    corp: CorpId,
    recorder: Arc<Recorder>,
    tokens: TokenService,
}

async fn setup() -> Setup {
    let db = test_support::test_db().await;
    let (suite, corp) = (test_support::suite("dk-obs"), test_support::corp("ww-obs"));
    test_support::active_tenant(
        db.pool(),
        &test_support::secrets(),
        &suite,
        &corp,
        PERMANENT_CODE,
    )
    .await;
    let server = MockServer::start().await;
    let recorder = Arc::new(Recorder::default());
    let tokens = TokenService::new(
        db.new_pool().await.unwrap(),
        common::wecom_client(&server.uri()),
        test_support::secrets(),
    )
    .with_observer(recorder.clone());
    Setup {
        db,
        server,
        suite,
        corp,
        recorder,
        tokens,
    }
}

impl Setup {
    async fn finish(self) {
        self.server.verify().await;
        self.db.drop_database().await.unwrap();
    }
}

#[tokio::test]
async fn corp_token_refreshes_are_reported_ok_and_failed_but_cache_hits_are_not() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(answer(json!({
            "errcode": 0, "errmsg": "ok", "access_token": "CORP-T1", "expires_in": 7200
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(answer(json!({"errcode": -1, "errmsg": "system busy"})))
        .expect(2)
        .mount(&s.server)
        .await;

    s.tokens.corp_token(&s.suite, &s.corp).await.unwrap();
    s.tokens.corp_token(&s.suite, &s.corp).await.unwrap(); // a cache hit
    assert_eq!(s.recorder.take(), [seen(RefreshKind::Corp, "ok")]);

    // Due for refresh but still valid: WeCom is busy, the cached token is handed out, and the
    // failed refresh is reported all the same (the alert must not wait for the expiry).
    sqlx::query(
        "update corp_tokens set refreshed_at = now() - interval '110 minutes',
                                expires_at = now() + interval '10 minutes'",
    )
    .execute(s.db.pool())
    .await
    .unwrap();
    let kept = s.tokens.corp_token(&s.suite, &s.corp).await.unwrap();
    assert_eq!(kept.expose(), "CORP-T1");
    assert_eq!(s.recorder.take(), [seen(RefreshKind::Corp, "retryable")]);

    // Expired and WeCom still busy: the caller gets the error too.
    sqlx::query(
        "update corp_tokens set refreshed_at = now() - interval '3 hours',
                                expires_at = now() - interval '1 hour'",
    )
    .execute(s.db.pool())
    .await
    .unwrap();
    s.tokens.corp_token(&s.suite, &s.corp).await.unwrap_err();
    assert_eq!(s.recorder.take(), [seen(RefreshKind::Corp, "retryable")]);

    // A suspended tenant gets no WeCom call: no refresh attempt to report.
    let mut conn = s.db.pool().acquire().await.unwrap();
    set_tenant_status(
        &mut conn,
        &s.suite,
        &s.corp,
        TenantStatus::Suspended,
        1_900_000_000,
    )
    .await
    .unwrap();
    drop(conn);
    s.tokens.corp_token(&s.suite, &s.corp).await.unwrap_err();
    assert_eq!(s.recorder.take(), []);
    s.finish().await;
}

#[tokio::test]
async fn suite_token_refreshes_without_and_with_a_ticket_are_reported() {
    let s = setup().await;
    let secret = SecretString::from("SUITE-SECRET".to_owned());
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_suite_token"))
        .respond_with(answer(
            json!({"suite_access_token": "SUITE-T1", "expires_in": 7200}),
        ))
        .expect(1)
        .mount(&s.server)
        .await;

    // No ticket stored: the suite token cannot be refreshed.
    let err = s.tokens.suite_token(&s.suite, &secret).await.unwrap_err();
    assert!(matches!(err, TokenError::NoSuiteTicket(_)), "{err:?}");
    assert_eq!(s.recorder.take(), [seen(RefreshKind::Suite, "retryable")]);

    let mut conn = s.db.pool().acquire().await.unwrap();
    let push = NewTicket {
        suite_id: &s.suite,
        ticket: "TICKET",
        wecom_time: 1,
        received_at: Utc::now(),
    };
    store_ticket(&mut conn, &test_support::secrets(), &push)
        .await
        .unwrap();
    drop(conn);
    s.tokens.suite_token(&s.suite, &secret).await.unwrap();
    s.tokens.suite_token(&s.suite, &secret).await.unwrap(); // a cache hit
    assert_eq!(s.recorder.take(), [seen(RefreshKind::Suite, "ok")]);
    s.finish().await;
}

#[tokio::test]
async fn js_sdk_ticket_refreshes_are_reported_by_kind() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(answer(json!({
            "errcode": 0, "errmsg": "ok", "access_token": "CORP-T1", "expires_in": 7200
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/get_jsapi_ticket"))
        .respond_with(answer(json!({
            "errcode": 0, "errmsg": "ok", "ticket": "JSAPI-T", "expires_in": 7200
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/ticket/get"))
        .and(query_param("type", "agent_config"))
        .respond_with(answer(json!({"errcode": 48002, "errmsg": "api forbidden"})))
        .expect(1)
        .mount(&s.server)
        .await;

    s.tokens
        .jsapi_ticket(&s.suite, &s.corp, TicketKind::Corp)
        .await
        .unwrap();
    s.tokens
        .jsapi_ticket(&s.suite, &s.corp, TicketKind::Corp)
        .await
        .unwrap(); // a cache hit
    s.tokens
        .jsapi_ticket(&s.suite, &s.corp, TicketKind::Agent)
        .await
        .unwrap_err();
    assert_eq!(
        s.recorder.take(),
        [
            seen(RefreshKind::Corp, "ok"),
            seen(RefreshKind::Jsapi, "ok"),
            seen(RefreshKind::AgentConfig, "permanent"),
        ]
    );
    assert_eq!(RefreshKind::AgentConfig.as_str(), "agent_config");
    assert_eq!(RefreshKind::Jsapi.as_str(), "jsapi");
    s.finish().await;
}
