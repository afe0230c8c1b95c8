//! App ("data") URL pushes other than contact changes, and the catch-all for anything unrecognised.
//!
//! daikai does not act on these today, but they are authentic pushes: they are kept (with every
//! simple element in `fields`) and published, never dropped or rejected
//! (docs/architecture.md §4.8).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EventError;
use super::contact::ChangeContact;
use super::fields::Fields;
use super::writer::{XmlWriter, is_element_name};
use crate::ids::{AgentId, CorpId, UserId};

/// Any `MsgType=event` other than `change_contact` (`subscribe`, `enter_agent`, `LOCATION`,
/// `unlicensed_notify`, `change_app_admin`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvent {
    /// `ToUserName`: the corp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_name: Option<CorpId>,
    /// `FromUserName`: the member, or `sys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_name: Option<String>,
    /// `CreateTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// `AgentID` (an empty element is `None`).
    #[serde(
        default,
        deserialize_with = "super::agent_id_json::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_id: Option<AgentId>,
    /// `Event` as sent (case kept; [`Event::kind`](super::Event::kind) lowercases it).
    pub event: String,
    /// Every other top-level element without children, by element name (nested ones are only in
    /// the raw XML the envelope carries).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// A user message to the app (`MsgType` text, image, voice, video, location, link, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `ToUserName`: the corp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_name: Option<CorpId>,
    /// `FromUserName`: the member who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_name: Option<UserId>,
    /// `CreateTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// `MsgType` as sent.
    pub msg_type: String,
    /// `MsgId` (the dedupe key WeCom documents for messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// `AgentID` (an empty element is `None`).
    #[serde(
        default,
        deserialize_with = "super::agent_id_json::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_id: Option<AgentId>,
    /// `Content` (text messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Every other top-level element without children (`PicUrl`, `MediaId`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Anything else: an unknown `InfoType`, a body with neither `InfoType` nor `MsgType`,
/// `MsgType=event` without an `Event` — or a known kind whose body does not fit its type
/// ([`Event::parse_or_unknown`](super::Event::parse_or_unknown) keeps why in `parse_error`). The
/// raw XML is kept so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    /// `InfoType`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_type: Option<String>,
    /// `MsgType`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<String>,
    /// `Event`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// `ChangeType`, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
    /// Why a body of a known kind did not fit its type; `None` for a kind this build does not
    /// know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// The decrypted body exactly as received.
    pub raw_xml: String,
}

/// Elements [`AppEvent`] has fields for (`InfoType` would change the framing, so never a field).
const APP_EVENT_ELEMENTS: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Event",
    "AgentID",
    "InfoType",
];

/// Elements [`Message`] has fields for.
const MESSAGE_ELEMENTS: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "MsgId",
    "AgentID",
    "Content",
    "InfoType",
];

