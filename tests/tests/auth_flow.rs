//! The authorization lifecycle through real callbacks: wecom-sim encrypts and POSTs each push
//! to the ingress over HTTP, exactly as WeCom does; the ingress verifies, decrypts, publishes
//! with confirms and answers `success`; the auth worker consumes, calls the simulator's APIs and
//! writes Postgres.

use bus::{Payload, TenantEvent};
use daikai_tests::{PUSH_AND_WAIT, SUITE_ID, Stack, delivered};
use store::tenants::TenantStatus;
use wecom_sim::{Scope, ScopeChange};

#[tokio::test]
async fn a_create_auth_pushed_through_the_ingress_produces_an_active_tenant() {
    let stack = Stack::start().await;
    stack.push_ticket().await;
    let corp = stack.create_corp("端到端企业");

    let (agent_id, reports) = stack.authorize(&corp).await;
    assert!(
        reports.iter().all(|r| r.delivered && r.attempts == 1),
        "the ingress answered success at once: {reports:?}"
    );

    let tenant = stack
        .wait_tenant(&corp, |t| {
            // Active with its auth info: the exchange and the get_auth_info that follows it.
            t.status == TenantStatus::Active && t.auth_info.is_some()
        })
        .await;
    assert_eq!(tenant.corp_name.as_deref(), Some("端到端企业"));
    assert_eq!(tenant.agent_id, Some(agent_id));
    assert!(
        tenant.permanent_code_key_id.is_some(),
        "the secret is stored, sealed"
    );
    assert_eq!(
        stack.api_calls("service/v2/get_permanent_code")
            + stack.api_calls("service/get_permanent_code"),
        1
    );
    let events = wait_for_events(&stack, 1).await;
    assert_eq!(events[0].kind, "tenant.activated");
    stack.close().await;
}

#[tokio::test]
async fn the_whole_lifecycle_survives_wecom_delivering_every_push_twice() {
    // Every push arrives twice (a WeCom retry after a lost answer), and two replicas consume.
    let mut stack = Stack::start_with(|config| config.delivery.duplicate_rate = 1.0).await;
    stack.add_auth_worker().await;
    stack.push_ticket().await;
    let corp = stack.create_corp("Twice");

    stack.authorize(&corp).await;
    let active = stack
        .wait_tenant(&corp, |t| {
            // Active with its auth info: the exchange and the get_auth_info that follows it.
            t.status == TenantStatus::Active && t.auth_info.is_some()
        })
        .await;

    let scope: Scope = serde_json_scope();
    let (_, pending) = stack
        .sim
        .change_scope(
            &test_support::corp(&corp),
            Some(&test_support::suite(SUITE_ID)),
            ScopeChange {
                scope: Some(scope),
                permissions: None,
            },
            PUSH_AND_WAIT,
        )
        .unwrap();
    delivered(pending).await;
    stack
        .wait_tenant(&corp, |t| t.updated_at > active.updated_at)
        .await;

    let (_, pending) = stack
        .sim
        .reset_secret(
            &test_support::corp(&corp),
            Some(&test_support::suite(SUITE_ID)),
            PUSH_AND_WAIT,
        )
        .unwrap();
    delivered(pending).await;
    let rotated = stack
        .wait_tenant(&corp, |t| {
            t.permanent_code_updated_at > active.permanent_code_updated_at
        })
        .await;
    assert_eq!(rotated.status, TenantStatus::Active);

    let (_, pending) = stack
        .sim
        .cancel(
            &test_support::corp(&corp),
            Some(&test_support::suite(SUITE_ID)),
            PUSH_AND_WAIT,
        )
        .unwrap();
    delivered(pending).await;
    let revoked = stack
        .wait_tenant(&corp, |t| t.status == TenantStatus::Revoked)
        .await;
    assert!(revoked.permanent_code_key_id.is_none());

    // Two AuthCodes, each exchanged exactly once although each arrived twice.
    let stats = stack.sim.stats.snapshot();
    assert!(stats.callbacks.duplicates >= 5, "{:?}", stats.callbacks);
    assert_eq!(stats.auth_codes.consumed, 2);
    assert_eq!(stats.auth_codes.rejected, 0);
    assert_eq!(
        stack.api_calls("service/v2/get_permanent_code")
            + stack.api_calls("service/get_permanent_code"),
        2
    );
    // activated, changed (scope), changed (new secret), revoked — each published at least once;
    // re-publications of a duplicate carry the same dedupe key.
    let events = wait_for_events(&stack, 4).await;
    let mut kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        ["tenant.activated", "tenant.changed", "tenant.revoked"],
        "{kinds:?}"
    );
    let Some(Payload::Tenant(TenantEvent::Revoked(last))) = events.last().map(|e| &e.payload)
    else {
        panic!("{events:?}")
    };
    assert_eq!(last.corp_id, corp);
    stack.close().await;
}

fn serde_json_scope() -> Scope {
    Scope {
        departments: vec![wecom::ids::DepartmentId::ROOT],
        users: Vec::new(),
        tags: Vec::new(),
    }
}

/// Collects tenant events until at least `n` distinct ones (by dedupe key) arrived.
async fn wait_for_events(stack: &Stack, n: usize) -> Vec<bus::Envelope> {
    let deadline = tokio::time::Instant::now() + test_support::DEADLINE;
    let mut events: Vec<bus::Envelope> = Vec::new();
    while events.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} tenant events: {events:?}"
        );
        for event in stack.take_tenant_events().await {
            if !events.iter().any(|e| e.dedupe_key == event.dedupe_key) {
                events.push(event);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    events
}
