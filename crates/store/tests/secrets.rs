//! Secrets at rest: round trip through Postgres, key rotation and wrong keys. That no plaintext
//! reaches a column or a log line, with tokens fetched through the token service, is tested in
//! `crates/tokens/tests/secrets.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeDelta, Utc};
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use store::auth_codes::{AuthCodeKind, NewAuthCode, record_auth_code};
use store::corp_tokens::store_corp_token;
use store::rotation::{key_usage, rotate_secrets};
use store::suites::{NewTicket, store_suite_token, store_ticket, ticket};
use store::tenants::permanent_code;
use store::{Keyring, SecretBox, SecretError, StoreError};

const RAW_CODE: &str = "RAW-PERMANENT-CODE-7f3a9c";
const RAW_TICKET: &str = "RAW-SUITE-TICKET-51be";
const RAW_AUTH_CODE: &str = "RAW-AUTH-CODE-c0ffee";
const RAW_SUITE_TOKEN: &str = "RAW-SUITE-TOKEN-9d1e";
const RAW_CORP_TOKEN: &str = "RAW-CORP-TOKEN-44aa";

/// Fills every table that holds a secret: a ticket, a tenant, a pending AuthCode, and both
/// cached tokens (as the token service stores them).
async fn populate(pool: &PgPool, secrets: &SecretBox) {
    let (suite, corp) = (test_support::suite("dk-sec"), test_support::corp("ww-sec"));
    let mut conn = pool.acquire().await.unwrap();
    let push = NewTicket {
        suite_id: &suite,
        ticket: RAW_TICKET,
        wecom_time: 10,
        received_at: Utc::now(),
    };
    store_ticket(&mut conn, secrets, &push).await.unwrap();
    let code = NewAuthCode {
        suite_id: &suite,
        kind: AuthCodeKind::CreateAuth,
        code: RAW_AUTH_CODE,
        wecom_time: Utc::now().timestamp(),
        received_at: Utc::now(),
    };
    record_auth_code(&mut conn, secrets, &code).await.unwrap();
    drop(conn);
    test_support::active_tenant(pool, secrets, &suite, &corp, RAW_CODE).await;

    let mut conn = pool.acquire().await.unwrap();
    let (now, expires_at) = (Utc::now(), Utc::now() + TimeDelta::hours(2));
    store_suite_token(&mut conn, secrets, &suite, RAW_SUITE_TOKEN, now, expires_at)
        .await
        .unwrap();
    store_corp_token(
        &mut conn,
        secrets,
        &suite,
        &corp,
        RAW_CORP_TOKEN,
        now,
        expires_at,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn rotation_reseals_everything_under_the_new_key() {
    let db = test_support::test_db().await;
    let old = SecretBox::new(Keyring::single(test_support::key("old", 1)));
    populate(db.pool(), &old).await;

    let mut conn = db.pool().acquire().await.unwrap();
    let before = key_usage(&mut conn).await.unwrap();
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(before.iter().all(|u| u.key_id == "old" && u.count == 1));

    // deploy: new key active, old key kept for decryption
    let both = SecretBox::new(
        Keyring::new(
            test_support::key("new", 2),
            vec![test_support::key("old", 1)],
        )
        .unwrap(),
    );
    let report = rotate_secrets(db.pool(), &both, 2).await.unwrap();
    assert_eq!(report.iter().map(|r| r.count).sum::<u64>(), 5, "{report:?}");
    let after = key_usage(&mut conn).await.unwrap();
    assert!(after.iter().all(|u| u.key_id == "new"), "{after:?}");
    assert!(
        rotate_secrets(db.pool(), &both, 2)
            .await
            .unwrap()
            .iter()
            .all(|r| r.count == 0)
    );

    // the old key can go: the new key alone opens everything
    let new_only = SecretBox::new(Keyring::single(test_support::key("new", 2)));
    let suite = test_support::suite("dk-sec");
    let code = permanent_code(&mut conn, &new_only, &suite, &test_support::corp("ww-sec"))
        .await
        .unwrap();
    assert_eq!(code.expose_secret(), RAW_CODE);
    let t = ticket(&mut conn, &new_only, &suite).await.unwrap().unwrap();
    assert_eq!(t.ticket.expose_secret(), RAW_TICKET);

    // and a box without the new key cannot, with an error that names the key id
    let err = permanent_code(&mut conn, &old, &suite, &test_support::corp("ww-sec"))
        .await
        .unwrap_err();
    match &err {
        StoreError::Secret(SecretError::UnknownKeyId { key_id, known }) => {
            assert_eq!(key_id, "new");
            assert_eq!(known, "old");
        }
        other => panic!("expected an unknown key id, got {other:?}"),
    }
    assert!(err.to_string().contains("`new`"), "{err}");
    assert!(!err.to_string().contains(RAW_CODE));
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_different_key_under_the_same_id_is_refused() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (suite, corp) = (test_support::suite("dk1"), test_support::corp("ww1"));
    test_support::active_tenant(db.pool(), &secrets, &suite, &corp, RAW_CODE).await;
    let impostor = SecretBox::new(Keyring::single(test_support::key("k1", 99)));
    let mut conn = db.pool().acquire().await.unwrap();
    let err = permanent_code(&mut conn, &impostor, &suite, &corp)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Decrypt { ref key_id, .. }) if key_id == "k1"),
        "{err:?}"
    );
    // a sealed value moved to another tenant's row does not open there
    test_support::active_tenant(
        db.pool(),
        &secrets,
        &suite,
        &test_support::corp("ww2"),
        "OTHER",
    )
    .await;
    sqlx::query(
        "update tenants t set permanent_code_ciphertext = s.permanent_code_ciphertext,
                              permanent_code_nonce = s.permanent_code_nonce
         from tenants s where s.corp_id = 'ww1' and t.corp_id = 'ww2'",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let err = permanent_code(&mut conn, &secrets, &suite, &test_support::corp("ww2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Decrypt { .. })),
        "{err:?}"
    );
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn unopenable_keys_names_each_key_id_a_keyring_cannot_open() {
    use store::rotation::{UnopenableKey, unopenable_keys};
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let mut conn = db.pool().acquire().await.unwrap();
    assert!(
        unopenable_keys(&mut conn, &test_support::secrets())
            .await
            .unwrap()
            .is_empty(),
        "an empty database holds nothing to open"
    );
    populate(db.pool(), &secrets).await;
    // one more value, under a second key
    let other = SecretBox::new(Keyring::single(test_support::key("k2", 2)));
    let push = NewTicket {
        suite_id: &test_support::suite("dk-other"),
        ticket: RAW_TICKET,
        wecom_time: 10,
        received_at: Utc::now(),
    };
    store_ticket(&mut conn, &other, &push).await.unwrap();

    let both = SecretBox::new(
        Keyring::new(test_support::key("k1", 1), vec![test_support::key("k2", 2)]).unwrap(),
    );
    assert!(unopenable_keys(&mut conn, &both).await.unwrap().is_empty());

    // only k1: k2 is missing
    let found = unopenable_keys(&mut conn, &secrets).await.unwrap();
    assert_eq!(
        found,
        [UnopenableKey {
            key_id: "k2".to_owned(),
            missing: true,
            columns: vec!["suites.ticket"],
        }]
    );
    assert!(
        found[0].to_string().contains("`k2` is not in the keyring"),
        "{}",
        found[0]
    );

    // k1 with other bytes, and no k2
    let impostor = SecretBox::new(Keyring::single(test_support::key("k1", 99)));
    let found = unopenable_keys(&mut conn, &impostor).await.unwrap();
    let ids: Vec<_> = found
        .iter()
        .map(|k| (k.key_id.as_str(), k.missing))
        .collect();
    assert_eq!(ids, [("k1", false), ("k2", true)]);
    assert_eq!(
        found[0].columns,
        [
            "suites.ticket",
            "suites.suite_token",
            "tenants.permanent_code",
            "corp_tokens.token",
            "auth_codes.code"
        ]
    );
    drop(conn);
    db.drop_database().await.unwrap();
}
