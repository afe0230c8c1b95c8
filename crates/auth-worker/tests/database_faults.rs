#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Database failures that heal by themselves are retried, never dead-lettered (issue 9 item 5):
//! a dead-lettered cancel_auth would leave a corp's secrets in place.

mod common;

use common::{Harness, SUITE_ID, messages_total};
use store::tenants::TenantStatus;
use test_support::wait_until;
use wecom::event::{CancelAuth, Event};

#[tokio::test]
async fn a_cancel_auth_hitting_a_statement_timeout_is_retried_and_revokes() {
    let h = Harness::start().await;
    let worker = h.worker().await;
    let (corp, _) = h.active_tenant("Slow Lock Corp").await;
    worker.stop().await;

    // Every new session of the test database gets a short statement timeout; the worker started
    // now has only such sessions.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter database {} set statement_timeout = '1s'",
        h.db.name()
    )))
    .execute(h.pool())
    .await
    .unwrap();
    let worker = h.worker().await;

    // Another session holds the tenant row, so the revocation waits and times out (57014).
    let mut blocker = h.pool().begin().await.unwrap();
    sqlx::query("select 1 from tenants where corp_id = $1 for update")
        .bind(&corp)
        .execute(&mut *blocker)
        .await
        .unwrap();
    h.publish(&Event::CancelAuth(CancelAuth {
        suite_id: SUITE_ID.parse().unwrap(),
        auth_corp_id: corp.parse().unwrap(),
        timestamp: h.sim.clock.now_secs() + 5,
    }))
    .await;
    wait_until("the cancel_auth fails once", || async {
        messages_total(&worker.metrics, "cancel_auth", "retried")
            + messages_total(&worker.metrics, "cancel_auth", "dead_lettered")
            > 0
    })
    .await;
    blocker.rollback().await.unwrap();

    let dead = h.dead_letters().await;
    assert!(
        dead.is_empty(),
        "the cancel_auth was dead-lettered: {:?}",
        dead.iter().map(|(_, reason)| reason).collect::<Vec<_>>()
    );
    let tenant = h
        .wait_tenant(&corp, |t| t.status == TenantStatus::Revoked)
        .await;
    assert!(tenant.permanent_code_key_id.is_none(), "secret deleted");
    let secrets: i64 = sqlx::query_scalar(
        "select count(*) from tenants where corp_id = $1 and permanent_code_ciphertext is not null",
    )
    .bind(&corp)
    .fetch_one(h.pool())
    .await
    .unwrap();
    assert_eq!(secrets, 0);
    let tokens: i64 = sqlx::query_scalar("select count(*) from corp_tokens where corp_id = $1")
        .bind(&corp)
        .fetch_one(h.pool())
        .await
        .unwrap();
    assert_eq!(tokens, 0);
    h.wait_internal("tenant.revoked").await;
    assert!(messages_total(&worker.metrics, "cancel_auth", "retried") >= 1);
    assert_eq!(
        messages_total(&worker.metrics, "cancel_auth", "dead_lettered"),
        0
    );
    worker.stop().await;
    h.close().await;
}
