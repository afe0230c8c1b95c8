//! Full syncs: the tenant's whole visible directory read from WeCom and written to the mirror,
//! resumable, one at a time per tenant across replicas (docs/contact-sync.md §2).
//!
//! A run goes through phases, each committing its rows together with a checkpoint
//! (`store::directory::runs`):
//! 1. `departments`: `department/list` (or `simplelist` when refused or too large, or per
//!    scope department when the root is not visible);
//! 2. `users`: `user/list` per department, a chunk of departments per transaction;
//! 3. `members`: `user/list_id` pages (cursor in the checkpoint); members the run has not
//!    written yet (visible through the scope's member or tag lists, in a department `user/list`
//!    refused, or the whole corp when `user/list` is not allowed) are read with `user/get`;
//! 4. `tags`: `tag/list`, then `tag/get` per tag;
//! 5. `sweep`: rows the run did not see and that nothing observed since it started are deleted
//!    (mark and sweep), and the run completes.
//!
//! A replica that dies leaves its run `running`; its lease lapses and the next trigger (the
//! redelivered message, or the periodic tick) takes it over at its checkpoint. Every batch
//! re-checks that the run is still ours and the tenant still active, so a run taken over or
//! cancelled by a revocation stops without writing.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use store::directory::runs::{self, Completed, Progress, Start, SyncRun};
use store::directory::tags::TagSnapshot;
use store::directory::{self, Observation, Written, departments, tags, users};
use store::tenants::Tenant;
use uuid::Uuid;
use wecom::api::{Department, DepartmentRef, User};
use wecom::ids::{DepartmentId, UserId};

use crate::error::{Doing, SyncError};
use crate::syncer::Syncer;
use crate::wecom_calls::TenantRef;

/// Departments whose members one transaction writes.
const DEPARTMENTS_PER_BATCH: usize = 32;
/// Rows per `user/list_id` page (WeCom's maximum).
const LIST_ID_PAGE: u32 = 10_000;
/// API not allowed for this app.
const NOT_ALLOWED: i64 = 48002;
/// Response too large.
const TOO_LARGE: i64 = 45029;
/// Outside the visibility scope.
const NOT_VISIBLE: i64 = 60011;
/// Department or member or tag gone meanwhile.
const GONE: [i64; 4] = [60003, 60111, 46004, 40068];
/// An invalid or expired `list_id` cursor.
const BAD_CURSOR: [i64; 2] = [50100, 40058];

/// Where a run is, saved with each batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// The departments whose members phase `users` lists, in order.
    #[serde(default)]
    departments: Vec<i64>,
    /// Index of the next department to list.
    #[serde(default)]
    next: usize,
    /// `user/list` is not allowed: every member comes from `list_id` + `user/get`.
    #[serde(default)]
    user_list_refused: bool,
    /// The next `user/list_id` page's cursor.
    #[serde(default)]
    cursor: Option<String>,
}

/// How one call of [`execute`] ended.
enum Finished {
    Done,
    Rerun,
    Lost,
}

