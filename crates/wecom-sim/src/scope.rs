//! What a 代开发 app may see of its corp (docs/wecom.md §4.5): the visibility scope chosen by
//! the admin (departments with their subtrees, single members, tags) and the sensitive-field
//! grants (`contact:sensitive:*`).
//!
//! Outside the scope an API answers 60011; inside it, a field the corp did not grant is simply
//! absent, as for every 代开发 app created after 2022-06-20.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use wecom::ids::{DepartmentId, TagId, UserId};

use crate::directory::{Directory, Member, ROOT_DEPARTMENT};

/// The app's visibility scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Visible departments, each with its whole subtree.
    #[serde(default)]
    pub departments: Vec<DepartmentId>,
    /// Visible single members.
    #[serde(default)]
    pub users: Vec<UserId>,
    /// Visible tags: their members and departments (with subtrees) become visible too.
    #[serde(default)]
    pub tags: Vec<TagId>,
}

impl Default for Scope {
    /// The whole corp.
    fn default() -> Self {
        Self {
            departments: vec![ROOT_DEPARTMENT],
            users: Vec::new(),
            tags: Vec::new(),
        }
    }
}

/// Sensitive-field grant names, as `agent/get_permissions` lists them.
pub mod grant {
    /// Member names (`name` in user APIs and events).
    pub const USER_NAME: &str = "contact:sensitive:user_name";
    /// Department names (`name`, `name_en`).
    pub const DEPARTMENT_NAME: &str = "contact:sensitive:department_name";
    /// `mobile`.
    pub const MOBILE: &str = "contact:sensitive:mobile";
    /// `email` and `biz_mail`.
    pub const EMAIL: &str = "contact:sensitive:email";
    /// `position`.
    pub const POSITION: &str = "contact:sensitive:position";
    /// `telephone`.
    pub const TELEPHONE: &str = "contact:sensitive:telephone";
    /// `avatar` and `thumb_avatar`.
    pub const AVATAR: &str = "contact:sensitive:avatar";
    /// `qr_code`.
    pub const QRCODE: &str = "contact:sensitive:qrcode";
    /// `gender`.
    pub const GENDER: &str = "contact:sensitive:gender";
    /// `address`.
    pub const ADDRESS: &str = "contact:sensitive:address";

    /// Every grant the simulator knows: the default for a new corp.
    pub const ALL: &[&str] = &[
        USER_NAME,
        DEPARTMENT_NAME,
        MOBILE,
        EMAIL,
        POSITION,
        TELEPHONE,
        AVATAR,
        QRCODE,
        GENDER,
        ADDRESS,
    ];
}

/// The granted permissions of a corp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    names: BTreeSet<String>,
}

impl Grants {
    /// Grants exactly `names`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Every known grant (the ground-truth view).
    pub fn all() -> Self {
        Self::new(grant::ALL.iter().copied())
    }

    /// Whether `name` was granted.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The granted names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// Answers "may the app see this?" for one request, against one directory.
#[derive(Debug)]
pub struct Visibility<'a> {
    directory: &'a Directory,
    departments: HashSet<DepartmentId>,
    users: HashSet<&'a UserId>,
}

impl<'a> Visibility<'a> {
    /// The visibility `scope` gives over `directory`. Unknown ids in the scope are ignored.
    pub fn new(directory: &'a Directory, scope: &'a Scope) -> Self {
        let mut departments: HashSet<DepartmentId> = scope.departments.iter().copied().collect();
        let mut users: HashSet<&'a UserId> = scope.users.iter().collect();
        for tag in scope.tags.iter().filter_map(|id| directory.tag(*id)) {
            departments.extend(tag.parties.iter().copied());
            users.extend(tag.users.iter());
        }
        Self {
            directory,
            departments,
            users,
        }
    }

    /// Whether department `id` exists and is inside the scope (itself or an ancestor listed).
    pub fn department(&self, id: DepartmentId) -> bool {
        self.directory
            .ancestors_and_self(id)
            .any(|d| self.departments.contains(&d))
    }

    /// Whether the member is inside the scope: listed, tagged with a visible tag, or in a
    /// visible department.
    pub fn user(&self, member: &Member) -> bool {
        self.users.contains(&member.userid)
            || member.departments.iter().any(|d| self.department(*d))
    }

    /// Whether the member `userid` exists and is visible.
    pub fn userid(&self, userid: &UserId) -> bool {
        self.directory.user(userid).is_some_and(|m| self.user(m))
    }

    /// Whether the scope covers the whole corp.
    #[cfg(test)]
    pub fn whole_corp(&self) -> bool {
        self.departments.contains(&ROOT_DEPARTMENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{NewDepartment, NewTag, NewUser, TagMembersChange};
    use crate::test_ids::{dept as d, tag as t, user as u};

    fn directory() -> Directory {
        let mut dir = Directory::new("Acme");
        for (id, parent) in [(2, 1), (3, 2), (4, 1)] {
            dir.create_department(NewDepartment {
                id: Some(d(id)),
                ..NewDepartment::new(&format!("d{id}"), d(parent))
            })
            .unwrap();
        }
        for (userid, dept) in [("in3", 3), ("in4", 4), ("tagged", 4), ("root", 1)] {
            dir.create_user(NewUser::new(u(userid), userid, vec![d(dept)]))
                .unwrap();
        }
        dir.create_tag(NewTag {
            tagid: Some(t(1)),
            tagname: "t".into(),
        })
        .unwrap();
        dir.update_tag_members(
            t(1),
            TagMembersChange {
                add_users: vec![u("tagged")],
                ..Default::default()
            },
        )
        .unwrap();
        dir
    }

    #[test]
    fn subtree_users_and_tags_are_visible() {
        let dir = directory();
        let scope = Scope {
            departments: vec![d(2)],
            users: vec![u("root")],
            tags: vec![t(1)],
        };
        let vis = Visibility::new(&dir, &scope);
        assert!(vis.department(d(2)) && vis.department(d(3)));
        assert!(!vis.department(d(1)) && !vis.department(d(4)) && !vis.department(d(99)));
        assert!(vis.userid(&u("in3")) && vis.userid(&u("root")) && vis.userid(&u("tagged")));
        assert!(!vis.userid(&u("in4")) && !vis.userid(&u("ghost")));
        assert!(!vis.whole_corp());
    }

    #[test]
    fn default_scope_is_the_whole_corp() {
        let dir = directory();
        let scope = Scope::default();
        let vis = Visibility::new(&dir, &scope);
        assert!(vis.whole_corp());
        assert!(dir.users().all(|m| vis.user(m)));
    }

    #[test]
    fn grants() {
        let grants = Grants::new([grant::MOBILE]);
        assert!(grants.has(grant::MOBILE) && !grants.has(grant::USER_NAME));
        assert_eq!(Grants::all().names().count(), grant::ALL.len());
    }
}
