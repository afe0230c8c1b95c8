//! Per-test databases for integration tests (feature `test-support`): each test creates its own
//! database, so tests run in parallel against one Postgres without seeing each other's rows.
//!
//! ```ignore
//! let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| store::testing::DEFAULT_URL.into());
//! let db = store::testing::TestDatabase::create(&url).await?;   // migrated
//! let pool = db.pool().clone();
//! // …
//! db.drop_database().await?;  // optional: a leaked database costs only disk
//! ```

use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, PgConnection, PgPool};

use crate::schema::{SchemaError, migrate};

/// The development Postgres (trust auth on localhost, as `docker-compose.yml` sets it up).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A uniquely named database, migrated (or empty, see [`TestDatabase::create_empty`]).
#[derive(Debug)]
pub struct TestDatabase {
    admin: PgConnectOptions,
    options: PgConnectOptions,
    name: String,
    url: String,
    pool: PgPool,
}

impl TestDatabase {
    /// Creates `daikai_test_<uuid>` on the server of `admin_url` and applies the migrations.
    pub async fn create(admin_url: &str) -> Result<Self, SchemaError> {
        let db = Self::create_empty(admin_url).await?;
        migrate(&db.pool).await?;
        Ok(db)
    }

    /// Creates a database without applying migrations.
    pub async fn create_empty(admin_url: &str) -> Result<Self, sqlx::Error> {
        let admin = PgConnectOptions::from_str(admin_url)?.disable_statement_logging();
        let name = format!("daikai_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await?;
        // `name` is ours (a prefix and a UUID), not input: identifiers cannot be bound.
        sqlx::query(AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let options = admin.clone().database(&name);
        let pool = Self::pool_for(&options).await?;
        Ok(Self {
            admin,
            options,
            url: with_database(admin_url, &name),
            name,
            pool,
        })
    }

    async fn pool_for(options: &PgConnectOptions) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
    }

    /// A pool on the test database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Another, independent pool on the same database: a second "replica", or the same service
    /// after a restart.
    pub async fn new_pool(&self) -> Result<PgPool, sqlx::Error> {
        Self::pool_for(&self.options).await
    }

    /// Connection options for the test database.
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// A URL for the test database (the admin URL with the database name replaced), for
    /// processes started by the test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the pool and drops the database (forcing out other sessions).
    pub async fn drop_database(self) -> Result<(), sqlx::Error> {
        // sqlx 0.9's close waits for every checked-out connection: a test still holding one
        // would wait forever. `drop … with (force)` below ends any session left anyway.
        drop(tokio::time::timeout(std::time::Duration::from_secs(2), self.pool.close()).await);
        let mut conn = PgConnection::connect_with(&self.admin).await?;
        sqlx::query(AssertSqlSafe(format!(
            "drop database if exists {} with (force)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await
    }
}

/// `url` with its database (path) replaced by `name`, query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "t1"),
            "postgres://h/t1?sslmode=disable"
        );
    }
}
