//! Contact-sync figures on this machine, everything local, wecom-sim's limits off
//! (docs/benchmarks.md, "Contact sync"):
//! 1. full import of a 100,000-member corp (2,500 departments, 50 tags) by one worker process:
//!    wall time, rows/s, WeCom calls per member, the worker's peak RSS and CPU;
//! 2. incremental: 20,000 `change_contact` events queued, then drained by two worker processes:
//!    events/s from the first delivery to the last commit, and CPU per event.
//!
//! `cargo bench -p contact-sync --bench sync_load` (Postgres and RabbitMQ as for the tests;
//! `SYNC_BENCH_USERS` / `SYNC_BENCH_EVENTS` scale it down). The workers are the real
//! `daikai-contact-sync` binary as child processes; wecom-sim runs in this process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bus::{
    CallbackOrigin, Envelope, Namespace, Publisher, PublisherConfig, Source, Tenant, TenantEvent,
    TenantStatus, Topology,
};
use serde_json::{Value, json};
use store::directory::runs;
use store::{CorpId, SuiteId};
use wecom::event::{ChangeContact, ContactChange, Event, Framing};

const SUITE_ID: &str = "dkbenchsync01";
const CORP: &str = "wwbenchsync01";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only for the former.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn bench() {
    let users = env_number("SYNC_BENCH_USERS", 100_000);
    let events = env_number("SYNC_BENCH_EVENTS", 20_000);
    let db = test_support::test_db().await;
    let namespace = Namespace::parse(&format!("t{}.", uuid::Uuid::new_v4().simple())).unwrap();
    let (sim_base, _sim_stop) = start_sim();
    let http = reqwest::Client::new();
    let seeded = Instant::now();
    let spec = json!({"corp_id": CORP, "users": users, "departments": users / 40, "tags": 50,
                      "seed": 7, "authorize": [SUITE_ID]});
    post(&http, &format!("{sim_base}/sim/corps?push=false"), &spec).await;
    let summary: Value = http
        .get(format!("{sim_base}/sim/corps/{CORP}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = summary["authorizations"][0]["permanent_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let suite = SuiteId::parse(SUITE_ID).unwrap();
    let corp = CorpId::parse(CORP).unwrap();
    let tenant =
        test_support::active_tenant(db.pool(), &test_support::secrets(), &suite, &corp, &code)
            .await;
    println!("corp of {users} members seeded in {:.2?}", seeded.elapsed());

    let topology = Topology::new(namespace.clone());
    let publisher = Publisher::start(PublisherConfig::new(
        test_support::broker_url(),
        topology.clone(),
        "sync-bench",
    ))
    .unwrap();
    declare(&topology).await;

    // 1. Full import.
    let mut worker = spawn_worker(db.url(), &namespace, &sim_base, 19191);
    wait_ready(&http, 19191).await;
    let cpu_before = cpu_seconds(worker.id());
    let started = Instant::now();
    publish_tenant(&publisher, TenantEvent::Activated, &suite, &corp).await;
    let run = loop {
        let mut conn = db.pool().acquire().await.unwrap();
        let latest = runs::recent_runs(&mut conn, tenant.id, 1).await.unwrap();
        if let Some(run) = latest
            .into_iter()
            .next()
            .filter(|r| r.status == "completed")
        {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(worker.id()) - cpu_before;
    let peak_rss = peak_rss_mib(worker.id());
    let rows = run.departments + run.users + run.tags;
    println!(
        "full import: {users} members, {} departments, {} tags in {:.2} s ({:.0} rows/s); {} WeCom calls ({:.4} per member), {} pages; worker CPU {:.2} s, peak RSS {:.0} MiB",
        run.departments,
        run.tags,
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        run.api_calls,
        run.api_calls as f64 / users as f64,
        run.pages,
        cpu,
        peak_rss
    );

    // 2. Incremental: queue the events with no consumer, then drain them with two replicas.
    stop(&mut worker);
    let members = mirrored_members(&db, tenant.id).await;
    let total = queue_updates(&http, &sim_base, &publisher, &members, events).await;
    let mut replicas = [
        spawn_worker(db.url(), &namespace, &sim_base, 19192),
        spawn_worker(db.url(), &namespace, &sim_base, 19193),
    ];
    let started = Instant::now();
    let cpu_before: f64 = replicas.iter().map(|r| cpu_seconds(r.id())).sum();
    loop {
        let acked = acked(&http, 19192).await + acked(&http, 19193).await;
        if acked >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu: f64 = replicas.iter().map(|r| cpu_seconds(r.id())).sum::<f64>() - cpu_before;
    println!(
        "incremental: {total} change_contact events drained by 2 replicas in {:.2} s: {:.0} events/s end to end (queue → committed rows); worker CPU {:.2} ms per event",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        cpu * 1000.0 / total as f64
    );
    for replica in &mut replicas {
        stop(replica);
    }
}

/// The userids the full import wrote: the members the incremental events update.
async fn mirrored_members(db: &store::testing::TestDatabase, tenant_id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "select user_id from directory_users where tenant_id = $1 and deleted_at is null",
    )
    .bind(tenant_id)
    .fetch_all(db.pool())
    .await
    .unwrap()
}

fn start_sim() -> (String, tokio_util::sync::CancellationToken) {
    let suites = wecom::suite::Suites::from_toml(&format!(
        "[suites.{SUITE_ID}]\nsuite_secret = \"s\"\ntoken = \"t\"\nencoding_aes_key = \"{AES_KEY}\"\n"
    ))
    .unwrap();
    let config = wecom_sim::SimConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        ticket_interval: Duration::ZERO,
        ticket_on_start: false,
        suites: suites.iter().cloned().collect(),
        ..wecom_sim::SimConfig::default()
    };
    let app = wecom_sim::build(config).unwrap();
    let base = app.base_url().trim_end_matches('/').to_owned();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    (base, stop)
}

async fn declare(topology: &Topology) {
    let connection = bus::connect(&test_support::broker_url(), "sync-bench-topology")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    topology.declare(&channel).await.unwrap();
}

fn spawn_worker(database_url: &str, namespace: &Namespace, sim_base: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_daikai-contact-sync"))
        .env("DATABASE_URL", database_url)
        .env("AMQP_URL", test_support::amqp_url())
        .env("AMQP_NAMESPACE", namespace.as_str())
        .env("WECOM_API_BASE", sim_base)
        .env("DAIKAI_SECRET_KEY", SECRET_KEY)
        .env("HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "CONTACT_SYNC_PREFETCH",
            bench_setting("SYNC_BENCH_PREFETCH", "16"),
        )
        .env(
            "DATABASE_MAX_CONNECTIONS",
            bench_setting("SYNC_BENCH_CONNECTIONS", "40"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the daikai-contact-sync binary")
}

/// A bench knob from the environment (to try other settings side by side).
fn bench_setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

async fn wait_ready(http: &reqwest::Client, port: u16) {
    for _ in 0..300 {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("worker on {port} never became ready");
}

async fn acked(http: &reqwest::Client, port: u16) -> u64 {
    let Ok(response) = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("daikai_contact_messages_total") && l.contains("outcome=\"acked\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = http.post(url).json(body).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

async fn publish_tenant(
    publisher: &Publisher,
    make: fn(Tenant) -> TenantEvent,
    suite: &SuiteId,
    corp: &CorpId,
) {
    let tenant = Tenant {
        suite_id: suite.clone(),
        corp_id: corp.clone(),
        corp_name: None,
        agent_id: None,
        status: TenantStatus::Active,
    };
    publisher
        .publish(
            &Envelope::internal(make(tenant), &uuid::Uuid::new_v4().to_string()),
            "bench",
        )
        .await
        .unwrap();
}

/// `events` position changes of existing members, made in the simulator and published as the
/// ingress would (app framing), 200 at a time in flight.
async fn queue_updates(
    http: &reqwest::Client,
    sim_base: &str,
    publisher: &Publisher,
    members: &[String],
    events: u64,
) -> u64 {
    use futures_util::StreamExt;
    let started = Instant::now();
    let published = futures_util::stream::iter(0..events)
        .map(|i| async move {
            let userid = &members[usize::try_from(i * 7919).unwrap() % members.len()];
            let url = format!("{sim_base}/sim/corps/{CORP}/users/{userid}?push=false");
            let response = http
                .patch(url)
                .json(&json!({"position": format!("p{i}")}))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{userid}: {}",
                response.status()
            );
            let answer: Value = response.json().await.unwrap();
            let Ok(change) = serde_json::from_value::<ContactChange>(answer["change"].clone())
            else {
                return 0;
            };
            publish_change(publisher, change, 1_700_000_000 + i64::try_from(i).unwrap()).await;
            1
        })
        .buffer_unordered(200)
        .fold(0, |n, one| async move { n + one })
        .await;
    println!(
        "{published} change_contact events queued in {:.2?}",
        started.elapsed()
    );
    published
}

async fn publish_change(publisher: &Publisher, change: ContactChange, time: i64) {
    let corp = CorpId::parse(CORP).unwrap();
    let event = Event::ChangeContact(ChangeContact {
        framing: Framing::App,
        suite_id: None,
        auth_corp_id: Some(corp.clone()),
        from_user_name: Some("sys".to_owned()),
        agent_id: None,
        time: Some(time),
        change,
    });
    let xml = event.to_xml();
    let suite = SuiteId::parse(SUITE_ID).unwrap();
    let envelope = Envelope::from_callback(
        CallbackOrigin {
            source: Source::App,
            suite_id: &suite,
            corp_id: Some(&corp),
            receive_id: corp.as_str(),
        },
        xml,
        event,
    );
    publisher.publish(&envelope, "bench").await.unwrap();
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

/// VmHWM of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
