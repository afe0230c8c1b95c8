//! The stored shapes of departments, members and tags, and how a member becomes the full
//! `change_contact` payload.

use std::collections::BTreeSet;

use wecom::api::ExtAttrItem;
use wecom::event::{ExtAttr, ExtAttrValue, UserChange};
use wecom::ids::{DepartmentId, TagId, UserId};

/// A department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Department id; the root is 1.
    pub id: DepartmentId,
    /// Name.
    pub name: String,
    /// English name.
    pub name_en: Option<String>,
    /// Parent id; `None` for the root (WeCom's 0).
    pub parent_id: Option<DepartmentId>,
    /// Order among siblings.
    pub order: u64,
}

/// A member, with every field WeCom knows (the API view hides what the app may not see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The userid.
    pub userid: UserId,
    /// Name.
    pub name: String,
    /// Departments, main department first by convention.
    pub departments: Vec<DepartmentId>,
    /// Order inside each department (parallel to `departments`).
    pub orders: Vec<u64>,
    /// Leader flag inside each department (parallel to `departments`).
    pub leader_in: Vec<bool>,
    /// Main department.
    pub main_department: DepartmentId,
    /// Position.
    pub position: Option<String>,
    /// Mobile.
    pub mobile: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    pub gender: u8,
    /// Email.
    pub email: Option<String>,
    /// Business email.
    pub biz_mail: Option<String>,
    /// Landline.
    pub telephone: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Userids of direct leaders.
    pub direct_leader: Vec<UserId>,
    /// 1 active, 2 disabled, 4 not activated, 5 quit.
    pub status: u8,
    /// Custom attributes, in WeCom's API shape.
    pub ext_attrs: Vec<ExtAttrItem>,
}

/// A tag and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Tag id.
    pub id: TagId,
    /// Tag name.
    pub name: String,
    /// Tagged members.
    pub users: BTreeSet<UserId>,
    /// Tagged departments.
    pub parties: BTreeSet<DepartmentId>,
}

impl Member {
    /// A member with just a name and departments (the first is the main one), everything else
    /// empty; order 0 and no leader flag in each department.
    pub fn new(userid: UserId, name: &str, departments: Vec<DepartmentId>) -> Self {
        let n = departments.len();
        Self {
            userid,
            name: name.to_owned(),
            main_department: departments.first().copied().unwrap_or(DepartmentId::ROOT),
            departments,
            orders: vec![0; n],
            leader_in: vec![false; n],
            position: None,
            mobile: None,
            gender: 0,
            email: None,
            biz_mail: None,
            telephone: None,
            alias: None,
            address: None,
            direct_leader: Vec::new(),
            status: 1,
            ext_attrs: Vec::new(),
        }
    }

    /// Whether the member is flagged leader in department `id`.
    pub fn is_leader_in(&self, id: DepartmentId) -> bool {
        self.departments
            .iter()
            .zip(&self.leader_in)
            .any(|(dept, leader)| *dept == id && *leader)
    }

    /// The `create_user` payload: every field filled in.
    pub fn to_change(&self) -> UserChange {
        UserChange {
            name: Some(self.name.clone()),
            department: Some(self.departments.clone()),
            main_department: Some(self.main_department),
            is_leader_in_dept: Some(self.leader_in.clone()),
            direct_leader: Some(self.direct_leader.clone()),
            position: self.position.clone(),
            mobile: self.mobile.clone(),
            gender: Some(self.gender),
            email: self.email.clone(),
            biz_mail: self.biz_mail.clone(),
            status: Some(self.status),
            avatar: Some(avatar_url(&self.userid)),
            alias: self.alias.clone(),
            telephone: self.telephone.clone(),
            address: self.address.clone(),
            ext_attr: Some(self.ext_attrs.iter().map(ext_attr_event).collect()),
            ..UserChange::new(self.userid.clone())
        }
    }

