//! One typed [`Event`] for everything WeCom pushes, parsed from the decrypted callback XML.
//!
//! WeCom speaks two XML framings: template (instruction) callbacks dispatch on `InfoType`
//! (suite tickets, the authorization lifecycle), app (data) callbacks on `MsgType`, then `Event`,
//! then `ChangeType`. This module turns both into one serde-tagged enum that the ingress
//! publishes and the workers consume, so no other crate ever reads WeCom XML.
//!
//! The input is attacker-reachable until its signature is checked and WeCom-shaped only by
//! convention after, so parsing is bounded and never panics: size ([`MAX_XML_BYTES`]), depth
//! ([`MAX_DEPTH`]), no DTD (no entity expansion), strict XML otherwise. Within a well-formed body
//! it is tolerant: unknown elements are ignored, fields WeCom may omit are `Option`, and unknown
//! kinds become [`Event::Unknown`] or [`ContactChange::Unknown`] instead of errors.
//!
//! Value conventions (see `fields.rs`): plain text is trimmed and unescaped, CDATA is kept
//! verbatim; a present-but-empty string is `Some("")`; an empty list element is `Some(vec![])`;
//! an empty optional number is `None`; a required field that is empty counts as missing.
//!
//! [`Event::to_xml`] writes the same shape back (the simulator uses it to push callbacks), and
//! `Event::parse(&e.to_xml()) == Ok(e)` holds for every event `parse` can produce, except
//! [`Event::Unknown`], whose `to_xml` is its raw XML.

mod app;
mod auth;
mod contact;
pub(crate) mod dom;
mod error;
mod fields;
mod writer;

use serde::{Deserialize, Serialize};

pub use app::{AppEvent, Message, Unknown};
pub use auth::{CancelAuth, ChangeAuth, CreateAuth, ResetPermanentCode, SuiteTicket};
pub use contact::{
    ChangeContact, ContactChange, ExtAttr, ExtAttrValue, Framing, PartyChange, TagChange,
    UserChange,
};
pub use error::EventError;

use dom::Element;
use fields::Fields;
use writer::XmlWriter;

use crate::ids::{CorpId, SuiteId};

/// Largest decrypted body accepted, in bytes (real ones are around 1 KB).
pub const MAX_XML_BYTES: usize = 256 * 1024;

/// Deepest element nesting accepted, the root counting as 1 (`ExtAttr` items reach 5).
pub const MAX_DEPTH: usize = 8;

/// Everything WeCom pushes to a template or app callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "one Event per callback, moved once into the bus envelope; 536 bytes next to the XML \
              and JSON buffers is noise, and boxing would change the variant other crates build"
)]
pub enum Event {
    /// `InfoType=suite_ticket`.
    SuiteTicket(SuiteTicket),
    /// `InfoType=create_auth`.
    CreateAuth(CreateAuth),
    /// `InfoType=change_auth`.
    ChangeAuth(ChangeAuth),
    /// `InfoType=cancel_auth`.
    CancelAuth(CancelAuth),
    /// `InfoType=reset_permanent_code`.
    ResetPermanentCode(ResetPermanentCode),
    /// `InfoType=change_contact` or `MsgType=event, Event=change_contact`.
    ChangeContact(ChangeContact),
    /// Any other `MsgType=event`.
    AppEvent(AppEvent),
    /// Any other `MsgType`: a user message.
    Message(Message),
    /// Anything else, raw XML kept.
    Unknown(Unknown),
}

impl Event {
    /// Parses a decrypted callback body.
    pub fn parse(xml: &str) -> Result<Event, EventError> {
        let root = dom::parse(xml)?;
        Self::from_root(&root, xml)
    }

