//! The token service against a WeCom double (wiremock with counted expectations): one refresh
//! across replicas, compare-and-delete invalidation (docs/architecture.md §4.4), `gettoken` with
//! corpid + permanent code (docs/wecom.md §4.4), and the stored ticket across restarts
//! (docs/architecture.md §4.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::json;
use store::suites::{NewTicket, store_ticket};
use store::tenants::{TenantStatus, revoke_tenant, set_tenant_status};
use store::testing::TestDatabase;
use store::{CorpId, SuiteId};
use tokens::{TokenError, TokenService};
use wecom::api::{ApiError, ErrorClass};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PERMANENT_CODE: &str = "PERM-CODE-1";

fn gettoken_ok(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200
    }))
}

fn wecom_error(code: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"errcode": code, "errmsg": "test"}))
}

fn gettoken(corp: &str) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .and(query_param("corpid", corp))
        .and(query_param("corpsecret", PERMANENT_CODE))
}

struct Setup {
    db: TestDatabase,
    server: MockServer,
    suite: SuiteId,
    corp: CorpId,
}

async fn setup() -> Setup {
    let db = test_support::test_db().await;
    let (suite, corp) = (test_support::suite("dk-tok"), test_support::corp("ww-tok"));
    test_support::active_tenant(
        db.pool(),
        &test_support::secrets(),
        &suite,
        &corp,
        PERMANENT_CODE,
    )
    .await;
    Setup {
        db,
        server: MockServer::start().await,
        suite,
        corp,
    }
}

impl Setup {
    /// A "replica": its own pool and its own service instance.
    async fn replica(&self) -> TokenService {
        let pool = self.db.new_pool().await.unwrap();
        TokenService::new(
            pool,
            common::wecom_client(&self.server.uri()),
            test_support::secrets(),
        )
    }

    async fn finish(self) {
        self.server.verify().await;
        self.db.drop_database().await.unwrap();
    }
}

#[tokio::test]
async fn two_replicas_needing_a_corp_token_make_exactly_one_gettoken_call() {
    let s = setup().await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("CORP-T1"))
        .expect(1)
        .mount(&s.server)
        .await;
    let (a, b) = (s.replica().await, s.replica().await);

    // Hold the tenant row so both replicas pass the cache check and queue on the refresh lock.
    let mut blocker = s.db.pool().begin().await.unwrap();
    sqlx::query("select 1 from tenants where suite_id = $1 and corp_id = $2 for update")
        .bind(&s.suite)
        .bind(&s.corp)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let task = |svc: TokenService, suite: SuiteId, corp: CorpId| {
        tokio::spawn(async move { svc.corp_token(&suite, &corp).await })
    };
    let ta = task(a, s.suite.clone(), s.corp.clone());
    let tb = task(b, s.suite.clone(), s.corp.clone());
    test_support::wait_until("both replicas to queue on the tenant row lock", || {
        let pool = s.db.pool().clone();
        let name = s.db.name().to_owned();
        async move { test_support::lock_waiters(&pool, &name).await >= 2 }
    })
    .await;
    blocker.commit().await.unwrap();

    let (ta, tb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    assert_eq!(ta.expose(), "CORP-T1");
    assert_eq!(tb.expose(), "CORP-T1");
    s.finish().await; // exactly one gettoken
}

#[tokio::test]
async fn a_late_invalid_token_error_leaves_the_refreshed_token_in_place() {
    let s = setup().await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("CORP-OLD"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&s.server)
        .await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("CORP-NEW"))
        .expect(1)
        .mount(&s.server)
        .await;
    let svc = s.replica().await;
    let old = svc.corp_token(&s.suite, &s.corp).await.unwrap();
    assert_eq!(old.expose(), "CORP-OLD");

    // replica A sees 40014 for the old token, invalidates it and refreshes
    assert!(
        svc.invalidate_corp_token(&s.suite, &s.corp, &old)
            .await
            .unwrap()
    );
    let new = svc.corp_token(&s.suite, &s.corp).await.unwrap();
    assert_eq!(new.expose(), "CORP-NEW");

    // replica B's 40014 for the *old* token arrives late: the new token stays
    assert!(
        !svc.invalidate_corp_token(&s.suite, &s.corp, &old)
            .await
            .unwrap()
    );
    let still = svc.corp_token(&s.suite, &s.corp).await.unwrap();
    assert_eq!(still.expose(), "CORP-NEW");
    s.finish().await; // exactly two gettoken calls
}

