//! Directory changes (`change_contact`), in either framing (docs/wecom.md §2.6 and §3.1–3.3).
//!
//! 代开发 apps get them on the app URL as `MsgType=event, Event=change_contact`; third-party style
//! template pushes use `InfoType=change_contact`. Both become one [`ChangeContact`] so the
//! contact-sync worker never cares which URL an event came through (docs/wecom.md §3). Everything
//! but the entity id is optional: apps without grants see few fields (docs/wecom.md §3.1).

use serde::{Deserialize, Serialize};

use super::EventError;
use super::dom::Element;
use super::fields::{Fields, flag_item, id_item, parse_number};
use super::writer::XmlWriter;
use crate::ids::{AgentId, CorpId, DepartmentId, SuiteId, TagId, UserId};

/// Which of WeCom's two XML framings an event arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `InfoType` framing, pushed to the template (instruction) URL; carries `SuiteId`, `AuthCorpId`.
    Template,
    /// `MsgType`/`Event` framing, pushed to the app (data) URL; carries `ToUserName`, `CreateTime`.
    App,
}

/// A member, department or tag change in one authorized corp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeContact {
    /// The framing it arrived in.
    pub framing: Framing,
    /// `SuiteId` (template framing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite_id: Option<SuiteId>,
    /// The corp: `AuthCorpId` in template framing, `ToUserName` in app framing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_corp_id: Option<CorpId>,
    /// `FromUserName` (`sys` in app framing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_name: Option<String>,
    /// `AgentID`, when sent (an empty element is `None`).
    #[serde(
        default,
        deserialize_with = "super::agent_id_json::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_id: Option<AgentId>,
    /// The WeCom time: `TimeStamp` in template framing, `CreateTime` in app framing (either is
    /// accepted when the expected one is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// What changed.
    pub change: ContactChange,
}

/// The `ChangeType` and its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change_type", rename_all = "snake_case")]
pub enum ContactChange {
    /// `create_user`.
    CreateUser(UserChange),
    /// `update_user` (only changed fields are present; `new_user_id` when the UserID changed).
    UpdateUser(UserChange),
    /// `delete_user` (normally `UserID` only).
    DeleteUser(UserChange),
    /// `create_party`.
    CreateParty(PartyChange),
    /// `update_party`.
    UpdateParty(PartyChange),
    /// `delete_party` (normally `Id` only).
    DeleteParty(PartyChange),
    /// `update_tag` (membership; re-read the tag rather than trusting the items).
    UpdateTag(TagChange),
    /// A `ChangeType` this version does not know (empty when absent); kept, never rejected.
    Unknown {
        /// WeCom's `ChangeType` as received. In JSON `raw_change_type`, since `change_type` is the tag.
        #[serde(rename = "raw_change_type")]
        change_type: String,
    },
}

/// A member as sent in `create_user`/`update_user`/`delete_user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChange {
    /// `UserID` (the id before a rename, see `new_user_id`).
    pub user_id: UserId,
    /// `NewUserID`: the new id when `update_user` renamed the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_user_id: Option<UserId>,
    /// `OpenUserID` (third-party framing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_user_id: Option<String>,
    /// `Name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Department`: every department, in WeCom's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<Vec<DepartmentId>>,
    /// `MainDepartment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_department: Option<DepartmentId>,
    /// `IsLeaderInDept`: one flag per entry of `department`, same order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_leader_in_dept: Option<Vec<bool>>,
    /// `DirectLeader`: the member's direct leaders (UserIDs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_leader: Option<Vec<UserId>>,
    /// `Position`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// `Mobile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// `Gender`: 1 male, 2 female, 0 undefined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<u8>,
    /// `Email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `BizMail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_mail: Option<String>,
    /// `Status`: 1 active, 2 disabled, 4 not activated, 5 quit (values unconfirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
    /// `Avatar` (URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// `Alias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `Telephone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// `Address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `ExtAttr/Item`s, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_attr: Option<Vec<ExtAttr>>,
}

