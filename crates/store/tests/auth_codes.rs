#![allow(clippy::unwrap_used, clippy::expect_used)]

//! AuthCodes: recorded on arrival, exchanged at most once, outcome recorded
//! (docs/architecture.md §4.5).

use chrono::{TimeDelta, Utc};
use secrecy::ExposeSecret as _;
use store::SecretBox;
use store::auth_codes::{
    AuthCodeHash, AuthCodeKind, AuthCodeState, CLAIM_LEASE, Claim, ClaimedAuthCode, EXPIRED_REASON,
    NewAuthCode, auth_code, fail_expired_auth_codes, list_auth_codes, lock_auth_code,
    mark_auth_code_exchanged, mark_auth_code_failed, record_auth_code, record_auth_code_error,
};

async fn claim_auth_code(
    conn: &mut sqlx::PgConnection,
    secrets: &SecretBox,
    hash: &AuthCodeHash,
) -> Result<Claim, store::StoreError> {
    store::auth_codes::claim_auth_code(conn, secrets, hash, CLAIM_LEASE).await
}

async fn ready(conn: &mut sqlx::PgConnection, secrets: &SecretBox, code: &str) -> ClaimedAuthCode {
    match claim_auth_code(conn, secrets, &AuthCodeHash::of(code))
        .await
        .unwrap()
    {
        Claim::Ready(claimed) => claimed,
        other => panic!("{code} must be claimable, got {other:?}"),
    }
}

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
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
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
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
    let hash = AuthCodeHash::of("CODE-X");
    let mut a = db.pool().acquire().await.unwrap();
    record_auth_code(&mut a, &secrets, &fresh(&suite, "CODE-X"))
        .await
        .unwrap();

    // Replica A claims: committed at once, no transaction held during its WeCom call.
    let claimed = ready(&mut a, &secrets, "CODE-X").await;
    assert_eq!(claimed.code.expose_secret(), "CODE-X");
    assert_eq!(claimed.attempt, 1);
    assert_eq!(claimed.kind, AuthCodeKind::CreateAuth);
    assert!(claimed.claimed_until > Utc::now() + TimeDelta::seconds(100));

    // Replica B, a duplicate delivery, is told to come back later; it never gets the code.
    let mut b = db.pool().acquire().await.unwrap();
    match claim_auth_code(&mut b, &secrets, &hash).await.unwrap() {
        Claim::Busy { until } => assert_eq!(until, claimed.claimed_until),
        other => panic!("a claimed code must be busy for others, got {other:?}"),
    }

    let corp = test_support::corp("wwcorp");
    let record = mark_auth_code_exchanged(&mut a, &hash, &corp, claimed.claim_id)
        .await
        .unwrap();
    assert_eq!(record.state, AuthCodeState::Exchanged);
    assert_eq!(record.claim_id, Some(claimed.claim_id));

    match claim_auth_code(&mut b, &secrets, &hash).await.unwrap() {
        Claim::AlreadyExchanged { corp_id } => assert_eq!(corp_id, Some(corp)),
        other => panic!("duplicate must see the exchange, got {other:?}"),
    }
    // the code itself is gone once exchanged
    let sealed_left: Option<Vec<u8>> = sqlx::query_scalar("select code_ciphertext from auth_codes")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(sealed_left.is_none());
    drop((a, b));
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_lapsed_claim_can_be_taken_and_a_released_one_at_once() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
    let hash = AuthCodeHash::of("LAPSE");
    let mut conn = db.pool().acquire().await.unwrap();
    record_auth_code(&mut conn, &secrets, &fresh(&suite, "LAPSE"))
        .await
        .unwrap();
    // A claimant that died: its lease runs out and the code can be claimed again.
    let short = store::auth_codes::claim_auth_code(&mut conn, &secrets, &hash, TimeDelta::zero())
        .await
        .unwrap();
    assert!(matches!(short, Claim::Ready(_)));
    let second = ready(&mut conn, &secrets, "LAPSE").await;
    assert_eq!(second.attempt, 2);
    // A transient failure gives the claim up, and the retry claims at once.
    record_auth_code_error(&mut conn, &hash, second.claim_id, "-1 system busy")
        .await
        .unwrap();
    let third = ready(&mut conn, &secrets, "LAPSE").await;
    assert_eq!(third.attempt, 3);
    let row = auth_code(&mut conn, &hash).await.unwrap().unwrap();
    assert_eq!(row.last_error.as_deref(), Some("-1 system busy"));
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_permanent_code_in_hand_overrides_a_failure_recorded_meanwhile() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
    let hash = AuthCodeHash::of("RACE");
    let mut conn = db.pool().acquire().await.unwrap();
    record_auth_code(&mut conn, &secrets, &fresh(&suite, "RACE"))
        .await
        .unwrap();
    let mine = ready(&mut conn, &secrets, "RACE").await;
    // Meanwhile someone else got 40078 for it (its lease had lapsed) and marked it failed.
    mark_auth_code_failed(&mut conn, &hash, "40078: invalid auth_code")
        .await
        .unwrap();
    let corp = test_support::corp("wwrace");
    let mut tx = db.pool().begin().await.unwrap();
    let locked = lock_auth_code(&mut tx, &hash).await.unwrap().unwrap();
    assert_eq!(locked.state, AuthCodeState::Failed);
    let record = mark_auth_code_exchanged(&mut tx, &hash, &corp, mine.claim_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(record.state, AuthCodeState::Exchanged);
    assert_eq!(record.failure_reason, None);
    assert_eq!(
        record.superseded_failure.as_deref(),
        Some("40078: invalid auth_code")
    );
    // A retried commit re-takes the lock and recognises its own result by the claim id.
    let mut tx = db.pool().begin().await.unwrap();
    let again = lock_auth_code(&mut tx, &hash).await.unwrap().unwrap();
    assert_eq!(again.state, AuthCodeState::Exchanged);
    assert_eq!(again.claim_id, Some(mine.claim_id));
    assert!(
        mark_auth_code_exchanged(&mut tx, &hash, &corp, mine.claim_id)
            .await
            .is_err(),
        "exchanged twice is refused"
    );
    drop(tx);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_burnt_code_is_failed_once_and_never_claimed_again() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
    let hash = AuthCodeHash::of("BURNT");
    let mut conn = db.pool().acquire().await.unwrap();
    record_auth_code(&mut conn, &secrets, &fresh(&suite, "BURNT"))
        .await
        .unwrap();
    let first = ready(&mut conn, &secrets, "BURNT").await;
    record_auth_code_error(&mut conn, &hash, first.claim_id, "transport error: timeout")
        .await
        .unwrap();

    let claimed = ready(&mut conn, &secrets, "BURNT").await;
    assert_eq!(claimed.attempt, 2, "the failed attempt counts");
    let failed = mark_auth_code_failed(&mut conn, &hash, "WeCom errcode 40078: invalid auth_code")
        .await
        .unwrap();
    assert_eq!(failed.state, AuthCodeState::Failed);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("transport error: timeout")
    );

    match claim_auth_code(&mut conn, &secrets, &hash).await.unwrap() {
        Claim::AlreadyFailed { reason } => assert!(reason.contains("40078")),
        other => panic!("a failed code is not claimable, got {other:?}"),
    }
    // a second terminal failure is refused instead of silently rewriting the outcome
    assert!(
        mark_auth_code_failed(&mut conn, &hash, "again")
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
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
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
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
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

#[tokio::test]
async fn the_sweep_leaves_a_claimed_code_to_its_claimant() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk1");
    let mut conn = db.pool().acquire().await.unwrap();
    // Issued 9 minutes 57 seconds ago; claimed just before its deadline.
    let issued = Utc::now() - TimeDelta::seconds(597);
    let late = NewAuthCode {
        suite_id: &suite,
        kind: AuthCodeKind::CreateAuth,
        code: "LATE",
        wecom_time: issued.timestamp(),
        received_at: issued,
    };
    record_auth_code(&mut conn, &secrets, &late).await.unwrap();
    let claimed = ready(&mut conn, &secrets, "LATE").await;
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    // Past its deadline, but its claimant may hold the permanent code already.
    assert!(fail_expired_auth_codes(&mut conn).await.unwrap().is_empty());
    let hash = AuthCodeHash::of("LATE");
    assert!(matches!(
        claim_auth_code(&mut conn, &secrets, &hash).await.unwrap(),
        Claim::Busy { .. }
    ));
    let record = mark_auth_code_exchanged(
        &mut conn,
        &hash,
        &test_support::corp("wwlate"),
        claimed.claim_id,
    )
    .await
    .unwrap();
    assert_eq!(record.state, AuthCodeState::Exchanged);
    drop(conn);
    db.drop_database().await.unwrap();
}
