//! `suite_ticket`: the newest ticket per suite, durable and monotonic (docs/architecture.md §4.3).
//!
//! WeCom pushes a ticket every 10 minutes and each is valid 30; the suite access token can only
//! be fetched with a valid one. Replicas take pushes out of order, so "newest" is WeCom's
//! `TimeStamp`, never arrival order: an older push is ignored (and counted), never stored over a
//! newer one. A stored time more than `store::suites::FUTURE_SKEW` ahead of the database clock
//! (a clock that ran ahead) does not count, so it cannot block real pushes for hours. The
//! ticket-age gauge is refreshed by the sweeper (see `app`).

use bus::consumer::Message;
use store::suites::{NewTicket, store_ticket};
use wecom::event::SuiteTicket;

use crate::error::{Doing, WorkerError};
use crate::state::{AuthHandler, first_delivery};

/// Stores the ticket unless a newer one is stored already.
pub(crate) async fn suite_ticket(
    h: &AuthHandler,
    message: &Message,
    event: &SuiteTicket,
) -> Result<(), WorkerError> {
    let suite = h.suite(&event.suite_id)?;
    let mut tx = h.begin().await?;
    if !first_delivery(&mut tx, message).await? {
        return tx.commit().await.doing("committing");
    }
    let ticket = NewTicket {
        suite_id: &suite.id,
        ticket: event.suite_ticket.expose(),
        wecom_time: event.timestamp,
        received_at: message.envelope.received_at,
    };
    let stored = store_ticket(&mut tx, &h.secrets, &ticket)
        .await
        .doing("storing the suite ticket")?;
    tx.commit().await.doing("committing the suite ticket")?;
    let result = if stored { "stored" } else { "ignored_older" };
    h.metrics
        .tickets
        .with_label_values(&[suite.id.as_str(), result])
        .inc();
    if stored {
        tracing::info!(suite_id = %suite.id, wecom_time = event.timestamp, "suite ticket stored");
    } else {
        tracing::info!(
            suite_id = %suite.id,
            wecom_time = event.timestamp,
            "suite ticket ignored: a newer one is already stored"
        );
    }
    Ok(())
}