#[tokio::test]
async fn with_corp_token_refreshes_once_on_40014_and_retries_the_call() {
    let s = setup().await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("CORP-OLD"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&s.server)
        .await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("CORP-NEW"))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(path("/cgi-bin/user/get"))
        .and(query_param("access_token", "CORP-OLD"))
        .respond_with(wecom_error(40014))
        .expect(2)
        .mount(&s.server)
        .await;
    Mock::given(path("/cgi-bin/user/get"))
        .and(query_param("access_token", "CORP-NEW"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errcode": 0, "errmsg": "ok", "userid": "zhangsan", "department": [1]
        })))
        .expect(2)
        .mount(&s.server)
        .await;

    let (a, b) = (s.replica().await, s.replica().await);
    assert_eq!(
        a.corp_token(&s.suite, &s.corp).await.unwrap().expose(),
        "CORP-OLD"
    );

    // Replica B starts a call with the old token and is held just before it reaches WeCom.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<String>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (suite, corp) = (s.suite.clone(), s.corp.clone());
    let b_task = tokio::spawn(async move {
        let client = b.client().clone();
        let mut gate = Some((started_tx, go_rx));
        b.with_corp_token(&suite, &corp, move |token: tokens::Token| {
            let client = client.clone();
            let gate = gate.take();
            async move {
                if let Some((started, go)) = gate {
                    let _ = started.send(token.expose().to_owned());
                    let _ = go.await;
                }
                client
                    .user_get(token.expose(), &"zhangsan".parse().unwrap())
                    .await
            }
        })
        .await
    });
    assert_eq!(started_rx.await.unwrap(), "CORP-OLD");

    // Replica A gets 40014, invalidates the old token, refreshes, retries: success.
    let client = a.client().clone();
    let user = a
        .with_corp_token(&s.suite, &s.corp, |token| {
            let client = client.clone();
            async move {
                client
                    .user_get(token.expose(), &"zhangsan".parse().unwrap())
                    .await
            }
        })
        .await
        .unwrap();
    assert_eq!(user.userid, "zhangsan");

    // B's late 40014 for the old token must not drop A's new one: B retries with it.
    go_tx.send(()).unwrap();
    let user = b_task.await.unwrap().unwrap();
    assert_eq!(user.userid, "zhangsan");
    s.finish().await; // gettoken twice in total, never a third time
}

#[tokio::test]
async fn tenants_that_are_not_active_get_no_wecom_call() {
    let s = setup().await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("never"))
        .expect(0)
        .mount(&s.server)
        .await;
    let svc = s.replica().await;
    let mut conn = s.db.pool().acquire().await.unwrap();
    set_tenant_status(
        &mut conn,
        &s.suite,
        &s.corp,
        TenantStatus::Suspended,
        1_800_000_000,
    )
    .await
    .unwrap();
    let err = svc.corp_token(&s.suite, &s.corp).await.unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::TenantNotActive {
                status: TenantStatus::Suspended,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::TenantBroken);
    assert!(err.to_string().contains("suspended"), "{err}");

    revoke_tenant(&mut conn, &s.suite, &s.corp, 1_800_000_100)
        .await
        .unwrap();
    let err = svc.corp_token(&s.suite, &s.corp).await.unwrap_err();
    assert!(matches!(
        err,
        TokenError::TenantNotActive {
            status: TenantStatus::Revoked,
            ..
        }
    ));

    let err = svc
        .corp_token(&s.suite, &test_support::corp("ww-unknown"))
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::UnknownTenant { .. }), "{err:?}");
    drop(conn);
    s.finish().await;
}

