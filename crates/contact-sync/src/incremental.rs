//! `change_contact` events, in either framing: each is settled by reading the entity it names
//! from WeCom and storing what WeCom answers, stamped with when the read started.
//!
//! Why read instead of applying the event's fields: `update_user` carries only what changed,
//! apps without grants get fewer fields still, events arrive duplicated and out of order, and
//! two identical pushes can be two real changes (delete → re-create → delete within a second).
//! A read that started after a change reflects it, and the store keeps the newest read
//! (`store::directory`), so every event, duplicate or not, moves the mirror towards WeCom's state
//! and never away from it. An entity WeCom no longer shows (deleted: 60111/60003/40068; out of
//! the scope: 60011) becomes a tombstone.
//!
//! A department that enters or leaves the scope brings or takes members with it that no event
//! names: that case runs a full sync.

use bus::Envelope;
use chrono::{DateTime, Utc};
use store::directory::tags::TagSnapshot;
use store::directory::{self, Observation, departments, tags, users};
use wecom::event::{ChangeContact, ContactChange};
use wecom::ids::{DepartmentId, TagId, UserId};

use crate::error::{Doing, SyncError};
use crate::full_sync;
use crate::syncer::Syncer;
use crate::wecom_calls::TenantRef;

/// WeCom's "no such member" answers to `user/get`.
const USER_GONE: [i64; 2] = [60111, 46004];
/// "No such department".
const DEPARTMENT_GONE: i64 = 60003;
/// "No such tag".
const TAG_GONE: i64 = 40068;
/// "Outside the app's visibility scope".
const NOT_VISIBLE: i64 = 60011;

/// Applies one change event. Events for an unknown or inactive tenant are not applied: the
/// full sync that follows its activation covers them.
pub(crate) async fn apply(
    syncer: &Syncer,
    envelope: &Envelope,
    change: &ChangeContact,
) -> Result<(), SyncError> {
    let Some(corp_id) = envelope.corp_id.as_ref() else {
        return Err(SyncError::Invalid(
            "change_contact without a corp id (neither the app path nor AuthCorpId named one)"
                .to_owned(),
        ));
    };
    let tenant = match syncer.readable_tenant(&envelope.suite_id, corp_id).await? {
        Some(tenant) if tenant.active => tenant,
        other => {
            tracing::info!(
                suite_id = %envelope.suite_id, %corp_id, known = other.is_some(),
                "change_contact for a tenant that is not active: not applied"
            );
            return Ok(());
        }
    };
    let target = Target {
        syncer,
        event_id: envelope.id,
        tenant: TenantRef {
            id: tenant.id,
            suite_id: envelope.suite_id.clone(),
            corp_id: corp_id.clone(),
        },
        wecom_time: change.time.and_then(|t| DateTime::from_timestamp(t, 0)),
    };
    match &change.change {
        ContactChange::CreateUser(user)
        | ContactChange::UpdateUser(user)
        | ContactChange::DeleteUser(user) => {
            target
                .settle_user(&user.user_id, tenant.observed_at)
                .await?;
            if let Some(renamed) = &user.new_user_id {
                let observed_at = target.clock().await?;
                target.settle_user(renamed, observed_at).await?;
            }
            Ok(())
        }
        ContactChange::CreateParty(party) => target.settle_department(party.id, false).await,
        ContactChange::UpdateParty(party) | ContactChange::DeleteParty(party) => {
            target.settle_department(party.id, true).await
        }
        ContactChange::UpdateTag(tag) => target.settle_tag(tag.tag_id).await,
        ContactChange::Unknown { change_type } => {
            tracing::warn!(
                change_type,
                "unknown change_contact type: running a full sync"
            );
            target.full_sync("unknown_change").await
        }
    }
}

/// The tenant an event is about, and the WeCom time of the event.
struct Target<'a> {
    syncer: &'a Syncer,
    /// The event being applied (the trigger of any full sync it needs).
    event_id: uuid::Uuid,
    tenant: TenantRef,
    wecom_time: Option<DateTime<Utc>>,
}