/// One custom member attribute (`ExtAttr/Item`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAttr {
    /// `Name`.
    pub name: String,
    /// The value, by `Type`.
    pub value: ExtAttrValue,
}

/// The value of an [`ExtAttr`], by its `Type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExtAttrValue {
    /// `Type` 0: `Text/Value`.
    Text {
        /// `Text/Value`.
        value: String,
    },
    /// `Type` 1: `Web/Title` and `Web/Url`.
    Web {
        /// `Web/Title`.
        title: String,
        /// `Web/Url`.
        url: String,
    },
    /// Any other `Type` (e.g. 2, mini program): kept by code rather than rejected.
    Other {
        /// The `Type` as received.
        type_code: i64,
    },
}

/// A department as sent in `create_party`/`update_party`/`delete_party`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyChange {
    /// `Id`.
    pub id: DepartmentId,
    /// `Name` (only if the admin granted it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ParentId` (a `0`, the root's parent in WeCom's API, reads as `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<DepartmentId>,
    /// `Order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u64>,
}

/// Tag membership changes (`update_tag`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChange {
    /// `TagId`.
    pub tag_id: TagId,
    /// `AddUserItems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_user_items: Option<Vec<UserId>>,
    /// `DelUserItems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub del_user_items: Option<Vec<UserId>>,
    /// `AddPartyItems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_party_items: Option<Vec<DepartmentId>>,
    /// `DelPartyItems` (may be missing when a party deletion triggered the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub del_party_items: Option<Vec<DepartmentId>>,
}

impl UserChange {
    /// A change naming only the member: every other field absent (fill in what changed).
    pub fn new(user_id: UserId) -> Self {
        Self {
            user_id,
            new_user_id: None,
            open_user_id: None,
            name: None,
            department: None,
            main_department: None,
            is_leader_in_dept: None,
            direct_leader: None,
            position: None,
            mobile: None,
            gender: None,
            email: None,
            biz_mail: None,
            status: None,
            avatar: None,
            alias: None,
            telephone: None,
            address: None,
            ext_attr: None,
        }
    }
}

impl PartyChange {
    /// A change naming only the department: every other field absent.
    pub fn new(id: DepartmentId) -> Self {
        Self {
            id,
            name: None,
            parent_id: None,
            order: None,
        }
    }
}

impl TagChange {
    /// A change naming only the tag: no items.
    pub fn new(tag_id: TagId) -> Self {
        Self {
            tag_id,
            add_user_items: None,
            del_user_items: None,
            add_party_items: None,
            del_party_items: None,
        }
    }
}

impl ChangeContact {
    /// The `InfoType` / `Event` value of this event.
    pub(crate) const NAME: &'static str = "change_contact";

