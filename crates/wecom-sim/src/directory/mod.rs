//! One corp's directory: the department tree, members in several departments, tags.
//!
//! This is the ground truth the simulated WeCom APIs read through the app's scope and grants
//! ([`crate::scope`]) and that `GET /sim/corps/{corp}/directory` exposes for tests to compare
//! against. It keeps two indexes (members per department, children per department) so that
//! `user/list` on one department of a 100,000-member corp does not scan every member.
//!
//! The mutations are the ones a corp admin makes in the WeCom console; each returns the
//! `change_contact` payload WeCom would push for it, with every field filled in (the push layer
//! strips what the app may not see).

mod model;
mod mutate;
pub mod seed;
pub mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wecom::ids::{DepartmentId, TagId, UserId};

pub use model::{Department, Member, Tag, avatar_url, qr_code_url};
pub use mutate::{
    DepartmentPatch, DirectoryError, NewDepartment, NewTag, NewUser, TagMembersChange, UserPatch,
};

/// WeCom's root department id.
pub const ROOT_DEPARTMENT: DepartmentId = DepartmentId::ROOT;

/// WeCom's maximum department depth (the root counting as 1).
pub const MAX_DEPTH: usize = 15;

/// A corp's directory and its indexes.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    departments: BTreeMap<DepartmentId, Department>,
    users: BTreeMap<UserId, Member>,
    tags: BTreeMap<TagId, Tag>,
    members_of: HashMap<DepartmentId, BTreeSet<UserId>>,
    children_of: HashMap<DepartmentId, BTreeSet<DepartmentId>>,
}

impl Directory {
    /// A directory holding only the root department, named after the corp.
    pub fn new(root_name: &str) -> Self {
        let mut directory = Self::default();
        directory.insert_department(Department {
            id: ROOT_DEPARTMENT,
            name: root_name.to_owned(),
            name_en: None,
            parent_id: None,
            order: 100_000_000,
        });
        directory
    }

    /// The department `id`.
    pub fn department(&self, id: DepartmentId) -> Option<&Department> {
        self.departments.get(&id)
    }

    /// Every department, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// The member `userid`.
    pub fn user(&self, userid: &UserId) -> Option<&Member> {
        self.users.get(userid)
    }

    /// Every member, by userid.
    pub fn users(&self) -> impl Iterator<Item = &Member> {
        self.users.values()
    }

