#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Each event kind end to end: an envelope published to `wecom.events` as the ingress publishes
//! it, consumed by real auth-worker replicas, rows in Postgres, calls on the simulated WeCom,
//! `internal.tenant.*` events on `wecom.contacts`.

mod common;

use bus::{Payload, TenantEvent, TenantStatus as BusStatus};
use common::{Harness, SUITE_ID, messages_total, suite_id};
use secrecy::ExposeSecret as _;
use store::tenants::TenantStatus;
use test_support::{wait_for, wait_until};
use wecom::event::{CancelAuth, ChangeAuth, Event, ResetPermanentCode, SuiteTicket};
use wecom_sim::{Scope, ScopeChange};

#[tokio::test]
async fn suite_ticket_is_stored_and_an_older_one_never_replaces_it() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let ticket = |value: &str, timestamp| {
        Event::SuiteTicket(SuiteTicket {
            suite_id: SUITE_ID.parse().unwrap(),
            suite_ticket: value.parse().unwrap(),
            timestamp,
        })
    };

    h.publish(&ticket("newer", 1_700_000_600)).await;
    wait_until("the newer ticket is counted", || async {
        messages_total(&worker.metrics, "suite_ticket", "acked") == 1
    })
    .await;
    h.publish(&ticket("older", 1_700_000_000)).await;
    wait_until("the older ticket is handled", || async {
        messages_total(&worker.metrics, "suite_ticket", "acked") == 2
    })
    .await;

    let mut conn = h.pool().acquire().await.unwrap();
    let stored = store::suites::ticket(&mut conn, &h.secrets, &suite_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.ticket.expose_secret(), "newer");
    assert_eq!(stored.wecom_time.timestamp(), 1_700_000_600);
    let ignored = worker
        .metrics
        .tickets
        .with_label_values(&[SUITE_ID, "ignored_older"])
        .get();
    assert_eq!(ignored, 1);
    // The ticket is sealed: the plaintext is in no column.
    let raw: String = sqlx::query_scalar("select row_to_json(s)::text from suites s")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(!raw.contains("newer"), "{raw}");
    drop(conn);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn create_auth_activates_the_tenant_and_publishes_tenant_activated() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Acme");
    let (event, agent_id) = h.authorize(&corp);
    let envelope = h.publish(&event).await;

    // The permanent code is committed first; the auth info (agent id) follows at once.
    let tenant = h
        .wait_tenant(&corp, |t| {
            t.status == TenantStatus::Active && t.auth_info.is_some()
        })
        .await;
    assert_eq!(tenant.corp_name.as_deref(), Some("Acme"));
    assert_eq!(tenant.agent_id, Some(agent_id));
    assert!(tenant.permanent_code_key_id.is_some());
    let info = tenant.auth_info.unwrap().to_string();
    assert!(info.contains(&corp) && info.contains("privilege"), "{info}");

    let Event::CreateAuth(create) = &event else {
        unreachable!()
    };
    let mut conn = h.pool().acquire().await.unwrap();
    let code = store::auth_codes::auth_code(
        &mut conn,
        &store::auth_codes::AuthCodeHash::of(create.auth_code.expose()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(code.state, store::auth_codes::AuthCodeState::Exchanged);
    assert_eq!(code.corp_id.unwrap().as_str(), corp);
    drop(conn);

    let activated = h.wait_internal("tenant.activated").await;
    assert_eq!(
        activated.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
        Some(corp.as_str())
    );
    let Payload::Tenant(TenantEvent::Activated(t)) = activated.payload else {
        panic!("{activated:?}")
    };
    assert_eq!(t.status, BusStatus::Active);
    assert_eq!(t.agent_id, Some(agent_id));
    assert_eq!(
        activated.dedupe_key,
        bus::Envelope::internal(
            TenantEvent::Activated(t),
            &format!("{}:Active", envelope.dedupe_key.as_str())
        )
        .dedupe_key
    );
    assert_eq!(h.exchange_calls(), 1);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn the_same_create_auth_delivered_three_times_is_exchanged_once() {
    let h = Harness::start().await;
    // Two replicas compete for the copies.
    let a = h.worker().await;
    let b = h.worker().await;
    h.deliver_ticket().await;
    let corp = h.corp("Thrice");
    let (event, _) = h.authorize(&corp);
    let xml = event.to_xml();
    for _ in 0..3 {
        h.publish_raw(&event, &xml).await;
    }

    h.wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    wait_until("all three copies are acked", || async {
        messages_total(&a.metrics, "create_auth", "acked")
            + messages_total(&b.metrics, "create_auth", "acked")
            == 3
    })
    .await;
    assert_eq!(h.exchange_calls(), 1, "one get_permanent_code call");
    assert_eq!(h.sim.stats.snapshot().auth_codes.consumed, 1);
    assert_eq!(h.sim.stats.snapshot().auth_codes.rejected, 0);
    let tenants: i64 = sqlx::query_scalar("select count(*) from tenants")
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(tenants, 1);
    a.stop().await;
    b.stop().await;
    h.close().await;
}

#[tokio::test]
async fn reset_permanent_code_rotates_the_secret_and_drops_the_cached_corp_token() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, before) = h.active_tenant("Rotating").await;
    let corp_id = store::CorpId::parse(corp.clone()).unwrap();
    let tokens = h.token_service().await;
    tokens.corp_token(&suite_id(), &corp_id).await.unwrap();
    assert_eq!(count(&h, "corp_tokens").await, 1);

    let (granted, _) = h
        .sim
        .reset_secret(
            &test_support::corp(&corp),
            Some(&suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    let reset = Event::ResetPermanentCode(ResetPermanentCode {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_code: granted.auth_code.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
    });
    h.publish(&reset).await;

    let after = h
        .wait_tenant(&corp, |t| {
            t.permanent_code_updated_at > before.permanent_code_updated_at
        })
        .await;
    assert_eq!(after.status, TenantStatus::Active);
    assert_eq!(count(&h, "corp_tokens").await, 0, "cached token dropped");
    // The stored secret is the new one: gettoken with it works (the old one answers 40001).
    let gettoken_before = h.api_calls("gettoken");
    tokens.corp_token(&suite_id(), &corp_id).await.unwrap();
    assert_eq!(h.api_calls("gettoken"), gettoken_before + 1);
    let mut conn = h.pool().acquire().await.unwrap();
    let stored = store::tenants::permanent_code(&mut conn, &h.secrets, &suite_id(), &corp_id)
        .await
        .unwrap();
    assert_eq!(stored.expose_secret(), h.permanent_code(&corp));
    drop(conn);
    assert_eq!(h.exchange_calls(), 2);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn change_auth_rereads_the_scope_and_publishes_tenant_changed() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Scoped").await;
    h.wait_internal("tenant.activated").await;

    let scope: Scope = serde_json::from_value(serde_json::json!({"departments": [2]})).unwrap();
    h.sim
        .change_scope(
            &test_support::corp(&corp),
            Some(&suite_id()),
            ScopeChange {
                scope: Some(scope),
                permissions: None,
            },
            common::NO_PUSH,
        )
        .unwrap();
    let change = Event::ChangeAuth(ChangeAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
        state: None,
        extra_info: None,
    });
    h.publish(&change).await;

    let changed = h.wait_internal("tenant.changed").await;
    let Payload::Tenant(TenantEvent::Changed(t)) = changed.payload else {
        panic!("{changed:?}")
    };
    assert_eq!(t.status, BusStatus::Active);
    let tenant = h.tenant(&corp).await.unwrap();
    let privilege = &tenant.auth_info.unwrap()["auth_info"]["agent"][0]["privilege"];
    assert_eq!(
        privilege["allow_party"],
        serde_json::json!([2]),
        "{privilege}"
    );
    assert_eq!(tenant.status, TenantStatus::Active);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn change_auth_suspends_a_tenant_whose_app_wecom_refuses() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Gone").await;
    // The app is removed in WeCom, but the cancel_auth push is lost: the next change_auth finds
    // WeCom refusing the tenant's secret.
    h.sim
        .cancel(
            &test_support::corp(&corp),
            Some(&suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    let change = Event::ChangeAuth(ChangeAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
        state: None,
        extra_info: None,
    });
    h.publish(&change).await;

    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Suspended)
        .await;
    assert!(
        tenant.permanent_code_key_id.is_some(),
        "suspension keeps the secret"
    );
    let changed = h.wait_internal("tenant.changed").await;
    let Payload::Tenant(TenantEvent::Changed(t)) = changed.payload else {
        panic!("{changed:?}")
    };
    assert_eq!(t.status, BusStatus::Suspended);
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn change_auth_follows_the_app_being_disabled_and_enabled_again() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Switching").await;
    h.wait_internal("tenant.activated").await;
    let change_auth = |timestamp| {
        Event::ChangeAuth(ChangeAuth {
            suite_id: SUITE_ID.parse().unwrap(),
            auth_corp_id: corp.parse().unwrap(),
            timestamp,
            state: None,
            extra_info: None,
        })
    };

    // The admin disables the app: agent/get answers close=1, the directory APIs 50003.
    h.sim
        .disable(
            &test_support::corp(&corp),
            Some(&suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    h.publish(&change_auth(h.sim.clock.now_secs() + 1)).await;
    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Suspended)
        .await;
    assert!(
        tenant.permanent_code_key_id.is_some(),
        "suspension keeps the secret"
    );
    let changed = h.wait_internal("tenant.changed").await;
    assert_eq!(
        changed.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
        Some(corp.as_str())
    );
    let Payload::Tenant(TenantEvent::Changed(t)) = changed.payload else {
        panic!("{changed:?}")
    };
    assert_eq!(t.status, BusStatus::Suspended);
    // WeCom told it through agent/get's close=1, not through a refusal (gettoken and
    // get_auth_info keep working for a disabled app).
    assert!(h.api_calls("agent/get") >= 1);
    assert_eq!(h.sim.stats.snapshot().errcodes.get("50003"), None);

    // Re-enabled: the next change_auth brings the tenant back.
    h.sim
        .enable(
            &test_support::corp(&corp),
            Some(&suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    h.publish(&change_auth(h.sim.clock.now_secs() + 2)).await;
    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Active)
        .await;
    assert!(tenant.permanent_code_key_id.is_some());
    let changed = h.wait_internal("tenant.changed").await;
    let Payload::Tenant(TenantEvent::Changed(t)) = changed.payload else {
        panic!("{changed:?}")
    };
    assert_eq!(t.status, BusStatus::Active);
    // The active tenant gets corp tokens again.
    h.token_service()
        .await
        .corp_token(&suite_id(), &store::CorpId::parse(corp.clone()).unwrap())
        .await
        .unwrap();
    wait_until("both change_auth messages are acked", || async {
        messages_total(&worker.metrics, "change_auth", "acked") == 2
    })
    .await;
    assert!(h.dead_letters().await.is_empty());
    worker.stop().await;
    h.close().await;
}

#[tokio::test]
async fn cancel_auth_revokes_the_tenant_and_deletes_its_secret_and_tokens() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Leaving").await;
    let corp_id = store::CorpId::parse(corp.clone()).unwrap();
    h.token_service()
        .await
        .corp_token(&suite_id(), &corp_id)
        .await
        .unwrap();
    assert_eq!(count(&h, "corp_tokens").await, 1);

    h.sim
        .cancel(
            &test_support::corp(&corp),
            Some(&suite_id()),
            common::NO_PUSH,
        )
        .unwrap();
    let cancel = Event::CancelAuth(CancelAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 1,
    });
    h.publish(&cancel).await;

    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Revoked)
        .await;
    assert!(tenant.revoked_at.is_some());
    assert!(tenant.permanent_code_key_id.is_none());
    let (secrets_left,): (i64,) = sqlx::query_as(
        "select count(*) from tenants where permanent_code_ciphertext is not null
            or permanent_code_nonce is not null",
    )
    .fetch_one(h.pool())
    .await
    .unwrap();
    assert_eq!(secrets_left, 0);
    assert_eq!(count(&h, "corp_tokens").await, 0);
    let revoked = wait_for("tenant.revoked", || async {
        h.next_internal()
            .await
            .filter(|e| e.kind == "tenant.revoked")
    })
    .await;
    assert_eq!(
        revoked.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
        Some(corp.as_str())
    );
    // No WeCom call is needed to revoke, and none is made for the tenant afterwards.
    let err = h
        .token_service()
        .await
        .corp_token(&suite_id(), &corp_id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, tokens::TokenError::TenantNotActive { .. }),
        "{err}"
    );
    worker.stop().await;
    h.close().await;
}

async fn count(h: &Harness, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(h.pool())
        .await
        .unwrap()
}
