//! The event envelope: the JSON body of every message on `wecom.events`
//! (docs/architecture.md §3.2).
//!
//! One shape for WeCom pushes (published by the ingress) and internal events (published by the
//! workers), so a consumer reads `kind` and a typed payload and never touches WeCom XML. The
//! `dedupe_key` is what makes WeCom's retries harmless: WeCom retries a push it did not see
//! answered, byte for byte, so `sha256(receiveid ‖ plaintext)` is the same for every retry
//! (docs/architecture.md §4.2).
//!
//! The key identifies identical *text*, not a distinct push. Two different pushes whose plaintext
//! is identical (two `change_auth` for the same corp within one second, e.g. the app disabled and
//! enabled again; WeCom's `TimeStamp` has one-second resolution) get the same key. So a consumer
//! may use the key only to guard an effect that must happen at most once (the AuthCode exchange);
//! an effect that settles to WeCom's current state (re-reading the app's authorization on
//! `change_auth`) must run again when a message arrives with a key it has already seen.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wecom::event::Event;
use wecom::ids::{CorpId, SuiteId};

/// The envelope schema this crate writes. Bump it on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest routing key (and AMQP `type`) AMQP can carry: both are short strings. A longer
/// one does not fail one publish, it makes a malformed frame that closes the whole connection.
pub const MAX_ROUTING_KEY_LEN: usize = 255;

/// `kind` made safe for a routing key segment and the AMQP `type` property: ASCII letters
/// lowercased, `a-z 0-9 _ - .` kept, every other character replaced by `_`, and cut so that
/// `{source}.{kind}` fits in [`MAX_ROUTING_KEY_LEN`] bytes. Kinds come from WeCom's XML
/// (`Event`, `MsgType`, `ChangeType`, `InfoType`), so nothing bounds them otherwise.
pub fn safe_kind(source: Source, kind: &str) -> String {
    let room = MAX_ROUTING_KEY_LEN - source.as_str().len() - 1;
    kind.chars()
        .take(room)
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-' | '.') => c,
            _ => '_',
        })
        .collect()
}

/// Why a message body is not an envelope this crate can read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the envelope shape.
    #[error("message body is not an event envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// A schema version this crate does not understand.
    #[error("envelope schema {found} is not supported (this build reads {SCHEMA_VERSION})")]
    UnsupportedSchema {
        /// The version in the message.
        found: u32,
    },
}

/// Where an event came from; the first segment of its routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A template (instruction) callback: `/callback/suite/{suite_id}`.
    Suite,
    /// An app (data) callback: `/callback/app/{suite_id}/{corp_id}`.
    App,
    /// Published by a daikai worker (e.g. `tenant.activated`).
    Internal,
}

impl Source {
    /// The routing-key segment: `suite`, `app` or `internal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suite => "suite",
            Self::App => "app",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hex SHA-256 of a push's text, independent of its delivery: equal for WeCom's retries of one
/// push, and also for distinct pushes with identical text (see the module docs for what a
/// consumer may guard with it). Consumers record it in their inbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DedupeKey(String);

impl DedupeKey {
    /// `hex(sha256(receive_id ‖ plaintext))` for a WeCom callback.
    pub fn of_callback(receive_id: &str, plaintext: &str) -> Self {
        Self::of_parts(&[receive_id, plaintext])
    }

    /// `hex(sha256(parts concatenated))`.
    pub fn of_parts(parts: &[&str]) -> Self {
        let mut sha = Sha256::new();
        for part in parts {
            sha.update(part.as_bytes());
        }
        Self(hex::encode(sha.finalize()))
    }

    /// The 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's state as the auth worker records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Authorized, permanent code not yet obtained.
    Pending,
    /// Permanent code stored; APIs callable.
    Active,
    /// App disabled by the corp, or WeCom refuses the tenant's credentials.
    Suspended,
    /// Authorization cancelled; data must be purged.
    Revoked,
}

/// The tenant a [`TenantEvent`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The template id.
    pub suite_id: SuiteId,
    /// The authorized corp (as WeCom returned it; case-sensitive).
    pub corp_id: CorpId,
    /// The corp's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_name: Option<String>,
    /// The app's agent id in that corp, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<i64>,
    /// The tenant's status after the change.
    pub status: TenantStatus,
}

