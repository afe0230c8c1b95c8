//! Suite tickets: durable, per suite, monotonic by WeCom TimeStamp (docs/architecture.md §4.3).

use chrono::Utc;
use secrecy::ExposeSecret as _;
use store::suites::{NewTicket, store_ticket, ticket, ticket_statuses};

#[tokio::test]
async fn an_older_ticket_never_replaces_a_newer_one() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk-one");
    let mut conn = db.pool().acquire().await.unwrap();
    let push = |t: &'static str, ts: i64| NewTicket {
        suite_id: &suite,
        ticket: t,
        wecom_time: ts,
        received_at: Utc::now(),
    };

    assert!(
        store_ticket(&mut conn, &secrets, &push("t-200", 200))
            .await
            .unwrap()
    );
    assert!(
        !store_ticket(&mut conn, &secrets, &push("t-100", 100))
            .await
            .unwrap()
    );
    assert!(
        !store_ticket(&mut conn, &secrets, &push("t-200-dup", 200))
            .await
            .unwrap()
    );
    let stored = ticket(&mut conn, &secrets, &suite).await.unwrap().unwrap();
    assert_eq!(stored.ticket.expose_secret(), "t-200");
    assert_eq!(stored.wecom_time.timestamp(), 200);

    assert!(
        store_ticket(&mut conn, &secrets, &push("t-300", 300))
            .await
            .unwrap()
    );
    let stored = ticket(&mut conn, &secrets, &suite).await.unwrap().unwrap();
    assert_eq!(stored.ticket.expose_secret(), "t-300");
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn two_suites_keep_separate_tickets() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let (a, b) = (test_support::suite("dk-a"), test_support::suite("dk-b"));
    let mut conn = db.pool().acquire().await.unwrap();
    let now = Utc::now();
    let ticket_a = NewTicket {
        suite_id: &a,
        ticket: "ticket-a",
        wecom_time: 500,
        received_at: now,
    };
    let ticket_b = NewTicket {
        suite_id: &b,
        ticket: "ticket-b",
        wecom_time: 100,
        received_at: now,
    };
    assert!(store_ticket(&mut conn, &secrets, &ticket_a).await.unwrap());
    // older than suite a's ticket, but it is suite b's first: stored
    assert!(store_ticket(&mut conn, &secrets, &ticket_b).await.unwrap());

    let got_a = ticket(&mut conn, &secrets, &a).await.unwrap().unwrap();
    let got_b = ticket(&mut conn, &secrets, &b).await.unwrap().unwrap();
    assert_eq!(got_a.ticket.expose_secret(), "ticket-a");
    assert_eq!(got_b.ticket.expose_secret(), "ticket-b");
    assert!(
        ticket(&mut conn, &secrets, &test_support::suite("dk-c"))
            .await
            .unwrap()
            .is_none()
    );

    let statuses = ticket_statuses(&mut conn).await.unwrap();
    let ids: Vec<_> = statuses.iter().map(|s| s.suite_id.as_str()).collect();
    assert_eq!(ids, ["dk-a", "dk-b"]);
    assert_eq!(statuses[1].wecom_time.unwrap().timestamp(), 100);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn the_ticket_survives_a_restart() {
    let db = test_support::test_db().await;
    let suite = test_support::suite("dk-restart");
    {
        let pool = db.new_pool().await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let push = NewTicket {
            suite_id: &suite,
            ticket: "kept",
            wecom_time: 42,
            received_at: Utc::now(),
        };
        assert!(
            store_ticket(&mut conn, &test_support::secrets(), &push)
                .await
                .unwrap()
        );
        drop(conn);
        pool.close().await;
    }
    // a new process: new pool, new keyring value (same key)
    let pool = db.new_pool().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let stored = ticket(&mut conn, &test_support::secrets(), &suite)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.ticket.expose_secret(), "kept");
    drop(conn);
    pool.close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_ticket_stored_from_a_clock_ahead_does_not_block_later_real_ones() {
    let db = test_support::test_db().await;
    let secrets = test_support::secrets();
    let suite = test_support::suite("dk-future");
    let mut conn = db.pool().acquire().await.unwrap();
    let now = Utc::now().timestamp();
    let push = |t: &'static str, ts: i64| NewTicket {
        suite_id: &suite,
        ticket: t,
        wecom_time: ts,
        received_at: Utc::now(),
    };
    // A push stamped three hours ahead (a clock that ran ahead) is WeCom's word: stored.
    assert!(
        store_ticket(&mut conn, &secrets, &push("t-future", now + 3 * 3600))
            .await
            .unwrap()
    );
    // The next real push is older by its TimeStamp, yet it replaces the distrusted one.
    assert!(
        store_ticket(&mut conn, &secrets, &push("t-real", now))
            .await
            .unwrap(),
        "a ticket from the future blocked a real one"
    );
    let stored = ticket(&mut conn, &secrets, &suite).await.unwrap().unwrap();
    assert_eq!(stored.ticket.expose_secret(), "t-real");
    // From then on the order is WeCom's again: an older real push, delivered late, is ignored.
    assert!(
        !store_ticket(&mut conn, &secrets, &push("t-late", now - 600))
            .await
            .unwrap()
    );
    // Within the allowed skew a stored time still counts: a push one minute ahead is kept
    // against an older one.
    assert!(
        store_ticket(&mut conn, &secrets, &push("t-skewed", now + 60))
            .await
            .unwrap()
    );
    assert!(
        !store_ticket(&mut conn, &secrets, &push("t-older", now + 30))
            .await
            .unwrap()
    );
    let stored = ticket(&mut conn, &secrets, &suite).await.unwrap().unwrap();
    assert_eq!(stored.ticket.expose_secret(), "t-skewed");
    drop(conn);
    db.drop_database().await.unwrap();
}
