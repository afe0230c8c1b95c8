//! The periodic sweep: what no message will tell the worker.
//!
//! - AuthCodes still `received` past their 10 minutes (their message is waiting in a retry
//!   queue, or was lost before it reached the worker) are marked `failed` (`expired`) and
//!   reported once each — an AuthCode is never silently lost. Every replica sweeps; the update
//!   is atomic, so each code is reported by exactly one of them.
//! - The suite-ticket age gauge is refreshed from the database (so every replica reports the
//!   same age, whichever consumed the push), and a suite whose newest ticket is older than
//!   [`STALE_TICKET`] is logged once when it becomes stale and once when it recovers. A configured
//!   suite with no ticket at all has no age: `daikai_suite_ticket_missing` says so instead (1),
//!   so a template callback URL that never worked is as visible as one that stopped working.
//! - The tenants-by-status gauge (`daikai_tenants{status}`) is refreshed from the database, every
//!   status each time (zero included), so every replica reports the same counts.
//! - Inbox entries older than `INBOX_RETENTION_HOURS` are deleted, in batches of
//!   [`PRUNE_BATCH`] rows (each its own short transaction, at most [`PRUNE_MAX_BATCHES`] per
//!   sweep: a large backlog is worked off over several sweeps without a long transaction), by
//!   one replica at a time (`store::inbox::PRUNE_LOCK`, a transaction-level advisory lock; a
//!   replica that finds it taken skips its turn).

use std::collections::BTreeSet;

use chrono::TimeDelta;
use sqlx::PgPool;
use store::SuiteId;
use store::inbox::Pruned;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// A ticket older than this means pushes are not arriving (WeCom sends one every 10 minutes,
/// each valid 30): alert before the suite token can no longer be refreshed.
pub const STALE_TICKET: TimeDelta = TimeDelta::minutes(20);

/// Inbox entries deleted per prune transaction.
pub const PRUNE_BATCH: i64 = 5_000;
/// Prune transactions per sweep at most.
pub const PRUNE_MAX_BATCHES: u32 = 20;

/// What the sweep needs besides the pool and the metrics.
#[derive(Debug, Clone)]
pub(crate) struct SweepConfig {
    /// The configured suites, for the ticket-missing gauge.
    pub(crate) suite_ids: Vec<SuiteId>,
    /// `AUTH_WORKER_SWEEP_SECS`.
    pub(crate) interval: std::time::Duration,
    /// `INBOX_RETENTION_HOURS`.
    pub(crate) inbox_retention: TimeDelta,
}

/// Runs the sweep every `config.interval` until `shutdown`.
pub(crate) async fn run(
    pool: PgPool,
    metrics: Metrics,
    config: SweepConfig,
    shutdown: CancellationToken,
) {
    let mut stale = BTreeSet::new();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if let Err(error) = sweep_auth_codes(&pool, &metrics).await {
            tracing::warn!(%error, "expired AuthCode sweep failed");
        }
        if let Err(error) =
            refresh_ticket_ages(&pool, &metrics, &config.suite_ids, &mut stale).await
        {
            tracing::warn!(%error, "suite ticket age refresh failed");
        }
        if let Err(error) = refresh_tenant_counts(&pool, &metrics).await {
            tracing::warn!(%error, "tenant count refresh failed");
        }
        if let Err(error) = prune_inbox(&pool, &metrics, config.inbox_retention).await {
            tracing::warn!(%error, "inbox prune failed");
        }
    }
}

/// Marks and reports expired AuthCodes.
pub(crate) async fn sweep_auth_codes(
    pool: &PgPool,
    metrics: &Metrics,
) -> Result<(), store::StoreError> {
    let mut conn = pool.acquire().await?;
    for record in store::auth_codes::fail_expired_auth_codes(&mut conn).await? {
        metrics
            .auth_code_failures
            .with_label_values(&[record.kind.as_str(), "expired"])
            .inc();
        tracing::error!(
            auth_code = %record.hash,
            kind = record.kind.as_str(),
            suite_id = %record.suite_id,
            attempts = record.attempts,
            last_error = record.last_error.as_deref().unwrap_or(""),
            "AuthCode expired before it could be exchanged: the corp needs to re-authorize, or \
             the provider to reset the app's secret (重新获取secret)"
        );
    }
    Ok(())
}

/// Sets `daikai_tenants{status}` for every status from the database.
pub(crate) async fn refresh_tenant_counts(
    pool: &PgPool,
    metrics: &Metrics,
) -> Result<(), store::StoreError> {
    let mut conn = pool.acquire().await?;
    for (status, count) in store::tenants::count_by_status(&mut conn).await? {
        metrics
            .tenants
            .with_label_values(&[status.as_str()])
            .set(count);
    }
    Ok(())
}

/// Deletes inbox entries past the retention, unless another replica is pruning.
pub(crate) async fn prune_inbox(
    pool: &PgPool,
    metrics: &Metrics,
    retention: TimeDelta,
) -> Result<(), store::StoreError> {
    match store::inbox::prune_expired(pool, retention, PRUNE_BATCH, PRUNE_MAX_BATCHES).await? {
        Pruned::Done { rows, batches } if rows > 0 => {
            metrics.inbox_pruned.inc_by(rows);
            tracing::info!(
                rows,
                batches,
                retention_hours = retention.num_hours(),
                "inbox entries past the retention pruned"
            );
        }
        Pruned::Done { .. } => {}
        Pruned::Busy => tracing::debug!("another replica is pruning the inbox"),
    }
    Ok(())
}

/// Sets `daikai_suite_ticket_age_seconds` per stored suite, `daikai_suite_ticket_missing` per
/// configured suite, and logs stale transitions.
pub(crate) async fn refresh_ticket_ages(
    pool: &PgPool,
    metrics: &Metrics,
    suite_ids: &[SuiteId],
    stale: &mut BTreeSet<String>,
) -> Result<(), store::StoreError> {
    let mut conn = pool.acquire().await?;
    let statuses = store::suites::ticket_statuses(&mut conn).await?;
    for suite_id in suite_ids {
        let has_ticket = statuses
            .iter()
            .any(|s| s.suite_id == *suite_id && s.wecom_time.is_some());
        metrics
            .ticket_missing
            .with_label_values(&[suite_id.as_str()])
            .set(i64::from(!has_ticket));
    }
    for status in statuses {
        let Some(wecom_time) = status.wecom_time else {
            continue;
        };
        let age = status.now - wecom_time;
        let suite_id = status.suite_id.as_str();
        metrics
            .ticket_age
            .with_label_values(&[suite_id])
            .set(age.num_seconds());
        if age > STALE_TICKET {
            if stale.insert(suite_id.to_owned()) {
                tracing::error!(
                    suite_id,
                    age_seconds = age.num_seconds(),
                    "no fresh suite_ticket for over 20 minutes: check the template callback URL \
                     (or force a push from the provider console)"
                );
            }
        } else if stale.remove(suite_id) {
            tracing::info!(suite_id, "suite_ticket pushes are arriving again");
        }
    }
    Ok(())
}
