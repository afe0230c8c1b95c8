//! The directory changes a corp admin can make, validated the way WeCom validates them, each
//! returning the full `change_contact` payload it causes.

use serde::Deserialize;
use wecom::api::ExtAttr as ApiExtAttr;
use wecom::event::{ContactChange, PartyChange, TagChange, UserChange};
use wecom::ids::{DepartmentId, TagId, UserId};

use super::{Department, Directory, MAX_DEPTH, Member, ROOT_DEPARTMENT, Tag};

/// Why a directory change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The entity does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The id is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The department still has members or subdepartments.
    #[error("{0}")]
    NotEmpty(String),
    /// A field is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// A new member (`POST /sim/corps/{corp}/users`), in the shape of WeCom's `user/create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The userid (1–64 of `A-Za-z0-9_.@-`).
    pub userid: UserId,
    /// Name.
    pub name: String,
    /// Departments (at least one).
    pub department: Vec<DepartmentId>,
    /// Order in each department (defaults to 0s).
    #[serde(default)]
    pub order: Option<Vec<u64>>,
    /// Leader flag (0/1) in each department (defaults to 0s).
    #[serde(default)]
    pub is_leader_in_dept: Option<Vec<u8>>,
    /// Main department (defaults to the first).
    #[serde(default)]
    pub main_department: Option<DepartmentId>,
    /// Position.
    #[serde(default)]
    pub position: Option<String>,
    /// Mobile.
    #[serde(default)]
    pub mobile: Option<String>,
    /// 0, 1 or 2.
    #[serde(default)]
    pub gender: Option<u8>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Business email.
    #[serde(default)]
    pub biz_mail: Option<String>,
    /// Landline.
    #[serde(default)]
    pub telephone: Option<String>,
    /// Alias.
    #[serde(default)]
    pub alias: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// Direct leaders (existing userids, at most 5).
    #[serde(default)]
    pub direct_leader: Option<Vec<UserId>>,
    /// 1, 2, 4 or 5 (default 1).
    #[serde(default)]
    pub status: Option<u8>,
    /// Custom attributes.
    #[serde(default)]
    pub extattr: Option<ApiExtAttr>,
}

/// A member update (`PATCH /sim/corps/{corp}/users/{userid}`): absent fields stay; an empty
/// string clears an optional text field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Renames the member.
    #[serde(default)]
    pub new_userid: Option<UserId>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Departments (replaces the list; order and leader flags reset unless given too).
    #[serde(default)]
    pub department: Option<Vec<DepartmentId>>,
    /// Order in each department.
    #[serde(default)]
    pub order: Option<Vec<u64>>,
    /// Leader flag (0/1) in each department.
    #[serde(default)]
    pub is_leader_in_dept: Option<Vec<u8>>,
    /// Main department.
    #[serde(default)]
    pub main_department: Option<DepartmentId>,
    /// Position.
    #[serde(default)]
    pub position: Option<String>,
    /// Mobile.
    #[serde(default)]
    pub mobile: Option<String>,
    /// 0, 1 or 2.
    #[serde(default)]
    pub gender: Option<u8>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Business email.
    #[serde(default)]
    pub biz_mail: Option<String>,
    /// Landline.
    #[serde(default)]
    pub telephone: Option<String>,
    /// Alias.
    #[serde(default)]
    pub alias: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// Direct leaders.
    #[serde(default)]
    pub direct_leader: Option<Vec<UserId>>,
    /// 1, 2, 4 or 5.
    #[serde(default)]
    pub status: Option<u8>,
    /// Custom attributes (replaces the list).
    #[serde(default)]
    pub extattr: Option<ApiExtAttr>,
}

/// A new department (`POST /sim/corps/{corp}/departments`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    /// Id (defaults to the largest id + 1).
    #[serde(default)]
    pub id: Option<DepartmentId>,
    /// Name.
    pub name: String,
    /// English name.
    #[serde(default)]
    pub name_en: Option<String>,
    /// Parent department.
    pub parentid: DepartmentId,
    /// Order among siblings (default 0).
    #[serde(default)]
    pub order: Option<u64>,
}

/// A department update (`PATCH /sim/corps/{corp}/departments/{id}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentPatch {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// English name (empty clears it).
    #[serde(default)]
    pub name_en: Option<String>,
    /// Moves the department.
    #[serde(default)]
    pub parentid: Option<DepartmentId>,
    /// Order among siblings.
    #[serde(default)]
    pub order: Option<u64>,
}

