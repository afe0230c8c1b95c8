//! AuthCodes: recorded on arrival, exchanged at most once, outcome recorded (PITFALLS 10).

mod common;

use chrono::{TimeDelta, Utc};
use secrecy::ExposeSecret as _;
use store::auth_codes::{
    AuthCodeHash, AuthCodeKind, AuthCodeState, Claim, EXPIRED_REASON, NewAuthCode, auth_code,
    claim_auth_code, fail_expired_auth_codes, list_auth_codes, mark_auth_code_exchanged,
    mark_auth_code_failed, record_auth_code, record_auth_code_error,
};

fn fresh<'a>(suite: &'a store::SuiteId, code: &'static str) -> NewAuthCode<'a> {
    NewAuthCode {
        suite_id: suite,
        kind: AuthCodeKind::CreateAuth,
        code,
        wecom_time: Utc::now().timestamp(),
        received_at: Utc::now(),
    }
}

#[tokio::test]
async fn recording_is_idempotent_and_sets_the_ten_minute_deadline() {
    let db = common::test_db().await;
    let secrets = common::secrets();
    let suite = common::suite("dk1");
    let mut conn = db.pool().acquire().await.unwrap();
    let code = fresh(&suite, "AUTHCODE-1");
    let (first, new) = record_auth_code(&mut conn, &secrets, &code).await.unwrap();
    assert!(new);
    assert_eq!(first.state, AuthCodeState::Received);
    assert_eq!(first.hash, AuthCodeHash::of("AUTHCODE-1"));
    assert_eq!(
        first.expires_at - first.wecom_time.unwrap(),
        TimeDelta::minutes(10)
    );
    let (again, new) = record_auth_code(&mut conn, &secrets, &code).await.unwrap();
    assert!(!new);
    assert_eq!(again, first);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_claimed_code_is_exchanged_once_and_duplicates_see_the_outcome() {
    let db = common::test_db().await;
    let secrets = common::secrets();
    let suite = common::suite("dk1");
    let hash = AuthCodeHash::of("CODE-X");
    {
        let mut conn = db.pool().acquire().await.unwrap();
        record_auth_code(&mut conn, &secrets, &fresh(&suite, "CODE-X"))
            .await
            .unwrap();
    }

    // replica A claims and holds the row lock
    let mut a = db.pool().begin().await.unwrap();
    let Claim::Ready(claimed) = claim_auth_code(&mut a, &secrets, &hash).await.unwrap() else {
        panic!("first claim must be ready");
    };
    assert_eq!(claimed.code.expose_secret(), "CODE-X");
    assert_eq!(claimed.attempt, 1);
    assert_eq!(claimed.kind, AuthCodeKind::CreateAuth);

    // replica B, a duplicate delivery, queues on the lock
    let pool = db.pool().clone();
    let b_secrets = secrets.clone();
    let b = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let claim = claim_auth_code(&mut tx, &b_secrets, &hash).await.unwrap();
        tx.commit().await.unwrap();
        claim
    });
    let name = db.name().to_owned();
    common::eventually("replica B to wait on the code's row lock", || {
        let pool = db.pool().clone();
        let name = name.clone();
        async move { common::lock_waiters(&pool, &name).await >= 1 }
    })
    .await;

    let corp = common::corp("wwcorp");
    let record = mark_auth_code_exchanged(&mut a, &hash, &corp)
        .await
        .unwrap();
    assert_eq!(record.state, AuthCodeState::Exchanged);
    a.commit().await.unwrap();

    match b.await.unwrap() {
        Claim::AlreadyExchanged { corp_id } => assert_eq!(corp_id, Some(corp)),
        other => panic!("duplicate must see the exchange, got {other:?}"),
    }
    // the code itself is gone once exchanged
    let sealed_left: Option<Vec<u8>> = sqlx::query_scalar("select code_ciphertext from auth_codes")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(sealed_left.is_none());
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_burnt_code_is_failed_once_and_never_claimed_again() {
    let db = common::test_db().await;
    let secrets = common::secrets();
    let suite = common::suite("dk1");
    let hash = AuthCodeHash::of("BURNT");
    let mut conn = db.pool().acquire().await.unwrap();
    record_auth_code(&mut conn, &secrets, &fresh(&suite, "BURNT"))
        .await
        .unwrap();
    record_auth_code_error(&mut conn, &hash, "transport error: timeout")
        .await
        .unwrap();

    let mut tx = db.pool().begin().await.unwrap();
    let Claim::Ready(claimed) = claim_auth_code(&mut tx, &secrets, &hash).await.unwrap() else {
        panic!("claimable");
    };
    assert_eq!(claimed.attempt, 2, "the recorded transient failure counts");
    let failed = mark_auth_code_failed(&mut tx, &hash, "WeCom errcode 40078: invalid auth_code")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(failed.state, AuthCodeState::Failed);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("transport error: timeout")
    );

    let mut tx = db.pool().begin().await.unwrap();
    match claim_auth_code(&mut tx, &secrets, &hash).await.unwrap() {
        Claim::AlreadyFailed { reason } => assert!(reason.contains("40078")),
        other => panic!("a failed code is not claimable, got {other:?}"),
    }
    tx.commit().await.unwrap();
    // a second terminal write is refused instead of silently rewriting the outcome
    assert!(
        mark_auth_code_exchanged(&mut conn, &hash, &common::corp("ww"))
            .await
            .is_err()
    );
    assert!(matches!(
        claim_auth_code(&mut conn, &secrets, &AuthCodeHash::of("never-seen"))
            .await
            .unwrap(),
        Claim::NotFound
    ));
    let failed_list = list_auth_codes(&mut conn, Some(AuthCodeState::Failed), 10)
        .await
        .unwrap();
    assert_eq!(failed_list.len(), 1);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn an_expired_code_is_reported_once_then_stays_failed() {
    let db = common::test_db().await;
    let secrets = common::secrets();
    let suite = common::suite("dk1");
    let mut conn = db.pool().acquire().await.unwrap();
    let old = Utc::now() - TimeDelta::minutes(11);
    let code = NewAuthCode {
        suite_id: &suite,
        kind: AuthCodeKind::ResetPermanentCode,
        code: "OLD",
        wecom_time: old.timestamp(),
        received_at: old,
    };
    record_auth_code(&mut conn, &secrets, &code).await.unwrap();
    let hash = AuthCodeHash::of("OLD");
    match claim_auth_code(&mut conn, &secrets, &hash).await.unwrap() {
        Claim::Expired(record) => {
            assert_eq!(record.state, AuthCodeState::Failed);
            assert_eq!(record.failure_reason.as_deref(), Some(EXPIRED_REASON));
        }
        other => panic!("expected expiry, got {other:?}"),
    }
    assert!(matches!(
        claim_auth_code(&mut conn, &secrets, &hash).await.unwrap(),
        Claim::AlreadyFailed { .. }
    ));
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn the_sweep_fails_codes_nobody_processed_in_time() {
    let db = common::test_db().await;
    let secrets = common::secrets();
    let suite = common::suite("dk1");
    let mut conn = db.pool().acquire().await.unwrap();
    let old = Utc::now() - TimeDelta::minutes(30);
    let lost = NewAuthCode {
        suite_id: &suite,
        kind: AuthCodeKind::CreateAuth,
        code: "LOST",
        wecom_time: old.timestamp(),
        received_at: old,
    };
    record_auth_code(&mut conn, &secrets, &lost).await.unwrap();
    record_auth_code(&mut conn, &secrets, &fresh(&suite, "FRESH"))
        .await
        .unwrap();
    let swept = fail_expired_auth_codes(&mut conn).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].hash, AuthCodeHash::of("LOST"));
    assert!(fail_expired_auth_codes(&mut conn).await.unwrap().is_empty());
    let fresh_row = auth_code(&mut conn, &AuthCodeHash::of("FRESH"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh_row.state, AuthCodeState::Received);
    drop(conn);
    db.drop_database().await.unwrap();
}