    pub(crate) fn read(f: Fields<'_>, framing: Framing) -> Result<Self, EventError> {
        let (corp, time, other_time) = match framing {
            Framing::Template => ("AuthCorpId", "TimeStamp", "CreateTime"),
            Framing::App => ("ToUserName", "CreateTime", "TimeStamp"),
        };
        let time = match f.number(time)? {
            Some(t) => Some(t),
            None => f.number(other_time)?,
        };
        Ok(Self {
            framing,
            suite_id: f.optional_id("SuiteId")?,
            auth_corp_id: f.optional_id(corp)?,
            from_user_name: f.string("FromUserName"),
            agent_id: f.number("AgentID")?,
            time,
            change: ContactChange::read(f)?,
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        let corp = self.auth_corp_id.as_ref().map(CorpId::as_str);
        let suite = self.suite_id.as_ref().map(SuiteId::as_str);
        match self.framing {
            Framing::Template => w
                .opt_text("SuiteId", suite)
                .opt_text("AuthCorpId", corp)
                .text("InfoType", Self::NAME)
                .opt_number("TimeStamp", self.time),
            Framing::App => w
                .opt_text("ToUserName", corp)
                .opt_number("CreateTime", self.time)
                .text("MsgType", "event")
                .text("Event", Self::NAME)
                .opt_text("SuiteId", suite),
        }
        .opt_text("FromUserName", self.from_user_name.as_deref())
        .opt_number("AgentID", self.agent_id);
        self.change.write(w);
    }
}

impl ContactChange {
    /// WeCom's `ChangeType` (for [`ContactChange::Unknown`], the one received).
    pub fn change_type(&self) -> &str {
        match self {
            Self::CreateUser(_) => "create_user",
            Self::UpdateUser(_) => "update_user",
            Self::DeleteUser(_) => "delete_user",
            Self::CreateParty(_) => "create_party",
            Self::UpdateParty(_) => "update_party",
            Self::DeleteParty(_) => "delete_party",
            Self::UpdateTag(_) => "update_tag",
            Self::Unknown { change_type } => change_type,
        }
    }

    /// The routing suffix: the change type, or `unknown`.
    pub(crate) fn kind(&self) -> &str {
        match self {
            Self::Unknown { .. } => "unknown",
            known => known.change_type(),
        }
    }

    fn read(f: Fields<'_>) -> Result<Self, EventError> {
        let change_type = f.key("ChangeType").unwrap_or_default();
        Ok(match change_type {
            "create_user" => Self::CreateUser(UserChange::read(f)?),
            "update_user" => Self::UpdateUser(UserChange::read(f)?),
            "delete_user" => Self::DeleteUser(UserChange::read(f)?),
            "create_party" => Self::CreateParty(PartyChange::read(f)?),
            "update_party" => Self::UpdateParty(PartyChange::read(f)?),
            "delete_party" => Self::DeleteParty(PartyChange::read(f)?),
            "update_tag" => Self::UpdateTag(TagChange::read(f)?),
            other => Self::Unknown {
                change_type: other.to_owned(),
            },
        })
    }

    fn write(&self, w: &mut XmlWriter) {
        w.text("ChangeType", self.change_type());
        match self {
            Self::CreateUser(user) | Self::UpdateUser(user) | Self::DeleteUser(user) => {
                user.write(w);
            }
            Self::CreateParty(party) | Self::UpdateParty(party) | Self::DeleteParty(party) => {
                party.write(w);
            }
            Self::UpdateTag(tag) => tag.write(w),
            Self::Unknown { .. } => {}
        }
    }
}

impl UserChange {
    fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            user_id: f.required_id("UserID")?,
            new_user_id: f.optional_id("NewUserID")?,
            open_user_id: f.string("OpenUserID"),
            name: f.string("Name"),
            department: f.list("Department", parse_number)?,
            main_department: f.number("MainDepartment")?,
            is_leader_in_dept: f.list("IsLeaderInDept", flag_item)?,
            direct_leader: f.list("DirectLeader", id_item)?,
            position: f.string("Position"),
            mobile: f.string("Mobile"),
            gender: f.number("Gender")?,
            email: f.string("Email"),
            biz_mail: f.string("BizMail"),
            status: f.number("Status")?,
            avatar: f.string("Avatar"),
            alias: f.string("Alias"),
            telephone: f.string("Telephone"),
            address: f.string("Address"),
            ext_attr: f.child("ExtAttr").map(ExtAttr::read_all).transpose()?,
        })
    }

    fn write(&self, w: &mut XmlWriter) {
        let flags: Option<Vec<u8>> = self
            .is_leader_in_dept
            .as_ref()
            .map(|flags| flags.iter().map(|&f| u8::from(f)).collect());
        w.text("UserID", self.user_id.as_str())
            .opt_text("NewUserID", self.new_user_id.as_ref().map(UserId::as_str))
            .opt_text("OpenUserID", self.open_user_id.as_deref())
            .opt_text("Name", self.name.as_deref())
            .list("Department", self.department.as_deref())
            .opt_number("MainDepartment", self.main_department)
            .list("IsLeaderInDept", flags.as_deref())
            .list("DirectLeader", self.direct_leader.as_deref())
            .opt_text("Position", self.position.as_deref())
            .opt_text("Mobile", self.mobile.as_deref())
            .opt_number("Gender", self.gender)
            .opt_text("Email", self.email.as_deref())
            .opt_text("BizMail", self.biz_mail.as_deref())
            .opt_number("Status", self.status)
            .opt_text("Avatar", self.avatar.as_deref())
            .opt_text("Alias", self.alias.as_deref())
            .opt_text("Telephone", self.telephone.as_deref())
            .opt_text("Address", self.address.as_deref());
        if let Some(attrs) = &self.ext_attr {
            w.nested("ExtAttr", |w| attrs.iter().for_each(|attr| attr.write(w)));
        }
    }
}

