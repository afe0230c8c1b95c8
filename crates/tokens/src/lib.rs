//! Suite and corp access tokens for every replica of every worker: cached in Postgres, sealed,
//! and refreshed by one replica at a time (docs/architecture.md §4.4).
//!
//! This crate owns the refresh *protocol*; the statements it runs are `store`'s
//! ([`store::suites`], [`store::corp_tokens`]), the calls it makes are `wecom`'s
//! ([`wecom::api::Client`]). Any service that needs a tenant's token goes through
//! [`TokenService`] and never reads the token columns itself.
//!
//! # Why in Postgres and not in memory
//! Every replica of every worker needs the same token, and WeCom rate-limits `gettoken`; N
//! replicas each refreshing on their own is the stampede the SDKs suffer from. The protocol, for
//! both kinds of token:
//!
//! 1. Read the cached token without locking. If it is younger than 90 % of its lifetime, use it.
//! 2. Otherwise open a transaction and lock the owning row (`suites` for the suite token,
//!    `tenants` for a corp token: `select … for no key update`). Replicas that need the same
//!    token queue on that lock.
//! 3. Re-read the cache under the lock: the replica ahead in the queue has usually refreshed it,
//!    and then no WeCom call is made.
//! 4. Otherwise call WeCom, store the token (sealed), commit (releasing the lock).
//!
//! If the refresh fails transiently while the old token has not expired yet, the old token is
//! used. On 40014/42001 (corp) or 40082/42009 (suite) the failing token is invalidated only if it
//! is still the stored one (compare-and-delete by SHA-256), so a late error for an already
//! replaced token never kills its replacement; [`TokenService::with_corp_token`] and
//! [`TokenService::with_suite_token`] do that and retry the call once.
//!
//! The corp token comes from `gettoken` with the corp id and the tenant's permanent code, the
//! 代开发 app secret (docs/wecom.md §4.4). Tenants that are not `active` get no WeCom call at all.
//!
//! # JS-SDK tickets
//! [`TokenService::jsapi_ticket`] caches the corp's jsapi_ticket and the app's agent_config ticket
//! the same way (WeCom allows 400 and 100 fetches an hour, and each lives 7200 s): an unlocked
//! read, then the lock of the ticket's own row in `jsapi_tickets`, a re-read, and one WeCom call.
//! Not the tenant row's lock: a ticket fetch needs a corp token, whose refresh takes that lock.
//! The corp token is had before the ticket's transaction begins, so a ticket refresh too holds one
//! connection at a time; a token WeCom refuses (40014/42001) is invalidated (compare-and-delete)
//! and the ticket fetched once more with a fresh one.
//!
//! # Connections and locks: two rules for callers
//! The single-flight *is* the row lock of step 2, and a Postgres lock lives as long as the
//! transaction that took it: a refresh therefore holds one pooled connection, and the row lock,
//! for the duration of its WeCom call (at most the client's timeout). Releasing either before the
//! call would let a second replica refresh at the same time. Nothing else in this crate holds a
//! connection across HTTP: the unlocked read of step 1 returns its connection before a refresh
//! begins, and the `call` of [`TokenService::with_corp_token`] /
//! [`TokenService::with_suite_token`] runs with no connection held. So one service call uses at
//! most one connection of the service's pool at a time.
//!
//! - **Size the pools.** A caller that holds a connection of the same pool while it asks for a
//!   token (the auth worker keeps a message's transaction open across `change_auth`'s WeCom
//!   calls) holds two at once. With N such callers in flight the pool needs 2 N connections plus
//!   whatever else draws on it, or N open transactions can take every connection while the
//!   refreshes they wait for queue for one. For the auth worker that is `2 × prefetch + 2` (the
//!   sweep and `/readyz` take one each; docs/auth-worker.md, `DATABASE_MAX_CONNECTIONS`).
//!   [`TokenService::new`] takes any pool: a service given its own small pool, sized for the
//!   refreshes that may run at once, leaves the caller's pool needing one connection per message.
//! - **Call WeCom before writing the tenant row in the same transaction.** A corp-token refresh
//!   locks the tenant's row on its own connection. If the caller's open transaction already
//!   updated that row (activation, rotation, status), the refresh waits for the caller and the
//!   caller waits for the refresh. Postgres sees no cycle (one side waits on an HTTP future, not
//!   on a lock), so nothing breaks it but a timeout. Read, call WeCom, then write and commit.
//!
//! # Metrics
//! The crate counts nothing itself: [`TokenService::with_observer`] takes a [`RefreshObserver`]
//! that hears every refresh attempt ([`RefreshKind`]: suite, corp, jsapi, agent_config) and
//! whether it got a fresh token. The services register `daikai_token_refreshes_total{kind,
//! outcome}` on their own registry through it (`runtime::metrics`).
//!
//! # Use
//! ```ignore
//! let tokens = tokens::TokenService::new(pool.clone(), wecom_client, secrets.clone());
//! let user = tokens.with_corp_token(&suite_id, &corp_id, |token| {
//!     let client = tokens.client().clone();
//!     async move { client.user_get(token.expose(), "zhangsan").await }
//! }).await?;                                    // TokenError::class() drives the retry policy
//! ```

mod error;
mod observe;
mod service;
mod token;

pub use error::TokenError;
pub use observe::{RefreshKind, RefreshObserver};
pub use service::TokenService;
pub use store::jsapi_tickets::TicketKind;
pub use token::Token;