/// A new tag (`POST /sim/corps/{corp}/tags`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTag {
    /// Id (defaults to the largest id + 1).
    #[serde(default)]
    pub tagid: Option<TagId>,
    /// Name (unique in the corp).
    pub tagname: String,
}

/// Tag membership changes (`POST /sim/corps/{corp}/tags/{tagid}/members`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagMembersChange {
    /// Members to tag.
    #[serde(default)]
    pub add_users: Vec<UserId>,
    /// Members to untag.
    #[serde(default)]
    pub del_users: Vec<UserId>,
    /// Departments to tag.
    #[serde(default)]
    pub add_parties: Vec<DepartmentId>,
    /// Departments to untag.
    #[serde(default)]
    pub del_parties: Vec<DepartmentId>,
}

impl NewUser {
    /// A member with a name and departments, everything else defaulted.
    #[cfg(test)]
    pub fn new(userid: UserId, name: &str, department: Vec<DepartmentId>) -> Self {
        Self {
            userid,
            name: name.to_owned(),
            department,
            order: None,
            is_leader_in_dept: None,
            main_department: None,
            position: None,
            mobile: None,
            gender: None,
            email: None,
            biz_mail: None,
            telephone: None,
            alias: None,
            address: None,
            direct_leader: None,
            status: None,
            extattr: None,
        }
    }
}

impl NewDepartment {
    /// A department with a name under `parentid`, its id and order defaulted.
    #[cfg(test)]
    pub fn new(name: &str, parentid: DepartmentId) -> Self {
        Self {
            id: None,
            name: name.to_owned(),
            name_en: None,
            parentid,
            order: None,
        }
    }
}

fn invalid(message: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid(message.into())
}

fn user_not_found(userid: &UserId) -> DirectoryError {
    DirectoryError::NotFound(format!("user {userid}"))
}

fn department_not_found(id: DepartmentId) -> DirectoryError {
    DirectoryError::NotFound(format!("department {id}"))
}

/// `Some("")` means "clear", anything else replaces.
fn patch_text(slot: &mut Option<String>, value: Option<String>) {
    if let Some(value) = value {
        *slot = (!value.is_empty()).then_some(value);
    }
}

impl Directory {
    /// Adds a member; the `create_user` payload.
    pub fn create_user(&mut self, new: NewUser) -> Result<ContactChange, DirectoryError> {
        check_userid(&new.userid)?;
        if self.user(&new.userid).is_some() {
            return Err(DirectoryError::AlreadyExists(format!(
                "user {}",
                new.userid
            )));
        }
        let mut member = Member::new(new.userid, &new.name, Vec::new());
        self.apply_membership(
            &mut member,
            new.department,
            new.order,
            new.is_leader_in_dept,
            new.main_department,
        )?;
        member.position = new.position.filter(|s| !s.is_empty());
        member.mobile = new.mobile.filter(|s| !s.is_empty());
        member.email = new.email.filter(|s| !s.is_empty());
        member.biz_mail = new.biz_mail.filter(|s| !s.is_empty());
        member.telephone = new.telephone.filter(|s| !s.is_empty());
        member.alias = new.alias.filter(|s| !s.is_empty());
        member.address = new.address.filter(|s| !s.is_empty());
        member.gender = check_gender(new.gender.unwrap_or(0))?;
        member.status = check_status(new.status.unwrap_or(1))?;
        member.direct_leader = self.check_leaders(new.direct_leader.unwrap_or_default())?;
        member.ext_attrs = new.extattr.map(|e| e.attrs).unwrap_or_default();
        check_name(&member.name)?;
        let change = member.to_change();
        self.insert_user(member);
        Ok(ContactChange::CreateUser(change))
    }

