//! Tenant lifecycle: activation, rotation, status, revocation, ordered by WeCom TimeStamp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeDelta, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use sqlx::PgPool;
use store::tenants::{
    Activation, AuthInfoUpdate, Outcome, TenantStatus, activate_tenant, count_by_status,
    list_tenants, permanent_code, revoke_tenant, rotate_permanent_code, set_tenant_status, tenant,
    update_auth_info,
};
use store::{CorpId, SecretBox, StoreError, SuiteId};

async fn activate(
    pool: &PgPool,
    secrets: &SecretBox,
    suite: &SuiteId,
    corp: &CorpId,
    code: &str,
    event_time: i64,
) -> store::tenants::Transition {
    let code = SecretString::from(code.to_owned());
    let info = json!({"auth_corp_info": {"corpid": corp.as_str()}, "auth_info": {"agent": [{"agentid": 7}]}});
    let mut conn = pool.acquire().await.unwrap();
    activate_tenant(
        &mut conn,
        secrets,
        &Activation {
            suite_id: suite,
            corp_id: corp,
            corp_name: Some("Acme"),
            agent_id: Some(7),
            permanent_code: &code,
            auth_info: Some(&info),
            state: Some("qr-state"),
            event_time,
        },
    )
    .await
    .unwrap()
}

/// Plants a cached corp token row directly, as the token service would.
async fn plant_token(pool: &PgPool, suite: &SuiteId, corp: &CorpId) {
    sqlx::query(
        "insert into corp_tokens (suite_id, corp_id, token_ciphertext, token_nonce, token_key_id,
                                  token_sha256, expires_at, refreshed_at)
         values ($1, $2, '\\x00', '\\x00', 'k1', decode(repeat('00', 32), 'hex'),
                 now() + interval '1 hour', now())",
    )
    .bind(suite)
    .bind(corp)
    .execute(pool)
    .await
    .unwrap();
}

