//! One confirmed publish: what "the broker took it" means, for the publisher's events and the
//! consumer's retry and dead-letter copies alike (docs/architecture.md §3.3).
//!
//! A message counts as published only when the broker acknowledged it on a confirm-mode channel
//! within the deadline. Publishes are `mandatory`, so a message no queue takes comes back
//! (basic.return) and its confirm carries it (`Confirmation::Ack(Some(_))`): that is a failure,
//! as are a nack, a channel error and a timeout. A confirm that does not arrive in time is still
//! awaited in the background, because lapin parks an unawaited confirm until someone drains it.

use std::time::Duration;

use lapin::message::BasicReturnMessage;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::time::Instant;

use crate::envelope::MAX_ROUTING_KEY_LEN;
use crate::publisher::PublishError;

/// Publishes `body` to `exchange` with `routing_key`, `mandatory`, on `channel` (which must be in
/// confirm mode), and waits at most `timeout` for the broker's confirm.
///
/// A routing key over [`MAX_ROUTING_KEY_LEN`] bytes is refused before sending: the broker would
/// close the connection, failing every publish that shares it.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> Result<(), PublishError> {
    if routing_key.len() > MAX_ROUTING_KEY_LEN {
        return Err(PublishError::RoutingKeyTooLong(routing_key.len()));
    }
    let deadline = Instant::now() + timeout;
    let message_id = message_id_of(&properties);
    // Mandatory: a message no queue takes comes back (basic.return) instead of being confirmed
    // into nowhere.
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let send = channel.basic_publish(
        exchange.into(),
        routing_key.into(),
        mandatory,
        body,
        properties,
    );
    let mut confirm = tokio::time::timeout_at(deadline, send)
        .await
        .map_err(|_| PublishError::Timeout(timeout))??;
    match tokio::time::timeout_at(deadline, &mut confirm).await {
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(returned)))) => {
            Err(unroutable(&returned, message_id.as_deref()))
        }
        // NotRequested is only possible on a channel not in confirm mode, which no caller opens;
        // refuse to call that durable either.
        Ok(Ok(Confirmation::Nack(_) | Confirmation::NotRequested)) => Err(PublishError::Nacked),
        Ok(Err(error)) => Err(PublishError::Amqp(error)),
        Err(_) => {
            // Keep waiting for the late confirm in the background: a dropped confirm is parked
            // inside lapin until someone drains it, which nobody here would.
            tokio::spawn(async move { drop(confirm.await) });
            Err(PublishError::Timeout(timeout))
        }
    }
}

fn message_id_of(properties: &BasicProperties) -> Option<String> {
    properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
}

/// The error for a returned message. lapin hands a return to the next confirm of the channel;
/// when the broker confirms several publishes at once (`multiple`), that may be a neighbour's, so
/// the returned message's own id is logged too.
fn unroutable(returned: &BasicReturnMessage, message_id: Option<&str>) -> PublishError {
    let returned_id = message_id_of(&returned.delivery.properties);
    if returned_id.as_deref() != message_id {
        tracing::warn!(
            message_id = message_id.unwrap_or(""),
            returned_message_id = returned_id.as_deref().unwrap_or(""),
            "the broker returned another message than this one unroutable; failing this publish"
        );
    }
    PublishError::Unroutable {
        exchange: returned.delivery.exchange.as_str().to_owned(),
        routing_key: returned.delivery.routing_key.as_str().to_owned(),
        reply_code: returned.reply_code,
        reply_text: returned.reply_text.as_str().to_owned(),
    }
}
