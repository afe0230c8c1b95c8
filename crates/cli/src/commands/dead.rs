//! `daikai dead list|show|replay|purge`: the dead-letter queues (`{queue}.dead`,
//! docs/auth-worker.md "Delivery, retries and dead letters").
//!
//! Quorum queues cannot be browsed, so reading a dead queue takes its messages with
//! `basic.get` without acking them. They are not given back by a requeue (nack, or closing the
//! channel): the broker would count each such return as a delivery, and past a quorum queue's
//! delivery limit (20 by default on RabbitMQ 4) it drops the message, since the dead queues have
//! no dead-letter target of their own. Instead `hand_back` publishes each letter read again to
//! the tail of its dead queue (same body and properties, mandatory, confirmed) and only then acks
//! the original: the letter stays, with a delivery count of 0, however often it is read, on any
//! broker version and whatever the queue's arguments (docs/operations.md §8 says why the dead
//! queues are not declared with an unlimited delivery limit instead). Reading the whole queue
//! keeps its order; a crash between the copy and the ack leaves a letter twice, never none.
//!
//! A replayed message is published again (mandatory, confirmed) to the events exchange with its
//! original routing key — the `x-daikai-routing-key` header, else the envelope's own — and only
//! once the broker confirmed it is it acked, i.e. removed from the dead queue. A crash in between leaves it in both places, and replaying a message twice is safe:
//! the auth worker dedupes on the envelope's `dedupe_key` (its inbox), and contact sync's effects
//! are reads of WeCom's current state, so a second application leaves the same mirror
//! (docs/contact-sync.md §3).

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde::Serialize;
use serde_json::Value;

use super::{broker, publisher};
use crate::env::Env;
use crate::exit::Fault;
use crate::output::{self, Progress, Table, age, time_or_dash};

/// Letters handed back per batch of confirmed copies ([`hand_back`]).
const HAND_BACK_BATCH: usize = 500;
/// How long the broker may take to confirm one batch of copies.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(30);
/// What a letter the broker dead-lettered (past the work queue's delivery limit) shows as its
/// error; it has an `x-death` header and none of ours.
const BROKER_DEAD_LETTERED: &str = "dead-lettered by the broker (delivery limit)";
/// Headers the broker keeps per delivery: a letter handed back is a new message without them.
const DELIVERY_COUNT_HEADERS: [&str; 2] = ["x-delivery-count", "x-acquired-count"];