    /// Members from `userid` (inclusive; `None`: the first) on, by userid: the basis of
    /// `user/list_id` paging.
    pub fn users_from<'a>(
        &'a self,
        userid: Option<&UserId>,
    ) -> impl Iterator<Item = &'a Member> + 'a {
        let range = match userid {
            Some(userid) => self.users.range(userid.clone()..),
            None => self.users.range(..),
        };
        range.map(|(_, member)| member)
    }

    /// The tag `id`.
    pub fn tag(&self, id: TagId) -> Option<&Tag> {
        self.tags.get(&id)
    }

    /// Every tag, by id.
    pub fn tags(&self) -> impl Iterator<Item = &Tag> {
        self.tags.values()
    }

    /// How many departments, members and tags there are.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.departments.len(), self.users.len(), self.tags.len())
    }

    /// The direct members of department `id` (not recursive), by userid.
    pub fn members_of(&self, id: DepartmentId) -> impl Iterator<Item = &Member> {
        self.members_of
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|userid| self.users.get(userid))
    }

    /// The direct children of department `id`.
    pub fn children_of(&self, id: DepartmentId) -> impl Iterator<Item = DepartmentId> + '_ {
        self.children_of.get(&id).into_iter().flatten().copied()
    }

    /// `id` and every department below it, parents before children.
    pub fn subtree(&self, id: DepartmentId) -> Vec<DepartmentId> {
        let mut out = Vec::new();
        if !self.departments.contains_key(&id) {
            return out;
        }
        let mut stack = vec![id];
        while let Some(current) = stack.pop() {
            out.push(current);
            // Reverse so the smallest child is visited first.
            let mut children: Vec<DepartmentId> = self.children_of(current).collect();
            children.reverse();
            stack.extend(children);
        }
        out
    }

    /// `id`, its parent, and so on up to the root (bounded, so a corrupt tree cannot loop).
    pub fn ancestors_and_self(&self, id: DepartmentId) -> impl Iterator<Item = DepartmentId> + '_ {
        let mut next = self.departments.contains_key(&id).then_some(id);
        std::iter::from_fn(move || {
            let current = next?;
            next = self.departments.get(&current).and_then(|d| d.parent_id);
            Some(current)
        })
        .take(MAX_DEPTH + 1)
    }

    /// Depth of `id`, the root being 1 (0 for an unknown department).
    pub fn depth(&self, id: DepartmentId) -> usize {
        self.ancestors_and_self(id).count()
    }

    /// The userids flagged leader in department `id`.
    pub fn leaders_of(&self, id: DepartmentId) -> Vec<UserId> {
        self.members_of(id)
            .filter(|m| m.is_leader_in(id))
            .map(|m| m.userid.clone())
            .collect()
    }

    /// Adds or replaces a department and indexes it. Callers check the parent exists.
    pub(crate) fn insert_department(&mut self, department: Department) {
        if let Some(old_parent) = self
            .departments
            .get(&department.id)
            .and_then(|old| old.parent_id)
            && let Some(children) = self.children_of.get_mut(&old_parent)
        {
            children.remove(&department.id);
        }
        if let Some(parent) = department.parent_id {
            self.children_of
                .entry(parent)
                .or_default()
                .insert(department.id);
        }
        self.departments.insert(department.id, department);
    }

    /// Adds or replaces a member and indexes it. Callers check its departments exist.
    pub(crate) fn insert_user(&mut self, member: Member) {
        self.unindex_user(&member.userid);
        for dept in &member.departments {
            self.members_of
                .entry(*dept)
                .or_default()
                .insert(member.userid.clone());
        }
        self.users.insert(member.userid.clone(), member);
    }

    /// Removes a member and its index entries; returns it.
    pub(crate) fn remove_user(&mut self, userid: &UserId) -> Option<Member> {
        self.unindex_user(userid);
        self.users.remove(userid)
    }

    fn unindex_user(&mut self, userid: &UserId) {
        if let Some(old) = self.users.get(userid) {
            for dept in &old.departments {
                if let Some(members) = self.members_of.get_mut(dept) {
                    members.remove(userid);
                }
            }
        }
    }

    /// Adds or replaces a tag.
    pub(crate) fn insert_tag(&mut self, tag: Tag) {
        self.tags.insert(tag.id, tag);
    }

    /// Next free department id (the largest + 1), if there is one.
    fn next_department_id(&self) -> Option<DepartmentId> {
        next_id(self.departments.keys().next_back().map(|id| id.get()))
    }

    /// Next free tag id (the largest + 1), if there is one.
    fn next_tag_id(&self) -> Option<TagId> {
        next_id(self.tags.keys().next_back().map(|id| id.get()))
    }
}

/// The id after `largest` (1 when there is none); `None` past `i64::MAX`.
fn next_id<T: TryFrom<i64>>(largest: Option<i64>) -> Option<T> {
    let next = largest.map_or(Some(1), |id| id.checked_add(1))?;
    T::try_from(next).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::{dept as d, user};

    fn dept(id: i64, parent_id: i64) -> Department {
        Department {
            id: d(id),
            name: format!("d{id}"),
            name_en: None,
            parent_id: Some(d(parent_id)),
            order: id.unsigned_abs(),
        }
    }

    #[test]
    fn indexes_follow_moves_and_removals() {
        let mut dir = Directory::new("Acme");
        dir.insert_department(dept(2, 1));
        dir.insert_department(dept(3, 2));
        dir.insert_department(dept(4, 1));
        assert_eq!(dir.subtree(d(1)), vec![1, 2, 3, 4]);
        assert_eq!(
            dir.ancestors_and_self(d(3)).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        assert_eq!(dir.depth(d(3)), 3);
        dir.insert_department(dept(3, 4));
        assert_eq!(dir.subtree(d(2)), vec![2]);
        assert_eq!(dir.subtree(d(4)), vec![4, 3]);

        let mut member = Member::new(user("alice"), "Alice", vec![d(2), d(3)]);
        member.leader_in = vec![false, true];
        dir.insert_user(member.clone());
        assert_eq!(dir.members_of(d(3)).count(), 1);
        assert_eq!(dir.leaders_of(d(3)), vec!["alice"]);
        assert!(dir.leaders_of(d(2)).is_empty());
        member.departments = vec![d(4)];
        member.orders = vec![0];
        member.leader_in = vec![false];
        dir.insert_user(member);
        assert_eq!(dir.members_of(d(3)).count(), 0);
        assert_eq!(dir.members_of(d(4)).count(), 1);
        assert!(dir.remove_user(&user("alice")).is_some());
        assert_eq!(dir.members_of(d(4)).count(), 0);
        assert_eq!(dir.counts(), (4, 0, 0));
    }
}