impl AppEvent {
    pub(crate) fn read(f: Fields<'_>, event: &str) -> Result<Self, EventError> {
        Ok(Self {
            to_user_name: f.optional_id("ToUserName")?,
            from_user_name: f.string("FromUserName"),
            create_time: f.number("CreateTime")?,
            agent_id: f.number("AgentID")?,
            event: event.to_owned(),
            fields: other_fields(f, APP_EVENT_ELEMENTS),
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.opt_text("ToUserName", self.to_user_name.as_ref().map(CorpId::as_str))
            .opt_text("FromUserName", self.from_user_name.as_deref())
            .opt_number("CreateTime", self.create_time)
            .text("MsgType", "event")
            .text("Event", &self.event)
            .opt_number("AgentID", self.agent_id);
        write_fields(w, &self.fields, APP_EVENT_ELEMENTS);
    }
}

impl Message {
    pub(crate) fn read(f: Fields<'_>, msg_type: &str) -> Result<Self, EventError> {
        Ok(Self {
            to_user_name: f.optional_id("ToUserName")?,
            from_user_name: f.optional_id("FromUserName")?,
            create_time: f.number("CreateTime")?,
            msg_type: msg_type.to_owned(),
            msg_id: f.string("MsgId"),
            agent_id: f.number("AgentID")?,
            content: f.string("Content"),
            fields: other_fields(f, MESSAGE_ELEMENTS),
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.opt_text("ToUserName", self.to_user_name.as_ref().map(CorpId::as_str))
            .opt_text(
                "FromUserName",
                self.from_user_name.as_ref().map(UserId::as_str),
            )
            .opt_number("CreateTime", self.create_time)
            .text("MsgType", &self.msg_type)
            .opt_text("Content", self.content.as_deref())
            .opt_text("MsgId", self.msg_id.as_deref())
            .opt_number("AgentID", self.agent_id);
        write_fields(w, &self.fields, MESSAGE_ELEMENTS);
    }
}

impl Unknown {
    pub(crate) fn read(f: Fields<'_>, raw_xml: &str) -> Self {
        Self {
            info_type: f.key("InfoType").map(str::to_owned),
            msg_type: f.key("MsgType").map(str::to_owned),
            event: f.key("Event").map(str::to_owned),
            change_type: f.key("ChangeType").map(str::to_owned),
            parse_error: None,
            raw_xml: raw_xml.to_owned(),
        }
    }

    /// A body of a known kind that failed its typed parse with `error`.
    pub(crate) fn unparsed(f: Fields<'_>, raw_xml: &str, error: &EventError) -> Self {
        Self {
            parse_error: Some(error.to_string()),
            ..Self::read(f, raw_xml)
        }
    }

    /// The routing kind the body announced (see [`Event::kind`](super::Event::kind)), so an
    /// event that failed its typed parse still reaches the worker that owns its kind; `unknown`
    /// when it announced nothing this build knows.
    pub fn kind(&self) -> String {
        let info_type = self.info_type.as_deref().unwrap_or_default();
        let msg_type = self.msg_type.as_deref().unwrap_or_default();
        let event = self.event.as_deref().unwrap_or_default();
        if AUTH_INFO_TYPES.contains(&info_type) {
            return info_type.to_owned();
        }
        if info_type == ChangeContact::NAME
            || (info_type.is_empty()
                && msg_type.eq_ignore_ascii_case("event")
                && event.eq_ignore_ascii_case(ChangeContact::NAME))
        {
            let change = self.change_type.as_deref().unwrap_or_default();
            let change = if CHANGE_TYPES.contains(&change) {
                change
            } else {
                "unknown"
            };
            return format!("{}.{change}", ChangeContact::NAME);
        }
        if info_type.is_empty() && msg_type.eq_ignore_ascii_case("event") && !event.is_empty() {
            return format!("event.{}", event.to_lowercase());
        }
        if info_type.is_empty() && !msg_type.is_empty() && !msg_type.eq_ignore_ascii_case("event") {
            return format!("message.{}", msg_type.to_lowercase());
        }
        "unknown".to_owned()
    }

    /// The trimmed text of a top-level element of the raw XML, read without any typing (for
    /// salvaging what a worker needs from a body that did not fit its type).
    pub fn field(&self, name: &str) -> Option<String> {
        let root = super::dom::parse(&self.raw_xml).ok()?;
        Fields::new(&root)
            .key(name)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    }
}

/// The template `InfoType`s the auth worker owns.
const AUTH_INFO_TYPES: &[&str] = &[
    "suite_ticket",
    "create_auth",
    "change_auth",
    "cancel_auth",
    "reset_permanent_code",
];

/// The `ChangeType`s of change_contact this build has types for.
const CHANGE_TYPES: &[&str] = &[
    "create_user",
    "update_user",
    "delete_user",
    "create_party",
    "update_party",
    "delete_party",
    "update_tag",
];

/// The simple top-level elements not in `known`; the first of a repeated name wins.
fn other_fields(f: Fields<'_>, known: &[&str]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for (name, text) in f.leaves_except(known) {
        fields
            .entry(name.to_owned())
            .or_insert_with(|| text.to_owned());
    }
    fields
}

/// Writes `fields`, skipping names that are not element names or that have a field of their own.
fn write_fields(w: &mut XmlWriter, fields: &BTreeMap<String, String>, known: &[&str]) {
    for (name, value) in fields {
        if is_element_name(name) && !known.contains(&name.as_str()) {
            w.text(name, value);
        }
    }
}