impl Target<'_> {
    fn observation(&self, observed_at: DateTime<Utc>) -> Observation {
        Observation {
            tenant_id: self.tenant.id,
            observed_at,
            run: None,
            wecom_time: self.wecom_time,
        }
    }

    /// Reads the member and stores the answer (or a tombstone); `observed_at` was taken just
    /// before (with the tenant, for the event's first read).
    async fn settle_user(
        &self,
        user_id: &UserId,
        observed_at: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let answer = self
            .syncer
            .wecom
            .call(&self.tenant, "user/get", |client, token| {
                let user_id = user_id.clone();
                async move { client.user_get(token.expose(), &user_id).await }
            })
            .await;
        let observation = self.observation(observed_at);
        let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
            return Ok(());
        };
        match answer {
            Ok(user) => {
                let written = users::upsert_users(&mut tx, &observation, &[user])
                    .await
                    .doing("writing the member")?;
                self.syncer
                    .metrics
                    .rows
                    .with_label_values(&["users"])
                    .inc_by(written.rows);
            }
            Err(error) if gone(&error, &USER_GONE) => {
                users::tombstone_user(&mut tx, &observation, user_id)
                    .await
                    .doing("removing the member")?;
            }
            Err(error) => return Err(error),
        }
        tx.commit().await.doing("committing the member")
    }

    /// Reads the department and stores it (or a tombstone). A department that appears in or
    /// disappears from the scope by an update (a move) runs a full sync.
    async fn settle_department(
        &self,
        department_id: DepartmentId,
        existing: bool,
    ) -> Result<(), SyncError> {
        let (was_live, observed_at) = {
            let mut conn = self.syncer.connection("reading the department").await?;
            let live = departments::is_live(&mut conn, self.tenant.id, department_id)
                .await
                .doing("reading the department")?;
            let now = directory::observation_time(&mut conn)
                .await
                .doing("reading the clock")?;
            (live, now)
        };
        let answer = self
            .syncer
            .wecom
            .call(&self.tenant, "department/get", |client, token| async move {
                client.department_get(token.expose(), department_id).await
            })
            .await;
        let observation = self.observation(observed_at);
        let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
            return Ok(());
        };
        let scope_moved = match answer {
            Ok(department) => {
                departments::upsert_departments(&mut tx, &observation, &[department])
                    .await
                    .doing("writing the department")?;
                existing && !was_live
            }
            Err(error) if gone(&error, &[DEPARTMENT_GONE, NOT_VISIBLE]) => {
                departments::tombstone_department(&mut tx, &observation, department_id)
                    .await
                    .doing("removing the department")?;
                was_live && error.errcode() == Some(NOT_VISIBLE)
            }
            Err(error) => return Err(error),
        };
        tx.commit().await.doing("committing the department")?;
        if scope_moved {
            tracing::info!(%department_id, "a department moved across the scope: full sync");
            return self.full_sync("scope_moved").await;
        }
        Ok(())
    }

    /// Reads the tag's members and departments and stores them (or a tombstone).
    async fn settle_tag(&self, tag_id: TagId) -> Result<(), SyncError> {
        let observed_at = self.clock().await?;
        let answer = self
            .syncer
            .wecom
            .call(&self.tenant, "tag/get", |client, token| async move {
                client.tag_get(token.expose(), tag_id).await
            })
            .await;
        let observation = self.observation(observed_at);
        let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
            return Ok(());
        };
        match answer {
            Ok(members) => {
                let snapshot = TagSnapshot::new(
                    tag_id,
                    members.tagname,
                    members.userlist.into_iter().map(|u| u.userid).collect(),
                    members.partylist,
                );
                tags::upsert_tags(&mut tx, &observation, &[snapshot])
                    .await
                    .doing("writing the tag")?;
            }
            Err(error) if gone(&error, &[TAG_GONE]) => {
                tags::tombstone_tag(&mut tx, &observation, tag_id)
                    .await
                    .doing("removing the tag")?;
            }
            Err(error) => return Err(error),
        }
        tx.commit().await.doing("committing the tag")
    }

    /// The database clock, for a read about to start.
    async fn clock(&self) -> Result<DateTime<Utc>, SyncError> {
        let mut conn = self.syncer.connection("reading the clock").await?;
        directory::observation_time(&mut conn)
            .await
            .doing("reading the clock")
    }

    async fn full_sync(&self, reason: &str) -> Result<(), SyncError> {
        let Some(tenant) = self
            .syncer
            .tenant(&self.tenant.suite_id, &self.tenant.corp_id)
            .await?
        else {
            return Ok(());
        };
        full_sync::run(self.syncer, &tenant, reason, Some(self.event_id)).await
    }
}

/// Whether WeCom answered one of `codes` (the entity is gone, or not visible): including
/// "not visible" for members and tags, which the app then may not see either.
fn gone(error: &SyncError, codes: &[i64]) -> bool {
    error
        .errcode()
        .is_some_and(|code| codes.contains(&code) || code == NOT_VISIBLE)
}
