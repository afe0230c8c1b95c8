//! Publishing `internal.tenant.*` events reliably: **derive from committed state, publish with
//! confirms before the ack, and publish again on every duplicate.**
//!
//! The problem: the tenant change commits in Postgres, then the event goes to RabbitMQ; the
//! publish can fail, or the worker can die between the two. Two answers exist: an outbox table
//! written in the transaction and relayed after commit, or publish-before-ack with idempotent
//! consumers. This worker does the second, which needs no extra table and no relay process:
//!
//! 1. the handler commits the effect (and the inbox row);
//! 2. it reads the committed state and publishes the event it implies, with publisher confirms,
//!    as `Envelope::internal(event, dedupe_basis = the incoming message's dedupe_key + the
//!    tenant's status)`;
//! 3. only a confirmed publish lets the handler return `Ok`, hence the ack. A failed publish
//!    returns a transient error: the message comes back through the retry queue, finds its inbox
//!    row (a duplicate), applies nothing — and runs step 2 again. A crash between commit and
//!    publish is the same story with a broker redelivery.
//!
//! Step 2 runs on duplicates too, so every duplicate re-publishes. That is what makes it
//! reliable, and it is harmless: the re-published event has the same `dedupe_key`, and the
//! consumers (contact-sync) dedupe on it in their inbox. Deriving from the committed state,
//! rather than remembering what the first attempt wanted to say, also means a late re-publish
//! never contradicts a newer state: a create_auth replayed after the tenant was revoked finds it
//! revoked and publishes nothing.

use bus::consumer::{HandlerError, Message};
use bus::{Envelope, Tenant, TenantEvent};
use store::tenants;
use store::{CorpId, SuiteId};

use crate::error::{Doing, WorkerError};
use crate::state::AuthHandler;

/// Which `tenant.*` event a committed tenant implies, if any.
pub(crate) type EventFor = fn(&tenants::Tenant) -> Option<TenantEvent>;

/// Reads the committed tenant and publishes the event `event_for` derives from it (nothing
/// when it derives none: e.g. a create_auth replayed after a revocation).
pub(crate) async fn publish_committed(
    h: &AuthHandler,
    message: &Message,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    event_for: EventFor,
) -> Result<(), WorkerError> {
    let tenant = {
        let mut conn = h.connection("reading the tenant").await?;
        tenants::tenant(&mut conn, suite_id, corp_id)
            .await
            .doing("reading the tenant")?
    };
    match tenant.as_ref().and_then(event_for) {
        Some(event) => publish(h, message, event).await,
        None => Ok(()),
    }
}

/// `tenant.activated` for an active tenant (after create_auth).
pub(crate) fn activated(tenant: &tenants::Tenant) -> Option<TenantEvent> {
    (tenant.status == tenants::TenantStatus::Active)
        .then(|| TenantEvent::Activated(Tenant::from(tenant)))
}

/// `tenant.changed` for an active tenant (after reset_permanent_code).
pub(crate) fn changed_if_active(tenant: &tenants::Tenant) -> Option<TenantEvent> {
    (tenant.status == tenants::TenantStatus::Active)
        .then(|| TenantEvent::Changed(Tenant::from(tenant)))
}

/// `tenant.changed` for an active or suspended tenant (after change_auth).
pub(crate) fn changed(tenant: &tenants::Tenant) -> Option<TenantEvent> {
    matches!(
        tenant.status,
        tenants::TenantStatus::Active | tenants::TenantStatus::Suspended
    )
    .then(|| TenantEvent::Changed(Tenant::from(tenant)))
}

/// `tenant.revoked` for a revoked tenant (after cancel_auth).
pub(crate) fn revoked(tenant: &tenants::Tenant) -> Option<TenantEvent> {
    (tenant.status == tenants::TenantStatus::Revoked)
        .then(|| TenantEvent::Revoked(Tenant::from(tenant)))
}

/// Publishes `event` (confirmed), deduplicated on the incoming message's `dedupe_key` and the
/// tenant's status.
async fn publish(
    h: &AuthHandler,
    message: &Message,
    event: TenantEvent,
) -> Result<(), WorkerError> {
    let kind = event.kind();
    let corp_id = event.tenant().corp_id.clone();
    // The status is part of the basis: two pushes with identical text (one dedupe key) can
    // settle the tenant to different states, and each state must reach contact-sync.
    let basis = format!(
        "{}:{:?}",
        message.envelope.dedupe_key.as_str(),
        event.tenant().status
    );
    let envelope = Envelope::internal(event, &basis);
    match h.publisher.publish(&envelope, &message.correlation()).await {
        Ok(()) => {
            h.metrics.tenant_events.with_label_values(&[kind]).inc();
            tracing::info!(
                %corp_id,
                event = kind,
                dedupe_key = envelope.dedupe_key.as_str(),
                "tenant event published"
            );
            Ok(())
        }
        Err(error) => {
            h.metrics
                .tenant_event_failures
                .with_label_values(&[kind])
                .inc();
            Err(
                HandlerError::transient(format!("publishing {kind} for {corp_id} failed: {error}"))
                    .into(),
            )
        }
    }
}
