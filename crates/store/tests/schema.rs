//! `daikai migrate` and the start-up schema check.

use store::testing::TestDatabase;
use store::{SchemaError, check_schema, latest_version, migrate};

#[tokio::test]
async fn check_schema_on_an_empty_database_says_to_run_daikai_migrate() {
    let db = TestDatabase::create_empty(&test_support::database_url())
        .await
        .unwrap();
    let err = check_schema(db.pool()).await.unwrap_err();
    assert!(matches!(err, SchemaError::Uninitialized), "{err:?}");
    assert!(err.to_string().contains("run `daikai migrate`"), "{err}");
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn migrate_applies_everything_once_and_is_idempotent() {
    let db = TestDatabase::create_empty(&test_support::database_url())
        .await
        .unwrap();
    let first = migrate(db.pool()).await.unwrap();
    assert_eq!(first.latest, latest_version());
    assert_eq!(first.applied.last(), Some(&latest_version()));
    assert_eq!(
        first.applied.len(),
        store::MIGRATOR.iter().count(),
        "all migrations applied on an empty database"
    );
    let second = migrate(db.pool()).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    check_schema(db.pool()).await.unwrap();
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn check_schema_names_missing_migrations() {
    let db = test_support::test_db().await;
    sqlx::query("delete from _sqlx_migrations where version = $1")
        .bind(latest_version())
        .execute(db.pool())
        .await
        .unwrap();
    let err = check_schema(db.pool()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SchemaError::Behind { .. }), "{err:?}");
    assert!(text.contains(&latest_version().to_string()), "{text}");
    assert!(text.contains("run `daikai migrate`"), "{text}");
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn check_schema_reports_an_edited_migration() {
    let db = test_support::test_db().await;
    sqlx::query("update _sqlx_migrations set checksum = '\\x00' where version = 1")
        .execute(db.pool())
        .await
        .unwrap();
    let err = check_schema(db.pool()).await.unwrap_err();
    assert!(
        matches!(err, SchemaError::Modified { version: 1, .. }),
        "{err:?}"
    );
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_database_ahead_of_the_binary_is_accepted() {
    let db = test_support::test_db().await;
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values ($1, 'from a newer release', true, '\\x00', 0)",
    )
    .bind(latest_version() + 1)
    .execute(db.pool())
    .await
    .unwrap();
    check_schema(db.pool()).await.unwrap();
    // an older `daikai migrate` refuses to touch it, and says why
    let err = migrate(db.pool()).await.unwrap_err();
    assert!(
        matches!(err, SchemaError::NewerThanBinary(v) if v == latest_version() + 1),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer release"), "{err}");
    db.drop_database().await.unwrap();
}
