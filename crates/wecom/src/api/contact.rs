//! Directory shapes: departments, members, tags (docs/wecom.md §4.5).
//!
//! Almost everything is optional: apps created after 2022-06-20 get no name, mobile, avatar,
//! gender, email… unless the admin granted them, and department names need a grant too.

use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{DepartmentId, TagId, UserId};

/// A department, from `department/list` or `department/get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Department id; the root is 1.
    pub id: DepartmentId,
    /// Name (代开发: only with the admin's grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// English name (same grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    /// Userids of the department's leaders.
    #[serde(default)]
    pub department_leader: Vec<UserId>,
    /// Parent department id; `None` for the root (WeCom's `"parentid": 0`, written back as 0).
    #[serde(default, with = "parent_id")]
    pub parentid: Option<DepartmentId>,
    /// Order among siblings (larger first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u64>,
}

/// A department from `department/simplelist`: the tree without names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentRef {
    /// Department id.
    pub id: DepartmentId,
    /// Parent department id; `None` for the root (WeCom's `"parentid": 0`, written back as 0).
    #[serde(default, with = "parent_id")]
    pub parentid: Option<DepartmentId>,
    /// Order among siblings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u64>,
}

/// Answer of `GET /cgi-bin/department/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentListResponse {
    /// The departments of the requested subtree.
    #[serde(default)]
    pub department: Vec<Department>,
}

/// Answer of `GET /cgi-bin/department/simplelist`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentSimpleListResponse {
    /// The department ids of the requested subtree.
    #[serde(default)]
    pub department_id: Vec<DepartmentRef>,
}

/// Answer of `GET /cgi-bin/department/get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentGetResponse {
    /// The department.
    pub department: Department,
}

/// A member, from `user/get` or `user/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The userid (encrypted, provider-scoped, for post-2022 installs).
    pub userid: UserId,
    /// Name (代开发: only with the admin's grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Departments the member belongs to.
    #[serde(default)]
    pub department: Vec<DepartmentId>,
    /// Order inside each department, parallel to `department`.
    #[serde(default)]
    pub order: Vec<u64>,
    /// Position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Mobile (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// `"0"` unknown, `"1"` male, `"2"` female (sensitive). Accepted as string or number.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub gender: Option<String>,
    /// Email (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Business email (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_mail: Option<String>,
    /// 1 when leader in the department at the same index of `department`.
    #[serde(default)]
    pub is_leader_in_dept: Vec<u8>,
    /// Userids of direct leaders.
    #[serde(default)]
    pub direct_leader: Vec<UserId>,
    /// Avatar URL (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Thumbnail avatar URL (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_avatar: Option<String>,
    /// Landline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// Alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Address (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Third-party open_userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_userid: Option<String>,
    /// Main department id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_department: Option<DepartmentId>,
    /// Custom attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extattr: Option<ExtAttr>,
    /// 1 activated, 2 disabled, 4 not activated, 5 quit (values unconfirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Personal QR code URL (sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_code: Option<String>,
    /// Position shown to external contacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_position: Option<String>,
    /// External profile, kept as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_profile: Option<serde_json::Value>,
}

/// `extattr`: custom member attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAttr {
    /// The attributes.
    #[serde(default)]
    pub attrs: Vec<ExtAttrItem>,
}

/// `extattr.attrs[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAttrItem {
    /// 0 text, 1 web, 2 mini program.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<i64>,
    /// Attribute name.
    #[serde(default)]
    pub name: String,
    /// Value of a text attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<ExtText>,
    /// Value of a web attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<ExtWeb>,
    /// Value of a mini-program attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<ExtMiniprogram>,
}

/// A text attribute value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtText {
    /// The text.
    #[serde(default)]
    pub value: String,
}

/// A web attribute value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtWeb {
    /// Link URL.
    #[serde(default)]
    pub url: String,
    /// Link title.
    #[serde(default)]
    pub title: String,
}

/// A mini-program attribute value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtMiniprogram {
    /// Mini-program appid.
    #[serde(default)]
    pub appid: String,
    /// Page path.
    #[serde(default)]
    pub pagepath: String,
    /// Title.
    #[serde(default)]
    pub title: String,
}

/// A member from `user/simplelist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The userid.
    pub userid: UserId,
    /// Name (代开发: only with the admin's grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Departments the member belongs to.
    #[serde(default)]
    pub department: Vec<DepartmentId>,
    /// Third-party open_userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_userid: Option<String>,
}