impl ExtAttr {
    /// Every `Item` of an `ExtAttr` element, in order (other children are ignored).
    fn read_all(ext_attr: &Element<'_>) -> Result<Vec<Self>, EventError> {
        ext_attr
            .children
            .iter()
            .filter(|c| c.name == "Item")
            .map(Self::read)
            .collect()
    }

    fn read(item: &Element<'_>) -> Result<Self, EventError> {
        let f = Fields::new(item);
        let text = f.child("Text").map(Fields::new);
        let web = f.child("Web").map(Fields::new);
        // `Type` decides; without it, whichever of Text/Web is present does.
        let type_code = match (f.number::<i64>("Type")?, &text, &web) {
            (Some(code), _, _) => code,
            (None, Some(_), _) => 0,
            (None, None, Some(_)) => 1,
            (None, None, None) => return Err(EventError::MissingField("Type")),
        };
        let text_of = |fields: Option<Fields<'_>>, name: &str| {
            fields.and_then(|f| f.string(name)).unwrap_or_default()
        };
        let value = match type_code {
            0 => ExtAttrValue::Text {
                value: text_of(text, "Value"),
            },
            1 => ExtAttrValue::Web {
                title: text_of(web, "Title"),
                url: text_of(web, "Url"),
            },
            type_code => ExtAttrValue::Other { type_code },
        };
        Ok(Self {
            name: f.string("Name").unwrap_or_default(),
            value,
        })
    }

    fn write(&self, w: &mut XmlWriter) {
        w.nested("Item", |w| {
            w.text("Name", &self.name);
            match &self.value {
                ExtAttrValue::Text { value } => {
                    w.number("Type", 0).nested("Text", |w| {
                        w.text("Value", value);
                    });
                }
                ExtAttrValue::Web { title, url } => {
                    w.number("Type", 1).nested("Web", |w| {
                        w.text("Title", title).text("Url", url);
                    });
                }
                ExtAttrValue::Other { type_code } => {
                    w.number("Type", type_code);
                }
            }
        });
    }
}

impl PartyChange {
    fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            id: f.required_number("Id")?,
            name: f.string("Name"),
            parent_id: match f.number::<i64>("ParentId")? {
                None | Some(0) => None,
                Some(_) => f.number("ParentId")?,
            },
            order: f.number("Order")?,
        })
    }

    fn write(&self, w: &mut XmlWriter) {
        w.number("Id", self.id)
            .opt_text("Name", self.name.as_deref())
            .opt_number("ParentId", self.parent_id)
            .opt_number("Order", self.order);
    }
}

impl TagChange {
    fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            tag_id: f.required_number("TagId")?,
            add_user_items: f.list("AddUserItems", id_item)?,
            del_user_items: f.list("DelUserItems", id_item)?,
            add_party_items: f.list("AddPartyItems", parse_number)?,
            del_party_items: f.list("DelPartyItems", parse_number)?,
        })
    }

    fn write(&self, w: &mut XmlWriter) {
        w.number("TagId", self.tag_id)
            .list("AddUserItems", self.add_user_items.as_deref())
            .list("DelUserItems", self.del_user_items.as_deref())
            .list("AddPartyItems", self.add_party_items.as_deref())
            .list("DelPartyItems", self.del_party_items.as_deref());
    }
}