#[tokio::test]
async fn a_token_is_refreshed_at_ninety_percent_and_kept_while_wecom_is_down() {
    let s = setup().await;
    gettoken(s.corp.as_str())
        .respond_with(gettoken_ok("CORP-T1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&s.server)
        .await;
    gettoken(s.corp.as_str())
        .respond_with(wecom_error(-1))
        .expect(2)
        .mount(&s.server)
        .await;
    let svc = s.replica().await;
    assert_eq!(
        svc.corp_token(&s.suite, &s.corp).await.unwrap().expose(),
        "CORP-T1"
    );
    // cached and fresh: no call
    assert_eq!(
        svc.corp_token(&s.suite, &s.corp).await.unwrap().expose(),
        "CORP-T1"
    );

    // age it past 90 % of its life (still valid for 10 minutes): refresh is attempted, fails
    // with -1, and the still-valid token is used
    sqlx::query(
        "update corp_tokens set refreshed_at = now() - interval '110 minutes',
                                expires_at = now() + interval '10 minutes'",
    )
    .execute(s.db.pool())
    .await
    .unwrap();
    assert_eq!(
        svc.corp_token(&s.suite, &s.corp).await.unwrap().expose(),
        "CORP-T1"
    );

    // expired and WeCom still down: a retryable fetch error
    sqlx::query(
        "update corp_tokens set refreshed_at = now() - interval '3 hours',
                                expires_at = now() - interval '1 hour'",
    )
    .execute(s.db.pool())
    .await
    .unwrap();
    let err = svc.corp_token(&s.suite, &s.corp).await.unwrap_err();
    assert!(
        matches!(err, TokenError::Fetch { kind: "corp", .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(err.api_error().and_then(ApiError::code), Some(-1));
    s.finish().await;
}

#[tokio::test]
async fn the_suite_token_uses_the_newest_stored_ticket_and_survives_a_restart() {
    let s = setup().await;
    let secret = SecretString::from("SUITE-SECRET".to_owned());
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_suite_token"))
        .and(body_json(json!({
            "suite_id": "dk-tok", "suite_secret": "SUITE-SECRET", "suite_ticket": "TICKET-NEW"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "suite_access_token": "SUITE-T1", "expires_in": 7200
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    let svc = s.replica().await;
    let err = svc.suite_token(&s.suite, &secret).await.unwrap_err();
    assert!(matches!(err, TokenError::NoSuiteTicket(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable);

    {
        let mut conn = s.db.pool().acquire().await.unwrap();
        let secrets = test_support::secrets();
        for (ticket, ts) in [("TICKET-NEW", 2_000), ("TICKET-OLD", 1_000)] {
            let push = NewTicket {
                suite_id: &s.suite,
                ticket,
                wecom_time: ts,
                received_at: Utc::now(),
            };
            store_ticket(&mut conn, &secrets, &push).await.unwrap();
        }
    }
    assert_eq!(
        svc.suite_token(&s.suite, &secret).await.unwrap().expose(),
        "SUITE-T1"
    );

    // a restarted worker (new pool, new service) finds the cached token: no second call
    let restarted = s.replica().await;
    assert_eq!(
        restarted
            .suite_token(&s.suite, &secret)
            .await
            .unwrap()
            .expose(),
        "SUITE-T1"
    );
    s.finish().await;
}

#[tokio::test]
async fn two_replicas_needing_the_suite_token_make_one_call_and_42009_retries_once() {
    let s = setup().await;
    let secret = SecretString::from("SUITE-SECRET".to_owned());
    {
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
    }
    let suite_token = |token: &str| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"suite_access_token": token, "expires_in": 7200}))
    };
    Mock::given(path("/cgi-bin/service/get_suite_token"))
        .respond_with(suite_token("SUITE-OLD"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(path("/cgi-bin/service/get_suite_token"))
        .respond_with(suite_token("SUITE-NEW"))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(path("/cgi-bin/service/v2/get_permanent_code"))
        .and(query_param("suite_access_token", "SUITE-OLD"))
        .respond_with(wecom_error(42009))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(path("/cgi-bin/service/v2/get_permanent_code"))
        .and(query_param("suite_access_token", "SUITE-NEW"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errcode": 0, "errmsg": "ok", "permanent_code": "P",
            "auth_corp_info": {"corpid": "ww-x", "corp_name": "X"}
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    let (a, b) = (s.replica().await, s.replica().await);
    let mut blocker = s.db.pool().begin().await.unwrap();
    sqlx::query("select 1 from suites where suite_id = $1 for update")
        .bind(&s.suite)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let task = |svc: TokenService, suite: SuiteId, secret: SecretString| {
        tokio::spawn(async move { svc.suite_token(&suite, &secret).await })
    };
    let ta = task(a.clone(), s.suite.clone(), secret.clone());
    let tb = task(b, s.suite.clone(), secret.clone());
    test_support::wait_until("both replicas to queue on the suite row lock", || {
        let pool = s.db.pool().clone();
        let name = s.db.name().to_owned();
        async move { test_support::lock_waiters(&pool, &name).await >= 2 }
    })
    .await;
    blocker.commit().await.unwrap();
    assert_eq!(ta.await.unwrap().unwrap().expose(), "SUITE-OLD");
    assert_eq!(tb.await.unwrap().unwrap().expose(), "SUITE-OLD");

    let client = a.client().clone();
    let answer = a
        .with_suite_token(&s.suite, &secret, |token| {
            let client = client.clone();
            async move { client.get_permanent_code_v2(token.expose(), "AUTH").await }
        })
        .await
        .unwrap();
    assert_eq!(answer.auth_corp_info.corpid, "ww-x");
    s.finish().await;
}
