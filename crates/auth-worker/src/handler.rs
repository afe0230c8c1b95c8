//! The `wecom.auth` message handler: dispatch by event kind, and the one place a worker error
//! becomes the consumer loop's decision (retry or dead-letter, see `error`).
//!
//! Each event handler follows the consumer contract of `bus::consumer`: its effect is committed
//! before it returns `Ok`. What makes a duplicate harmless differs by event (see the per-event
//! modules): the inbox row for suite tickets and cancel_auth, the AuthCode's own row and claim
//! for exchanges (no transaction is open during a WeCom call there), and for change_auth nothing
//! at all, because it settles the tenant to WeCom's current state on every delivery.

use bus::consumer::{Handler, HandlerError, Message};
use wecom::event::Event;

use crate::error::WorkerError;
use crate::state::AuthHandler;
use crate::{exchange, lifecycle, ticket, unparsed};

impl Handler for AuthHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let Some(event) = message.envelope.wecom_event() else {
            return Err(HandlerError::permanent(format!(
                "{} is not a WeCom event; wecom.auth only takes suite events",
                message.envelope.kind
            )));
        };
        if let Event::Unknown(unknown) = event {
            let salvaged = unparsed::salvage(message, unknown)?;
            return dispatch(self, message, &salvaged).await.map_err(Into::into);
        }
        dispatch(self, message, event).await.map_err(Into::into)
    }
}

async fn dispatch(
    handler: &AuthHandler,
    message: &Message,
    event: &Event,
) -> Result<(), WorkerError> {
    match event {
        Event::SuiteTicket(e) => ticket::suite_ticket(handler, message, e).await,
        Event::CreateAuth(e) => exchange::create_auth(handler, message, e).await,
        Event::ResetPermanentCode(e) => exchange::reset_permanent_code(handler, message, e).await,
        Event::ChangeAuth(e) => lifecycle::change_auth(handler, message, e).await,
        Event::CancelAuth(e) => lifecycle::cancel_auth(handler, message, e).await,
        other => Err(HandlerError::permanent(format!(
            "the auth worker does not handle {} events",
            other.kind()
        ))
        .into()),
    }
}
