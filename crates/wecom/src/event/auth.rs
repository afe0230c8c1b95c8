//! The template ("instruction") events that drive the provider relationship (docs/wecom.md §2):
//! suite tickets and the authorization lifecycle. They use the `InfoType` framing and always carry
//! `SuiteId` and `TimeStamp`.

use serde::{Deserialize, Serialize};

use super::EventError;
use super::fields::Fields;
use super::writer::XmlWriter;
use crate::ids::{AuthCode, CorpId, SuiteId, Ticket};

/// `InfoType=suite_ticket`: the ticket needed to get a suite access token, pushed every 10 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteTicket {
    /// The template id (`dk…`).
    pub suite_id: SuiteId,
    /// The ticket (valid 30 minutes; always keep the newest by `timestamp`).
    pub suite_ticket: Ticket,
    /// WeCom's `TimeStamp` of this push.
    pub timestamp: i64,
}

/// `InfoType=create_auth`: a corp admin authorized the template; `auth_code` is single-use, 10 min.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAuth {
    /// The template id.
    pub suite_id: SuiteId,
    /// Temporary code to exchange for the permanent code (the app secret).
    pub auth_code: AuthCode,
    /// WeCom's `TimeStamp`.
    pub timestamp: i64,
    /// `State` given to the customized auth URL, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `ExtraInfo`, usually empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_info: Option<String>,
}

/// `InfoType=change_auth`: scope, permissions or enablement of the app changed in `auth_corp_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeAuth {
    /// The template id.
    pub suite_id: SuiteId,
    /// The corp whose authorization changed.
    pub auth_corp_id: CorpId,
    /// WeCom's `TimeStamp`.
    pub timestamp: i64,
    /// `State`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `ExtraInfo`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_info: Option<String>,
}

/// `InfoType=cancel_auth`: the corp removed the app; its data must be purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAuth {
    /// The template id.
    pub suite_id: SuiteId,
    /// The corp that removed the app.
    pub auth_corp_id: CorpId,
    /// WeCom's `TimeStamp`.
    pub timestamp: i64,
}

/// `InfoType=reset_permanent_code`: the provider asked for a new app secret; exchange `auth_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPermanentCode {
    /// The template id.
    pub suite_id: SuiteId,
    /// Temporary code to exchange for the new permanent code.
    pub auth_code: AuthCode,
    /// WeCom's `TimeStamp`.
    pub timestamp: i64,
}

impl SuiteTicket {
    pub(crate) const INFO_TYPE: &'static str = "suite_ticket";

    pub(crate) fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            suite_id: f.required_id("SuiteId")?,
            suite_ticket: f.required_id("SuiteTicket")?,
            timestamp: f.required_number("TimeStamp")?,
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        header(w, self.suite_id.as_str(), Self::INFO_TYPE, self.timestamp)
            .text("SuiteTicket", self.suite_ticket.expose());
    }
}

impl CreateAuth {
    pub(crate) const INFO_TYPE: &'static str = "create_auth";

    pub(crate) fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            suite_id: f.required_id("SuiteId")?,
            auth_code: f.required_id("AuthCode")?,
            timestamp: f.required_number("TimeStamp")?,
            state: f.string("State"),
            extra_info: f.string("ExtraInfo"),
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        header(w, self.suite_id.as_str(), Self::INFO_TYPE, self.timestamp)
            .text("AuthCode", self.auth_code.expose())
            .opt_text("State", self.state.as_deref())
            .opt_text("ExtraInfo", self.extra_info.as_deref());
    }
}

impl ChangeAuth {
    pub(crate) const INFO_TYPE: &'static str = "change_auth";

    pub(crate) fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            suite_id: f.required_id("SuiteId")?,
            auth_corp_id: f.required_id("AuthCorpId")?,
            timestamp: f.required_number("TimeStamp")?,
            state: f.string("State"),
            extra_info: f.string("ExtraInfo"),
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        header(w, self.suite_id.as_str(), Self::INFO_TYPE, self.timestamp)
            .text("AuthCorpId", self.auth_corp_id.as_str())
            .opt_text("State", self.state.as_deref())
            .opt_text("ExtraInfo", self.extra_info.as_deref());
    }
}

impl CancelAuth {
    pub(crate) const INFO_TYPE: &'static str = "cancel_auth";

    pub(crate) fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            suite_id: f.required_id("SuiteId")?,
            auth_corp_id: f.required_id("AuthCorpId")?,
            timestamp: f.required_number("TimeStamp")?,
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        header(w, self.suite_id.as_str(), Self::INFO_TYPE, self.timestamp)
            .text("AuthCorpId", self.auth_corp_id.as_str());
    }
}

impl ResetPermanentCode {
    pub(crate) const INFO_TYPE: &'static str = "reset_permanent_code";

    pub(crate) fn read(f: Fields<'_>) -> Result<Self, EventError> {
        Ok(Self {
            suite_id: f.required_id("SuiteId")?,
            auth_code: f.required_id("AuthCode")?,
            timestamp: f.required_number("TimeStamp")?,
        })
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        header(w, self.suite_id.as_str(), Self::INFO_TYPE, self.timestamp)
            .text("AuthCode", self.auth_code.expose());
    }
}

/// The three elements every template event starts with.
fn header<'w>(w: &'w mut XmlWriter, suite_id: &str, info_type: &str, ts: i64) -> &'w mut XmlWriter {
    w.text("SuiteId", suite_id)
        .text("InfoType", info_type)
        .number("TimeStamp", ts)
}
