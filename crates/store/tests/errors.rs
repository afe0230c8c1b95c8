//! Which database failures are transient (retry the message) and which are permanent
//! (dead-letter it), with the real Postgres producing the real SQLSTATEs: a timeout, a
//! read-only transaction after a failover, an idle transaction killed by the server, a pool
//! with no free connection. Each of them heals by itself, so none may dead-letter a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection};
use store::StoreError;

/// The SQLSTATE of a database error, for the failure messages.
fn sqlstate(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default(),
        other => format!("not a database error: {other}"),
    }
}

async fn connect(db: &store::testing::TestDatabase) -> PgConnection {
    PgConnection::connect_with(db.connect_options())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_statement_timeout_is_transient() {
    let db = test_support::test_db().await;
    let mut conn = connect(&db).await;
    sqlx::query("set statement_timeout = '100ms'")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = sqlx::query("select pg_sleep(2)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err}");
    let err = StoreError::from(err);
    assert!(err.is_transient(), "{err}");
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_write_to_a_read_only_database_is_transient() {
    // What a client sees when its pool still points at a primary that was demoted in a failover.
    let db = test_support::test_db().await;
    let mut conn = connect(&db).await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("set transaction read only")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("insert into inbox (consumer, dedupe_key) values ('c', 'k')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "25006", "{err}");
    let err = StoreError::from(err);
    assert!(err.is_transient(), "{err}");
    drop(tx);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn an_idle_transaction_killed_by_the_server_is_transient() {
    let db = test_support::test_db().await;
    let mut conn = connect(&db).await;
    sqlx::query("set idle_in_transaction_session_timeout = '100ms'")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("select 1").execute(&mut *tx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let err = sqlx::query("select 1").execute(&mut *tx).await.unwrap_err();
    // Postgres sends FATAL 25P03 and closes the connection; depending on timing the client
    // reads that error or only sees the closed socket. Both must be transient.
    let code = sqlstate(&err);
    assert!(
        code == "25P03" || matches!(err, sqlx::Error::Io(_)),
        "unexpected error: {code}"
    );
    let err = StoreError::from(err);
    assert!(err.is_transient(), "{err}");
    drop(tx);
    drop(conn);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_pool_with_no_free_connection_is_transient() {
    let db = test_support::test_db().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect_with(db.connect_options().clone())
        .await
        .unwrap();
    let held = pool.acquire().await.unwrap();
    let err = pool.acquire().await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
    assert!(StoreError::from(err).is_transient());
    drop(held);
    pool.close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    // Port 1 on localhost: nothing listens, the connection is refused.
    let options = test_support::database_url().replace(":5432", ":1");
    let err = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect(&options)
        .await
        .unwrap_err();
    assert!(StoreError::from(err).is_transient());
}

#[tokio::test]
async fn a_terminated_backend_is_transient() {
    let db = test_support::test_db().await;
    let mut victim = connect(&db).await;
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    sqlx::query("select pg_terminate_backend($1)")
        .bind(pid)
        .execute(db.pool())
        .await
        .unwrap();
    let err = sqlx::query("select 1")
        .execute(&mut victim)
        .await
        .unwrap_err();
    assert!(StoreError::from(err).is_transient());
    drop(victim);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn bad_sql_and_constraint_violations_stay_permanent() {
    let db = test_support::test_db().await;
    let mut conn = connect(&db).await;
    let err = sqlx::query("insert into inbox (consumer, dedupe_key) values ('', 'k')")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err}");
    assert!(!StoreError::from(err).is_transient());
    let err = sqlx::query("select no_such_column from inbox")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(!StoreError::from(err).is_transient());
    drop(conn);
    db.drop_database().await.unwrap();
}
