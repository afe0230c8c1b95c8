//! Exact dedupe: the inbox insert reports the first delivery only.

mod common;

use chrono::{TimeDelta, Utc};
use store::inbox;

#[tokio::test]
async fn inbox_reports_only_the_first_delivery_per_consumer() {
    let db = common::test_db().await;
    let mut conn = db.pool().acquire().await.unwrap();
    assert!(inbox::record(&mut conn, "auth", "k1").await.unwrap());
    assert!(!inbox::record(&mut conn, "auth", "k1").await.unwrap());
    // another consumer has its own entry; another key is another message
    assert!(inbox::record(&mut conn, "contacts", "k1").await.unwrap());
    assert!(inbox::record(&mut conn, "auth", "k2").await.unwrap());
    assert!(inbox::record(&mut conn, "", "k3").await.is_err());
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_inbox_entry_does_not_count() {
    let db = common::test_db().await;
    let mut tx = db.pool().begin().await.unwrap();
    assert!(inbox::record(&mut tx, "auth", "k").await.unwrap());
    tx.rollback().await.unwrap();
    let mut tx = db.pool().begin().await.unwrap();
    assert!(inbox::record(&mut tx, "auth", "k").await.unwrap());
    tx.commit().await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    assert!(!inbox::record(&mut conn, "auth", "k").await.unwrap());
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_concurrent_duplicate_waits_for_the_first_and_is_reported_as_duplicate() {
    let db = common::test_db().await;
    let mut first = db.pool().begin().await.unwrap();
    assert!(inbox::record(&mut first, "auth", "same").await.unwrap());
    let pool = db.pool().clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let new = inbox::record(&mut tx, "auth", "same").await.unwrap();
        tx.commit().await.unwrap();
        new
    });
    let name = db.name().to_owned();
    common::eventually("the duplicate to wait on the first", || {
        let pool = db.pool().clone();
        let name = name.clone();
        async move { common::lock_waiters(&pool, &name).await >= 1 }
    })
    .await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());

    let mut conn = db.pool().acquire().await.unwrap();
    let pruned = inbox::prune(&mut conn, Utc::now() + TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    drop(conn);
    db.drop_database().await.unwrap();
}
