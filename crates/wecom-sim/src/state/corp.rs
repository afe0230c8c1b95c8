//! A simulated corp: its directory, the scope and grants its admin chose, and the 代开发 apps
//! (one per suite) it has authorized.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wecom::ids::{AgentId, CorpId, SuiteId};

use crate::directory::Directory;
use crate::directory::seed::SeedSpec;
use crate::scope::{Grants, Scope, Visibility, grant};

/// How to create a corp: the body of `POST /sim/corps` and a `[[corps]]` entry of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpSpec {
    /// The corp id (default: derived from the seed and creation order, `ww` + 16 hex digits).
    #[serde(default)]
    pub corp_id: Option<CorpId>,
    /// Short name (default `模拟企业N`).
    #[serde(default)]
    pub name: Option<String>,
    /// Number of members to seed (default 50).
    #[serde(default, alias = "size")]
    pub users: Option<usize>,
    /// Number of departments, root included (default one per 40 members).
    #[serde(default)]
    pub departments: Option<usize>,
    /// Number of tags (default one per 2,000 members, 2 to 50).
    #[serde(default)]
    pub tags: Option<usize>,
    /// Directory seed (default the simulator's `seed`).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Granted permissions (default: every `contact:sensitive:*` grant; `[]` for none).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Visibility scope (default: the whole corp).
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Authorize right away: `true` for the only suite, or a list of suite ids.
    #[serde(default)]
    pub authorize: Option<AuthorizeWith>,
    /// The `State` of the authorization QR, if authorizing.
    #[serde(default)]
    pub state: Option<String>,
}

/// `authorize = true` or `authorize = ["dk…", …]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuthorizeWith {
    /// `true`: the only configured suite; `false`: none.
    Flag(bool),
    /// These suites.
    Suites(Vec<SuiteId>),
}

/// Whether an app is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStatus {
    /// Authorized and usable.
    Active,
    /// Removed by the corp (cancel_auth).
    Cancelled,
}

/// The 代开发 app a suite has in a corp.
#[derive(Debug, Clone, Serialize)]
pub struct Authorization {
    /// The suite (template).
    pub suite_id: SuiteId,
    /// The app's agentid in the corp.
    pub agent_id: AgentId,
    /// The app secret (`permanent_code`); replaced by reset-secret.
    pub permanent_code: String,
    /// Active or cancelled.
    pub status: AuthStatus,
    /// Disabled by the corp admin (still installed: `agent/get` answers `close: 1`, the other
    /// app APIs 50003, until it is enabled again).
    pub disabled: bool,
    /// `State` of the QR that authorized it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// WeCom time of the (last) authorization.
    pub authorized_at: i64,
}

/// One corp.
#[derive(Debug, Clone)]
pub struct Corp {
    /// The corp id.
    pub(crate) id: CorpId,
    /// Short name.
    pub(crate) name: String,
    /// The directory.
    pub(crate) directory: Directory,
    /// The visibility scope of its 代开发 apps.
    pub(crate) scope: Scope,
    /// The permissions granted to its 代开发 apps.
    pub(crate) grants: Grants,
    /// Apps by suite id.
    pub auths: BTreeMap<SuiteId, Authorization>,
    /// How the directory was seeded.
    pub(crate) seeded: SeedSpec,
}

/// `GET /sim/corps/{corp}`.
#[derive(Debug, Clone, Serialize)]
pub struct CorpSummary {
    /// The corp id.
    pub corp_id: CorpId,
    /// Short name.
    pub name: String,
    /// Department count.
    pub departments: usize,
    /// Member count.
    pub users: usize,
    /// Tag count.
    pub tags: usize,
    /// How it was seeded.
    pub seeded: SeedSpec,
    /// Visibility scope.
    pub scope: Scope,
    /// Granted permissions.
    pub permissions: Vec<String>,
    /// Apps by suite id (with their permanent codes: this is a simulator), each with its status
    /// and whether it is disabled.
    pub authorizations: Vec<Authorization>,
}

impl Corp {
    /// The corp's app for `suite_id`, if it was ever authorized.
    pub(crate) fn auth(&self, suite_id: &SuiteId) -> Option<&Authorization> {
        self.auths.get(suite_id)
    }

    /// The installed apps (disabled ones included).
    pub(crate) fn active_auths(&self) -> impl Iterator<Item = &Authorization> {
        self.auths
            .values()
            .filter(|a| a.status == AuthStatus::Active)
    }

    /// What the corp's apps can see.
    pub(crate) fn visibility(&self) -> Visibility<'_> {
        Visibility::new(&self.directory, &self.scope)
    }

    /// The summary shown by the control API.
    pub(crate) fn summary(&self) -> CorpSummary {
        let (departments, users, tags) = self.directory.counts();
        CorpSummary {
            corp_id: self.id.clone(),
            name: self.name.clone(),
            departments,
            users,
            tags,
            seeded: self.seeded.clone(),
            scope: self.scope.clone(),
            permissions: self.grants.names().map(str::to_owned).collect(),
            authorizations: self.auths.values().cloned().collect(),
        }
    }

    /// The grants a spec asks for (every sensitive grant by default).
    pub(crate) fn grants_of(spec: &CorpSpec) -> Grants {
        match &spec.permissions {
            Some(names) => Grants::new(names.iter().cloned()),
            None => Grants::new(grant::ALL.iter().copied()),
        }
    }
}
