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

pub use model::{Department, Member, Tag, avatar_url, qr_code_url};
pub use mutate::{
    DepartmentPatch, DirectoryError, NewDepartment, NewTag, NewUser, TagMembersChange, UserPatch,
};

/// WeCom's root department id.
pub const ROOT_DEPARTMENT: u64 = 1;

/// WeCom's maximum department depth (the root counting as 1).
pub const MAX_DEPTH: usize = 15;

/// A corp's directory and its indexes.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    departments: BTreeMap<u64, Department>,
    users: BTreeMap<String, Member>,
    tags: BTreeMap<u64, Tag>,
    members_of: HashMap<u64, BTreeSet<String>>,
    children_of: HashMap<u64, BTreeSet<u64>>,
}

impl Directory {
    /// A directory holding only the root department, named after the corp.
    pub fn new(root_name: &str) -> Self {
        let mut directory = Self::default();
        directory.insert_department(Department {
            id: ROOT_DEPARTMENT,
            name: root_name.to_owned(),
            name_en: None,
            parent_id: 0,
            order: 100_000_000,
        });
        directory
    }

    /// The department `id`.
    pub fn department(&self, id: u64) -> Option<&Department> {
        self.departments.get(&id)
    }

    /// Every department, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// The member `userid`.
    pub fn user(&self, userid: &str) -> Option<&Member> {
        self.users.get(userid)
    }

    /// Every member, by userid.
    pub fn users(&self) -> impl Iterator<Item = &Member> {
        self.users.values()
    }

    /// Members from `userid` (inclusive) on, by userid: the basis of `user/list_id` paging.
    pub fn users_from<'a>(&'a self, userid: &str) -> impl Iterator<Item = &'a Member> + 'a {
        self.users
            .range::<str, _>((
                std::ops::Bound::Included(userid),
                std::ops::Bound::Unbounded,
            ))
            .map(|(_, member)| member)
    }

    /// The tag `id`.
    pub fn tag(&self, id: u64) -> Option<&Tag> {
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
    pub fn members_of(&self, id: u64) -> impl Iterator<Item = &Member> {
        self.members_of
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|userid| self.users.get(userid))
    }

    /// The direct children of department `id`.
    pub fn children_of(&self, id: u64) -> impl Iterator<Item = u64> + '_ {
        self.children_of.get(&id).into_iter().flatten().copied()
    }

    /// `id` and every department below it, parents before children.
    pub fn subtree(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if !self.departments.contains_key(&id) {
            return out;
        }
        let mut stack = vec![id];
        while let Some(current) = stack.pop() {
            out.push(current);
            // Reverse so the smallest child is visited first.
            let mut children: Vec<u64> = self.children_of(current).collect();
            children.reverse();
            stack.extend(children);
        }
        out
    }

    /// `id`, its parent, and so on up to the root (bounded, so a corrupt tree cannot loop).
    pub fn ancestors_and_self(&self, id: u64) -> impl Iterator<Item = u64> + '_ {
        let mut next = self.departments.contains_key(&id).then_some(id);
        std::iter::from_fn(move || {
            let current = next?;
            next = self
                .departments
                .get(&current)
                .map(|d| d.parent_id)
                .filter(|parent| *parent != 0);
            Some(current)
        })
        .take(MAX_DEPTH + 1)
    }

    /// Depth of `id`, the root being 1 (0 for an unknown department).
    pub fn depth(&self, id: u64) -> usize {
        self.ancestors_and_self(id).count()
    }

    /// The userids flagged leader in department `id`.
    pub fn leaders_of(&self, id: u64) -> Vec<String> {
        self.members_of(id)
            .filter(|m| m.is_leader_in(id))
            .map(|m| m.userid.clone())
            .collect()
    }

    /// Adds or replaces a department and indexes it. Callers check the parent exists.
    pub(crate) fn insert_department(&mut self, department: Department) {
        if let Some(old) = self.departments.get(&department.id) {
            let old_parent = old.parent_id;
            if let Some(children) = self.children_of.get_mut(&old_parent) {
                children.remove(&department.id);
            }
        }
        if department.parent_id != 0 {
            self.children_of
                .entry(department.parent_id)
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
    pub(crate) fn remove_user(&mut self, userid: &str) -> Option<Member> {
        self.unindex_user(userid);
        self.users.remove(userid)
    }

    fn unindex_user(&mut self, userid: &str) {
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

    /// Next free department id.
    fn next_department_id(&self) -> u64 {
        self.departments.keys().next_back().map_or(1, |id| id + 1)
    }

    /// Next free tag id.
    fn next_tag_id(&self) -> u64 {
        self.tags.keys().next_back().map_or(1, |id| id + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(id: u64, parent_id: u64) -> Department {
        Department {
            id,
            name: format!("d{id}"),
            name_en: None,
            parent_id,
            order: id,
        }
    }

    #[test]
    fn indexes_follow_moves_and_removals() {
        let mut dir = Directory::new("Acme");
        dir.insert_department(dept(2, 1));
        dir.insert_department(dept(3, 2));
        dir.insert_department(dept(4, 1));
        assert_eq!(dir.subtree(1), vec![1, 2, 3, 4]);
        assert_eq!(dir.ancestors_and_self(3).collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_eq!(dir.depth(3), 3);
        dir.insert_department(dept(3, 4));
        assert_eq!(dir.subtree(2), vec![2]);
        assert_eq!(dir.subtree(4), vec![4, 3]);

        let mut member = Member::new("alice", "Alice", vec![2, 3]);
        member.leader_in = vec![false, true];
        dir.insert_user(member.clone());
        assert_eq!(dir.members_of(3).count(), 1);
        assert_eq!(dir.leaders_of(3), vec!["alice".to_owned()]);
        assert!(dir.leaders_of(2).is_empty());
        member.departments = vec![4];
        member.orders = vec![0];
        member.leader_in = vec![false];
        dir.insert_user(member);
        assert_eq!(dir.members_of(3).count(), 0);
        assert_eq!(dir.members_of(4).count(), 1);
        assert!(dir.remove_user("alice").is_some());
        assert_eq!(dir.members_of(4).count(), 0);
        assert_eq!(dir.counts(), (4, 0, 0));
    }
}