/// Runs a full sync of the tenant for `reason` (and the event `trigger`, if an event asked):
/// starts one, resumes one whose owner died, or — when another replica is running one — asks it
/// to run again when done (unless it is this same event's run, delivered again). Runs again
/// while triggers arrived during the run.
pub(crate) async fn run(
    syncer: &Syncer,
    tenant: &Tenant,
    reason: &str,
    trigger: Option<Uuid>,
) -> Result<(), SyncError> {
    let mut reason = reason.to_owned();
    let mut trigger = trigger;
    loop {
        let start = {
            let mut conn = syncer.connection("starting a sync run").await?;
            runs::start(
                &mut conn,
                tenant.id,
                &reason,
                trigger,
                &syncer.owner,
                syncer.settings.lease,
            )
            .await
            .doing("starting a sync run")?
        };
        let run = match start {
            Start::New(run) => run,
            Start::TakenOver(run) => {
                tracing::info!(
                    run = run.id,
                    phase = run.phase,
                    "resuming a sync run whose owner stopped"
                );
                run
            }
            Start::Busy(run) => {
                tracing::info!(
                    run = run.id,
                    "a sync run is in progress elsewhere: asked it to run again"
                );
                syncer
                    .metrics
                    .runs
                    .with_label_values(&[&reason, "busy"])
                    .inc();
                return Ok(());
            }
            Start::Redelivered(run) => {
                tracing::info!(
                    run = run.id,
                    "this event's sync run is in progress; it resumes from its checkpoint"
                );
                return Ok(());
            }
        };
        syncer.metrics.runs_in_progress.inc();
        let finished = Execution::new(syncer, tenant, &run).execute().await;
        syncer.metrics.runs_in_progress.dec();
        match finished {
            Ok(Finished::Done) => return Ok(()),
            Ok(Finished::Rerun) => {
                "rerun".clone_into(&mut reason);
                trigger = None;
            }
            Ok(Finished::Lost) => {
                syncer
                    .metrics
                    .runs
                    .with_label_values(&[&run.reason, "lost"])
                    .inc();
                return Ok(());
            }
            Err(error) => return Err(give_up_or_release(syncer, &run, error).await),
        }
    }
}

/// A failed run: a permanent failure is recorded (the next trigger starts afresh); a transient
/// one gives the lease up so the retry, on any replica, resumes at the checkpoint.
async fn give_up_or_release(syncer: &Syncer, run: &SyncRun, error: SyncError) -> SyncError {
    let permanent = error.is_permanent();
    let recorded = async {
        let mut conn = syncer.connection("recording the run's failure").await?;
        if permanent {
            syncer.metrics.run_failures.inc();
            syncer
                .metrics
                .runs
                .with_label_values(&[&run.reason, "failed"])
                .inc();
            runs::fail(&mut conn, run.id, &syncer.owner, &error.to_string())
                .await
                .doing("recording the run's failure")?;
        } else {
            runs::release(&mut conn, run.id, &syncer.owner)
                .await
                .doing("releasing the run")?;
        }
        Ok::<_, SyncError>(())
    };
    if let Err(also) = recorded.await {
        tracing::warn!(run = run.id, error = %also, "could not record the run's failure");
    }
    tracing::warn!(run = run.id, %error, permanent, "sync run stopped");
    error
}

/// One run being executed by this replica.
struct Execution<'a> {
    syncer: &'a Syncer,
    tenant: &'a Tenant,
    target: TenantRef,
    run: &'a SyncRun,
    checkpoint: Checkpoint,
}

impl<'a> Execution<'a> {
    fn new(syncer: &'a Syncer, tenant: &'a Tenant, run: &'a SyncRun) -> Self {
        let checkpoint = serde_json::from_value(run.checkpoint.clone()).unwrap_or_default();
        Self {
            syncer,
            tenant,
            target: TenantRef::of(tenant),
            run,
            checkpoint,
        }
    }

    /// Runs the phases from the run's saved one to the end.
    async fn execute(mut self) -> Result<Finished, SyncError> {
        let mut phase = self.run.phase.clone();
        loop {
            let next = match phase.as_str() {
                "departments" => self.departments().await?,
                "users" => self.users().await?,
                "members" => self.members().await?,
                "tags" => self.tags().await?,
                "sweep" => return self.sweep().await,
                other => {
                    return Err(SyncError::Invalid(format!(
                        "sync run {} is in an unknown phase {other:?}",
                        self.run.id
                    )));
                }
            };
            match next {
                Some(next) => phase = next.to_owned(),
                None => return Ok(Finished::Lost),
            }
        }
    }