async fn token_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from corp_tokens")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn activation_stores_the_sealed_code_and_rotation_replaces_it_and_drops_the_token() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (suite, corp) = (test_support::suite("dk1"), test_support::corp("ww1"));
    let activated = activate(db.pool(), &secrets, &suite, &corp, "PERM-1", 100).await;
    assert_eq!(activated.outcome, Outcome::Applied);
    assert_eq!(activated.tenant.status, TenantStatus::Active);
    assert_eq!(activated.tenant.agent_id, Some(7));
    assert_eq!(
        activated.tenant.permanent_code_key_id.as_deref(),
        Some("k1")
    );

    let mut conn = db.pool().acquire().await.unwrap();
    let code = permanent_code(&mut conn, &secrets, &suite, &corp)
        .await
        .unwrap();
    assert_eq!(code.expose_secret(), "PERM-1");

    plant_token(db.pool(), &suite, &corp).await;
    let new_code = SecretString::from("PERM-2".to_owned());
    let rotated = rotate_permanent_code(&mut conn, &secrets, &suite, &corp, &new_code, 200)
        .await
        .unwrap();
    assert_eq!(rotated.outcome, Outcome::Applied);
    assert_eq!(
        token_count(db.pool()).await,
        0,
        "rotation drops the cached token"
    );
    let code = permanent_code(&mut conn, &secrets, &suite, &corp)
        .await
        .unwrap();
    assert_eq!(code.expose_secret(), "PERM-2");

    // an exchange from an older reset, processed late, does not bring the old code back
    let older = SecretString::from("PERM-OLDER".to_owned());
    let stale = rotate_permanent_code(&mut conn, &secrets, &suite, &corp, &older, 150)
        .await
        .unwrap();
    assert_eq!(stale.outcome, Outcome::Stale);
    let code = permanent_code(&mut conn, &secrets, &suite, &corp)
        .await
        .unwrap();
    assert_eq!(code.expose_secret(), "PERM-2");

    let unknown = rotate_permanent_code(
        &mut conn,
        &secrets,
        &suite,
        &test_support::corp("ww-x"),
        &older,
        300,
    )
    .await;
    assert!(matches!(unknown, Err(StoreError::TenantNotFound { .. })));
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn revocation_deletes_secret_and_tokens_and_a_reinstall_reactivates() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (suite, corp) = (test_support::suite("dk1"), test_support::corp("ww1"));
    activate(db.pool(), &secrets, &suite, &corp, "PERM-1", 100).await;
    plant_token(db.pool(), &suite, &corp).await;

    let mut conn = db.pool().acquire().await.unwrap();
    let revoked = revoke_tenant(&mut conn, &suite, &corp, 200).await.unwrap();
    assert_eq!(revoked.outcome, Outcome::Applied);
    assert_eq!(revoked.tenant.status, TenantStatus::Revoked);
    assert!(revoked.tenant.revoked_at.is_some());
    assert!(revoked.tenant.permanent_code_key_id.is_none());
    assert_eq!(token_count(db.pool()).await, 0);
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("select permanent_code_ciphertext from tenants")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(sealed.is_none(), "the secret is deleted, not just flagged");
    assert!(
        permanent_code(&mut conn, &secrets, &suite, &corp)
            .await
            .is_err()
    );
    let again = revoke_tenant(&mut conn, &suite, &corp, 201).await.unwrap();
    assert_eq!(again.outcome, Outcome::Unchanged);

    // a create_auth older than the cancel, processed late, stays ignored
    let late = activate(db.pool(), &secrets, &suite, &corp, "PERM-LATE", 150).await;
    assert_eq!(late.outcome, Outcome::Stale);
    assert_eq!(late.tenant.status, TenantStatus::Revoked);

    // a real reinstall (newer create_auth) reactivates the same row
    let back = activate(db.pool(), &secrets, &suite, &corp, "PERM-3", 300).await;
    assert_eq!(back.outcome, Outcome::Applied);
    assert_eq!(back.tenant.status, TenantStatus::Active);
    assert_eq!(back.tenant.id, revoked.tenant.id);
    assert!(back.tenant.revoked_at.is_none());
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_cancel_for_an_unknown_tenant_leaves_a_tombstone_that_blocks_an_older_create() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (suite, corp) = (test_support::suite("dk1"), test_support::corp("ww-new"));
    let mut conn = db.pool().acquire().await.unwrap();
    let revoked = revoke_tenant(&mut conn, &suite, &corp, 500).await.unwrap();
    assert_eq!(revoked.outcome, Outcome::Applied);
    let late = activate(db.pool(), &secrets, &suite, &corp, "PERM", 400).await;
    assert_eq!(late.outcome, Outcome::Stale);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn status_moves_between_active_and_suspended_in_wecom_time_order() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (suite, corp) = (test_support::suite("dk1"), test_support::corp("ww1"));
    activate(db.pool(), &secrets, &suite, &corp, "PERM", 100).await;
    let mut conn = db.pool().acquire().await.unwrap();

    let t = set_tenant_status(&mut conn, &suite, &corp, TenantStatus::Suspended, 200)
        .await
        .unwrap();
    assert_eq!(
        (t.outcome, t.tenant.status),
        (Outcome::Applied, TenantStatus::Suspended)
    );
    let t = set_tenant_status(&mut conn, &suite, &corp, TenantStatus::Suspended, 210)
        .await
        .unwrap();
    assert_eq!(t.outcome, Outcome::Unchanged);
    // an enable older than the disable is ignored
    let t = set_tenant_status(&mut conn, &suite, &corp, TenantStatus::Active, 150)
        .await
        .unwrap();
    assert_eq!(
        (t.outcome, t.tenant.status),
        (Outcome::Stale, TenantStatus::Suspended)
    );
    let t = set_tenant_status(&mut conn, &suite, &corp, TenantStatus::Active, 300)
        .await
        .unwrap();
    assert_eq!(
        (t.outcome, t.tenant.status),
        (Outcome::Applied, TenantStatus::Active)
    );

    assert!(
        set_tenant_status(&mut conn, &suite, &corp, TenantStatus::Revoked, 400)
            .await
            .is_err()
    );
    revoke_tenant(&mut conn, &suite, &corp, 400).await.unwrap();
    let err = set_tenant_status(&mut conn, &suite, &corp, TenantStatus::Active, 500)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidTransition { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("revoked"));
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn auth_info_is_stored_without_secret_keys() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (suite, corp) = (test_support::suite("dk1"), test_support::corp("ww1"));
    activate(db.pool(), &secrets, &suite, &corp, "PERM", 100).await;
    let mut conn = db.pool().acquire().await.unwrap();
    // a caller passing a whole get_permanent_code answer by mistake
    let careless = json!({
        "permanent_code": "PERM",
        "auth_corp_info": {"corpid": "ww1", "corp_name": "Acme Ltd"},
        "auth_info": {"agent": [{"agentid": 8}]}
    });
    let updated = update_auth_info(
        &mut conn,
        &AuthInfoUpdate {
            suite_id: &suite,
            corp_id: &corp,
            corp_name: Some("Acme Ltd"),
            agent_id: Some(8),
            auth_info: &careless,
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.corp_name.as_deref(), Some("Acme Ltd"));
    assert_eq!(updated.agent_id, Some(8));
    let stored = updated.auth_info.unwrap();
    assert!(stored.get("permanent_code").is_none());
    assert_eq!(stored["auth_info"]["agent"][0]["agentid"], 8);

    let listed = list_tenants(&mut conn, Some(TenantStatus::Active))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        list_tenants(&mut conn, Some(TenantStatus::Revoked))
            .await
            .unwrap()
            .is_empty()
    );
    let one = tenant(&mut conn, &suite, &corp).await.unwrap().unwrap();
    assert_eq!(one.state.as_deref(), Some("qr-state"));
    assert!(one.updated_at <= Utc::now() + TimeDelta::minutes(1));
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn tenants_are_counted_by_status_with_every_status_present() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
    let mut conn = db.pool().acquire().await.unwrap();
    assert_eq!(
        count_by_status(&mut conn).await.unwrap(),
        TenantStatus::ALL.map(|s| (s, 0))
    );
    for corp in ["ww-a", "ww-b", "ww-c"] {
        activate(
            db.pool(),
            &secrets,
            &suite,
            &test_support::corp(corp),
            "P",
            100,
        )
        .await;
    }
    let suspended = set_tenant_status(
        &mut conn,
        &suite,
        &test_support::corp("ww-b"),
        TenantStatus::Suspended,
        200,
    )
    .await
    .unwrap();
    assert_eq!(suspended.outcome, Outcome::Applied);
    revoke_tenant(&mut conn, &suite, &test_support::corp("ww-c"), 200)
        .await
        .unwrap();
    revoke_tenant(&mut conn, &suite, &test_support::corp("ww-gone"), 200)
        .await
        .unwrap();
    assert_eq!(
        count_by_status(&mut conn).await.unwrap(),
        [
            (TenantStatus::Pending, 0),
            (TenantStatus::Active, 1),
            (TenantStatus::Suspended, 1),
            (TenantStatus::Revoked, 2),
        ]
    );
    drop(conn);
    db.drop_database().await.unwrap();
}
