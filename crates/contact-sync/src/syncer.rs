//! What every part of the worker works with: the pool, the WeCom side, the metrics, the sync
//! settings and this replica's name. A leaf: it imports no other module of the worker but the
//! error and call plumbing.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Transaction};
use store::directory::{self, ReadableTenant};
use store::tenants::{self, Tenant};
use store::{CorpId, SuiteId};

use crate::error::{Doing, SyncError};
use crate::metrics::Metrics;
use crate::wecom_calls::{TenantRef, Wecom};

/// How full syncs run.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// WeCom calls in flight per full sync.
    pub concurrency: usize,
    /// How long a run's owner may go without a checkpoint before another replica takes over.
    pub lease: Duration,
    /// How often each tenant is reconciled.
    pub reconcile_every: Duration,
}

/// The worker's shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Syncer {
    pub(crate) pool: PgPool,
    pub(crate) wecom: Wecom,
    pub(crate) metrics: Metrics,
    pub(crate) settings: SyncSettings,
    /// This replica's name in `sync_runs.owner`.
    pub(crate) owner: String,
}

impl Syncer {
    pub(crate) async fn connection(
        &self,
        doing: &'static str,
    ) -> Result<PoolConnection<Postgres>, SyncError> {
        self.pool.acquire().await.doing(doing)
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>, SyncError> {
        self.pool.begin().await.doing("opening a transaction")
    }

    /// The tenant and the observation time for a read about to start; `None` for a corp daikai
    /// does not know.
    pub(crate) async fn readable_tenant(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
    ) -> Result<Option<ReadableTenant>, SyncError> {
        let mut conn = self.connection("looking the tenant up").await?;
        directory::readable_tenant(&mut conn, suite_id, corp_id)
            .await
            .doing("looking the tenant up")
    }

    /// The tenant row (status, auth info with the visibility scope).
    pub(crate) async fn tenant(
        &self,
        suite_id: &SuiteId,
        corp_id: &CorpId,
    ) -> Result<Option<Tenant>, SyncError> {
        let mut conn = self.connection("reading the tenant").await?;
        tenants::tenant(&mut conn, suite_id, corp_id)
            .await
            .doing("reading the tenant")
    }

    /// A transaction for directory writes, holding a share lock on the tenant row; `None` (and
    /// nothing written) when the tenant is no longer active.
    pub(crate) async fn begin_writes(
        &self,
        tenant_id: i64,
    ) -> Result<Option<Transaction<'static, Postgres>>, SyncError> {
        let mut tx = self.begin().await?;
        let active = directory::lock_active_tenant(&mut tx, tenant_id)
            .await
            .doing("locking the tenant")?;
        Ok(active.then_some(tx))
    }
}

impl TenantRef {
    pub(crate) fn of(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id,
            suite_id: tenant.suite_id.clone(),
            corp_id: tenant.corp_id.clone(),
        }
    }
}
