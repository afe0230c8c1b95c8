//! Authentic auth events whose body did not fit its type. The ingress routes them by the kind
//! they announced (`Event::Unknown` with `parse_error` and the raw XML), so they reach this
//! worker instead of vanishing among unrouted messages.
//!
//! An AuthCode is single-use and lives ten minutes: whatever of it can be read (`SuiteId`,
//! `AuthCode`, and `TimeStamp` or else the arrival time) becomes a typed event that is exchanged
//! exactly as a well-formed one would be. Any other kind is dead-lettered with the parse error as
//! its reason; the dead letter keeps the raw XML, for an operator to replay once the parser is
//! fixed.

use bus::consumer::{HandlerError, Message};
use wecom::event::{CreateAuth, Event, ResetPermanentCode, Unknown};
use wecom::ids::{AuthCode, SuiteId};

/// The AuthCode event that can be salvaged from `event`, or why nothing can.
pub(crate) fn salvage(message: &Message, event: &Unknown) -> Result<Event, HandlerError> {
    let kind = event.kind();
    let why = event
        .parse_error
        .as_deref()
        .unwrap_or("a kind this worker does not know");
    if kind != "create_auth" && kind != "reset_permanent_code" {
        return Err(HandlerError::permanent(format!(
            "{kind} event that does not fit its type ({why}); its raw XML is kept in this dead \
             letter"
        )));
    }
    let unreadable = |field: &str| {
        HandlerError::permanent(format!(
            "{kind} event without a readable {field} ({why}); its raw XML is kept in this dead \
             letter"
        ))
    };
    let auth_code: AuthCode = event
        .field("AuthCode")
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| unreadable("AuthCode"))?;
    let suite_id: SuiteId = match event.field("SuiteId") {
        Some(id) => id.parse().map_err(|_| unreadable("SuiteId"))?,
        None => message.envelope.suite_id.clone(),
    };
    let timestamp = event
        .field("TimeStamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| message.envelope.received_at.timestamp());
    tracing::warn!(
        %kind,
        %suite_id,
        wecom_time = timestamp,
        error = why,
        "salvaging the AuthCode of an event that does not fit its type"
    );
    Ok(if kind == "create_auth" {
        Event::CreateAuth(CreateAuth {
            suite_id,
            auth_code,
            timestamp,
            state: event.field("State"),
            extra_info: None,
        })
    } else {
        Event::ResetPermanentCode(ResetPermanentCode {
            suite_id,
            auth_code,
            timestamp,
        })
    })
}