    /// Changes a member; the `update_user` payload (only changed fields). Renaming also renames
    /// the member inside its tags.
    pub fn update_user(
        &mut self,
        userid: &UserId,
        patch: UserPatch,
    ) -> Result<ContactChange, DirectoryError> {
        let old = self
            .user(userid)
            .ok_or_else(|| user_not_found(userid))?
            .clone();
        let mut member = old.clone();
        if let Some(new_id) = patch.new_userid.filter(|id| id != userid) {
            check_userid(&new_id)?;
            if self.user(&new_id).is_some() {
                return Err(DirectoryError::AlreadyExists(format!("user {new_id}")));
            }
            member.userid = new_id;
        }
        if let Some(name) = patch.name {
            check_name(&name)?;
            member.name = name;
        }
        let membership_patched = patch.department.is_some()
            || patch.order.is_some()
            || patch.is_leader_in_dept.is_some()
            || patch.main_department.is_some();
        if membership_patched {
            let departments = patch.department.clone().unwrap_or(old.departments.clone());
            let keep = patch.department.is_none();
            let orders = patch.order.or(keep.then(|| old.orders.clone()));
            let leaders = patch
                .is_leader_in_dept
                .or(keep.then(|| old.leader_in.iter().map(|l| u8::from(*l)).collect()));
            let main = patch
                .main_department
                .or(Some(old.main_department).filter(|d| departments.contains(d)));
            self.apply_membership(&mut member, departments, orders, leaders, main)?;
        }
        patch_text(&mut member.position, patch.position);
        patch_text(&mut member.mobile, patch.mobile);
        patch_text(&mut member.email, patch.email);
        patch_text(&mut member.biz_mail, patch.biz_mail);
        patch_text(&mut member.telephone, patch.telephone);
        patch_text(&mut member.alias, patch.alias);
        patch_text(&mut member.address, patch.address);
        if let Some(gender) = patch.gender {
            member.gender = check_gender(gender)?;
        }
        if let Some(status) = patch.status {
            member.status = check_status(status)?;
        }
        if let Some(leaders) = patch.direct_leader {
            member.direct_leader = self.check_leaders(leaders)?;
        }
        if let Some(extattr) = patch.extattr {
            member.ext_attrs = extattr.attrs;
        }
        let change = member.diff_from(&old);
        if member.userid != old.userid {
            self.remove_user(&old.userid);
            for tag in self.tags.values_mut() {
                if tag.users.remove(&old.userid) {
                    tag.users.insert(member.userid.clone());
                }
            }
        }
        self.insert_user(member);
        Ok(ContactChange::UpdateUser(change))
    }

    /// Removes a member (and untags it); the `delete_user` payload.
    pub fn delete_user(&mut self, userid: &UserId) -> Result<ContactChange, DirectoryError> {
        self.remove_user(userid)
            .ok_or_else(|| user_not_found(userid))?;
        for tag in self.tags.values_mut() {
            tag.users.remove(userid);
        }
        Ok(ContactChange::DeleteUser(UserChange::new(userid.clone())))
    }

    /// Adds a department; the `create_party` payload.
    pub fn create_department(
        &mut self,
        new: NewDepartment,
    ) -> Result<ContactChange, DirectoryError> {
        let id = match new.id {
            Some(id) => id,
            None => self
                .next_department_id()
                .ok_or_else(|| invalid("no department id is left"))?,
        };
        if self.department(id).is_some() {
            return Err(DirectoryError::AlreadyExists(format!("department {id}")));
        }
        check_name(&new.name)?;
        if self.department(new.parentid).is_none() {
            return Err(department_not_found(new.parentid));
        }
        if self.depth(new.parentid) >= MAX_DEPTH {
            return Err(invalid(format!(
                "departments nest at most {MAX_DEPTH} deep"
            )));
        }
        let department = Department {
            id,
            name: new.name,
            name_en: new.name_en.filter(|s| !s.is_empty()),
            parent_id: Some(new.parentid),
            order: new.order.unwrap_or(0),
        };
        let change = PartyChange {
            id,
            name: Some(department.name.clone()),
            parent_id: department.parent_id,
            order: Some(department.order),
        };
        self.insert_department(department);
        Ok(ContactChange::CreateParty(change))
    }

    /// Changes or moves a department; the `update_party` payload (only changed fields).
    pub fn update_department(
        &mut self,
        id: DepartmentId,
        patch: DepartmentPatch,
    ) -> Result<ContactChange, DirectoryError> {
        let old = self
            .department(id)
            .ok_or_else(|| department_not_found(id))?
            .clone();
        let mut department = old.clone();
        if let Some(name) = patch.name {
            check_name(&name)?;
            department.name = name;
        }
        patch_text(&mut department.name_en, patch.name_en);
        if let Some(order) = patch.order {
            department.order = order;
        }
        if let Some(parent) = patch.parentid.filter(|p| Some(*p) != old.parent_id) {
            self.check_move(id, parent)?;
            department.parent_id = Some(parent);
        }
        let change = PartyChange {
            id,
            name: (department.name != old.name).then(|| department.name.clone()),
            parent_id: department
                .parent_id
                .filter(|_| department.parent_id != old.parent_id),
            order: (department.order != old.order).then_some(department.order),
        };
        self.insert_department(department);
        Ok(ContactChange::UpdateParty(change))
    }