    /// Parses like [`Event::parse`], except that well-formed XML which does not fit its typed
    /// event (a required field missing, a malformed number) becomes [`Event::Unknown`] with the
    /// kind it announced (see [`Unknown::kind`]) and the reason in `parse_error`: authentic WeCom
    /// data in a shape this build does not expect is routed to its owning worker, never dropped.
    /// Errors only for bodies that are not WeCom XML at all (size, depth, DTD, not XML).
    pub fn parse_or_unknown(xml: &str) -> Result<Event, EventError> {
        let root = dom::parse(xml)?;
        match Self::from_root(&root, xml) {
            Ok(event) => Ok(event),
            Err(error) => Ok(Self::Unknown(Unknown::unparsed(
                Fields::new(&root),
                xml,
                &error,
            ))),
        }
    }

    /// The routing kind: `suite_ticket`, `create_auth`, `change_auth`, `cancel_auth`,
    /// `reset_permanent_code`, `change_contact.<change type>` (`change_contact.unknown` for an
    /// unknown one), `event.<lowercased Event>`, `message.<lowercased MsgType>` or `unknown`
    /// ([`Event::Unknown`] answers the kind its body announced: [`Unknown::kind`]).
    pub fn kind(&self) -> String {
        match self {
            Self::SuiteTicket(_) => SuiteTicket::INFO_TYPE.to_owned(),
            Self::CreateAuth(_) => CreateAuth::INFO_TYPE.to_owned(),
            Self::ChangeAuth(_) => ChangeAuth::INFO_TYPE.to_owned(),
            Self::CancelAuth(_) => CancelAuth::INFO_TYPE.to_owned(),
            Self::ResetPermanentCode(_) => ResetPermanentCode::INFO_TYPE.to_owned(),
            Self::ChangeContact(c) => format!("{}.{}", ChangeContact::NAME, c.change.kind()),
            Self::AppEvent(e) => format!("event.{}", e.event.to_lowercase()),
            Self::Message(m) => format!("message.{}", m.msg_type.to_lowercase()),
            Self::Unknown(u) => u.kind(),
        }
    }

    /// The template id (`SuiteId`), when the event carries one (an app event's or message's
    /// untyped `SuiteId` field only when it is a valid id).
    pub fn suite_id(&self) -> Option<SuiteId> {
        let field = |fields: &std::collections::BTreeMap<String, String>| {
            fields
                .get("SuiteId")
                .and_then(|id| SuiteId::parse(id.trim()).ok())
        };
        match self {
            Self::SuiteTicket(e) => Some(e.suite_id.clone()),
            Self::CreateAuth(e) => Some(e.suite_id.clone()),
            Self::ChangeAuth(e) => Some(e.suite_id.clone()),
            Self::CancelAuth(e) => Some(e.suite_id.clone()),
            Self::ResetPermanentCode(e) => Some(e.suite_id.clone()),
            Self::ChangeContact(e) => e.suite_id.clone(),
            Self::AppEvent(e) => field(&e.fields),
            Self::Message(e) => field(&e.fields),
            Self::Unknown(_) => None,
        }
    }

    /// The corp the event is about: `AuthCorpId` (template framing) or `ToUserName` (app framing).
    /// `None` for suite tickets and for create_auth/reset_permanent_code, which do not name it.
    pub fn auth_corp_id(&self) -> Option<&CorpId> {
        match self {
            Self::ChangeAuth(e) => Some(&e.auth_corp_id),
            Self::CancelAuth(e) => Some(&e.auth_corp_id),
            Self::ChangeContact(e) => e.auth_corp_id.as_ref(),
            Self::AppEvent(e) => e.to_user_name.as_ref(),
            Self::Message(e) => e.to_user_name.as_ref(),
            Self::SuiteTicket(_)
            | Self::CreateAuth(_)
            | Self::ResetPermanentCode(_)
            | Self::Unknown(_) => None,
        }
    }

    /// The WeCom time this event reflects (`TimeStamp` or `CreateTime`), if present.
    pub fn wecom_time(&self) -> Option<i64> {
        match self {
            Self::SuiteTicket(e) => Some(e.timestamp),
            Self::CreateAuth(e) => Some(e.timestamp),
            Self::ChangeAuth(e) => Some(e.timestamp),
            Self::CancelAuth(e) => Some(e.timestamp),
            Self::ResetPermanentCode(e) => Some(e.timestamp),
            Self::ChangeContact(e) => e.time,
            Self::AppEvent(e) => e.create_time,
            Self::Message(e) => e.create_time,
            Self::Unknown(_) => None,
        }
    }

