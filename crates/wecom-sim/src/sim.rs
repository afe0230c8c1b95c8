//! The simulator's shared state and the operations both the control API and the start-up code
//! use: creating corps, the authorization lifecycle (with disabling and re-enabling an app),
//! suite tickets and directory changes, each changing the state and (unless told not to)
//! pushing the callback WeCom would push.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use wecom::event::{
    CancelAuth, ChangeAuth, ChangeContact, ContactChange, CreateAuth, Event, Framing,
    ResetPermanentCode, SuiteTicket, TagChange,
};

use wecom::ids::{AgentId, CorpId, DepartmentId, SuiteId, TagId, UserId};
use wecom::suite::SuiteConfig;

use crate::clock::Clock;
use crate::control::ControlError;
use crate::directory::seed::{SeedSpec, seed};
use crate::directory::view::redact_change;
use crate::directory::{
    DepartmentPatch, NewDepartment, NewTag, NewUser, TagMembersChange, UserPatch,
};
use crate::faults::Faults;
use crate::push::{Destination, Pending, Pusher};
use crate::rng::SplitMix64;
use crate::scope::Visibility;
use crate::state::{AuthorizeWith, Corp, CorpSpec, CorpSummary, StateError, World};
use crate::stats::Stats;

/// Members a corp may be seeded with (memory stays around 1 KB per member).
pub const MAX_SEED_USERS: usize = 1_000_000;

/// Whether to push the callback, and whether the caller waits for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOpts {
    /// Push the callback (false: only change the state).
    pub push: bool,
    /// Wait for the delivery reports.
    pub wait: bool,
}

impl Default for PushOpts {
    fn default() -> Self {
        Self {
            push: true,
            wait: false,
        }
    }
}

/// A directory change, as the control API receives it.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Add a member.
    CreateUser(NewUser),
    /// Change a member.
    UpdateUser(UserId, UserPatch),
    /// Remove a member.
    DeleteUser(UserId),
    /// Add a department.
    CreateDepartment(NewDepartment),
    /// Change or move a department.
    UpdateDepartment(DepartmentId, DepartmentPatch),
    /// Remove an empty department.
    DeleteDepartment(DepartmentId),
    /// Add a tag (WeCom pushes nothing).
    CreateTag(NewTag),
    /// Tag or untag members and departments.
    UpdateTagMembers(TagId, TagMembersChange),
}

/// What a directory change did.
#[derive(Debug, Serialize)]
pub struct MutationOutcome {
    /// The full change (before redaction for the app's grants); `null` for create-tag.
    pub change: Option<ContactChange>,
    /// The new tag's id, for create-tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagid: Option<TagId>,
    /// The pushes queued.
    #[serde(skip)]
    pub pending: Vec<Pending>,
}

/// The simulated WeCom.
#[derive(Debug)]
pub struct Sim {
    world: RwLock<World>,
    /// Simulated time.
    pub clock: Clock,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Fault injection.
    pub faults: Faults,
    /// Callback delivery.
    pub(crate) pusher: Pusher,
    cursor_key: std::hash::RandomState,
    seed: u64,
    corps_created: AtomicU64,
}

impl Sim {
    /// Assembles the simulator.
    pub(crate) fn new(
        world: World,
        stats: Arc<Stats>,
        faults: Faults,
        pusher: Pusher,
        seed: u64,
    ) -> Self {
        Self {
            world: RwLock::new(world),
            clock: Clock::new(),
            stats,
            faults,
            pusher,
            cursor_key: std::hash::RandomState::new(),
            seed,
            corps_created: AtomicU64::new(0),
        }
    }

