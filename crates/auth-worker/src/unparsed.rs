//! Authentic auth events whose body did not fit its type. The ingress routes them by the kind
//! they announced (`Event::Unknown` with `parse_error` and the raw XML), so they reach this
//! worker instead of vanishing among unrouted messages.
//!
//! An AuthCode is single-use and lives ten minutes: whatever of it can be read (`SuiteId`,
//! `AuthCode`, and `TimeStamp` or else the arrival time) is persisted and exchanged exactly as a
//! well-formed one would be. Any other kind is dead-lettered with the parse error as its reason;
//! the dead letter keeps the raw XML, for an operator to replay once the parser is fixed.

use bus::consumer::{HandlerError, Message};
use store::auth_codes::AuthCodeKind;
use wecom::event::Unknown;

use crate::exchange::{self, Code};
use crate::handler::AuthHandler;

/// Handles an `Unknown` event on `wecom.auth`.
pub(crate) async fn unparsed(
    h: &AuthHandler,
    message: &Message,
    event: &Unknown,
) -> Result<(), HandlerError> {
    let kind = event.kind();
    let why = event
        .parse_error
        .as_deref()
        .unwrap_or("a kind this worker does not know");
    let code_kind = match kind.as_str() {
        "create_auth" => AuthCodeKind::CreateAuth,
        "reset_permanent_code" => AuthCodeKind::ResetPermanentCode,
        _ => {
            return Err(HandlerError::permanent(format!(
                "{kind} event that does not fit its type ({why}); its raw XML is kept in this \
                 dead letter"
            )));
        }
    };
    let Some(auth_code) = event.field("AuthCode") else {
        return Err(HandlerError::permanent(format!(
            "{kind} event without a readable AuthCode ({why}); its raw XML is kept in this dead \
             letter"
        )));
    };
    let suite_id = event
        .field("SuiteId")
        .unwrap_or_else(|| message.envelope.suite_id.clone());
    let wecom_time = event
        .field("TimeStamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| message.envelope.received_at.timestamp());
    let state = event.field("State");
    tracing::warn!(
        %kind,
        %suite_id,
        wecom_time,
        error = why,
        "salvaging the AuthCode of an event that does not fit its type"
    );
    let code = Code {
        kind: code_kind,
        value: &auth_code,
        suite_id: &suite_id,
        wecom_time,
        state: state.as_deref(),
    };
    exchange::run(h, message, &code).await
}
