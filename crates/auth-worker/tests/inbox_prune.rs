#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The inbox does not grow forever (issue 9 item 14): a running worker's sweep deletes entries
//! older than `INBOX_RETENTION_HOURS` (default 168) and keeps the recent ones.

mod common;

use common::Harness;
use test_support::wait_until;

async fn count(h: &Harness, prefix: &str) -> i64 {
    sqlx::query_scalar("select count(*) from inbox where dedupe_key like $1 || '-%'")
        .bind(prefix)
        .fetch_one(h.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sweep_prunes_inbox_entries_past_the_retention() {
    let h = Harness::start().await;
    for (prefix, hours_ago) in [("old", 200), ("recent", 100), ("fresh", 0)] {
        sqlx::query(
            "insert into inbox (consumer, dedupe_key, processed_at)
             select 'auth-worker', $1 || '-' || i, now() - make_interval(hours => $2::int)
             from generate_series(1, 50) as i",
        )
        .bind(prefix)
        .bind(hours_ago)
        .execute(h.pool())
        .await
        .unwrap();
    }
    let worker = h.worker().await;
    wait_until("the old entries are pruned", || async {
        count(&h, "old").await == 0
    })
    .await;
    assert_eq!(count(&h, "recent").await, 50);
    assert_eq!(count(&h, "fresh").await, 50);
    worker.stop().await;
    h.close().await;
}