    /// Reads the state. The state's type is internal: from outside the crate only a corp's
    /// apps (`read().corp(&id)?.auths`) and `read().js_ticket_valid(…)` are reachable, for tests
    /// that check what WeCom holds.
    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        self.world
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, World> {
        self.world
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A keyed checksum, so list_id cursors cannot be forged or reused across corps or runs.
    pub(crate) fn checksum(&self, parts: &[&str]) -> u64 {
        self.cursor_key.hash_one(parts)
    }

    /// Creates (and seeds) a corp, then authorizes it if the spec says so.
    pub fn create_corp(
        &self,
        spec: &CorpSpec,
        opts: PushOpts,
    ) -> Result<(CorpSummary, Vec<Pending>), ControlError> {
        let n = self.corps_created.fetch_add(1, Ordering::Relaxed) + 1;
        let corp_id = match &spec.corp_id {
            Some(id) => check_corp_id(id)?,
            None => self.generated_corp_id(n)?,
        };
        if self.read().has_corp(&corp_id) {
            return Err(StateError::CorpExists(corp_id).into());
        }
        let users = spec.users.unwrap_or(50);
        if users > MAX_SEED_USERS {
            return Err(ControlError::BadRequest(format!(
                "users must be at most {MAX_SEED_USERS}"
            )));
        }
        let name = spec.name.clone().unwrap_or_else(|| format!("模拟企业{n}"));
        let seeded = SeedSpec {
            users,
            departments: spec.departments,
            tags: spec.tags,
            seed: spec.seed.unwrap_or(self.seed),
        };
        // Seed outside the lock: a big corp takes a moment.
        let directory = seed(&name, &seeded);
        let summary = self
            .write()
            .add_corp(&corp_id, &name, spec, seeded, directory)?
            .summary();
        let suites: Vec<SuiteId> = match &spec.authorize {
            None | Some(AuthorizeWith::Flag(false)) => Vec::new(),
            Some(AuthorizeWith::Flag(true)) => vec![self.read().pick_suite(None)?],
            Some(AuthorizeWith::Suites(ids)) => ids.clone(),
        };
        let mut pending = Vec::new();
        for suite_id in suites {
            let (_, more) = self.authorize(&corp_id, Some(&suite_id), spec.state.clone(), opts)?;
            pending.extend(more);
        }
        let summary = if pending.is_empty() && spec.authorize.is_none() {
            summary
        } else {
            self.read().corp(&corp_id)?.summary()
        };
        Ok((summary, pending))
    }

    fn generated_corp_id(&self, n: u64) -> Result<CorpId, ControlError> {
        let mut rng = SplitMix64::new(self.seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D));
        id(&format!("ww{:016x}", rng.next_u64()))
    }

    /// A corp admin scans the template QR: the app is installed and create_auth is pushed.
    pub fn authorize(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        state: Option<String>,
        opts: PushOpts,
    ) -> Result<(AuthGranted, Vec<Pending>), ControlError> {
        let now = self.clock.now_ms();
        let mut world = self.write();
        let suite_id = world.pick_suite(suite)?;
        let granted = world.authorize(corp_id, &suite_id, state.clone(), now)?;
        let event = Event::CreateAuth(CreateAuth {
            suite_id: suite_id.clone(),
            auth_code: id(&granted.auth_code)?,
            timestamp: now.div_euclid(1000),
            state,
            extra_info: None,
        });
        let pending = self.push_to_suite(&world, &suite_id, &event, opts);
        drop(world);
        self.stats.update(|s| s.auth_codes.issued += 1);
        Ok((
            AuthGranted {
                suite_id,
                corp_id: corp_id.clone(),
                auth_code: granted.auth_code,
                agentid: granted.agent_id,
            },
            pending,
        ))
    }

    /// The provider's 「重新获取secret」: new secret, reset_permanent_code pushed.
    pub fn reset_secret(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        opts: PushOpts,
    ) -> Result<(AuthGranted, Vec<Pending>), ControlError> {
        let now = self.clock.now_ms();
        let mut world = self.write();
        let suite_id = world.pick_suite(suite)?;
        let granted = world.reset_secret(corp_id, &suite_id, now)?;
        let event = Event::ResetPermanentCode(ResetPermanentCode {
            suite_id: suite_id.clone(),
            auth_code: id(&granted.auth_code)?,
            timestamp: now.div_euclid(1000),
        });
        let pending = self.push_to_suite(&world, &suite_id, &event, opts);
        drop(world);
        self.stats.update(|s| s.auth_codes.issued += 1);
        Ok((
            AuthGranted {
                suite_id,
                corp_id: corp_id.clone(),
                auth_code: granted.auth_code,
                agentid: granted.agent_id,
            },
            pending,
        ))
    }

    /// The corp removes the app: cancel_auth pushed.
    pub fn cancel(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        opts: PushOpts,
    ) -> Result<(SuiteId, Vec<Pending>), ControlError> {
        let now = self.clock.now_ms();
        let mut world = self.write();
        let suite_id = world.pick_suite(suite)?;
        world.cancel(corp_id, &suite_id)?;
        let event = Event::CancelAuth(CancelAuth {
            suite_id: suite_id.clone(),
            auth_corp_id: corp_id.clone(),
            timestamp: now.div_euclid(1000),
        });
        let pending = self.push_to_suite(&world, &suite_id, &event, opts);
        Ok((suite_id, pending))
    }

