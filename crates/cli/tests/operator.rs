//! The operator commands against the real Postgres and RabbitMQ, each test with its own database
//! and AMQP namespace: `status` as a check, `tenants show`, `sync`, dead letters replayed into a
//! real contact-sync (applied once however often they are replayed), exit codes and `--json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bus::{Envelope, Tenant, TenantEvent, TenantStatus, WorkQueue};
use common::{SECRET_KEY, World, daikai, json_of, stderr, stdout};
use serde_json::{Value, json};
use store::{CorpId, SuiteId};
use tokio_util::sync::CancellationToken;

const SUITE: &str = "dkclisuite01";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

#[tokio::test]
async fn status_is_zero_on_a_healthy_stack_and_three_with_a_stale_ticket() {
    let world = World::new().await;
    world.ticket(SUITE, Duration::from_secs(60)).await;
    test_support::active_tenant(
        world.db.pool(),
        &test_support::secrets(),
        &SuiteId::parse(SUITE).unwrap(),
        &CorpId::parse("wwhealthy").unwrap(),
        "CODE",
    )
    .await;

    let healthy = world.run(&["status"]);
    assert_eq!(
        healthy.status.code(),
        Some(0),
        "{}{}",
        stdout(&healthy),
        stderr(&healthy)
    );
    let text = stdout(&healthy);
    assert!(text.contains("nothing needs attention"), "{text}");
    assert!(
        text.contains(&format!("{}wecom.auth.dead", world.namespace.as_str())),
        "{text}"
    );

    let json = json_of(&world.run(&["status", "--json"]));
    assert_eq!(json["healthy"], json!(true), "{json}");
    assert_eq!(json["schema"]["current"], json!(true));
    assert_eq!(json["broker"]["reachable"], json!(true));
    assert_eq!(json["broker"]["queues"].as_array().unwrap().len(), 13);
    assert_eq!(json["suites"][0]["suite_id"], json!(SUITE));
    assert_eq!(json["suites"][0]["stale"], json!(false));
    assert_eq!(json["tenants"]["active"], json!(1));
    for field in ["tokens", "failed_auth_codes_24h", "sync_runs", "attention"] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }

    world
        .ticket("dkstalesuite", Duration::from_secs(25 * 60))
        .await;
    let stale = world.run(&["status"]);
    assert_eq!(stale.status.code(), Some(3), "{}", stdout(&stale));
    assert!(
        stdout(&stale).contains("dkstalesuite: newest ticket is 25m"),
        "{}",
        stdout(&stale)
    );
    let json = json_of(&world.run(&["status", "--json"]));
    assert_eq!(json["healthy"], json!(false));
    world.teardown().await;
}