    /// Removes an empty department (and untags it); the `delete_party` payload.
    pub fn delete_department(&mut self, id: DepartmentId) -> Result<ContactChange, DirectoryError> {
        if id == ROOT_DEPARTMENT {
            return Err(invalid("the root department cannot be deleted"));
        }
        let department = self
            .department(id)
            .ok_or_else(|| department_not_found(id))?;
        let parent = department.parent_id;
        if self.children_of(id).next().is_some() {
            return Err(DirectoryError::NotEmpty(format!(
                "department {id} has subdepartments"
            )));
        }
        if self.members_of(id).next().is_some() {
            return Err(DirectoryError::NotEmpty(format!(
                "department {id} has members"
            )));
        }
        self.departments.remove(&id);
        self.members_of.remove(&id);
        if let Some(children) = parent.and_then(|parent| self.children_of.get_mut(&parent)) {
            children.remove(&id);
        }
        for tag in self.tags.values_mut() {
            tag.parties.remove(&id);
        }
        Ok(ContactChange::DeleteParty(PartyChange::new(id)))
    }

    /// Adds a tag (WeCom pushes nothing for this); returns its id.
    pub fn create_tag(&mut self, new: NewTag) -> Result<TagId, DirectoryError> {
        let id = match new.tagid {
            Some(id) => id,
            None => self
                .next_tag_id()
                .ok_or_else(|| invalid("no tag id is left"))?,
        };
        if self.tag(id).is_some() {
            return Err(DirectoryError::AlreadyExists(format!("tag {id}")));
        }
        check_name(&new.tagname)?;
        if self.tags().any(|t| t.name == new.tagname) {
            return Err(DirectoryError::AlreadyExists(format!(
                "tag name {}",
                new.tagname
            )));
        }
        self.insert_tag(Tag {
            id,
            name: new.tagname,
            users: std::collections::BTreeSet::default(),
            parties: std::collections::BTreeSet::default(),
        });
        Ok(id)
    }

    /// Tags and untags members and departments; the `update_tag` payload with the items that
    /// actually changed.
    pub fn update_tag_members(
        &mut self,
        id: TagId,
        change: TagMembersChange,
    ) -> Result<ContactChange, DirectoryError> {
        if let Some(userid) = change.add_users.iter().find(|u| self.user(u).is_none()) {
            return Err(user_not_found(userid));
        }
        if let Some(dept) = change
            .add_parties
            .iter()
            .find(|d| self.department(**d).is_none())
        {
            return Err(department_not_found(*dept));
        }
        let tag = self
            .tags
            .get_mut(&id)
            .ok_or_else(|| DirectoryError::NotFound(format!("tag {id}")))?;
        let added_users: Vec<UserId> = change
            .add_users
            .into_iter()
            .filter(|u| tag.users.insert(u.clone()))
            .collect();
        let deleted_users: Vec<UserId> = change
            .del_users
            .into_iter()
            .filter(|u| tag.users.remove(u))
            .collect();
        let added_parties: Vec<DepartmentId> = change
            .add_parties
            .into_iter()
            .filter(|d| tag.parties.insert(*d))
            .collect();
        let deleted_parties: Vec<DepartmentId> = change
            .del_parties
            .into_iter()
            .filter(|d| tag.parties.remove(d))
            .collect();
        let non_empty = |items: Vec<UserId>| (!items.is_empty()).then_some(items);
        let non_empty_ids = |items: Vec<DepartmentId>| (!items.is_empty()).then_some(items);
        Ok(ContactChange::UpdateTag(TagChange {
            tag_id: id,
            add_user_items: non_empty(added_users),
            del_user_items: non_empty(deleted_users),
            add_party_items: non_empty_ids(added_parties),
            del_party_items: non_empty_ids(deleted_parties),
        }))
    }