    /// The admin changes scope and/or grants: change_auth pushed for every active app (or the
    /// named suite's).
    pub fn change_scope(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        change: ScopeChange,
        opts: PushOpts,
    ) -> Result<(CorpSummary, Vec<Pending>), ControlError> {
        let now = self.clock.now_ms();
        let mut world = self.write();
        if let Some(id) = suite {
            world.pick_suite(Some(id))?;
        }
        world.change_scope(corp_id, change.scope, change.permissions)?;
        let corp = world.corp(corp_id)?;
        let suites: Vec<SuiteId> = corp
            .active_auths()
            .map(|a| a.suite_id.clone())
            .filter(|s| suite.is_none_or(|wanted| wanted == s))
            .collect();
        let summary = corp.summary();
        let mut pending = Vec::new();
        for suite_id in suites {
            let event = change_auth(&suite_id, corp_id, now);
            pending.extend(self.push_to_suite(&world, &suite_id, &event, opts));
        }
        Ok((summary, pending))
    }

    /// The corp admin disables the app (the named suite's, or the only one's): `agent/get`
    /// answers `close: 1` and the other app APIs 50003 until [`Sim::enable`]; change_auth pushed.
    pub fn disable(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        opts: PushOpts,
    ) -> Result<(AppSwitched, Vec<Pending>), ControlError> {
        self.switch_app(corp_id, suite, true, opts)
    }

    /// The corp admin re-enables a disabled app: change_auth pushed.
    pub fn enable(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        opts: PushOpts,
    ) -> Result<(AppSwitched, Vec<Pending>), ControlError> {
        self.switch_app(corp_id, suite, false, opts)
    }

    fn switch_app(
        &self,
        corp_id: &CorpId,
        suite: Option<&SuiteId>,
        disabled: bool,
        opts: PushOpts,
    ) -> Result<(AppSwitched, Vec<Pending>), ControlError> {
        let now = self.clock.now_ms();
        let mut world = self.write();
        let suite_id = world.pick_suite(suite)?;
        let agentid = world.set_disabled(corp_id, &suite_id, disabled)?;
        let event = change_auth(&suite_id, corp_id, now);
        let pending = self.push_to_suite(&world, &suite_id, &event, opts);
        Ok((
            AppSwitched {
                suite_id,
                corp_id: corp_id.clone(),
                agentid,
                disabled,
            },
            pending,
        ))
    }

    /// Issues a suite ticket and pushes it.
    pub fn push_ticket(
        &self,
        suite: Option<&SuiteId>,
        opts: PushOpts,
    ) -> Result<(TicketIssued, Vec<Pending>), ControlError> {
        let now = self.clock.now_ms();
        let mut world = self.write();
        let suite_id = world.pick_suite(suite)?;
        let ticket = world.issue_ticket(&suite_id, now)?;
        let event = Event::SuiteTicket(SuiteTicket {
            suite_id: suite_id.clone(),
            suite_ticket: id(&ticket)?,
            timestamp: now.div_euclid(1000),
        });
        let pending = self.push_to_suite(&world, &suite_id, &event, opts);
        drop(world);
        self.stats.update(|s| s.suite_tickets_issued += 1);
        Ok((
            TicketIssued {
                suite_id,
                suite_ticket: ticket,
                timestamp: now.div_euclid(1000),
            },
            pending,
        ))
    }

    /// Applies a directory change and pushes change_contact to every active app of the corp
    /// that can see the entity (before or after the change), redacted for the corp's grants.
    pub(crate) fn mutate(
        &self,
        corp_id: &CorpId,
        mutation: Mutation,
        opts: PushOpts,
    ) -> Result<MutationOutcome, ControlError> {
        let now_secs = self.clock.now_secs();
        let mut world = self.write();
        let corp = world.corp_mut(corp_id)?;
        let before = Seen::capture(corp, &mutation);
        let (change, tagid) = apply(corp, mutation)?;
        let Some(change) = change else {
            return Ok(MutationOutcome {
                change: None,
                tagid,
                pending: Vec::new(),
            });
        };
        let corp = world.corp(corp_id)?;
        let pending = match before.visible_change(corp, &change) {
            Some(visible) if opts.push => self.push_change(&world, corp, visible, now_secs, opts),
            _ => Vec::new(),
        };
        Ok(MutationOutcome {
            change: Some(change),
            tagid,
            pending,
        })
    }