/// Events the auth worker publishes about tenants (`internal.tenant.*`), consumed by contact-sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TenantEvent {
    /// The tenant became usable (permanent code stored): run a full sync.
    Activated(Tenant),
    /// Scope, permissions or enablement changed: resync.
    Changed(Tenant),
    /// Authorization cancelled: stop and purge.
    Revoked(Tenant),
    /// An operator asked for a full directory sync now (`daikai sync`).
    SyncRequested(Tenant),
}

impl TenantEvent {
    /// `tenant.activated`, `tenant.changed` or `tenant.revoked`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Activated(_) => "tenant.activated",
            Self::Changed(_) => "tenant.changed",
            Self::Revoked(_) => "tenant.revoked",
            Self::SyncRequested(_) => "tenant.sync_requested",
        }
    }

    /// The tenant concerned.
    pub fn tenant(&self) -> &Tenant {
        match self {
            Self::Activated(t) | Self::Changed(t) | Self::Revoked(t) | Self::SyncRequested(t) => t,
        }
    }
}

/// The typed payload: a WeCom event for `suite`/`app` sources, a tenant event for `internal`.
///
/// Serialized as the inner value alone; which one to read back is decided by the envelope's
/// `source`, never guessed from the shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[expect(
    clippy::large_enum_variant,
    reason = "one payload per message, moved once; boxing the WeCom event would only make every \
              consumer's pattern match noisier"
)]
pub enum Payload {
    /// A decrypted, parsed WeCom push.
    Wecom(Event),
    /// An internal tenant lifecycle event.
    Tenant(TenantEvent),
}

/// The JSON body of every message on the events exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// [`SCHEMA_VERSION`] at write time.
    pub schema: u32,
    /// Unique per message (UUID v7, so ids sort by creation time); the AMQP `message_id`.
    pub id: Uuid,
    /// Same for retries of one push (and for distinct pushes with identical text).
    pub dedupe_key: DedupeKey,
    /// When the ingress (or worker) received or created it.
    pub received_at: DateTime<Utc>,
    /// The template the event belongs to.
    pub suite_id: SuiteId,
    /// The authorized corp, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp_id: Option<CorpId>,
    /// Where it came from.
    pub source: Source,
    /// `suite_ticket`, `change_contact.update_user`, `tenant.activated`, `unknown`, … (made safe
    /// for a routing key by the constructors: [`safe_kind`]).
    pub kind: String,
    /// The typed event.
    pub payload: Payload,
    /// The decrypted XML exactly as WeCom sent it (WeCom events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_xml: Option<String>,
}

/// Where a callback was received and what it was addressed to: the facts the ingress knows
/// besides the event itself.
#[derive(Debug, Clone, Copy)]
pub struct CallbackOrigin<'a> {
    /// `Suite` or `App`.
    pub source: Source,
    /// The suite id from the callback path.
    pub suite_id: &'a SuiteId,
    /// The corp id from the app callback path; `None` on suite routes (then the event's own
    /// `AuthCorpId` is used when it has one).
    pub corp_id: Option<&'a CorpId>,
    /// The receiveid found in the plaintext.
    pub receive_id: &'a str,
}

impl Envelope {
    /// The envelope of an authenticated WeCom push: `plaintext` is the decrypted XML `event` was
    /// parsed from.
    pub fn from_callback(origin: CallbackOrigin<'_>, plaintext: String, event: Event) -> Self {
        let corp_id = origin.corp_id.or_else(|| event.auth_corp_id()).cloned();
        Self {
            schema: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            dedupe_key: DedupeKey::of_callback(origin.receive_id, &plaintext),
            received_at: Utc::now(),
            suite_id: origin.suite_id.clone(),
            corp_id,
            source: origin.source,
            kind: safe_kind(origin.source, &event.kind()),
            payload: Payload::Wecom(event),
            raw_xml: Some(plaintext),
        }
    }

