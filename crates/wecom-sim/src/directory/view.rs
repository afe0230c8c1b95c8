//! The directory as the APIs show it: WeCom's JSON shapes (the `wecom::api` types themselves),
//! with sensitive fields dropped unless granted, and the canonical snapshot
//! `GET /sim/corps/{corp}/directory` returns.

use serde::Serialize;
use wecom::api;
use wecom::event::{ContactChange, PartyChange, UserChange};
use wecom::ids::{CorpId, DepartmentId, TagId, UserId};

use super::{Department, Directory, Member, avatar_url, qr_code_url};
use crate::scope::{Grants, Visibility, grant};

/// A department as `department/list` and `department/get` show it.
pub fn department(dir: &Directory, d: &Department, grants: &Grants) -> api::Department {
    let named = grants.has(grant::DEPARTMENT_NAME);
    api::Department {
        id: d.id,
        name: named.then(|| d.name.clone()),
        name_en: d.name_en.clone().filter(|_| named),
        department_leader: dir.leaders_of(d.id),
        parentid: d.parent_id,
        order: Some(d.order),
    }
}

/// A department as `department/simplelist` shows it.
pub fn department_ref(d: &Department) -> api::DepartmentRef {
    api::DepartmentRef {
        id: d.id,
        parentid: d.parent_id,
        order: Some(d.order),
    }
}

/// A member as `user/get` and `user/list` show it.
pub fn user(m: &Member, grants: &Grants) -> api::User {
    let granted = |name: &str, value: &Option<String>| value.clone().filter(|_| grants.has(name));
    let avatar = grants.has(grant::AVATAR).then(|| avatar_url(&m.userid));
    api::User {
        userid: m.userid.clone(),
        name: grants.has(grant::USER_NAME).then(|| m.name.clone()),
        department: m.departments.clone(),
        order: m.orders.clone(),
        position: granted(grant::POSITION, &m.position),
        mobile: granted(grant::MOBILE, &m.mobile),
        gender: grants.has(grant::GENDER).then(|| m.gender.to_string()),
        email: granted(grant::EMAIL, &m.email),
        biz_mail: granted(grant::EMAIL, &m.biz_mail),
        is_leader_in_dept: m.leader_in.iter().map(|l| u8::from(*l)).collect(),
        direct_leader: m.direct_leader.clone(),
        thumb_avatar: avatar.as_ref().map(|url| format!("{url}?thumb=1")),
        avatar,
        telephone: granted(grant::TELEPHONE, &m.telephone),
        alias: m.alias.clone(),
        address: granted(grant::ADDRESS, &m.address),
        open_userid: None,
        main_department: Some(m.main_department),
        extattr: Some(api::ExtAttr {
            attrs: m.ext_attrs.clone(),
        }),
        status: Some(i64::from(m.status)),
        qr_code: grants.has(grant::QRCODE).then(|| qr_code_url(&m.userid)),
        external_position: None,
        external_profile: None,
    }
}

/// A member as `user/simplelist` shows it.
pub fn user_ref(m: &Member, grants: &Grants) -> api::UserRef {
    api::UserRef {
        userid: m.userid.clone(),
        name: grants.has(grant::USER_NAME).then(|| m.name.clone()),
        department: m.departments.clone(),
        open_userid: None,
    }
}

/// Drops what the app may not see from a `change_contact` payload (WeCom does the same for
/// 代开发 apps without the grants).
pub fn redact_change(change: ContactChange, grants: &Grants) -> ContactChange {
    match change {
        ContactChange::CreateUser(u) => ContactChange::CreateUser(redact_user(u, grants)),
        ContactChange::UpdateUser(u) => ContactChange::UpdateUser(redact_user(u, grants)),
        ContactChange::CreateParty(p) => ContactChange::CreateParty(redact_party(p, grants)),
        ContactChange::UpdateParty(p) => ContactChange::UpdateParty(redact_party(p, grants)),
        other => other,
    }
}

fn redact_user(mut u: UserChange, grants: &Grants) -> UserChange {
    let keep = |name: &str, value: &mut Option<String>| {
        if !grants.has(name) {
            *value = None;
        }
    };
    keep(grant::USER_NAME, &mut u.name);
    keep(grant::POSITION, &mut u.position);
    keep(grant::MOBILE, &mut u.mobile);
    keep(grant::EMAIL, &mut u.email);
    keep(grant::EMAIL, &mut u.biz_mail);
    keep(grant::AVATAR, &mut u.avatar);
    keep(grant::TELEPHONE, &mut u.telephone);
    keep(grant::ADDRESS, &mut u.address);
    if !grants.has(grant::GENDER) {
        u.gender = None;
    }
    u
}

fn redact_party(mut p: PartyChange, grants: &Grants) -> PartyChange {
    if !grants.has(grant::DEPARTMENT_NAME) {
        p.name = None;
    }
    p
}

