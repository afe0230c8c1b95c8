//! Exact dedupe: the inbox insert reports the first delivery only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeDelta, Utc};
use store::inbox;

#[tokio::test]
async fn inbox_reports_only_the_first_delivery_per_consumer() {
    let db = test_support::test_db().await;
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
    let db = test_support::test_db().await;
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
    let db = test_support::test_db().await;
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
    test_support::wait_until("the duplicate to wait on the first", || {
        let pool = db.pool().clone();
        let name = name.clone();
        async move { test_support::lock_waiters(&pool, &name).await >= 1 }
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

/// Inbox rows of `consumer` processed `hours_ago`, keys `{prefix}-0…`.
async fn aged_entries(pool: &sqlx::PgPool, prefix: &str, count: i64, hours_ago: i64) {
    sqlx::query(
        "insert into inbox (consumer, dedupe_key, processed_at)
         select 'auth', $1 || '-' || i, now() - make_interval(hours => $3::int)
         from generate_series(0, $2 - 1) as i",
    )
    .bind(prefix)
    .bind(count)
    .bind(hours_ago)
    .execute(pool)
    .await
    .unwrap();
}

async fn remaining(pool: &sqlx::PgPool, prefix: &str) -> i64 {
    sqlx::query_scalar("select count(*) from inbox where dedupe_key like $1 || '-%'")
        .bind(prefix)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn prune_deletes_entries_past_the_retention_in_bounded_batches() {
    let db = test_support::test_db().await;
    aged_entries(db.pool(), "old", 25, 200).await;
    aged_entries(db.pool(), "recent", 5, 100).await;
    let retention = TimeDelta::hours(168);

    // batches of 10, at most 2 per call: a large backlog is taken in several short transactions
    let first = inbox::prune_expired(db.pool(), retention, 10, 2)
        .await
        .unwrap();
    assert_eq!(
        first,
        inbox::Pruned::Done {
            rows: 20,
            batches: 2
        }
    );
    assert_eq!(remaining(db.pool(), "old").await, 5);
    let second = inbox::prune_expired(db.pool(), retention, 10, 2)
        .await
        .unwrap();
    assert_eq!(
        second,
        inbox::Pruned::Done {
            rows: 5,
            batches: 1
        }
    );
    assert_eq!(remaining(db.pool(), "old").await, 0);
    assert_eq!(
        remaining(db.pool(), "recent").await,
        5,
        "recent entries are kept"
    );
    let idle = inbox::prune_expired(db.pool(), retention, 10, 2)
        .await
        .unwrap();
    assert_eq!(
        idle,
        inbox::Pruned::Done {
            rows: 0,
            batches: 1
        }
    );
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn only_one_prune_runs_at_a_time_across_replicas() {
    let db = test_support::test_db().await;
    aged_entries(db.pool(), "old", 30, 200).await;
    let retention = TimeDelta::hours(168);

    // Another replica is pruning: it holds the prune lock in its transaction.
    let mut other = db.pool().begin().await.unwrap();
    let got: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(inbox::PRUNE_LOCK)
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(got);
    let replica = db.new_pool().await.unwrap();
    let busy = inbox::prune_expired(&replica, retention, 10, 5)
        .await
        .unwrap();
    assert_eq!(busy, inbox::Pruned::Busy);
    assert_eq!(remaining(db.pool(), "old").await, 30, "nothing deleted");
    other.commit().await.unwrap();

    // Two prunes started together: the rows are deleted once, and never by both at the
    // same time (each batch runs under the lock).
    let (a, b) = tokio::join!(
        inbox::prune_expired(db.pool(), retention, 1, 100),
        inbox::prune_expired(&replica, retention, 1, 100),
    );
    let rows = |p: inbox::Pruned| match p {
        inbox::Pruned::Done { rows, .. } => rows,
        inbox::Pruned::Busy => 0,
    };
    assert_eq!(rows(a.unwrap()) + rows(b.unwrap()), 30);
    assert_eq!(remaining(db.pool(), "old").await, 0);
    replica.close().await;
    db.drop_database().await.unwrap();
}
