//! `daikai dead replay` against a real auth worker (in-process), the real Postgres and RabbitMQ
//! and wecom-sim, each test with its own database and AMQP namespace.
//!
//! The dead letters are made the way production makes them: an auth worker that does not have
//! the suite configured dead-letters the ingress's envelopes ("suite … is not configured in this
//! worker"). The operator then "fixes the cause" — a worker with the suite takes over — and
//! replays them with the `daikai` binary. A replayed letter must really be re-delivered and
//! applied once: the AuthCode exchanged with one WeCom call, the ticket stored once; replaying a
//! second copy of the same message applies nothing twice (no WeCom call, the rows unchanged).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bus::{
    CallbackOrigin, Envelope, Publisher, PublisherConfig, Source, Tenant, TenantEvent,
    TenantStatus, WorkQueue,
};
use common::{SECRET_KEY, World, json_of, success};
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use serde_json::{Value, json};
use store::auth_codes::{AuthCodeHash, AuthCodeRecord, AuthCodeState};
use store::{CorpId, SuiteId};
use test_support::{DEADLINE, wait_until};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wecom::event::{CreateAuth, Event, SuiteTicket};
use wecom_sim::{CorpSpec, PushOpts, Sim, SimConfig};

/// The suite the fixed worker serves.
const SUITE: &str = "dkclireplay01";
/// The only suite the misconfigured worker knows.
const OTHER_SUITE: &str = "dkclireplay99";
const SUITE_SECRET: &str = "suite-secret-for-cli-tests";
const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const NO_PUSH: PushOpts = PushOpts {
    push: false,
    wait: false,
};
const NOT_CONFIGURED: &str = "is not configured in this worker";

fn suite() -> SuiteId {
    SuiteId::parse(SUITE).unwrap()
}

/// An auth-worker replica running in this process.
struct Worker {
    metrics: auth_worker::Metrics,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    /// `daikai_auth_messages_total{kind, outcome}`.
    fn messages(&self, kind: &str, outcome: &str) -> u64 {
        self.metrics
            .messages
            .get_metric_with_label_values(&[kind, outcome])
            .map_or(0, |c| c.get())
    }

    /// `daikai_suite_tickets_total{suite_id, result}`.
    fn tickets(&self, result: &str) -> u64 {
        self.metrics
            .tickets
            .get_metric_with_label_values(&[SUITE, result])
            .map_or(0, |c| c.get())
    }

    async fn wait_messages(&self, kind: &str, outcome: &str, count: u64) {
        wait_until(&format!("{count} {kind} message(s) {outcome}"), || {
            let seen = self.messages(kind, outcome);
            async move { seen >= count }
        })
        .await;
        assert_eq!(self.messages(kind, outcome), count, "{kind} {outcome}");
    }

    /// Graceful stop: returns once in-flight messages are settled.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the worker stops in time")
            .unwrap()
            .unwrap();
    }
}

/// A world, wecom-sim serving [`SUITE`], and a publisher that publishes as the ingress does.
struct Stack {
    world: World,
    sim: Arc<Sim>,
    sim_base: String,
    sim_stop: CancellationToken,
    publisher: Publisher,
    admin: Connection,
}