/// The canonical directory: everything sorted, in WeCom's API shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The corp.
    pub corp_id: CorpId,
    /// `full` (ground truth) or `app` (what the app can see, with its grants).
    pub view: &'static str,
    /// Departments by id.
    pub departments: Vec<api::Department>,
    /// Members by userid.
    pub users: Vec<api::User>,
    /// Tags by id, members and departments sorted.
    pub tags: Vec<TagSnapshot>,
}

/// One tag in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagSnapshot {
    /// Tag id.
    pub tagid: TagId,
    /// Tag name.
    pub tagname: String,
    /// Tagged userids, sorted.
    pub userlist: Vec<UserId>,
    /// Tagged department ids, sorted.
    pub partylist: Vec<DepartmentId>,
}

/// The ground truth: every entity, every field.
pub fn full_snapshot(corp_id: &CorpId, dir: &Directory) -> Snapshot {
    let grants = Grants::all();
    Snapshot {
        corp_id: corp_id.clone(),
        view: "full",
        departments: dir
            .departments()
            .map(|d| department(dir, d, &grants))
            .collect(),
        users: dir.users().map(|m| user(m, &grants)).collect(),
        tags: dir
            .tags()
            .map(|t| TagSnapshot {
                tagid: t.id,
                tagname: t.name.clone(),
                userlist: t.users.iter().cloned().collect(),
                partylist: t.parties.iter().copied().collect(),
            })
            .collect(),
    }
}

/// What the app sees: visible entities only, granted fields only, tags with their visible
/// members (as `tag/get` shows them).
pub fn app_snapshot(
    corp_id: &CorpId,
    dir: &Directory,
    vis: &Visibility<'_>,
    grants: &Grants,
) -> Snapshot {
    Snapshot {
        corp_id: corp_id.clone(),
        view: "app",
        departments: dir
            .departments()
            .filter(|d| vis.department(d.id))
            .map(|d| department(dir, d, grants))
            .collect(),
        users: dir
            .users()
            .filter(|m| vis.user(m))
            .map(|m| user(m, grants))
            .collect(),
        tags: dir
            .tags()
            .map(|t| TagSnapshot {
                tagid: t.id,
                tagname: t.name.clone(),
                userlist: t.users.iter().filter(|u| vis.userid(u)).cloned().collect(),
                partylist: t
                    .parties
                    .iter()
                    .copied()
                    .filter(|d| vis.department(*d))
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::seed::{SeedSpec, seed};
    use crate::scope::Scope;
    use crate::test_ids::{dept as d, user as u};

    #[test]
    fn no_grants_no_sensitive_fields() {
        let dir = seed(
            "Acme",
            &SeedSpec {
                users: 20,
                departments: Some(3),
                tags: Some(1),
                seed: 1,
            },
        );
        let member = dir.users().next().unwrap();
        let bare = user(member, &Grants::default());
        assert!(bare.name.is_none() && bare.mobile.is_none() && bare.email.is_none());
        assert!(bare.avatar.is_none() && bare.gender.is_none() && bare.qr_code.is_none());
        assert_eq!(bare.department, member.departments);
        let full = user(member, &Grants::all());
        assert_eq!(full.name.as_deref(), Some(member.name.as_str()));
        assert!(full.mobile.is_some() && full.avatar.is_some());
        let root = department(&dir, dir.department(d(1)).unwrap(), &Grants::default());
        assert!(root.name.is_none());
    }

    #[test]
    fn app_snapshot_is_limited_to_the_scope() {
        let dir = seed(
            "Acme",
            &SeedSpec {
                users: 300,
                departments: Some(10),
                tags: Some(2),
                seed: 3,
            },
        );
        let scope = Scope {
            departments: vec![d(2)],
            users: vec![],
            tags: vec![],
        };
        let vis = Visibility::new(&dir, &scope);
        let corp: CorpId = "ww1".parse().unwrap();
        let app = app_snapshot(&corp, &dir, &vis, &Grants::default());
        let full = full_snapshot(&corp, &dir);
        assert!(app.users.len() < full.users.len());
        assert!(app.departments.iter().all(|d| vis.department(d.id)));
        assert!(app.users.iter().all(|u| u.name.is_none()));
        assert_eq!(full.users.len(), 300);
    }

    #[test]
    fn redaction_keeps_ids_and_structure() {
        let member = crate::directory::Member::new(u("alice"), "Alice", vec![d(1)]);
        let redacted = redact_change(
            ContactChange::CreateUser(member.to_change()),
            &Grants::default(),
        );
        let ContactChange::CreateUser(u) = redacted else {
            panic!("kind changed");
        };
        assert_eq!(u.user_id, "alice");
        assert!(u.name.is_none() && u.avatar.is_none() && u.gender.is_none());
        assert_eq!(u.department, Some(vec![d(1)]));
    }
}
