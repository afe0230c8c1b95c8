//! What each replica does besides consuming, every `SYNC_TICK_SECS`:
//! - resumes runs whose owner stopped without their trigger being redelivered (a crash after
//!   the trigger was retried away, or a run started by an event whose message was acked);
//! - starts the reconciliations that came due (each tenant every `SYNC_RECONCILE_SECS` ±25 %,
//!   claimed with `skip locked` so exactly one replica takes each);
//! - prunes the shared call budget's old windows.
//!
//! The runs it starts are background tasks, at most [`BACKGROUND_RUNS`] at a time per replica;
//! on shutdown they are dropped and their leases lapse, so another replica resumes them.

use std::sync::Arc;

use store::directory::{quota, runs};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{Doing, SyncError};
use crate::full_sync;
use crate::syncer::Syncer;

/// Full syncs the schedule runs at once on one replica.
const BACKGROUND_RUNS: usize = 2;
/// Reconciliations claimed per tick.
const CLAIM_PER_TICK: i64 = 4;

/// Ticks until `stop` fires.
pub(crate) async fn run(syncer: Syncer, tick: std::time::Duration, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(BACKGROUND_RUNS));
    let mut running = JoinSet::new();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        while running.try_join_next().is_some() {}
        if let Err(error) = once(&syncer, &slots, &mut running).await {
            tracing::warn!(%error, "sync schedule tick failed");
        }
    }
    running.abort_all();
}

async fn once(
    syncer: &Syncer,
    slots: &Arc<Semaphore>,
    running: &mut JoinSet<()>,
) -> Result<(), SyncError> {
    let mut conn = syncer.connection("reading the sync schedule").await?;
    quota::prune(&mut conn)
        .await
        .doing("pruning call budgets")?;
    let lapsed = runs::lapsed_runs(&mut conn)
        .await
        .doing("finding stopped sync runs")?;
    for run in lapsed {
        start(syncer, slots, running, run.tenant_id, "resumed");
    }
    if slots.available_permits() == 0 {
        return Ok(());
    }
    let due =
        runs::claim_due_reconciliations(&mut conn, syncer.settings.reconcile_every, CLAIM_PER_TICK)
            .await
            .doing("claiming due reconciliations")?;
    for tenant_id in due {
        start(syncer, slots, running, tenant_id, "reconcile");
    }
    Ok(())
}

/// Spawns a full sync of the tenant if a slot is free (else the next tick will).
fn start(
    syncer: &Syncer,
    slots: &Arc<Semaphore>,
    running: &mut JoinSet<()>,
    tenant_id: i64,
    reason: &'static str,
) {
    let Ok(slot) = Arc::clone(slots).try_acquire_owned() else {
        return;
    };
    let syncer = syncer.clone();
    running.spawn(async move {
        let _slot = slot;
        if let Err(error) = sync_by_id(&syncer, tenant_id, reason).await {
            tracing::warn!(tenant_id, reason, %error, "scheduled sync failed; the next tick retries");
        }
    });
}

async fn sync_by_id(syncer: &Syncer, tenant_id: i64, reason: &str) -> Result<(), SyncError> {
    let tenant = {
        let mut conn = syncer.connection("reading the tenant").await?;
        store::tenants::tenant_by_id(&mut conn, tenant_id)
            .await
            .doing("reading the tenant")?
    };
    match tenant {
        Some(tenant) if tenant.status == store::tenants::TenantStatus::Active => {
            full_sync::run(syncer, &tenant, reason, None).await
        }
        _ => Ok(()),
    }
}