    /// Serializes back to WeCom's XML (strings in CDATA, numbers plain); `Unknown` returns its
    /// raw XML. `Event::parse(&e.to_xml()) == Ok(e)` for every event `parse` can produce.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        match self {
            Self::SuiteTicket(e) => e.write(&mut w),
            Self::CreateAuth(e) => e.write(&mut w),
            Self::ChangeAuth(e) => e.write(&mut w),
            Self::CancelAuth(e) => e.write(&mut w),
            Self::ResetPermanentCode(e) => e.write(&mut w),
            Self::ChangeContact(e) => e.write(&mut w),
            Self::AppEvent(e) => e.write(&mut w),
            Self::Message(e) => e.write(&mut w),
            Self::Unknown(e) => return e.raw_xml.clone(),
        }
        w.finish()
    }

    /// Dispatches on the framing: `InfoType` first, then `MsgType`.
    fn from_root(root: &Element<'_>, raw_xml: &str) -> Result<Event, EventError> {
        let f = Fields::new(root);
        if let Some(info_type) = f.key("InfoType") {
            return Self::from_info_type(f, info_type, raw_xml);
        }
        match f.key("MsgType") {
            Some(msg_type) if msg_type.eq_ignore_ascii_case("event") => {
                Self::from_app_event(f, raw_xml)
            }
            Some(msg_type) if !msg_type.is_empty() => {
                Ok(Self::Message(Message::read(f, msg_type)?))
            }
            _ => Ok(Self::Unknown(Unknown::read(f, raw_xml))),
        }
    }

    /// Template framing.
    fn from_info_type(f: Fields<'_>, info_type: &str, raw_xml: &str) -> Result<Event, EventError> {
        Ok(match info_type {
            SuiteTicket::INFO_TYPE => Self::SuiteTicket(SuiteTicket::read(f)?),
            CreateAuth::INFO_TYPE => Self::CreateAuth(CreateAuth::read(f)?),
            ChangeAuth::INFO_TYPE => Self::ChangeAuth(ChangeAuth::read(f)?),
            CancelAuth::INFO_TYPE => Self::CancelAuth(CancelAuth::read(f)?),
            ResetPermanentCode::INFO_TYPE => Self::ResetPermanentCode(ResetPermanentCode::read(f)?),
            ChangeContact::NAME => Self::ChangeContact(ChangeContact::read(f, Framing::Template)?),
            _ => Self::Unknown(Unknown::read(f, raw_xml)),
        })
    }

    /// App framing with `MsgType=event`.
    fn from_app_event(f: Fields<'_>, raw_xml: &str) -> Result<Event, EventError> {
        Ok(match f.key("Event") {
            Some(event) if event.eq_ignore_ascii_case(ChangeContact::NAME) => {
                Self::ChangeContact(ChangeContact::read(f, Framing::App)?)
            }
            Some(event) if !event.is_empty() => Self::AppEvent(AppEvent::read(f, event)?),
            _ => Self::Unknown(Unknown::read(f, raw_xml)),
        })
    }
}

/// `agent_id` in an event's JSON: a number. Envelopes written before it was typed carry it as a
/// string of digits, which is still read (an empty one as absent), so messages already queued
/// survive an upgrade.
pub(crate) mod agent_id_json {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    use crate::ids::AgentId;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<AgentId>, D::Error> {
        match Option::<Raw>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Raw::Number(id)) => AgentId::new(id).map(Some).map_err(D::Error::custom),
            Some(Raw::Text(text)) if text.trim().is_empty() => Ok(None),
            Some(Raw::Text(text)) => text.parse().map(Some).map_err(D::Error::custom),
        }
    }
}