    fn push_change(
        &self,
        world: &World,
        corp: &Corp,
        change: ContactChange,
        now_secs: i64,
        opts: PushOpts,
    ) -> Vec<Pending> {
        let change = redact_change(change, &corp.grants);
        let mut pending = Vec::new();
        // A disabled app hears nothing; it resyncs after the change_auth of its re-enabling.
        for auth in corp.active_auths().filter(|a| !a.disabled) {
            let event = Event::ChangeContact(ChangeContact {
                framing: Framing::App,
                suite_id: None,
                auth_corp_id: Some(corp.id.clone()),
                from_user_name: Some("sys".to_owned()),
                agent_id: None,
                time: Some(now_secs),
                change: change.clone(),
            });
            let destination = Destination::App {
                suite_id: auth.suite_id.clone(),
                corp_id: corp.id.clone(),
                agent_id: auth.agent_id.get(),
            };
            let crypto = world
                .suite(&auth.suite_id)
                .map(SuiteConfig::app_callback_crypto);
            pending.extend(self.seal_and_queue(&event, destination, crypto, opts));
        }
        pending
    }

    fn push_to_suite(
        &self,
        world: &World,
        suite_id: &SuiteId,
        event: &Event,
        opts: PushOpts,
    ) -> Vec<Pending> {
        if !opts.push {
            return Vec::new();
        }
        let destination = Destination::Suite {
            suite_id: suite_id.clone(),
        };
        let crypto = world.suite(suite_id).map(SuiteConfig::callback_crypto);
        self.seal_and_queue(event, destination, crypto, opts)
            .into_iter()
            .collect()
    }

    fn seal_and_queue(
        &self,
        event: &Event,
        destination: Destination,
        crypto: Option<Result<wecom::crypto::CallbackCrypto, wecom::crypto::CryptoError>>,
        opts: PushOpts,
    ) -> Option<Pending> {
        let crypto = match crypto {
            Some(Ok(crypto)) => crypto,
            Some(Err(err)) => {
                tracing::error!(error = %err, "suite keys unusable; callback not pushed");
                return None;
            }
            None => return None,
        };
        match self.pusher.seal(event, destination, crypto) {
            Ok(push) => {
                let pending = self.pusher.enqueue(push, opts.wait);
                if pending.is_none() {
                    tracing::debug!(kind = %event.kind(), "no callback base configured; not pushed");
                }
                pending
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot encrypt callback; not pushed");
                None
            }
        }
    }
}

/// The answer to authorize and reset-secret.
#[derive(Debug, Clone, Serialize)]
pub struct AuthGranted {
    /// The suite.
    pub suite_id: SuiteId,
    /// The corp.
    pub corp_id: CorpId,
    /// The single-use AuthCode (also pushed, unless `push=false`).
    pub auth_code: String,
    /// The app's agentid.
    pub agentid: AgentId,
}

/// The answer to disable and enable.
#[derive(Debug, Clone, Serialize)]
pub struct AppSwitched {
    /// The suite.
    pub suite_id: SuiteId,
    /// The corp.
    pub corp_id: CorpId,
    /// The app's agentid.
    pub agentid: AgentId,
    /// Whether the app is now disabled.
    pub disabled: bool,
}

/// The answer to a ticket push.
#[derive(Debug, Clone, Serialize)]
pub struct TicketIssued {
    /// The suite.
    pub suite_id: SuiteId,
    /// The ticket (also pushed, unless `push=false`).
    pub suite_ticket: String,
    /// Its WeCom `TimeStamp`.
    pub timestamp: i64,
}

/// The body of `POST /sim/corps/{corp}/change-scope`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeChange {
    /// New visibility scope.
    #[serde(default)]
    pub scope: Option<crate::scope::Scope>,
    /// New granted permissions.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

/// The change_auth WeCom pushes when an admin changes an app's scope, grants or enablement.
fn change_auth(suite_id: &SuiteId, corp_id: &CorpId, now_ms: i64) -> Event {
    Event::ChangeAuth(ChangeAuth {
        suite_id: suite_id.clone(),
        auth_corp_id: corp_id.clone(),
        timestamp: now_ms.div_euclid(1000),
        state: None,
        extra_info: None,
    })
}

/// An id or credential of the simulator's own making, as the typed event field it goes into.
fn id<T: std::str::FromStr<Err = wecom::ids::IdError>>(value: &str) -> Result<T, ControlError> {
    value
        .parse()
        .map_err(|e| ControlError::Internal(format!("the simulator made an unusable value: {e}")))
}