impl Stack {
    async fn start() -> Self {
        test_support::init_logs();
        let world = World::new().await;
        let app = wecom_sim::build(SimConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            ticket_interval: Duration::ZERO,
            ticket_on_start: false,
            suites: suites(SUITE).iter().cloned().collect(),
            ..SimConfig::default()
        })
        .unwrap();
        let sim_base = app.base_url();
        let sim = app.sim();
        let sim_stop = CancellationToken::new();
        tokio::spawn(app.run(sim_stop.clone()));
        let publisher = Publisher::start(PublisherConfig::new(
            test_support::broker_url(),
            world.topology(),
            "cli-replay-test",
        ))
        .unwrap();
        assert!(publisher.wait_ready(DEADLINE).await, "broker reachable");
        let admin = bus::connect(&test_support::broker_url(), "cli-replay-test")
            .await
            .unwrap();
        Self {
            world,
            sim,
            sim_base,
            sim_stop,
            publisher,
            admin,
        }
    }

    /// An auth worker serving `suite` only, consuming `prefetch` messages at a time.
    async fn worker(&self, suite: &str, prefetch: u16) -> Worker {
        let vars: BTreeMap<&str, String> = [
            ("DATABASE_URL", self.world.db.url().to_owned()),
            ("AMQP_URL", self.world.amqp_url.clone()),
            ("AMQP_NAMESPACE", self.world.namespace.as_str().to_owned()),
            ("WECOM_API_BASE", self.sim_base.clone()),
            ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
            ("WECOM_SUITE_ID", suite.to_owned()),
            ("WECOM_SUITE_SECRET", SUITE_SECRET.to_owned()),
            ("WECOM_TOKEN", TOKEN.to_owned()),
            ("WECOM_ENCODING_AES_KEY", AES_KEY.to_owned()),
            ("HEALTH_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "10".to_owned()),
            ("AUTH_WORKER_PREFETCH", prefetch.to_string()),
            ("LOG_FORMAT", "pretty".to_owned()),
        ]
        .into();
        let config = auth_worker::Config::from_lookup(
            |name| vars.get(name).cloned(),
            |path| Err(std::io::Error::other(format!("no file {}", path.display()))),
        )
        .unwrap();
        let app = auth_worker::Application::build(config).await.unwrap();
        let metrics = app.metrics().clone();
        let status = app.consumer_status();
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run(stop.clone()));
        wait_until("the auth worker consumes", || {
            let consuming = status.is_consuming();
            async move { consuming }
        })
        .await;
        Worker {
            metrics,
            stop,
            task,
        }
    }

    /// A corp in the simulator that authorizes [`SUITE`]: the create_auth WeCom would push and
    /// the corp id.
    fn authorize(&self, name: &str) -> (Event, String) {
        let spec = CorpSpec {
            name: Some(name.to_owned()),
            users: Some(3),
            ..CorpSpec::default()
        };
        let (summary, _) = self.sim.create_corp(&spec, NO_PUSH).unwrap();
        let (granted, _) = self
            .sim
            .authorize(&summary.corp_id, Some(&suite()), None, NO_PUSH)
            .unwrap();
        let event = Event::CreateAuth(CreateAuth {
            suite_id: SUITE.parse().unwrap(),
            auth_code: granted.auth_code.parse().unwrap(),
            timestamp: self.sim.clock.now_secs(),
            state: None,
            extra_info: None,
        });
        (event, summary.corp_id.to_string())
    }

    /// A suite ticket the simulator issued (and will accept).
    fn ticket(&self) -> Event {
        let (issued, _) = self.sim.push_ticket(Some(&suite()), NO_PUSH).unwrap();
        Event::SuiteTicket(SuiteTicket {
            suite_id: SUITE.parse().unwrap(),
            suite_ticket: issued.suite_ticket.parse().unwrap(),
            timestamp: issued.timestamp,
        })
    }

    /// Publishes `event` as the ingress would, `copies` times (one envelope: the same message
    /// id and dedupe key each time, as a publisher retrying after a lost confirm sends it).
    async fn publish(&self, event: &Event, copies: usize) -> Envelope {
        let origin = CallbackOrigin {
            source: Source::Suite,
            suite_id: &suite(),
            corp_id: None,
            receive_id: SUITE,
        };
        let envelope = Envelope::from_callback(origin, event.to_xml(), event.clone());
        for _ in 0..copies {
            self.publisher
                .publish(&envelope, &format!("req-{}", envelope.id))
                .await
                .unwrap();
        }
        envelope
    }

    /// Publishes each event (with its number of copies) to a worker that does not serve
    /// [`SUITE`], which dead-letters every copy; returns the envelopes once all are in
    /// `wecom.auth.dead` and that worker is stopped.
    async fn dead_letter_through_a_misconfigured_worker(
        &self,
        events: &[(&Event, usize)],
    ) -> Vec<Envelope> {
        // One at a time: the dead queue keeps the order they were published in.
        let worker = self.worker(OTHER_SUITE, 1).await;
        let mut envelopes = Vec::new();
        for (event, copies) in events {
            envelopes.push(self.publish(event, *copies).await);
        }
        let total: usize = events.iter().map(|(_, copies)| copies).sum();
        wait_until("the misconfigured worker dead-letters everything", || {
            let dead = ["suite_ticket", "create_auth"]
                .iter()
                .map(|kind| worker.messages(kind, "dead_lettered"))
                .sum::<u64>();
            async move { usize::try_from(dead).unwrap() >= total }
        })
        .await;
        worker.stop().await;
        let dead = self.world.topology().queue(WorkQueue::Auth).dead.clone();
        assert_eq!(
            usize::try_from(self.world.depth(&dead).await).unwrap(),
            total
        );
        envelopes
    }

    /// WeCom API calls the simulator answered, by API.
    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.sim.stats.snapshot().api_calls
    }

    /// `get_permanent_code` calls, both versions.
    fn exchange_calls(&self) -> u64 {
        let calls = self.api_calls();
        [
            "service/v2/get_permanent_code",
            "service/get_permanent_code",
        ]
        .iter()
        .map(|api| calls.get(*api).copied().unwrap_or(0))
        .sum()
    }

    async fn tenant(&self, corp: &str) -> Option<store::tenants::Tenant> {
        test_support::tenant(
            self.world.db.pool(),
            &suite(),
            &CorpId::parse(corp).unwrap(),
        )
        .await
    }

    /// Waits until the corp's tenant is active with its auth info (the exchange applied).
    async fn wait_active(&self, corp: &str) -> store::tenants::Tenant {
        test_support::wait_tenant(
            self.world.db.pool(),
            &suite(),
            &CorpId::parse(corp).unwrap(),
            |t| t.status == store::tenants::TenantStatus::Active && t.auth_info.is_some(),
        )
        .await
    }

    async fn auth_code(&self, event: &Event) -> AuthCodeRecord {
        let Event::CreateAuth(create) = event else {
            panic!("not a create_auth: {event:?}")
        };
        let mut conn = self.world.db.pool().acquire().await.unwrap();
        store::auth_codes::auth_code(&mut conn, &AuthCodeHash::of(create.auth_code.expose()))
            .await
            .unwrap()
            .expect("the AuthCode is recorded")
    }

    /// The stored ticket's (ticket, WeCom time, received at), if any.
    async fn stored_ticket(&self) -> Option<(String, i64, chrono::DateTime<chrono::Utc>)> {
        let mut conn = self.world.db.pool().acquire().await.unwrap();
        store::suites::ticket(&mut conn, &test_support::secrets(), &suite())
            .await
            .unwrap()
            .map(|t| {
                (
                    secrecy::ExposeSecret::expose_secret(&t.ticket).to_owned(),
                    t.wecom_time.timestamp(),
                    t.received_at,
                )
            })
    }

    async fn close(self) {
        self.publisher.close().await;
        drop(self.admin.close(200, "bye".into()).await);
        self.sim_stop.cancel();
        self.world.teardown().await;
    }
}