    /// The envelope of an internal tenant event. `dedupe_basis` must be stable for the cause of
    /// the event (e.g. the dedupe key of the callback that led to it), so a worker that
    /// re-publishes after a redelivery produces the same `dedupe_key`.
    pub fn internal(event: TenantEvent, dedupe_basis: &str) -> Self {
        let kind = event.kind();
        Self {
            schema: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            dedupe_key: DedupeKey::of_parts(&["internal:", kind, ":", dedupe_basis]),
            received_at: Utc::now(),
            suite_id: event.tenant().suite_id.clone(),
            corp_id: Some(event.tenant().corp_id.clone()),
            source: Source::Internal,
            kind: kind.to_owned(),
            payload: Payload::Tenant(event),
            raw_xml: None,
        }
    }

    /// `{source}.{kind}`, e.g. `suite.create_auth`, `app.change_contact.update_user`; the kind
    /// made safe ([`safe_kind`]), so the key is at most [`MAX_ROUTING_KEY_LEN`] bytes.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.source, self.amqp_type())
    }

    /// The AMQP `type` property: the kind made safe ([`safe_kind`]). Equal to `kind` for every
    /// envelope built by [`Envelope::from_callback`] or [`Envelope::internal`].
    pub fn amqp_type(&self) -> String {
        safe_kind(self.source, &self.kind)
    }

    /// The WeCom event, if this envelope carries one.
    pub fn wecom_event(&self) -> Option<&Event> {
        match &self.payload {
            Payload::Wecom(e) => Some(e),
            Payload::Tenant(_) => None,
        }
    }

    /// The tenant event, if this envelope carries one.
    pub fn tenant_event(&self) -> Option<&TenantEvent> {
        match &self.payload {
            Payload::Tenant(e) => Some(e),
            Payload::Wecom(_) => None,
        }
    }

    /// The JSON message body.
    pub fn to_json(&self) -> Result<Vec<u8>, EnvelopeError> {
        // The typed payload repeats most of the raw XML: size the buffer once for both.
        let xml = self.raw_xml.as_ref().map_or(0, String::len);
        let mut body = Vec::with_capacity(2 * xml + 512);
        serde_json::to_writer(&mut body, self)?;
        Ok(body)
    }

    /// Reads a message body. Another schema version is
    /// [`EnvelopeError::UnsupportedSchema`], even when the rest of the body is not this version's
    /// shape; anything else that does not read is [`EnvelopeError::Json`].
    pub fn from_json(body: &[u8]) -> Result<Self, EnvelopeError> {
        match serde_json::from_slice::<WireEnvelope>(body) {
            Ok(wire) => wire.into_envelope(),
            Err(error) => match serde_json::from_slice::<SchemaOnly>(body) {
                Ok(SchemaOnly { schema }) if schema != SCHEMA_VERSION => {
                    Err(EnvelopeError::UnsupportedSchema { found: schema })
                }
                _ => Err(error.into()),
            },
        }
    }
}

/// The wire shape, read with the payload left untyped until `source` says what it is.
#[derive(Deserialize)]
struct WireEnvelope {
    schema: u32,
    id: Uuid,
    dedupe_key: DedupeKey,
    received_at: DateTime<Utc>,
    suite_id: SuiteId,
    #[serde(default)]
    corp_id: Option<CorpId>,
    source: Source,
    kind: String,
    payload: serde_json::Value,
    #[serde(default)]
    raw_xml: Option<String>,
}

/// Just the version, to tell an envelope of another schema from a malformed one.
#[derive(Deserialize)]
struct SchemaOnly {
    schema: u32,
}

impl WireEnvelope {
    /// The envelope, once the schema is this crate's and the payload fits its `source`.
    fn into_envelope(self) -> Result<Envelope, EnvelopeError> {
        if self.schema != SCHEMA_VERSION {
            return Err(EnvelopeError::UnsupportedSchema { found: self.schema });
        }
        let payload = match self.source {
            Source::Suite | Source::App => Payload::Wecom(Event::deserialize(self.payload)?),
            Source::Internal => Payload::Tenant(TenantEvent::deserialize(self.payload)?),
        };
        Ok(Envelope {
            schema: self.schema,
            id: self.id,
            dedupe_key: self.dedupe_key,
            received_at: self.received_at,
            suite_id: self.suite_id,
            corp_id: self.corp_id,
            source: self.source,
            kind: self.kind,
            payload,
            raw_xml: self.raw_xml,
        })
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        WireEnvelope::deserialize(deserializer)?
            .into_envelope()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom::event::{CancelAuth, SuiteTicket};

    fn ticket_xml() -> &'static str {
        "<xml><SuiteId><![CDATA[dk1]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>\
         <TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[t1]]></SuiteTicket></xml>"
    }

