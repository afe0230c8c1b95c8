//! Postgres for daikai: migrations, sealed secrets, typed queries and the token service.
//!
//! Everything daikai keeps about the provider relationship lives here, and every SQL statement
//! of the services is in this crate: services call these functions, they never build SQL.
//! Nothing here reads the environment; the caller passes the pool, the keyring and the WeCom
//! client.
//!
//! # Tables and modules
//! | table | module | what |
//! |---|---|---|
//! | `suites` | [`suites`] | newest suite_ticket per suite (monotonic by WeCom TimeStamp), cached suite token |
//! | `tenants` | [`tenants`] | one row per (suite, corp): status, sealed permanent code, auth info |
//! | `auth_codes` | [`auth_codes`] | every AuthCode from arrival to exchanged/failed |
//! | `corp_tokens` | [`corp_tokens`] | cached corp access token per tenant |
//! | `inbox` | [`inbox`] | (consumer, dedupe_key) already applied |
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
//! let tokens = store::TokenService::new(pool.clone(), wecom_client, secrets.clone());
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
//! // any API call for a tenant
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
//! # Two rules that keep callers out of deadlocks
//! - **Size the pools.** A refresh takes its own connection from the [`TokenService`] pool and
//!   holds it during the WeCom call. A handler that holds a transaction connection while asking
//!   for a token needs a second connection: give the token service its own small pool, or make
//!   the shared pool larger than twice the consumer prefetch.
//! - **Call WeCom before writing the tenant row in the same transaction.** A corp-token refresh
//!   locks the tenant's row from another connection; if the handler's open transaction already
//!   updated that row (activation, rotation, status), the refresh waits for the handler and the
//!   handler waits for the refresh. Fetch what you need first, then write, then commit.

pub mod auth_codes;
pub mod corp_tokens;
mod error;
mod ids;
pub mod inbox;
pub mod rotation;
mod schema;
mod sealed;
pub mod secret;
pub mod suites;
pub mod tenants;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tokens;

pub use error::StoreError;
pub use ids::{CorpId, SuiteId};
pub use schema::{MIGRATOR, MigrationReport, SchemaError, check_schema, latest_version, migrate};
pub use secret::{KeyId, Keyring, Sealed, SecretBox, SecretContext, SecretError, SecretKey};
pub use tokens::{Token, TokenError, TokenService};