/// Answer of `GET /cgi-bin/user/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserListResponse {
    /// The department's direct members.
    #[serde(default)]
    pub userlist: Vec<User>,
}

/// Answer of `GET /cgi-bin/user/simplelist`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSimpleListResponse {
    /// The department's direct members.
    #[serde(default)]
    pub userlist: Vec<UserRef>,
}

/// Body of `POST /cgi-bin/user/list_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListIdRequest {
    /// The previous page's `next_cursor`; omitted for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1..=10000.
    pub limit: u32,
}

/// Answer of `POST /cgi-bin/user/list_id`: one page of (userid, department) rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdPage {
    /// Cursor of the next page; empty or absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// One row per (member, department): dedupe by userid.
    #[serde(default)]
    pub dept_user: Vec<DeptUser>,
}

impl UserIdPage {
    /// The cursor to pass for the next page, or `None` when this was the last page.
    pub fn next_page(&self) -> Option<&str> {
        self.next_cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// `dept_user[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeptUser {
    /// The userid.
    pub userid: UserId,
    /// Third-party open_userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_userid: Option<String>,
    /// One department of the member.
    pub department: DepartmentId,
}

/// A tag from `tag/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag id.
    pub tagid: TagId,
    /// Tag name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagname: Option<String>,
}

/// Answer of `GET /cgi-bin/tag/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagListResponse {
    /// The tags.
    #[serde(default)]
    pub taglist: Vec<Tag>,
}

/// Answer of `GET /cgi-bin/tag/get`: the members of one tag inside the app's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMembers {
    /// Tag name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagname: Option<String>,
    /// Tagged members.
    #[serde(default)]
    pub userlist: Vec<TagUser>,
    /// Tagged departments.
    #[serde(default)]
    pub partylist: Vec<DepartmentId>,
}

/// `userlist[]` of `tag/get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagUser {
    /// The userid.
    pub userid: UserId,
    /// Name (代开发: only with the admin's grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Accepts `"1"`, `1` or `null` (WeCom sends gender as a string; be lenient anyway).
fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
    }
    Ok(
        Option::<Raw>::deserialize(deserializer)?.map(|raw| match raw {
            Raw::Text(text) => text,
            Raw::Int(n) => n.to_string(),
        }),
    )
}

/// `parentid`: WeCom writes the root's parent as 0, which is no department; read as `None`
/// (absent and `null` too) and written back as 0, so the JSON stays WeCom's.
mod parent_id {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ids::DepartmentId;

    #[expect(
        clippy::ref_option,
        reason = "serde's `with` passes the field by reference"
    )]
    pub(super) fn serialize<S: Serializer>(
        parent: &Option<DepartmentId>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(parent.map_or(0, DepartmentId::get))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DepartmentId>, D::Error> {
        match Option::<i64>::deserialize(deserializer)? {
            None | Some(0) => Ok(None),
            Some(id) => DepartmentId::new(id).map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roots_parent_zero_reads_as_none_and_is_written_back_as_zero() {
        let json = serde_json::json!({"id": 1, "parentid": 0, "order": 1});
        let root: DepartmentRef = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(root.parentid, None);
        assert_eq!(serde_json::to_value(&root).unwrap(), json);
        let json = serde_json::json!({"id": 2, "department_leader": ["zhangsan"], "parentid": 1});
        let child: Department = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(child.parentid, Some(DepartmentId::ROOT));
        assert_eq!(serde_json::to_value(&child).unwrap(), json);
        let absent: DepartmentRef = serde_json::from_value(serde_json::json!({"id": 3})).unwrap();
        assert_eq!(absent.parentid, None);
        for bad in [
            serde_json::json!({"id": 2, "parentid": -1}),
            serde_json::json!({"id": 0, "parentid": 1}),
        ] {
            assert!(serde_json::from_value::<DepartmentRef>(bad).is_err());
        }
    }

    #[test]
    fn an_invalid_userid_fails_the_user() {
        let json = serde_json::json!({"userid": "", "department": [1]});
        assert!(serde_json::from_value::<User>(json).is_err());
        let json = serde_json::json!({"userid": "u", "department": [1, 0]});
        assert!(serde_json::from_value::<UserRef>(json).is_err());
    }
}
