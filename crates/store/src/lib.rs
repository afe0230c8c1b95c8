//! Postgres for daikai: migrations, sealed secrets and typed queries.
//!
//! Everything daikai keeps about the provider relationship lives here, and every SQL statement
//! of the services is in this crate: services call these functions, they never build SQL.
//! Nothing here reads the environment or calls WeCom; the caller passes the pool and the
//! keyring. The token refresh protocol (one refresh across replicas, compare-and-delete
//! invalidation) is the `tokens` crate's, on top of the statements in [`suites`] and
//! [`corp_tokens`].
//!
//! # Tables and modules
//! | table | module | what |
//! |---|---|---|
//! | `suites` | [`suites`] | newest suite_ticket per suite (monotonic by WeCom TimeStamp), cached suite token |
//! | `tenants` | [`tenants`] | one row per (suite, corp): status, sealed permanent code, auth info |
//! | `auth_codes` | [`auth_codes`] | every AuthCode from arrival to exchanged/failed |
//! | `corp_tokens` | [`corp_tokens`] | cached corp access token per tenant |
//! | `inbox` | [`inbox`] | (consumer, dedupe_key) already applied |
//! | `directory_*`, `sync_runs`, `directory_sync`, `api_quota` | [`directory`] | the mirrored client directories, full-sync runs, shared WeCom call budgets |
//! | `api_keys` | [`api_keys`] | the provider API's keys: hashes, scopes, suites, revocation |
//! | `jsapi_tickets` | [`jsapi_tickets`] | cached JS-SDK tickets (corp and agent) per tenant |
//!
//! `docs/schema.md` describes the columns for readers outside daikai; `docs/operations.md` the
//! migration, key and rotation runbooks.
//!
//! # Conventions
//! - Query functions take `&mut PgConnection`. Pass `&mut *tx` of the consumer's transaction so
//!   the write commits or rolls back with the inbox entry and the message ack; pass
//!   `&mut *pool.acquire().await?` for a one-off statement. Writes that must be atomic together
//!   (secret rotation + token drop, revocation + token drop) are single statements, atomic even
//!   outside a transaction.
//! - Secrets go in as `&str`/`&SecretString` and come out as [`secrecy::SecretString`]; they are
//!   sealed with [`SecretBox`] (AES-256-GCM, key id stored with each value) before reaching a
//!   column, and no `Debug` output or error message contains one.
//! - Ids are [`SuiteId`] and [`CorpId`] (parse once at the boundary); WeCom `TimeStamp`s are
//!   passed as the `i64` unix seconds the events carry.
//!
//! # Start-up
//! ```ignore
//! let pool = PgPoolOptions::new().connect(&config.database_url).await?;
//! store::check_schema(&pool).await?;            // "… run `daikai migrate`" when behind
//! let secrets = store::SecretBox::new(store::Keyring::parse(&key, &previous_keys)?);
//! let tokens = tokens::TokenService::new(pool.clone(), wecom_client, secrets.clone());
//! ```
//!
//! # A consumer handler (auth worker)
//! ```ignore
//! // inside the consumer loop's transaction `tx`, after store::inbox::record(...) returned true:
//! // suite_ticket
//! let stored = store::suites::store_ticket(&mut *tx, &secrets, &store::suites::NewTicket {
//!     suite_id: &suite_id, ticket: &ev.suite_ticket, wecom_time: ev.timestamp,
//!     received_at: envelope.received_at,
//! }).await?;                                    // false: older than the stored one, ignored
//!
//! // create_auth: record on arrival, then claim (committed, with a lease) and exchange once
//! use store::auth_codes::{self, Claim, NewAuthCode, AuthCodeKind, AuthCodeHash, CLAIM_LEASE};
//! let hash = AuthCodeHash::of(&ev.auth_code);
//! auth_codes::record_auth_code(&mut conn, &secrets, &NewAuthCode {
//!     suite_id: &suite_id, kind: AuthCodeKind::CreateAuth, code: &ev.auth_code,
//!     wecom_time: ev.timestamp, received_at: envelope.received_at,
//! }).await?;
//! match auth_codes::claim_auth_code(&mut conn, &secrets, &hash, CLAIM_LEASE).await? {
//!     Claim::Ready(claimed) => {
//!         // No transaction is open during the WeCom call.
//!         let answer = tokens.with_suite_token(&suite_id, &suite_secret, |t| {
//!             let (client, code) = (tokens.client().clone(), claimed.code.clone());
//!             async move { client.get_permanent_code_v2(t.expose(), code.expose_secret()).await }
//!         }).await;
//!         // Ok: at once, in one transaction: auth_codes::lock_auth_code (an `exchanged` row
//!         //     with our claim_id is our own earlier commit), tenants::activate_tenant,
//!         //     auth_codes::mark_auth_code_exchanged(…, claimed.claim_id); retry on failure
//!         // 40078 / Permanent: auth_codes::mark_auth_code_failed(…)
//!         // transient: auth_codes::record_auth_code_error(…, claimed.claim_id, …) and retry
//!     }
//!     Claim::Busy { until } => { /* another worker is exchanging it: retry by `until` */ }
//!     Claim::Expired(record) => { /* log once + metric; the row is now `failed` */ }
//!     Claim::AlreadyExchanged { .. } | Claim::AlreadyFailed { .. } | Claim::NotFound => {}
//! }
//!
//! // reset_permanent_code: same claim/exchange, then
//! //   tenants::rotate_permanent_code(&mut *tx, &secrets, &suite_id, &corp_id, &code, ev.timestamp)
//! // (drops the cached corp token in the same statement). On StoreError::TenantNotFound the corp's
//! // create_auth was lost (burnt code): fetch auth info and tenants::activate_tenant instead —
//! // that is the recovery path docs/operations.md §4 promises operators.
//!
//! // any API call for a tenant: through the `tokens` crate (cached token, one refresh)
//! let user = tokens.with_corp_token(&suite_id, &corp_id, |t| {
//!     let client = tokens.client().clone();
//!     async move { client.user_get(t.expose(), "zhangsan").await }
//! }).await?;                                    // TokenError::class() drives the retry policy
//! ```
//!
//! # Periodic work for the auth worker
//! - [`auth_codes::fail_expired_auth_codes`] every minute or so: codes whose event was never
//!   processed become `failed` and are returned once, to be logged and counted.
//! - [`suites::ticket_statuses`] for the ticket-age metric (alert above 20 minutes).
//! - [`inbox::prune_expired`] with every sweep: entries past the retention (the auth worker keeps
//!   them 7 days by default), in short batches, one replica at a time (advisory lock).
//!
//! # Row locks
//! Given a transaction, a write or a `lock_*` function holds its row locks until the caller's
//! transaction ends, as Postgres does; nothing here calls WeCom, so how long that is is the
//! caller's choice. Two exist for the token refresh: [`suites::lock_suite_token`] and
//! [`corp_tokens::lock_tenant`]. The `tokens` crate holds them across its WeCom call (that is
//! its one refresh across replicas), and its crate docs give the rules that follow for callers
//! (pool sizes; call WeCom before writing the tenant row).

pub mod api_keys;
pub mod auth_codes;
pub mod corp_tokens;
pub mod directory;
mod error;
mod ids;
pub mod inbox;
pub mod jsapi_tickets;
pub mod rotation;
mod schema;
mod sealed;
pub mod secret;
pub mod suites;
pub mod tenants;
#[cfg(feature = "test-support")]
pub mod testing;

pub use error::StoreError;
pub use ids::{CorpId, SuiteId};
pub use schema::{MIGRATOR, MigrationReport, SchemaError, check_schema, latest_version, migrate};
pub use sealed::CachedToken;

/// Whether the database answers `select 1` within `timeout` (readiness probes).
pub async fn ping(pool: &sqlx::PgPool, timeout: std::time::Duration) -> bool {
    let query = sqlx::query("select 1").execute(pool);
    matches!(tokio::time::timeout(timeout, query).await, Ok(Ok(_)))
}
pub use secret::{KeyId, Keyring, Sealed, SecretBox, SecretContext, SecretError, SecretKey};