fn apply(
    corp: &mut Corp,
    mutation: Mutation,
) -> Result<(Option<ContactChange>, Option<TagId>), ControlError> {
    let dir = &mut corp.directory;
    let change = match mutation {
        Mutation::CreateUser(new) => dir.create_user(new)?,
        Mutation::UpdateUser(id, patch) => dir.update_user(&id, patch)?,
        Mutation::DeleteUser(id) => dir.delete_user(&id)?,
        Mutation::CreateDepartment(new) => dir.create_department(new)?,
        Mutation::UpdateDepartment(id, patch) => dir.update_department(id, patch)?,
        Mutation::DeleteDepartment(id) => dir.delete_department(id)?,
        Mutation::CreateTag(new) => return Ok((None, Some(dir.create_tag(new)?))),
        Mutation::UpdateTagMembers(id, change) => dir.update_tag_members(id, change)?,
    };
    Ok((Some(change), None))
}

/// What the app could see before a change, to decide what it hears about after.
#[derive(Debug, Default)]
struct Seen {
    entity: bool,
    del_users: Vec<UserId>,
    del_parties: Vec<DepartmentId>,
}

impl Seen {
    fn capture(corp: &Corp, mutation: &Mutation) -> Self {
        let vis = corp.visibility();
        match mutation {
            Mutation::UpdateUser(id, _) | Mutation::DeleteUser(id) => Self {
                entity: vis.userid(id),
                ..Self::default()
            },
            Mutation::UpdateDepartment(id, _) | Mutation::DeleteDepartment(id) => Self {
                entity: vis.department(*id),
                ..Self::default()
            },
            Mutation::UpdateTagMembers(_, change) => Self {
                entity: true,
                del_users: change
                    .del_users
                    .iter()
                    .filter(|u| vis.userid(u))
                    .cloned()
                    .collect(),
                del_parties: change
                    .del_parties
                    .iter()
                    .copied()
                    .filter(|d| vis.department(*d))
                    .collect(),
            },
            Mutation::CreateUser(_) | Mutation::CreateDepartment(_) | Mutation::CreateTag(_) => {
                Self::default()
            }
        }
    }

    /// The change as the app may hear it, or `None` if the entity is outside its scope both
    /// before and after. Tags are visible to every app; their items are limited to the scope.
    fn visible_change(&self, corp: &Corp, change: &ContactChange) -> Option<ContactChange> {
        let vis = corp.visibility();
        let after = match change {
            ContactChange::CreateUser(u) | ContactChange::UpdateUser(u) => {
                vis.userid(u.new_user_id.as_ref().unwrap_or(&u.user_id))
            }
            ContactChange::CreateParty(p) | ContactChange::UpdateParty(p) => vis.department(p.id),
            ContactChange::UpdateTag(tag) => {
                return Some(ContactChange::UpdateTag(self.visible_tag_items(&vis, tag)));
            }
            ContactChange::DeleteUser(_) | ContactChange::DeleteParty(_) => false,
            ContactChange::Unknown { .. } => return None,
        };
        (self.entity || after).then(|| change.clone())
    }

    /// Tag items limited to the scope: added ones visible now, removed ones visible before.
    fn visible_tag_items(&self, vis: &Visibility<'_>, tag: &TagChange) -> TagChange {
        fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
            (!items.is_empty()).then_some(items)
        }
        let kept = |items: &Option<Vec<UserId>>, keep: &dyn Fn(&UserId) -> bool| {
            non_empty(
                items
                    .iter()
                    .flatten()
                    .filter(|u| keep(u))
                    .cloned()
                    .collect(),
            )
        };
        let kept_ids = |items: &Option<Vec<DepartmentId>>, keep: &dyn Fn(DepartmentId) -> bool| {
            non_empty(
                items
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|d| keep(*d))
                    .collect(),
            )
        };
        TagChange {
            tag_id: tag.tag_id,
            add_user_items: kept(&tag.add_user_items, &|u| vis.userid(u)),
            del_user_items: kept(&tag.del_user_items, &|u| {
                self.del_users.iter().any(|d| d == u)
            }),
            add_party_items: kept_ids(&tag.add_party_items, &|d| vis.department(d)),
            del_party_items: kept_ids(&tag.del_party_items, &|d| self.del_parties.contains(&d)),
        }
    }
}

fn check_corp_id(id: &CorpId) -> Result<CorpId, ControlError> {
    let text = id.as_str();
    let ok = (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(id.clone())
    } else {
        Err(ControlError::BadRequest(
            "corp_id must be 1-64 characters of A-Za-z0-9_-".to_owned(),
        ))
    }
}
