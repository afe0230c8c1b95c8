//! The app's own description and granted permissions: `agent/get`, `agent/get_permissions`
//! (docs/wecom.md §4.3, §4.5).

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, DepartmentId, TagId, UserId};

/// Answer of `GET /cgi-bin/agent/get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The agentid.
    pub agentid: AgentId,
    /// App name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Logo URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub square_logo_url: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Visible members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_userinfos: Option<AllowUserInfos>,
    /// Visible departments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_partys: Option<AllowPartys>,
    /// Visible tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_tags: Option<AllowTags>,
    /// 1 when the app is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<i64>,
    /// Trusted redirect domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_domain: Option<String>,
    /// Whether location reporting is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_location_flag: Option<i64>,
    /// Whether entering the app is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isreportenter: Option<i64>,
    /// Home page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_url: Option<String>,
    /// 代开发 publish state (value meanings unconfirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customized_publish_status: Option<i64>,
}

/// `allow_userinfos`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowUserInfos {
    /// The visible members.
    #[serde(default)]
    pub user: Vec<AllowUser>,
}

/// `allow_userinfos.user[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowUser {
    /// The member's userid.
    pub userid: UserId,
}

/// `allow_partys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowPartys {
    /// The visible department ids.
    #[serde(default)]
    pub partyid: Vec<DepartmentId>,
}

/// `allow_tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowTags {
    /// The visible tag ids.
    #[serde(default)]
    pub tagid: Vec<TagId>,
}

/// Answer of `POST /cgi-bin/agent/get_permissions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPermissions {
    /// Granted permission names, e.g. `contact:sensitive:user_name`.
    #[serde(default)]
    pub app_permissions: Vec<String>,
    /// The same with expiry times.
    #[serde(default)]
    pub app_permissions_ext: Vec<PermissionExt>,
}

impl AgentPermissions {
    /// True when `name` (e.g. `contact:sensitive:mobile`) was granted.
    pub fn has(&self, name: &str) -> bool {
        self.app_permissions.iter().any(|p| p == name)
    }
}

/// `app_permissions_ext[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionExt {
    /// Permission name.
    pub permission_name: String,
    /// Unix seconds the grant ends, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<i64>,
}
