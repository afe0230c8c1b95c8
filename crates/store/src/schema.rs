//! The schema version: applying the migrations compiled into this binary (`daikai migrate`) and
//! refusing to run against a database that lacks any of them.
//!
//! Services never migrate on start: with several replicas and several services sharing one
//! database, schema changes are an operator step. A service calls [`check_schema`] at start and
//! stops with a message that says to run `daikai migrate`.
//!
//! The history is linear: files are numbered `NNNN_name.sql`, a new change takes the next number,
//! and an applied file is never edited (its checksum is recorded; an edited file is reported).

use std::collections::HashMap;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The migrations in `crates/store/migrations`, embedded at compile time (no database needed to
/// build).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Why the database schema does not fit this binary.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No migration was ever applied (empty database, or the wrong database).
    #[error(
        "the database has no daikai schema (no migrations applied): run `daikai migrate` \
         against this DATABASE_URL first"
    )]
    Uninitialized,
    /// Some migrations this binary knows are not applied.
    #[error(
        "the database schema is older than this binary: migration(s) {missing} not applied; \
         run `daikai migrate`"
    )]
    Behind {
        /// The missing versions, comma-separated.
        missing: String,
    },
    /// An applied migration differs from the file this binary carries.
    #[error(
        "migration {version} ({description}) was applied from a different file than the one \
         this binary carries: applied migrations must never be edited"
    )]
    Modified {
        /// The version.
        version: i64,
        /// Its description.
        description: String,
    },
    /// A migration failed part-way and left its mark.
    #[error(
        "migration {version} failed part-way on this database: repair it by hand, delete its \
         row from _sqlx_migrations, then run `daikai migrate`"
    )]
    Dirty {
        /// The version.
        version: i64,
    },
    /// `daikai migrate` of an older release against a database a newer release migrated.
    #[error(
        "the database has migration {0}, which this binary does not carry: it was migrated by a \
         newer release; run that release's `daikai migrate`"
    )]
    NewerThanBinary(i64),
    /// Reading the migration table failed.
    #[error("cannot read the schema version: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, in order (empty when the schema was already current).
    pub applied: Vec<i64>,
    /// The newest version this binary knows.
    pub latest: i64,
}

/// Applies every migration this binary knows and the database lacks, under sqlx's migration lock
/// (concurrent runs wait for each other). Idempotent.
pub async fn migrate(pool: &PgPool) -> Result<MigrationReport, SchemaError> {
    let before = applied_versions(pool).await?;
    MIGRATOR.run(pool).await.map_err(|err| match err {
        MigrateError::VersionMissing(version) => SchemaError::NewerThanBinary(version),
        other => SchemaError::Migrate(other),
    })?;
    let after = applied_versions(pool).await?;
    let applied = after
        .keys()
        .filter(|version| !before.contains_key(version))
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(MigrationReport {
        applied,
        latest: latest_version(),
    })
}

/// Checks that every migration this binary knows is applied, unmodified and complete. A
/// database *ahead* of the binary (migrated by a newer release) is accepted: migrations are
/// additive, so an older replica keeps working during a rolling upgrade.
pub async fn check_schema(pool: &PgPool) -> Result<(), SchemaError> {
    let applied = applied_versions(pool).await?;
    if applied.is_empty() {
        return Err(SchemaError::Uninitialized);
    }
    if let Some((version, _)) = applied.iter().find(|(_, row)| !row.success) {
        return Err(SchemaError::Dirty { version: *version });
    }
    let mut missing = Vec::new();
    for migration in MIGRATOR.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match applied.get(&migration.version) {
            None => missing.push(migration.version.to_string()),
            Some(row) if row.checksum != *migration.checksum => {
                return Err(SchemaError::Modified {
                    version: migration.version,
                    description: migration.description.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(SchemaError::Behind {
            missing: missing.join(", "),
        });
    }
    let newer = applied.keys().filter(|v| **v > latest_version()).count();
    if newer > 0 {
        tracing::info!(
            newer,
            latest_known = latest_version(),
            "database schema is ahead of this binary (newer release migrated it)"
        );
    }
    Ok(())
}

/// The newest migration version compiled into this binary.
pub fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

struct AppliedRow {
    success: bool,
    checksum: Vec<u8>,
}

/// The rows of `_sqlx_migrations`, or none when the table does not exist yet.
async fn applied_versions(pool: &PgPool) -> Result<HashMap<i64, AppliedRow>, sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("select to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    if exists.is_none() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("select version, success, checksum from _sqlx_migrations")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(version, success, checksum)| (version, AppliedRow { success, checksum }))
        .collect())
}