#[tokio::test]
async fn unreachable_database_and_broker_have_their_exit_codes_and_masked_urls() {
    let out = daikai(
        &["tenants", "list"],
        &[("DATABASE_URL", "postgres://ops:hunter2@127.0.0.1:1/daikai")],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("cannot connect to the database at postgres://ops:***@127.0.0.1:1/daikai"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"));

    let out = daikai(
        &["dead", "list"],
        &[("AMQP_URL", "amqp://guest:hunter2@127.0.0.1:1/%2f")],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot connect to the broker at amqp://guest:***@127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2"));
}

#[tokio::test]
async fn tenants_show_has_the_documented_fields_and_an_unknown_corp_is_not_found() {
    let world = World::new().await;
    test_support::active_tenant(
        world.db.pool(),
        &test_support::secrets(),
        &SuiteId::parse(SUITE).unwrap(),
        &CorpId::parse("wwshow").unwrap(),
        "CODE",
    )
    .await;
    let out = world.run(&["tenants", "show", "wwshow", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = json_of(&out);
    assert_eq!(json["status"], json!("active"));
    assert_eq!(json["agent_id"], json!(1_000_002));
    assert_eq!(
        json["directory"],
        json!({"departments": 0, "users": 0, "tags": 0})
    );
    for field in [
        "suite_id",
        "corp_id",
        "corp_name",
        "created_at",
        "activated_at",
        "updated_at",
        "revoked_at",
        "scope",
        "privilege",
        "corp_token",
        "last_full_sync",
        "running_sync",
        "auth_codes",
        "permanent_code_key_id",
    ] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
    let text = stdout(&world.run(&["tenants", "show", "wwshow"]));
    assert!(
        text.contains("status       active") && text.contains("Acme"),
        "{text}"
    );
    assert!(!text.contains("CODE"), "{text}");

    let list = json_of(&world.run(&["tenants", "list", "--suite", SUITE, "--json"]));
    assert_eq!(list[0]["corp_id"], json!("wwshow"));

    let missing = world.run(&["tenants", "show", "wwnobody"]);
    assert_eq!(missing.status.code(), Some(6));
    assert!(stderr(&missing).contains("no tenant with corp id `wwnobody`"));
    world.teardown().await;
}

/// wecom-sim with one corp authorizing the suite, and its active tenant in the database.
async fn authorized_corp(world: &World, corp: &str) -> (String, CancellationToken, i64) {
    let suites = wecom::suite::Suites::from_toml(&format!(
        "[suites.{SUITE}]\nsuite_secret = \"suite-secret\"\ntoken = \"token\"\n\
         encoding_aes_key = \"{AES_KEY}\"\n"
    ))
    .unwrap();
    let app = wecom_sim::build(wecom_sim::SimConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ticket_interval: Duration::ZERO,
        ticket_on_start: false,
        suites: suites.iter().cloned().collect(),
        ..wecom_sim::SimConfig::default()
    })
    .unwrap();
    let base = app.base_url().trim_end_matches('/').to_owned();
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/sim/corps?push=false"))
        .json(&json!({"corp_id": corp, "users": 12, "departments": 3, "seed": 7, "authorize": [SUITE]}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let summary: Value = http
        .get(format!("{base}/sim/corps/{corp}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = summary["authorizations"][0]["permanent_code"]
        .as_str()
        .unwrap();
    let tenant = test_support::active_tenant(
        world.db.pool(),
        &test_support::secrets(),
        &SuiteId::parse(SUITE).unwrap(),
        &CorpId::parse(corp).unwrap(),
        code,
    )
    .await;
    (base, stop, tenant.id)
}

async fn contact_sync(world: &World, sim_base: &str) -> CancellationToken {
    let vars = [
        ("DATABASE_URL", world.db.url().to_owned()),
        ("AMQP_URL", world.amqp_url.clone()),
        ("AMQP_NAMESPACE", world.namespace.as_str().to_owned()),
        ("WECOM_API_BASE", sim_base.to_owned()),
        ("DAIKAI_SECRET_KEY", SECRET_KEY.to_owned()),
        ("HEALTH_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "pretty".to_owned()),
    ];
    let config = contact_sync::Config::from_lookup(|name| {
        vars.iter()
            .find(|(v, _)| *v == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap();
    let app = contact_sync::Application::build(config).await.unwrap();
    let status = app.consumer_status();
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    test_support::wait_until("contact sync consumes", || {
        let status = status.clone();
        async move { status.is_consuming() }
    })
    .await;
    stop
}

async fn completed_runs(world: &World, tenant: i64) -> Vec<store::directory::runs::SyncRun> {
    let mut conn = world.db.pool().acquire().await.unwrap();
    store::directory::runs::recent_runs(&mut conn, tenant, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == "completed")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_requests_a_run_and_replaying_a_dead_letter_twice_changes_the_mirror_once() {
    let world = World::new().await;
    let (sim_base, sim_stop, tenant) = authorized_corp(&world, "wwreplay").await;
    let worker = contact_sync(&world, &sim_base).await;

    let out = world.run(&["sync", "wwreplay"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("requested a full sync"),
        "{}",
        stdout(&out)
    );
    test_support::wait_until("the requested run completes", || async {
        completed_runs(&world, tenant).await.len() == 1
    })
    .await;
    let runs = json_of(&world.run(&["sync", "status", "wwreplay", "--json"]));
    assert_eq!(runs[0]["reason"], json!("requested"), "{runs}");
    assert_eq!(runs[0]["status"], json!("completed"));
    assert!(runs[0]["users"].as_i64().unwrap() > 0, "{runs}");

    // The same sync request, dead-lettered twice (e.g. once by each of two attempts).
    let envelope = Envelope::internal(
        TenantEvent::SyncRequested(Tenant {
            suite_id: SuiteId::parse(SUITE).unwrap(),
            corp_id: CorpId::parse("wwreplay").unwrap(),
            corp_name: None,
            agent_id: None,
            status: TenantStatus::Active,
        }),
        "replayed-by-test",
    );
    world.dead_letter(WorkQueue::Contacts, &envelope, 2).await;
    let id = envelope.id.to_string();
    let listed = json_of(&world.run(&["dead", "list", "contacts", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["id"], json!(id));
    assert_eq!(
        listed[0]["routing_key"],
        json!("internal.tenant.sync_requested")
    );
    assert_eq!(listed[0]["error"], json!("handler panicked: test"));
    let shown = world.run(&["dead", "show", &id]);
    assert!(
        stdout(&shown).contains("handler panicked: test"),
        "{}",
        stdout(&shown)
    );
    let status = world.run(&["status"]);
    assert_eq!(status.status.code(), Some(3), "dead letters need attention");

    let first = world.run(&["dead", "replay", &id]);
    assert!(first.status.success(), "{}", stderr(&first));
    test_support::wait_until("the replayed request runs", || async {
        completed_runs(&world, tenant).await.len() == 2
    })
    .await;
    let mirror = store::directory::counts(&mut world.db.pool().acquire().await.unwrap(), tenant)
        .await
        .unwrap();
    // contact sync keeps no inbox (docs/contact-sync.md §3): its effect is a read of WeCom's
    // state, so the second replay runs again and finds nothing to change.
    let second = world.run(&["dead", "replay", &id]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stdout(&second).contains("replayed 1 dead letter(s)"));
    test_support::wait_until("the second replay's run completes", || async {
        completed_runs(&world, tenant).await.len() == 3
    })
    .await;
    let again = &completed_runs(&world, tenant).await[0];
    assert_eq!(
        (again.rows_added, again.rows_changed, again.rows_removed),
        (0, 0, 0),
        "the second replay changed the mirror: {again:?}"
    );
    let after = store::directory::counts(&mut world.db.pool().acquire().await.unwrap(), tenant)
        .await
        .unwrap();
    assert_eq!(after, mirror);
    let listed = json_of(&world.run(&["dead", "list", "--json"]));
    assert_eq!(listed, json!([]));
    assert_eq!(world.run(&["dead", "replay", &id]).status.code(), Some(6));

    worker.cancel();
    sim_stop.cancel();
    world.teardown().await;
}

#[tokio::test]
async fn purge_keeps_younger_letters_and_removes_older_ones() {
    let world = World::new().await;
    let mut old = Envelope::internal(
        TenantEvent::SyncRequested(Tenant {
            suite_id: SuiteId::parse(SUITE).unwrap(),
            corp_id: CorpId::parse("wwpurge").unwrap(),
            corp_name: None,
            agent_id: None,
            status: TenantStatus::Active,
        }),
        "old",
    );
    old.received_at = chrono::Utc::now() - chrono::TimeDelta::days(3);
    world.dead_letter(WorkQueue::Contacts, &old, 1).await;
    let young = Envelope::internal(old.tenant_event().unwrap().clone(), "young");
    world.dead_letter(WorkQueue::Contacts, &young, 1).await;

    let out = world.run(&["dead", "purge", "--older-than", "1d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("purged 1 dead letter(s)"),
        "{}",
        stdout(&out)
    );
    let listed = json_of(&world.run(&["dead", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], json!(young.id.to_string()));
    let out = world.run(&["dead", "purge", "--queue", "contacts"]);
    assert!(
        stdout(&out).contains("purged 1 dead letter(s)"),
        "{}",
        stdout(&out)
    );
    world.teardown().await;
}
