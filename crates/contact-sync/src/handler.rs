//! Where a message from `wecom.contacts` goes, by payload:
//! - `change_contact` (either framing) → `incremental.rs`;
//! - `tenant.activated`, `tenant.changed`, `tenant.sync_requested` → `full_sync.rs`;
//! - `tenant.revoked` → here: runs cancelled and the directory purged in one transaction;
//! - a `change_contact` WeCom sent but this version could not parse → a full sync (something
//!   changed, and only a full read can say what).
//!
//! No inbox: every effect here is settled by reading WeCom (or is a purge), so applying a message
//! twice gives the same mirror as applying it once, and skipping a "duplicate" could be wrong
//! (two identical pushes can be two real changes: docs/contact-sync.md §3).

use bus::consumer::{Handler, HandlerError, Message};
use bus::{Payload, Tenant as TenantInEvent, TenantEvent};
use store::directory::{self, runs};
use store::tenants::TenantStatus;
use uuid::Uuid;
use wecom::event::Event;

use crate::error::{Doing, SyncError};
use crate::syncer::Syncer;
use crate::{full_sync, incremental};

impl Handler for Syncer {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let envelope = &message.envelope;
        let applied = match &envelope.payload {
            Payload::Wecom(Event::ChangeContact(change)) => {
                incremental::apply(self, envelope, change).await
            }
            Payload::Wecom(Event::Unknown(unknown))
                if envelope.kind.starts_with("change_contact") =>
            {
                tracing::warn!(
                    kind = envelope.kind, parse_error = ?unknown.parse_error,
                    "a change_contact that does not parse: running a full sync"
                );
                self.sync_tenant(
                    &envelope.suite_id,
                    envelope.corp_id.as_ref(),
                    "unparsed_change",
                    Some(envelope.id),
                )
                .await
            }
            Payload::Tenant(TenantEvent::Activated(tenant)) => {
                self.sync(tenant, "activated", envelope.id).await
            }
            Payload::Tenant(TenantEvent::Changed(tenant)) => {
                self.sync(tenant, "changed", envelope.id).await
            }
            Payload::Tenant(TenantEvent::SyncRequested(tenant)) => {
                self.sync(tenant, "requested", envelope.id).await
            }
            Payload::Tenant(TenantEvent::Revoked(tenant)) => self.revoke(tenant).await,
            Payload::Wecom(_) => Err(SyncError::Invalid(format!(
                "{} is not a directory event (check the wecom.contacts bindings)",
                envelope.kind
            ))),
        };
        applied.map_err(HandlerError::from)
    }
}

impl Syncer {
    async fn sync(
        &self,
        event: &TenantInEvent,
        reason: &str,
        trigger: Uuid,
    ) -> Result<(), SyncError> {
        self.sync_tenant(&event.suite_id, Some(&event.corp_id), reason, Some(trigger))
            .await
    }

    /// A full sync of the tenant as it is now (the event may be older than its current status).
    pub(crate) async fn sync_tenant(
        &self,
        suite_id: &store::SuiteId,
        corp_id: Option<&store::CorpId>,
        reason: &str,
        trigger: Option<Uuid>,
    ) -> Result<(), SyncError> {
        let Some(corp_id) = corp_id else {
            return Err(SyncError::Invalid(
                "a tenant event without a corp id".to_owned(),
            ));
        };
        match self.tenant(suite_id, corp_id).await? {
            Some(tenant) if tenant.status == TenantStatus::Active => {
                full_sync::run(self, &tenant, reason, trigger).await
            }
            other => {
                tracing::info!(
                    %suite_id, %corp_id, status = ?other.map(|t| t.status), reason,
                    "tenant not active: no sync"
                );
                Ok(())
            }
        }
    }

    /// Cancels the tenant's runs and deletes its directory, if the tenant is revoked now (a
    /// late `tenant.revoked` after a re-authorization purges nothing).
    async fn revoke(&self, event: &TenantInEvent) -> Result<(), SyncError> {
        let Some(tenant) = self.tenant(&event.suite_id, &event.corp_id).await? else {
            return Ok(());
        };
        if tenant.status != TenantStatus::Revoked {
            tracing::info!(corp_id = %event.corp_id, status = %tenant.status, "tenant.revoked superseded: nothing purged");
            return Ok(());
        }
        let mut tx = self.begin().await?;
        runs::cancel(&mut tx, tenant.id, "tenant revoked")
            .await
            .doing("cancelling the tenant's sync runs")?;
        let removed = directory::purge_tenant(&mut tx, tenant.id)
            .await
            .doing("purging the tenant's directory")?;
        tx.commit().await.doing("committing the purge")?;
        tracing::info!(corp_id = %event.corp_id, removed, "tenant revoked: directory purged");
        Ok(())
    }
}