fn suites(id: &str) -> wecom::suite::Suites {
    wecom::suite::Suites::from_toml(&format!(
        "[suites.{id}]\nsuite_secret = \"{SUITE_SECRET}\"\ntoken = \"{TOKEN}\"\n\
         encoding_aes_key = \"{AES_KEY}\"\n"
    ))
    .unwrap()
}

/// A queue of the test's own bound to the events exchange with `#`: every message published
/// there, with the routing key it was published with.
struct Spy {
    channel: Channel,
    queue: String,
}

impl Spy {
    async fn bind(stack: &Stack) -> Self {
        let channel = stack.admin.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = declared.name().as_str().to_owned();
        channel
            .queue_bind(
                queue.as_str().into(),
                stack.world.topology().events_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self { channel, queue }
    }

    /// Takes what was published since the last call: routing keys by message id, for the
    /// message ids in `ids` (the worker's own `tenant.*` events are not counted).
    async fn published(&self, ids: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        while let Some(got) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let id = got
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default();
            if ids.contains(&id) {
                seen.entry(id)
                    .or_default()
                    .push(got.delivery.routing_key.as_str().to_owned());
            }
        }
        seen
    }
}

/// The dead letters `dead list QUEUE --json` shows, by id.
fn listed(world: &World, queue: &str) -> Vec<Value> {
    json_of(&world.run(&["dead", "list", queue, "--json"]))
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_auth_dead_letter_is_applied_once_and_a_second_replay_applies_nothing() {
    let stack = Stack::start().await;
    let world = &stack.world;
    let ticket = stack.ticket();
    let (create, corp) = stack.authorize("Replay Once");
    // Each message dead-lettered twice: a second copy to replay after the first is applied.
    let envelopes = stack
        .dead_letter_through_a_misconfigured_worker(&[(&ticket, 2), (&create, 2)])
        .await;
    let (ticket_id, create_id) = (envelopes[0].id.to_string(), envelopes[1].id.to_string());

    let letters = listed(world, "auth");
    assert_eq!(letters.len(), 4, "{letters:?}");
    for letter in &letters {
        let envelope = envelopes
            .iter()
            .find(|e| letter["id"] == json!(e.id.to_string()))
            .unwrap_or_else(|| panic!("an unknown dead letter: {letter}"));
        assert_eq!(letter["routing_key"], json!(envelope.routing_key()));
        assert_eq!(letter["dedupe_key"], json!(envelope.dedupe_key.as_str()));
        assert_eq!(letter["kind"], json!(envelope.kind));
        assert_eq!(
            letter["work_queue"],
            json!(world.topology().queue(WorkQueue::Auth).work)
        );
        let error = letter["error"].as_str().unwrap();
        assert!(error.contains(NOT_CONFIGURED), "{letter}");
    }
    assert!(
        stack.tenant(&corp).await.is_none(),
        "nothing applied while parked"
    );

    // The cause is fixed: a worker that serves the suite takes over.
    let worker = stack.worker(SUITE, 4).await;

    let out = success(&world.run(&["dead", "replay", &ticket_id]));
    assert!(
        out.contains(&format!("{ticket_id} → suite.suite_ticket")),
        "{out}"
    );
    assert!(out.contains("replayed 1 dead letter(s)"), "{out}");
    worker.wait_messages("suite_ticket", "acked", 1).await;
    let stored = stack.stored_ticket().await.expect("the ticket is stored");
    assert_eq!(worker.tickets("stored"), 1);

    let out = success(&world.run(&["dead", "replay", &create_id]));
    assert!(
        out.contains(&format!("{create_id} → suite.create_auth")),
        "{out}"
    );
    worker.wait_messages("create_auth", "acked", 1).await;
    let tenant = stack.wait_active(&corp).await;
    assert_eq!(stack.exchange_calls(), 1, "{:?}", stack.api_calls());
    let code = stack.auth_code(&create).await;
    assert_eq!(
        (code.state, code.attempts),
        (AuthCodeState::Exchanged, 1),
        "{code:?}"
    );
    assert_eq!(code.corp_id.as_ref().map(CorpId::as_str), Some(&*corp));
    let calls = stack.api_calls();

    // Each message's second copy: replayed, delivered, and nothing applied twice.
    assert_eq!(listed(world, "auth").len(), 2);
    success(&world.run(&["dead", "replay", &create_id]));
    worker.wait_messages("create_auth", "acked", 2).await;
    success(&world.run(&["dead", "replay", &ticket_id]));
    worker.wait_messages("suite_ticket", "acked", 2).await;

    assert_eq!(stack.api_calls(), calls, "a duplicate called WeCom");
    assert_eq!(stack.exchange_calls(), 1);
    assert_eq!(stack.tenant(&corp).await.unwrap(), tenant);
    assert_eq!(stack.auth_code(&create).await, code);
    assert_eq!(stack.stored_ticket().await.unwrap(), stored);
    assert_eq!(
        (worker.tickets("stored"), worker.tickets("ignored_older")),
        (1, 0),
        "the second ticket copy was applied (the inbox should have recognised it)"
    );
    for outcome in ["retried", "dead_lettered", "requeued"] {
        assert_eq!(worker.messages("create_auth", outcome), 0, "{outcome}");
        assert_eq!(worker.messages("suite_ticket", outcome), 0, "{outcome}");
    }

    assert_eq!(listed(world, "auth"), Vec::<Value>::new());
    let gone = world.run(&["dead", "replay", &create_id]);
    assert_eq!(gone.status.code(), Some(6), "{}", common::stderr(&gone));
    worker.stop().await;
    stack.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_all_sends_every_dead_letter_to_its_routing_key_once_and_empties_the_queue() {
    let stack = Stack::start().await;
    let world = &stack.world;
    let ticket = stack.ticket();
    let (create_a, corp_a) = stack.authorize("Replay All A");
    let (create_b, corp_b) = stack.authorize("Replay All B");
    let auth_letters = stack
        .dead_letter_through_a_misconfigured_worker(&[(&ticket, 1), (&create_a, 1), (&create_b, 1)])
        .await;
    // And one in the other dead queue, which `--queue auth` must leave alone.
    let sync = Envelope::internal(
        TenantEvent::SyncRequested(Tenant {
            suite_id: suite(),
            corp_id: CorpId::parse(&corp_a).unwrap(),
            corp_name: None,
            agent_id: None,
            status: TenantStatus::Active,
        }),
        "replay-all-test",
    );
    world.dead_letter(WorkQueue::Contacts, &sync, 1).await;

    let original: BTreeMap<String, String> = auth_letters
        .iter()
        .chain([&sync])
        .map(|e| (e.id.to_string(), e.routing_key()))
        .collect();
    let ids: BTreeSet<String> = original.keys().cloned().collect();
    let spy = Spy::bind(&stack).await;
    // One message at a time, in queue order: the ticket is stored before the exchanges need it.
    let worker = stack.worker(SUITE, 1).await;

    let out = success(&world.run(&["dead", "replay", "--all", "--queue", "auth"]));
    assert!(out.contains("replayed 3 dead letter(s)"), "{out}");
    // In queue order, the order they were dead-lettered in.
    for (step, envelope) in auth_letters.iter().enumerate() {
        let line = format!(
            "[{}/3] {} → {}",
            step + 1,
            envelope.id,
            envelope.routing_key()
        );
        assert!(out.contains(&line), "no progress line `{line}`: {out}");
    }
    // Confirmed publishes: the spy holds them by the time the command returned.
    let published = spy.published(&ids).await;
    let expected: BTreeMap<String, Vec<String>> = auth_letters
        .iter()
        .map(|e| (e.id.to_string(), vec![e.routing_key()]))
        .collect();
    assert_eq!(published, expected, "each auth letter once, to its key");
    assert_eq!(listed(world, "auth"), Vec::<Value>::new());
    let contacts = listed(world, "contacts");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["id"], json!(sync.id.to_string()));

    // The worker applied each once.
    stack.wait_active(&corp_a).await;
    stack.wait_active(&corp_b).await;
    worker.wait_messages("create_auth", "acked", 2).await;
    worker.wait_messages("suite_ticket", "acked", 1).await;
    assert!(stack.stored_ticket().await.is_some());
    assert_eq!(stack.exchange_calls(), 2, "{:?}", stack.api_calls());
    for create in [&create_a, &create_b] {
        let code = stack.auth_code(create).await;
        assert_eq!((code.state, code.attempts), (AuthCodeState::Exchanged, 1));
    }

    // Without --queue: what is left (the contacts letter), once.
    let out = success(&world.run(&["dead", "replay", "--all"]));
    assert!(out.contains("replayed 1 dead letter(s)"), "{out}");
    let published = spy.published(&ids).await;
    assert_eq!(
        published,
        BTreeMap::from([(
            sync.id.to_string(),
            vec![original[&sync.id.to_string()].clone()]
        )])
    );
    assert_eq!(
        json_of(&world.run(&["dead", "list", "--json"])),
        json!([]),
        "every dead queue is empty"
    );

    // Nothing left: a third replay publishes nothing.
    let out = success(&world.run(&["dead", "replay", "--all"]));
    assert!(out.contains("replayed 0 dead letter(s)"), "{out}");
    assert_eq!(spy.published(&ids).await, BTreeMap::new());
    assert_eq!(stack.exchange_calls(), 2);

    worker.stop().await;
    stack.close().await;
}