    /// Phase 1: the department tree.
    async fn departments(&mut self) -> Result<Option<&'static str>, SyncError> {
        let observed_at = self.clock().await?;
        let mut progress = Progress::default();
        let listed = self.list_departments(&mut progress).await?;
        let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
            return Ok(None);
        };
        let written =
            departments::upsert_departments(&mut tx, &self.observation(observed_at), &listed)
                .await
                .doing("writing departments")?;
        self.record_written("departments", &written, &mut progress);
        progress.departments += count(listed.len());
        self.checkpoint.departments = listed.iter().map(|d| d.id.get()).collect();
        self.checkpoint.next = 0;
        self.commit(tx, "users", progress).await
    }

    /// `department/list` with its fallbacks (docs/contact-sync.md §2).
    async fn list_departments(
        &self,
        progress: &mut Progress,
    ) -> Result<Vec<Department>, SyncError> {
        progress.api_calls += 1;
        progress.pages += 1;
        let listed = self
            .syncer
            .wecom
            .call(
                &self.target,
                "department/list",
                |client, token| async move { client.department_list(token.expose(), None).await },
            )
            .await;
        match listed {
            Ok(listed) => Ok(listed),
            Err(error) if matches!(error.errcode(), Some(NOT_ALLOWED | TOO_LARGE)) => {
                tracing::info!(%error, "department/list refused: listing the tree, then each department");
                self.list_department_tree(progress).await
            }
            Err(error) if error.errcode() == Some(NOT_VISIBLE) => {
                tracing::info!("the root is not visible: listing each scope department");
                self.list_scope_departments(progress).await
            }
            Err(error) => Err(error),
        }
    }

    /// The tree from `department/simplelist` (ids, parents, order: no names), then each
    /// department read with `department/get` for its name, as far as WeCom allows: after a 45029
    /// it does; after a 48002 it may not, and the names stay NULL (the app cannot read them).
    async fn list_department_tree(
        &self,
        progress: &mut Progress,
    ) -> Result<Vec<Department>, SyncError> {
        progress.api_calls += 1;
        let tree =
            self.syncer
                .wecom
                .call(
                    &self.target,
                    "department/simplelist",
                    |client, token| async move {
                        client.department_simplelist(token.expose(), None).await
                    },
                )
                .await?;
        let ids: Vec<DepartmentId> = tree.iter().map(|node| node.id).collect();
        let read = stream::iter(ids)
            .map(|id| self.read_department(id))
            .buffered(self.syncer.settings.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut departments = Vec::with_capacity(tree.len());
        let mut refused = false;
        for (node, answer) in tree.into_iter().zip(read) {
            progress.api_calls += 1;
            match answer {
                Ok(department) if !refused => departments.push(department),
                Err(error) if error.errcode() == Some(NOT_ALLOWED) => {
                    refused = true;
                    departments.push(nameless(&node));
                }
                // Gone or out of sight since the listing: the sweep settles it.
                Err(error) if skippable(&error) => {}
                Err(error) if !refused => return Err(error),
                _ => departments.push(nameless(&node)),
            }
        }
        if refused {
            // Named and nameless rows must not mix: all without names, as the listing gave them.
            for department in &mut departments {
                department.name = None;
                department.name_en = None;
            }
            tracing::info!("department/get refused too: departments stay without names");
        }
        Ok(departments)
    }

    async fn read_department(&self, id: DepartmentId) -> Result<Department, SyncError> {
        self.syncer
            .wecom
            .call(&self.target, "department/get", |client, token| async move {
                client.department_get(token.expose(), id).await
            })
            .await
    }

    async fn list_scope_departments(
        &self,
        progress: &mut Progress,
    ) -> Result<Vec<Department>, SyncError> {
        let mut all = Vec::new();
        for root in scope_departments(self.tenant) {
            progress.api_calls += 1;
            progress.pages += 1;
            let listed = self
                .syncer
                .wecom
                .call(
                    &self.target,
                    "department/list",
                    |client, token| async move {
                        client.department_list(token.expose(), Some(root)).await
                    },
                )
                .await;
            match listed {
                Ok(listed) => all.extend(listed),
                Err(error) if skippable(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(all)
    }

    /// Phase 2: members by department, a batch of departments per transaction.
    async fn users(&mut self) -> Result<Option<&'static str>, SyncError> {
        while !self.checkpoint.user_list_refused
            && self.checkpoint.next < self.checkpoint.departments.len()
        {
            let end = (self.checkpoint.next + DEPARTMENTS_PER_BATCH)
                .min(self.checkpoint.departments.len());
            let batch = self.checkpoint.departments[self.checkpoint.next..end].to_vec();
            let observed_at = self.clock().await?;
            let mut progress = Progress::default();
            let listed = self.list_users(&batch, &mut progress).await?;
            let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
                return Ok(None);
            };
            if let Some(listed) = listed {
                self.write_users(&mut tx, observed_at, &listed, &mut progress)
                    .await?;
                self.checkpoint.next = end;
            } else {
                tracing::info!("user/list is not allowed: reading members one by one");
                self.checkpoint.user_list_refused = true;
            }
            if self.commit(tx, "users", progress).await?.is_none() {
                return Ok(None);
            }
        }
        self.checkpoint.cursor = None;
        Ok(Some("members"))
    }

    /// `user/list` of each department (concurrently); `None` when the API is not allowed.
    /// Departments WeCom refuses (gone, not visible, too large) are left to phase 3.
    async fn list_users(
        &self,
        batch: &[i64],
        progress: &mut Progress,
    ) -> Result<Option<Vec<User>>, SyncError> {
        let answers: Vec<Result<Vec<User>, SyncError>> = stream::iter(batch.iter().copied())
            .map(|id| async move {
                let id = DepartmentId::new(id).map_err(|e| SyncError::Invalid(e.to_string()))?;
                self.syncer
                    .wecom
                    .call(&self.target, "user/list", |client, token| async move {
                        client.user_list(token.expose(), id).await
                    })
                    .await
            })
            .buffer_unordered(self.syncer.settings.concurrency)
            .collect()
            .await;
        progress.api_calls += count(answers.len());
        progress.pages += count(answers.len());
        let mut users = Vec::new();
        for answer in answers {
            match answer {
                Ok(listed) => users.extend(listed),
                Err(error) if error.errcode() == Some(NOT_ALLOWED) => return Ok(None),
                Err(error) if skippable(&error) || error.errcode() == Some(TOO_LARGE) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Some(users))
    }

    /// Phase 3: every visible member by `user/list_id`; those this run has not written yet are
    /// read with `user/get`. A page per transaction, its cursor in the checkpoint.
    async fn members(&mut self) -> Result<Option<&'static str>, SyncError> {
        let mut restarted = false;
        loop {
            let mut progress = Progress {
                api_calls: 1,
                pages: 1,
                ..Progress::default()
            };
            let cursor = self.checkpoint.cursor.clone();
            let page = self
                .syncer
                .wecom
                .call(&self.target, "user/list_id", |client, token| {
                    let cursor = cursor.clone();
                    async move {
                        client
                            .user_list_id(token.expose(), cursor.as_deref(), LIST_ID_PAGE)
                            .await
                    }
                })
                .await;
            let page = match page {
                Ok(page) => page,
                Err(error)
                    if !restarted
                        && cursor.is_some()
                        && error.errcode().is_some_and(|c| BAD_CURSOR.contains(&c)) =>
                {
                    // A cursor from before a restart of WeCom's side: start the listing over;
                    // members already written by this run are not read again.
                    tracing::info!(%error, "list_id cursor refused: listing from the start");
                    restarted = true;
                    self.checkpoint.cursor = None;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let listed: BTreeSet<String> = page
                .dept_user
                .iter()
                .map(|row| row.userid.as_str().to_owned())
                .collect();
            let missing = self.not_yet_written(listed).await?;
            let observed_at = self.clock().await?;
            let read = self.read_members(&missing, &mut progress).await?;
            let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
                return Ok(None);
            };
            self.write_users(&mut tx, observed_at, &read, &mut progress)
                .await?;
            self.checkpoint.cursor = page.next_page().map(str::to_owned);
            let last = self.checkpoint.cursor.is_none();
            let phase = if last { "tags" } else { "members" };
            if self.commit(tx, phase, progress).await?.is_none() {
                return Ok(None);
            }
            if last {
                return Ok(Some("tags"));
            }
        }
    }

    async fn not_yet_written(&self, listed: BTreeSet<String>) -> Result<Vec<UserId>, SyncError> {
        let listed: Vec<String> = listed.into_iter().collect();
        let mut conn = self.syncer.connection("reading members").await?;
        let seen: BTreeSet<String> =
            users::seen_by_run(&mut conn, self.tenant.id, self.run.id, &listed)
                .await
                .doing("reading members")?
                .into_iter()
                .collect();
        listed
            .into_iter()
            .filter(|id| !seen.contains(id))
            .map(|id| UserId::parse(id).map_err(|e| SyncError::Invalid(e.to_string())))
            .collect()
    }

    /// `user/get` of each member (concurrently); members gone or hidden meanwhile are skipped.
    async fn read_members(
        &self,
        user_ids: &[UserId],
        progress: &mut Progress,
    ) -> Result<Vec<User>, SyncError> {
        let answers: Vec<Result<User, SyncError>> = stream::iter(user_ids.iter().cloned())
            .map(|user_id| async move {
                self.syncer
                    .wecom
                    .call(&self.target, "user/get", |client, token| {
                        let user_id = user_id.clone();
                        async move { client.user_get(token.expose(), &user_id).await }
                    })
                    .await
            })
            .buffer_unordered(self.syncer.settings.concurrency)
            .collect()
            .await;
        progress.api_calls += count(answers.len());
        let mut users = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer {
                Ok(user) => users.push(user),
                Err(error) if skippable(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(users)
    }

    /// Phase 4: tags with their members and departments.
    async fn tags(&mut self) -> Result<Option<&'static str>, SyncError> {
        let observed_at = self.clock().await?;
        let mut progress = Progress {
            api_calls: 1,
            pages: 1,
            ..Progress::default()
        };
        let listed = match self
            .syncer
            .wecom
            .call(&self.target, "tag/list", |client, token| async move {
                client.tag_list(token.expose()).await
            })
            .await
        {
            Ok(listed) => listed,
            Err(error) if error.errcode() == Some(NOT_ALLOWED) => Vec::new(),
            Err(error) => return Err(error),
        };
        let this: &Self = self;
        let answers: Vec<Result<Option<TagSnapshot>, SyncError>> = stream::iter(listed)
            .map(|tag| async move {
                let members = this
                    .syncer
                    .wecom
                    .call(&this.target, "tag/get", |client, token| async move {
                        client.tag_get(token.expose(), tag.tagid).await
                    })
                    .await;
                match members {
                    Ok(members) => Ok(Some(TagSnapshot::new(
                        tag.tagid,
                        members.tagname.or(tag.tagname),
                        members.userlist.into_iter().map(|u| u.userid).collect(),
                        members.partylist,
                    ))),
                    Err(error) if skippable(&error) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .buffer_unordered(this.syncer.settings.concurrency)
            .collect()
            .await;
        progress.api_calls += count(answers.len());
        let snapshots = answers
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
            return Ok(None);
        };
        let written = tags::upsert_tags(&mut tx, &self.observation(observed_at), &snapshots)
            .await
            .doing("writing tags")?;
        self.record_written("tags", &written, &mut progress);
        progress.tags += count(snapshots.len());
        self.commit(tx, "sweep", progress).await
    }

    /// Phase 5: mark and sweep, and the run completes.
    async fn sweep(self) -> Result<Finished, SyncError> {
        let Some(mut tx) = self.syncer.begin_writes(self.tenant.id).await? else {
            return Ok(Finished::Lost);
        };
        let removed =
            directory::sweep_unseen(&mut tx, self.tenant.id, self.run.id, self.run.started_at)
                .await
                .doing("sweeping what the run did not see")?;
        let completed = runs::complete(
            &mut tx,
            self.run.id,
            &self.syncer.owner,
            count(removed),
            self.syncer.settings.reconcile_every,
        )
        .await
        .doing("completing the run")?;
        if completed == Completed::NotOwner {
            return Ok(Finished::Lost);
        }
        tx.commit().await.doing("committing the sweep")?;
        let metrics = &self.syncer.metrics;
        metrics
            .runs
            .with_label_values(&[&self.run.reason, "completed"])
            .inc();
        metrics.last_success.set(Utc::now().timestamp());
        tracing::info!(
            run = self.run.id, tenant = self.tenant.id, corp_id = %self.tenant.corp_id,
            removed, reason = self.run.reason, "full sync completed"
        );
        Ok(match completed {
            Completed::RerunRequested => Finished::Rerun,
            Completed::Done | Completed::NotOwner => Finished::Done,
        })
    }

    async fn write_users(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        observed_at: DateTime<Utc>,
        listed: &[User],
        progress: &mut Progress,
    ) -> Result<(), SyncError> {
        let written = users::upsert_users(tx, &self.observation(observed_at), listed)
            .await
            .doing("writing members")?;
        self.record_written("users", &written, progress);
        progress.users += count(written.rows);
        Ok(())
    }

    /// Saves the checkpoint with the batch's progress and commits; `None` when the run is no
    /// longer ours (rolled back: nothing of the batch is kept).
    async fn commit(
        &self,
        mut tx: Transaction<'static, Postgres>,
        phase: &'static str,
        progress: Progress,
    ) -> Result<Option<&'static str>, SyncError> {
        let checkpoint = serde_json::to_value(&self.checkpoint)
            .map_err(|e| SyncError::Invalid(format!("checkpoint: {e}")))?;
        let owned = runs::checkpoint(
            &mut tx,
            self.run.id,
            &self.syncer.owner,
            self.syncer.settings.lease,
            phase,
            &checkpoint,
            &progress,
        )
        .await
        .doing("saving the checkpoint")?;
        if !owned {
            tracing::info!(
                run = self.run.id,
                "the run was taken over or cancelled: stopping"
            );
            return Ok(None);
        }
        tx.commit().await.doing("committing a sync batch")?;
        self.syncer
            .metrics
            .pages
            .with_label_values(&[phase])
            .inc_by(u64::try_from(progress.pages).unwrap_or(0));
        Ok(Some(phase))
    }

    fn record_written(&self, table: &str, written: &Written, progress: &mut Progress) {
        progress.rows_added += count(written.added);
        progress.rows_changed += count(written.changed);
        self.syncer
            .metrics
            .rows
            .with_label_values(&[table])
            .inc_by(written.rows);
    }

    fn observation(&self, observed_at: DateTime<Utc>) -> Observation {
        Observation {
            tenant_id: self.tenant.id,
            observed_at,
            run: Some(self.run.id),
            wecom_time: None,
        }
    }

    async fn clock(&self) -> Result<DateTime<Utc>, SyncError> {
        let mut conn = self.syncer.connection("reading the clock").await?;
        directory::observation_time(&mut conn)
            .await
            .doing("reading the clock")
    }
}

/// Errors a listing skips: the entity is gone or not visible (its rows are then not seen, and the
/// sweep removes them).
fn skippable(error: &SyncError) -> bool {
    error
        .errcode()
        .is_some_and(|code| code == NOT_VISIBLE || GONE.contains(&code))
}

/// A department as `department/simplelist` gives it: no name, no leaders.
fn nameless(node: &DepartmentRef) -> Department {
    Department {
        id: node.id,
        name: None,
        name_en: None,
        department_leader: Vec::new(),
        parentid: node.parentid,
        order: node.order,
    }
}

/// The scope's departments from the tenant's stored auth info (`auth_info.agent[0].privilege`).
fn scope_departments(tenant: &Tenant) -> Vec<DepartmentId> {
    tenant
        .auth_info
        .as_ref()
        .and_then(|info| info.pointer("/auth_info/agent/0/privilege/allow_party"))
        .and_then(|ids| ids.as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(serde_json::Value::as_i64)
                .filter_map(|id| DepartmentId::new(id).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A length or row count as the `i64` the run's counters are.
fn count<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