    /// The `update_user` payload from `old` to `self`: `UserID` (the old id), `NewUserID` when
    /// renamed, and only the fields that changed.
    pub fn diff_from(&self, old: &Member) -> UserChange {
        fn changed<T: PartialEq + Clone>(new: &T, old: &T) -> Option<T> {
            (new != old).then(|| new.clone())
        }
        let membership_changed =
            self.departments != old.departments || self.leader_in != old.leader_in;
        UserChange {
            new_user_id: changed(&self.userid, &old.userid),
            name: changed(&self.name, &old.name),
            department: membership_changed.then(|| self.departments.clone()),
            main_department: changed(&self.main_department, &old.main_department),
            is_leader_in_dept: membership_changed.then(|| self.leader_in.clone()),
            direct_leader: changed(&self.direct_leader, &old.direct_leader),
            position: changed(&self.position, &old.position).map(Option::unwrap_or_default),
            mobile: changed(&self.mobile, &old.mobile).map(Option::unwrap_or_default),
            gender: changed(&self.gender, &old.gender),
            email: changed(&self.email, &old.email).map(Option::unwrap_or_default),
            biz_mail: changed(&self.biz_mail, &old.biz_mail).map(Option::unwrap_or_default),
            status: changed(&self.status, &old.status),
            avatar: changed(&self.userid, &old.userid).map(|id| avatar_url(&id)),
            alias: changed(&self.alias, &old.alias).map(Option::unwrap_or_default),
            telephone: changed(&self.telephone, &old.telephone).map(Option::unwrap_or_default),
            address: changed(&self.address, &old.address).map(Option::unwrap_or_default),
            ext_attr: changed(&self.ext_attrs, &old.ext_attrs)
                .map(|attrs| attrs.iter().map(ext_attr_event).collect()),
            ..UserChange::new(old.userid.clone())
        }
    }
}

/// The member's avatar URL (derived from the userid, so it needs no storage).
pub fn avatar_url(userid: &UserId) -> String {
    format!("https://wework.qpic.cn/wwpic/sim/{userid}/0")
}

/// The member's personal QR code URL (derived from the userid).
pub fn qr_code_url(userid: &UserId) -> String {
    format!("https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=sim-{userid}")
}

/// An API-shaped custom attribute as the event's `ExtAttr/Item`.
fn ext_attr_event(item: &ExtAttrItem) -> ExtAttr {
    let value = match (item.kind.unwrap_or(0), &item.text, &item.web) {
        (0, text, _) => ExtAttrValue::Text {
            value: text.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
        },
        (1, _, web) => ExtAttrValue::Web {
            title: web.as_ref().map(|w| w.title.clone()).unwrap_or_default(),
            url: web.as_ref().map(|w| w.url.clone()).unwrap_or_default(),
        },
        (type_code, _, _) => ExtAttrValue::Other { type_code },
    };
    ExtAttr {
        name: item.name.clone(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::user as userid;

    #[test]
    fn diff_names_only_changed_fields_and_rename() {
        let old = Member::new(userid("alice"), "Alice", vec![DepartmentId::ROOT]);
        let mut new = old.clone();
        new.userid = userid("alice2");
        new.mobile = Some("13800000000".into());
        let change = new.diff_from(&old);
        assert_eq!(change.user_id, "alice");
        assert_eq!(
            change.new_user_id.as_ref().map(UserId::as_str),
            Some("alice2")
        );
        assert_eq!(change.mobile.as_deref(), Some("13800000000"));
        assert!(change.name.is_none());
        assert!(change.department.is_none());
        assert!(change.alias.is_none());
    }

    #[test]
    fn cleared_field_is_sent_empty() {
        let mut old = Member::new(userid("bob"), "Bob", vec![DepartmentId::ROOT]);
        old.alias = Some("bobby".into());
        let mut new = old.clone();
        new.alias = None;
        assert_eq!(new.diff_from(&old).alias.as_deref(), Some(""));
    }
}