    /// Sets departments, orders, leader flags and main department, checking them.
    fn apply_membership(
        &self,
        member: &mut Member,
        departments: Vec<DepartmentId>,
        orders: Option<Vec<u64>>,
        leaders: Option<Vec<u8>>,
        main: Option<DepartmentId>,
    ) -> Result<(), DirectoryError> {
        if departments.is_empty() {
            return Err(invalid("a member needs at least one department"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for dept in &departments {
            if !seen.insert(*dept) {
                return Err(invalid(format!("department {dept} listed twice")));
            }
            if self.department(*dept).is_none() {
                return Err(department_not_found(*dept));
            }
        }
        let n = departments.len();
        let orders = orders.unwrap_or_else(|| vec![0; n]);
        let leaders = leaders.unwrap_or_else(|| vec![0; n]);
        if orders.len() != n || leaders.len() != n {
            return Err(invalid(
                "order and is_leader_in_dept must have one entry per department",
            ));
        }
        if leaders.iter().any(|l| *l > 1) {
            return Err(invalid("is_leader_in_dept entries must be 0 or 1"));
        }
        let main = main.unwrap_or(departments[0]);
        if !departments.contains(&main) {
            return Err(invalid("main_department must be one of the departments"));
        }
        member.departments = departments;
        member.orders = orders;
        member.leader_in = leaders.into_iter().map(|l| l == 1).collect();
        member.main_department = main;
        Ok(())
    }

    fn check_leaders(&self, leaders: Vec<UserId>) -> Result<Vec<UserId>, DirectoryError> {
        if leaders.len() > 5 {
            return Err(invalid("at most 5 direct leaders"));
        }
        if let Some(missing) = leaders.iter().find(|l| self.user(l).is_none()) {
            return Err(user_not_found(missing));
        }
        Ok(leaders)
    }

    /// A move of `id` under `parent` must keep the tree a tree, at most [`MAX_DEPTH`] deep.
    fn check_move(&self, id: DepartmentId, parent: DepartmentId) -> Result<(), DirectoryError> {
        if id == ROOT_DEPARTMENT {
            return Err(invalid("the root department cannot move"));
        }
        if self.department(parent).is_none() {
            return Err(department_not_found(parent));
        }
        if self.ancestors_and_self(parent).any(|a| a == id) {
            return Err(invalid("a department cannot move below itself"));
        }
        let subtree_height = self
            .subtree(id)
            .iter()
            .map(|d| self.depth(*d) - self.depth(id) + 1)
            .max()
            .unwrap_or(1);
        if self.depth(parent) + subtree_height > MAX_DEPTH {
            return Err(invalid(format!(
                "departments nest at most {MAX_DEPTH} deep"
            )));
        }
        Ok(())
    }
}

fn check_userid(userid: &UserId) -> Result<(), DirectoryError> {
    let userid = userid.as_str();
    let ok = (1..=64).contains(&userid.len())
        && userid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid("userid must be 1-64 characters of A-Za-z0-9_.@-"))
    }
}

fn check_name(name: &str) -> Result<(), DirectoryError> {
    if name.trim().is_empty() || name.chars().count() > 64 {
        Err(invalid("names must be 1-64 characters"))
    } else {
        Ok(())
    }
}

fn check_gender(gender: u8) -> Result<u8, DirectoryError> {
    if gender <= 2 {
        Ok(gender)
    } else {
        Err(invalid("gender must be 0, 1 or 2"))
    }
}

fn check_status(status: u8) -> Result<u8, DirectoryError> {
    if matches!(status, 1 | 2 | 4 | 5) {
        Ok(status)
    } else {
        Err(invalid("status must be 1, 2, 4 or 5"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::{dept as d, tag as t, user as u};

    fn directory() -> Directory {
        let mut dir = Directory::new("Acme");
        for (id, parent) in [(2, 1), (3, 2)] {
            dir.create_department(NewDepartment {
                id: Some(d(id)),
                ..NewDepartment::new(&format!("d{id}"), d(parent))
            })
            .unwrap();
        }
        dir
    }

    fn user(userid: &str, department: Vec<i64>) -> NewUser {
        NewUser::new(
            u(userid),
            &userid.to_uppercase(),
            department.into_iter().map(d).collect(),
        )
    }

    #[test]
    fn create_user_checks_and_reports_every_field() {
        let mut dir = directory();
        let ContactChange::CreateUser(change) = dir.create_user(user("alice", vec![2, 3])).unwrap()
        else {
            panic!("not create_user");
        };
        assert_eq!(change.department, Some(vec![d(2), d(3)]));
        assert_eq!(change.main_department, Some(d(2)));
        assert_eq!(change.is_leader_in_dept, Some(vec![false, false]));
        assert_eq!(
            dir.create_user(user("alice", vec![2])),
            Err(DirectoryError::AlreadyExists("user alice".into()))
        );
        assert!(matches!(
            dir.create_user(user("bob", vec![9])),
            Err(DirectoryError::NotFound(_))
        ));
        assert!(matches!(
            dir.create_user(user("bad/id", vec![2])),
            Err(DirectoryError::Invalid(_))
        ));
    }

    #[test]
    fn rename_moves_tags_and_indexes() {
        let mut dir = directory();
        dir.create_user(user("alice", vec![2])).unwrap();
        let tag = dir
            .create_tag(NewTag {
                tagid: None,
                tagname: "t".into(),
            })
            .unwrap();
        dir.update_tag_members(
            tag,
            TagMembersChange {
                add_users: vec![u("alice")],
                ..Default::default()
            },
        )
        .unwrap();
        let patch = UserPatch {
            new_userid: Some(u("alice2")),
            department: Some(vec![d(3)]),
            ..Default::default()
        };
        let ContactChange::UpdateUser(change) = dir.update_user(&u("alice"), patch).unwrap() else {
            panic!("not update_user");
        };
        assert_eq!(change.new_user_id, Some(u("alice2")));
        assert_eq!(change.department, Some(vec![d(3)]));
        assert_eq!(change.main_department, Some(d(3)));
        assert!(dir.user(&u("alice")).is_none());
        assert_eq!(dir.members_of(d(3)).next().unwrap().userid, "alice2");
        assert!(dir.tag(tag).unwrap().users.contains(&u("alice2")));
    }

    #[test]
    fn department_rules() {
        let mut dir = directory();
        dir.create_user(user("alice", vec![3])).unwrap();
        assert!(matches!(
            dir.delete_department(d(3)),
            Err(DirectoryError::NotEmpty(_))
        ));
        assert!(matches!(
            dir.delete_department(d(2)),
            Err(DirectoryError::NotEmpty(_))
        ));
        assert!(matches!(
            dir.update_department(
                d(2),
                DepartmentPatch {
                    parentid: Some(d(3)),
                    ..Default::default()
                }
            ),
            Err(DirectoryError::Invalid(_))
        ));
        dir.delete_user(&u("alice")).unwrap();
        assert_eq!(
            dir.delete_department(d(3)).unwrap(),
            ContactChange::DeleteParty(PartyChange::new(d(3)))
        );
        let ContactChange::UpdateParty(change) = dir
            .update_department(
                d(2),
                DepartmentPatch {
                    order: Some(9),
                    ..Default::default()
                },
            )
            .unwrap()
        else {
            panic!("not update_party");
        };
        assert_eq!(
            (change.name, change.parent_id, change.order),
            (None, None, Some(9))
        );
    }

    #[test]
    fn depth_is_limited() {
        let mut dir = Directory::new("Deep");
        for id in 2..=15 {
            dir.create_department(NewDepartment {
                id: Some(d(id)),
                ..NewDepartment::new("d", d(id - 1))
            })
            .unwrap();
        }
        let too_deep = dir.create_department(NewDepartment::new("d", d(15)));
        assert!(matches!(too_deep, Err(DirectoryError::Invalid(_))));
    }

    #[test]
    fn tag_change_lists_only_effective_items() {
        let mut dir = directory();
        dir.create_user(user("alice", vec![2])).unwrap();
        let tag = dir
            .create_tag(NewTag {
                tagid: Some(t(7)),
                tagname: "t".into(),
            })
            .unwrap();
        let change = dir
            .update_tag_members(
                tag,
                TagMembersChange {
                    add_users: vec![u("alice")],
                    del_users: vec![u("nobody")],
                    add_parties: vec![d(2)],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            change,
            ContactChange::UpdateTag(TagChange {
                tag_id: t(7),
                add_user_items: Some(vec![u("alice")]),
                del_user_items: None,
                add_party_items: Some(vec![d(2)]),
                del_party_items: None,
            })
        );
    }
}