    fn dk1() -> &'static SuiteId {
        static DK1: std::sync::LazyLock<SuiteId> =
            std::sync::LazyLock::new(|| SuiteId::parse("dk1").unwrap());
        &DK1
    }

    fn origin(source: Source) -> CallbackOrigin<'static> {
        CallbackOrigin {
            source,
            suite_id: dk1(),
            corp_id: None,
            receive_id: "dk1",
        }
    }

    #[test]
    fn callback_envelope_round_trips_through_json() {
        let event = Event::parse(ticket_xml()).unwrap();
        let env = Envelope::from_callback(origin(Source::Suite), ticket_xml().into(), event);
        assert_eq!(env.routing_key(), "suite.suite_ticket");
        assert_eq!(env.schema, SCHEMA_VERSION);
        assert_eq!(env.id.get_version_num(), 7);
        let json = env.to_json().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["source"], "suite");
        assert_eq!(value["kind"], "suite_ticket");
        assert_eq!(value["payload"]["type"], "suite_ticket");
        assert_eq!(value["payload"]["suite_ticket"], "t1");
        assert_eq!(value["raw_xml"], ticket_xml());
        assert!(value.get("corp_id").is_none());
        assert_eq!(Envelope::from_json(&json).unwrap(), env);
    }

    #[test]
    fn kinds_from_the_xml_are_made_safe_for_routing_keys() {
        assert_eq!(
            safe_kind(Source::App, "change_contact.update_user"),
            "change_contact.update_user"
        );
        assert_eq!(
            safe_kind(Source::App, "event.Odd Ünï/#*-1"),
            "event.odd__n____-1"
        );
        let long = format!("event.{}", "é".repeat(400));
        for source in [Source::Suite, Source::App, Source::Internal] {
            let kind = safe_kind(source, &long);
            assert_eq!(format!("{source}.{kind}").len(), MAX_ROUTING_KEY_LEN);
        }
        let mut env = Envelope::from_callback(
            origin(Source::Suite),
            ticket_xml().into(),
            Event::parse(ticket_xml()).unwrap(),
        );
        env.kind = "a b".repeat(200);
        assert!(env.routing_key().starts_with("suite.a_ba_b"));
        assert_eq!(env.routing_key().len(), MAX_ROUTING_KEY_LEN);
        assert_eq!(env.amqp_type().len(), MAX_ROUTING_KEY_LEN - "suite.".len());
    }

    #[test]
    fn dedupe_key_is_sha256_of_receive_id_then_plaintext() {
        let key = DedupeKey::of_callback("dk1", "<xml/>");
        assert_eq!(key, DedupeKey::of_parts(&["dk1<xml/>"]));
        assert_eq!(key.as_str().len(), 64);
        // Known value: sha256("dk1<xml/>").
        let expected = hex::encode(Sha256::digest(b"dk1<xml/>"));
        assert_eq!(key.as_str(), expected);
        assert_ne!(key, DedupeKey::of_callback("dk2", "<xml/>"));
    }

    #[test]
    fn retries_share_the_dedupe_key_but_not_the_id() {
        let a = Envelope::from_callback(
            origin(Source::Suite),
            ticket_xml().into(),
            Event::parse(ticket_xml()).unwrap(),
        );
        let b = Envelope::from_callback(
            origin(Source::Suite),
            ticket_xml().into(),
            Event::parse(ticket_xml()).unwrap(),
        );
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn corp_id_comes_from_the_path_or_the_event() {
        let event = Event::CancelAuth(CancelAuth {
            suite_id: "dk1".parse().unwrap(),
            auth_corp_id: "wwcorp".parse().unwrap(),
            timestamp: 1,
        });
        let xml = event.to_xml();
        let env = Envelope::from_callback(origin(Source::Suite), xml.clone(), event.clone());
        assert_eq!(
            env.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
            Some("wwcorp")
        );
        let path_corp = CorpId::parse("wwpath").unwrap();
        let from_path = CallbackOrigin {
            corp_id: Some(&path_corp),
            ..origin(Source::App)
        };
        let env = Envelope::from_callback(from_path, xml, event);
        assert_eq!(
            env.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
            Some("wwpath")
        );
        assert_eq!(env.routing_key(), "app.cancel_auth");
    }

    #[test]
    fn internal_envelope_round_trips_and_dedupes_on_its_basis() {
        let tenant = Tenant {
            suite_id: "dk1".parse().unwrap(),
            corp_id: "wwcorp".parse().unwrap(),
            corp_name: Some("Acme".into()),
            agent_id: Some(1_000_002),
            status: TenantStatus::Active,
        };
        let env = Envelope::internal(TenantEvent::Activated(tenant.clone()), "cause-1");
        assert_eq!(env.routing_key(), "internal.tenant.activated");
        assert_eq!(
            env.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
            Some("wwcorp")
        );
        assert!(env.raw_xml.is_none());
        let json = env.to_json().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["payload"]["event"], "activated");
        assert_eq!(value["payload"]["status"], "active");
        assert_eq!(value["payload"]["agent_id"], 1_000_002);
        let back = Envelope::from_json(&json).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.tenant_event().unwrap().tenant(), &tenant);

        let again = Envelope::internal(TenantEvent::Activated(tenant.clone()), "cause-1");
        assert_eq!(again.dedupe_key, env.dedupe_key);
        let revoked = Envelope::internal(TenantEvent::Revoked(tenant), "cause-1");
        assert_ne!(revoked.dedupe_key, env.dedupe_key);
    }

    #[test]
    fn payload_type_follows_source_not_shape() {
        let env = Envelope::from_callback(
            origin(Source::Suite),
            ticket_xml().into(),
            Event::SuiteTicket(SuiteTicket {
                suite_id: "dk1".parse().unwrap(),
                suite_ticket: "t".parse().unwrap(),
                timestamp: 1,
            }),
        );
        let mut value: serde_json::Value = serde_json::to_value(&env).unwrap();
        value["source"] = "internal".into();
        let err = Envelope::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(err.to_string().contains("event"), "{err}");
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let env = Envelope::internal(
            TenantEvent::Revoked(Tenant {
                suite_id: "dk1".parse().unwrap(),
                corp_id: "c".parse().unwrap(),
                corp_name: None,
                agent_id: None,
                status: TenantStatus::Revoked,
            }),
            "x",
        );
        let mut value: serde_json::Value = serde_json::to_value(&env).unwrap();
        value["schema"] = 2.into();
        let err = Envelope::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(err.to_string().contains("schema 2"), "{err}");
    }

    #[test]
    fn another_schema_is_a_variant_callers_can_match() {
        let env = Envelope::internal(
            TenantEvent::Revoked(Tenant {
                suite_id: "dk1".parse().unwrap(),
                corp_id: "c".parse().unwrap(),
                corp_name: None,
                agent_id: None,
                status: TenantStatus::Revoked,
            }),
            "x",
        );
        let mut value: serde_json::Value = serde_json::to_value(&env).unwrap();
        value["schema"] = 2.into();
        let body = serde_json::to_vec(&value).unwrap();
        assert!(matches!(
            Envelope::from_json(&body),
            Err(EnvelopeError::UnsupportedSchema { found: 2 })
        ));
        // Also when the rest is another version's shape.
        let body = br#"{"schema": 3, "event": {}}"#;
        assert!(matches!(
            Envelope::from_json(body),
            Err(EnvelopeError::UnsupportedSchema { found: 3 })
        ));
        // Our version but not our shape, or not JSON: a JSON error.
        let body = br#"{"schema": 1, "event": {}}"#;
        assert!(matches!(
            Envelope::from_json(body),
            Err(EnvelopeError::Json(_))
        ));
        assert!(matches!(
            Envelope::from_json(b"not json"),
            Err(EnvelopeError::Json(_))
        ));
    }
}