/// One dead letter as `dead list --json` shows it (`dead show` adds `body`).
#[derive(Debug, Serialize)]
pub struct DeadLetterJson {
    /// The AMQP `message_id` (the envelope id); what `show` and `replay` take.
    pub id: Option<String>,
    /// The dead queue it is in.
    pub dead_queue: String,
    /// The work queue that gave up on it (`x-daikai-queue`).
    pub work_queue: Option<String>,
    /// Where a replay publishes it.
    pub routing_key: Option<String>,
    /// Why it was dead-lettered (`x-daikai-error`; broker-dead-lettered: `delivery limit`).
    pub error: Option<String>,
    /// Deliveries it had (`x-daikai-attempt`).
    pub attempt: Option<i64>,
    /// The envelope's kind.
    pub kind: Option<String>,
    /// The envelope's suite.
    pub suite_id: Option<String>,
    /// The envelope's corp.
    pub corp_id: Option<String>,
    /// When the ingress (or worker) created the envelope.
    pub received_at: Option<DateTime<Utc>>,
    /// The envelope's dedupe key.
    pub dedupe_key: Option<String>,
    /// The request id that caused it.
    pub correlation_id: Option<String>,
    /// Body size.
    pub body_bytes: usize,
    /// The body: the envelope as JSON, or the text when it is not JSON (`dead show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// Lists the dead letters of every work queue (or of `queue`).
pub async fn list(
    env: &Env,
    queue: Option<&str>,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let topology = env.topology()?;
    let names = dead_queues(&topology, queue)?;
    let connection = broker(env).await?;
    let mut letters = Vec::new();
    for dead in &names {
        let channel = connection.create_channel().await?;
        let deliveries = take(&channel, dead, limit).await?;
        letters.extend(deliveries.iter().map(|d| describe(d, dead, false)));
        let handed = hand_back(&connection, dead, &deliveries).await;
        give_back(channel).await;
        handed?;
    }
    close(&connection).await;
    if json {
        return output::json(out, &letters);
    }
    let now = Utc::now();
    let mut table = Table::new(&[
        "ID",
        "QUEUE",
        "ROUTING KEY",
        "CORP",
        "AGE",
        "ATTEMPT",
        "ERROR",
    ]);
    for l in &letters {
        table.row(vec![
            l.id.clone().unwrap_or_else(|| "(no id)".into()),
            l.dead_queue.clone(),
            l.routing_key.clone().unwrap_or_else(|| "-".into()),
            l.corp_id.clone().unwrap_or_else(|| "-".into()),
            l.received_at.map_or_else(|| "-".into(), |at| age(now - at)),
            l.attempt.map_or_else(|| "-".into(), |a| a.to_string()),
            l.error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print(out)?;
    writeln!(out, "{} dead letter(s)", letters.len())?;
    Ok(())
}

/// Shows one dead letter with its body.
pub async fn show(env: &Env, id: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let topology = env.topology()?;
    let connection = broker(env).await?;
    let mut found = None;
    for dead in dead_queues(&topology, None)? {
        let channel = connection.create_channel().await?;
        let deliveries = take(&channel, &dead, usize::MAX).await?;
        found = deliveries
            .iter()
            .find(|d| message_id(d).as_deref() == Some(id))
            .map(|d| describe(d, &dead, true));
        let handed = hand_back(&connection, &dead, &deliveries).await;
        give_back(channel).await;
        handed?;
        if found.is_some() {
            break;
        }
    }
    close(&connection).await;
    let letter = found.ok_or_else(|| not_found(id))?;
    if json {
        return output::json(out, &letter);
    }
    writeln!(out, "id            {}", letter.id.as_deref().unwrap_or("-"))?;
    writeln!(out, "dead queue    {}", letter.dead_queue)?;
    writeln!(
        out,
        "work queue    {}",
        letter.work_queue.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "routing key   {}",
        letter.routing_key.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "error         {}",
        letter.error.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "attempts      {}",
        letter.attempt.map_or_else(|| "-".into(), |a| a.to_string())
    )?;
    writeln!(
        out,
        "kind          {}",
        letter.kind.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "tenant        {} / {}",
        letter.suite_id.as_deref().unwrap_or("-"),
        letter.corp_id.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "received      {}", time_or_dash(letter.received_at))?;
    writeln!(
        out,
        "dedupe key    {}",
        letter.dedupe_key.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "correlation   {}",
        letter.correlation_id.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "body ({} bytes):", letter.body_bytes)?;
    match &letter.body {
        Some(body) => writeln!(out, "{}", serde_json::to_string_pretty(body)?)?,
        None => writeln!(out, "(empty)")?,
    }
    Ok(())
}

/// Replays one dead letter (`id`) or all of them (of `queue`, or of every work queue).
pub async fn replay(
    env: &Env,
    id: Option<&str>,
    queue: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let topology = env.topology()?;
    let queues = dead_queues(&topology, queue)?;
    let connection = broker(env).await?;
    let publisher = publisher(env).await?;
    let result = replay_from(&connection, &publisher, &topology, &queues, id, out).await;
    publisher.close().await;
    close(&connection).await;
    let replayed = result?;
    match id {
        Some(id) if replayed == 0 => Err(not_found(id)),
        _ => {
            writeln!(out, "replayed {replayed} dead letter(s)")?;
            Ok(())
        }
    }
}

async fn replay_from(
    connection: &Connection,
    publisher: &bus::Publisher,
    topology: &bus::Topology,
    queues: &[String],
    id: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut replayed = 0;
    for dead in queues {
        let channel = connection.create_channel().await?;
        // Only what is there now: a message dead-lettered again during the replay waits for
        // the next one instead of looping.
        let depth = depth(&channel, dead).await?;
        let deliveries = take(&channel, dead, depth).await?;
        let mut gone = vec![false; deliveries.len()];
        let result =
            replay_letters(publisher, topology, dead, &deliveries, &mut gone, id, out).await;
        // What was not replayed goes back, also after a failed replay.
        let kept = deliveries.iter().zip(&gone).filter(|(_, gone)| !**gone);
        let handed = hand_back(connection, dead, kept.map(|(d, _)| d)).await;
        give_back(channel).await;
        replayed += result?;
        handed?;
        if id.is_some() && replayed > 0 {
            break;
        }
    }
    Ok(replayed)
}

/// Replays the letter `id` of `deliveries` (all of them without `id`), marking in `gone` each
/// one that left the dead queue (replayed: it must not be handed back as well).
async fn replay_letters(
    publisher: &bus::Publisher,
    topology: &bus::Topology,
    dead: &str,
    deliveries: &[Delivery],
    gone: &mut [bool],
    id: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let chosen: Vec<usize> = (0..deliveries.len())
        .filter(|&i| id.is_none_or(|id| message_id(&deliveries[i]).as_deref() == Some(id)))
        .take(if id.is_some() { 1 } else { usize::MAX })
        .collect();
    let mut replayed = 0;
    let mut progress = Progress::new(chosen.len() as u64);
    for i in chosen {
        let delivery = &deliveries[i];
        let letter = describe(delivery, dead, false);
        let routing_key = letter.routing_key.clone().with_context(|| {
            format!(
                "dead letter {} has no original routing key (no x-daikai-routing-key header \
                 and no envelope): it cannot be replayed",
                letter.id.as_deref().unwrap_or("(no id)")
            )
        })?;
        let message_id = letter.id.clone().unwrap_or_default();
        let correlation = letter.correlation_id.clone().unwrap_or_default();
        let kind = letter.kind.clone().unwrap_or_default();
        publisher
            .publish_raw(
                bus::Outgoing {
                    exchange: &topology.events_exchange,
                    routing_key: &routing_key,
                    message_id: &message_id,
                    correlation_id: &correlation,
                    kind: &kind,
                },
                &delivery.data,
            )
            .await
            .with_context(|| format!("replaying {message_id} to {routing_key}"))?;
        // Replayed: whether or not the ack below lands, no copy of it is handed back (an
        // unacked original stays in the queue on its own).
        gone[i] = true;
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .with_context(|| {
                format!(
                    "{message_id} was replayed but could not be removed from {dead}: it is \
                     still there (replaying it again applies nothing twice)"
                )
            })?;
        replayed += 1;
        progress.advance(out, 1, &format!("{message_id} → {routing_key}"))?;
    }
    progress.finish();
    Ok(replayed)
}

/// Deletes dead letters (older than `older_than`, when given).
pub async fn purge(
    env: &Env,
    older_than: Option<TimeDelta>,
    queue: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let topology = env.topology()?;
    let queues = dead_queues(&topology, queue)?;
    let connection = broker(env).await?;
    let mut purged: u64 = 0;
    for dead in &queues {
        let channel = connection.create_channel().await?;
        match older_than {
            None => {
                let n = channel
                    .queue_purge(dead.as_str().into(), QueuePurgeOptions::default())
                    .await
                    .with_context(|| format!("purging {dead}"))?;
                purged += u64::from(n);
            }
            Some(limit) => {
                let cutoff = Utc::now() - limit;
                let depth = depth(&channel, dead).await?;
                let deliveries = take(&channel, dead, depth).await?;
                let mut kept = Vec::new();
                for delivery in &deliveries {
                    let letter = describe(delivery, dead, false);
                    // A letter whose age is unknown is kept: only `purge` without a limit
                    // deletes it.
                    if letter.received_at.is_some_and(|at| at < cutoff) {
                        delivery.acker.ack(BasicAckOptions::default()).await?;
                        purged += 1;
                    } else {
                        kept.push(delivery);
                    }
                }
                hand_back(&connection, dead, kept).await?;
            }
        }
        give_back(channel).await;
    }
    close(&connection).await;
    writeln!(out, "purged {purged} dead letter(s)")?;
    Ok(())
}

/// The dead queues `filter` names: `auth`, `contacts`, or a work, dead or full queue name.
pub fn dead_queues(topology: &bus::Topology, filter: Option<&str>) -> anyhow::Result<Vec<String>> {
    let all = bus::WorkQueue::ALL.map(|q| topology.queue(q));
    let Some(filter) = filter else {
        return Ok(all.iter().map(|q| q.dead.clone()).collect());
    };
    let wanted = filter.trim_end_matches(".dead");
    all.iter()
        .find(|q| {
            let base = q.queue.base_name();
            wanted == q.work || wanted == base || Some(wanted) == base.strip_prefix("wecom.")
        })
        .map(|q| vec![q.dead.clone()])
        .ok_or_else(|| {
            Fault::NotFound(format!(
                "no work queue `{filter}`: name `auth` or `contacts` (or {})",
                all.iter()
                    .map(|q| q.work.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into()
        })
}

/// Messages ready in `queue` (passive declare: fails if it does not exist).
pub async fn depth(channel: &Channel, queue: &str) -> anyhow::Result<usize> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let q = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .map_err(|err| {
            Fault::NotFound(format!(
                "queue {queue} does not exist (is AMQP_NAMESPACE right? has a service declared \
                 the topology?): {err}"
            ))
        })?;
    Ok(q.message_count() as usize)
}

/// Up to `limit` messages of `queue`, taken unacked: the caller acks each one or hands it back
/// ([`hand_back`]); only after an error does one return when the channel closes.
async fn take(channel: &Channel, queue: &str, limit: usize) -> anyhow::Result<Vec<Delivery>> {
    depth(channel, queue).await?;
    let mut deliveries = Vec::new();
    while deliveries.len() < limit {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .with_context(|| format!("reading {queue}"))?;
        match got {
            Some(message) => deliveries.push(message.delivery),
            None => break,
        }
    }
    Ok(deliveries)
}

/// Puts `letters` (taken from `queue` and not acked) back without spending a delivery of
/// theirs: publishes each again to `queue` through the default exchange (same body and
/// properties, [`fresh_properties`]; mandatory, on a confirm-mode channel) and acks the originals
/// of a batch once the broker confirmed every copy of it. A copy refused, returned or not
/// confirmed in time acks none of its batch and stops: the originals not acked go back to the
/// queue when their channel closes (counted as one delivery each) and that batch's confirmed
/// copies stay too, so a letter may be there twice, never lost. (A return is only known to
/// belong to some copy of the batch, hence all or none.)
async fn hand_back<'a>(
    connection: &Connection,
    queue: &str,
    letters: impl IntoIterator<Item = &'a Delivery>,
) -> anyhow::Result<()> {
    let letters: Vec<&Delivery> = letters.into_iter().collect();
    if letters.is_empty() {
        return Ok(());
    }
    let channel = connection.create_channel().await?;
    let result = hand_back_on(&channel, queue, &letters).await;
    drop(channel.close(200, "done".into()).await);
    result
}

async fn hand_back_on(channel: &Channel, queue: &str, letters: &[&Delivery]) -> anyhow::Result<()> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .with_context(|| format!("handing dead letters back to {queue}"))?;
    for batch in letters.chunks(HAND_BACK_BATCH) {
        let refused = copy_confirmed(channel, queue, batch)
            .await
            .with_context(|| format!("handing dead letters back to {queue}"))?;
        if refused > 0 {
            anyhow::bail!(
                "{refused} of {} dead letter(s) read from {queue} could not be handed back (the \
                 broker did not confirm their copies): they are still in the queue, some maybe \
                 twice",
                batch.len()
            );
        }
        for letter in batch {
            letter
                .acker
                .ack(BasicAckOptions::default())
                .await
                .with_context(|| format!("removing a dead letter handed back to {queue}"))?;
        }
    }
    Ok(())
}

/// Publishes a copy of each of `letters` to `queue` on `channel` (in confirm mode) and waits for
/// every confirm; returns how many were not confirmed as taken.
async fn copy_confirmed(
    channel: &Channel,
    queue: &str,
    letters: &[&Delivery],
) -> anyhow::Result<usize> {
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    // All published first, then all confirms awaited: one round trip per batch, not per letter.
    let mut confirms = Vec::with_capacity(letters.len());
    for letter in letters {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                mandatory,
                &letter.data,
                fresh_properties(&letter.properties),
            )
            .await?;
        confirms.push(confirm);
    }
    let deadline = tokio::time::Instant::now() + HAND_BACK_TIMEOUT;
    let mut refused = 0;
    for confirm in confirms {
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => {}
            _ => refused += 1,
        }
    }
    Ok(refused)
}

/// The properties of a letter's copy: the original's, persistent, without the broker's per
/// delivery counters, and with the broker's dead-lettering said in our error header (where
/// [`describe`] looks first) so the copy reads the same whatever the broker does with a
/// client-published `x-death`.
fn fresh_properties(original: &BasicProperties) -> BasicProperties {
    let mut headers = original
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    for name in DELIVERY_COUNT_HEADERS {
        headers.remove(name);
    }
    if headers.contains_key("x-death") && !headers.contains_key(bus::consumer::ERROR_HEADER) {
        headers.insert(
            bus::consumer::ERROR_HEADER.into(),
            AMQPValue::LongString(BROKER_DEAD_LETTERED.into()),
        );
    }
    original
        .clone()
        .with_delivery_mode(2)
        .with_headers(FieldTable::from(headers))
}

/// Closes the channel. Everything it took was acked or handed back by then; what was not (after
/// an error) goes back to its queue, counted as a delivery.
async fn give_back(channel: Channel) {
    drop(channel.close(200, "done".into()).await);
}

async fn close(connection: &Connection) {
    drop(connection.close(200, "bye".into()).await);
}

fn not_found(id: &str) -> anyhow::Error {
    Fault::NotFound(format!(
        "no dead letter with id `{id}` (see `daikai dead list`; AMQP_NAMESPACE right?)"
    ))
    .into()
}

fn message_id(delivery: &Delivery) -> Option<String> {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
}

fn header_text(delivery: &Delivery, name: &str) -> Option<String> {
    match header(delivery, name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn header_int(delivery: &Delivery, name: &str) -> Option<i64> {
    match header(delivery, name)? {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

/// What a dead letter says about itself: headers first, then its envelope (read leniently: a
/// body that is not an envelope is shown as it is).
fn describe(delivery: &Delivery, dead_queue: &str, with_body: bool) -> DeadLetterJson {
    let body: Option<Value> = serde_json::from_slice(&delivery.data).ok();
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let envelope_key = match (field("source"), field("kind")) {
        (Some(source), Some(kind)) => Some(format!("{source}.{kind}")),
        _ => None,
    };
    let error = header_text(delivery, bus::consumer::ERROR_HEADER)
        .or_else(|| header(delivery, "x-death").map(|_| BROKER_DEAD_LETTERED.into()));
    DeadLetterJson {
        id: message_id(delivery),
        dead_queue: dead_queue.to_owned(),
        work_queue: header_text(delivery, bus::consumer::QUEUE_HEADER),
        routing_key: header_text(delivery, bus::consumer::ROUTING_KEY_HEADER).or(envelope_key),
        error,
        attempt: header_int(delivery, bus::consumer::ATTEMPT_HEADER),
        kind: field("kind"),
        suite_id: field("suite_id"),
        corp_id: field("corp_id"),
        received_at: field("received_at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        dedupe_key: field("dedupe_key"),
        correlation_id: delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_owned()),
        body_bytes: delivery.data.len(),
        body: with_body.then(|| {
            body.clone().unwrap_or_else(|| {
                Value::String(String::from_utf8_lossy(&delivery.data).into_owned())
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::ShortString;

    use super::*;

    fn headers(properties: &BasicProperties) -> std::collections::BTreeMap<ShortString, AMQPValue> {
        properties.headers().as_ref().unwrap().inner().clone()
    }

    #[test]
    fn a_copy_keeps_the_letter_but_not_its_delivery_counters() {
        let mut original = FieldTable::default();
        original.insert(
            bus::consumer::ERROR_HEADER.into(),
            AMQPValue::LongString("boom".into()),
        );
        original.insert(
            bus::consumer::ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString("suite.create_auth".into()),
        );
        original.insert("x-delivery-count".into(), AMQPValue::LongLongInt(19));
        original.insert("x-acquired-count".into(), AMQPValue::LongLongInt(19));
        let properties = BasicProperties::default()
            .with_message_id("m1".into())
            .with_correlation_id("c1".into())
            .with_content_type("application/json".into())
            .with_headers(original);

        let copy = fresh_properties(&properties);
        assert_eq!(copy.message_id().as_ref().unwrap().as_str(), "m1");
        assert_eq!(copy.correlation_id().as_ref().unwrap().as_str(), "c1");
        assert_eq!(
            copy.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(*copy.delivery_mode(), Some(2));
        let copied = headers(&copy);
        assert_eq!(
            copied.keys().map(ShortString::as_str).collect::<Vec<_>>(),
            [
                bus::consumer::ERROR_HEADER,
                bus::consumer::ROUTING_KEY_HEADER
            ]
        );
        assert_eq!(
            copied.get(bus::consumer::ERROR_HEADER),
            Some(&AMQPValue::LongString("boom".into()))
        );
    }

    #[test]
    fn a_broker_dead_lettered_copy_says_so_in_our_header() {
        let mut original = FieldTable::default();
        original.insert(
            "x-death".into(),
            AMQPValue::FieldArray(lapin::types::FieldArray::default()),
        );
        let copy = fresh_properties(&BasicProperties::default().with_headers(original));
        let copied = headers(&copy);
        assert!(copied.contains_key("x-death"));
        assert_eq!(
            copied.get(bus::consumer::ERROR_HEADER),
            Some(&AMQPValue::LongString(BROKER_DEAD_LETTERED.into()))
        );
        // Without headers at all, the copy has an empty table and no error of ours.
        let bare = fresh_properties(&BasicProperties::default());
        assert!(headers(&bare).is_empty());
    }
}
