//! Faults injected for real into the running processes (docs/reliability.md §3): replicas
//! killed with SIGKILL mid-stream and mid-full-sync, the broker and the database taken away,
//! WeCom failing and throttling, every callback delivered three times in random order, an
//! AuthCode exchange interrupted at each step. Each scenario ends in the state the provider API
//! serves, compared with WeCom's ground truth: nothing lost, and nothing that must happen once
//! (an AuthCode exchange) happened twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use daikai_tests::SUITE_ID;
use daikai_tests::system::mutations::{self, Pace};
use daikai_tests::system::{self, Options, System};
use reqwest::Method;
use serde_json::json;

const LIMIT: Duration = Duration::from_mins(3);

/// Creates a corp and authorizes the app (create_auth pushed through the ingress).
async fn authorize(system: &System, corp_id: &str, users: u32, seed: u32) {
    let spec = json!({"corp_id": corp_id, "users": users, "seed": seed});
    system.sim.create_corp(&spec).await;
    system.sim.corp_step(corp_id, "authorize", None).await;
}

/// Every AuthCode WeCom issued was exchanged exactly once: none lost (all consumed), none sent
/// twice (no 40078).
async fn assert_every_code_exchanged_once(system: &System, issued: u64) {
    let codes = system.sim.stats().await["auth_codes"].clone();
    assert_eq!(codes["issued"], issued, "{codes}");
    assert_eq!(
        codes["consumed"], issued,
        "every AuthCode exchanged: {codes}"
    );
    assert_eq!(codes["rejected"], 0, "no AuthCode sent twice: {codes}");
}

/// No message ended in a dead-letter queue.
async fn assert_no_dead_letters(system: &System) {
    for queue in [bus::WorkQueue::Auth, bus::WorkQueue::Contacts] {
        let (_, dead) = system.queue_depth(queue).await;
        assert_eq!(dead, 0, "dead letters on {queue:?}");
    }
}

/// The running sync run of `corp_id`: its owner and pages so far.
async fn running_run(system: &System, corp_id: &str) -> Option<(String, i64)> {
    sqlx::query_as(
        "select r.owner, r.pages from sync_runs r join tenants t on t.id = r.tenant_id
         where t.corp_id = $1 and r.status = 'running' and r.owner is not null",
    )
    .bind(corp_id)
    .fetch_optional(system.pool())
    .await
    .unwrap()
}

/// WeCom calls the simulator counted for `corp_id` and `api`.
async fn corp_calls(system: &System, corp_id: &str, api: &str) -> u64 {
    system.sim.stats().await["calls_by_key"][corp_id][api]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_mid_stream_and_mid_full_sync_lose_nothing() {
    let mut system = System::start(Options::default()).await;
    // Slow user/list pages, so the full sync is caught in the middle.
    system
        .sim
        .set_faults(&json!({"latency_ms": 40, "fault_apis": ["user/list"]}))
        .await;
    system.sim.push_ticket(SUITE_ID).await;
    let big = "wwkilledbig00001";
    authorize(&system, big, 8_000, 21).await;

    // Mid-full-sync: kill -9 the replica that owns the run once it has made progress.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let owner = loop {
        match running_run(&system, big).await {
            Some((owner, pages)) if pages >= 20 => break owner,
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "no full sync under way"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim = system
        .contact_syncs
        .iter()
        .position(|p| owner.starts_with(&format!("{}-", p.name())))
        .expect("the owner is one of the replicas");
    system.contact_syncs.remove(victim).kill().await;
    system.start_contact_sync().await;

    // Mid-stream: authorizations arrive while an auth worker is killed and a new one started.
    let small: Vec<String> = (0..6).map(|i| format!("wwkilledsmall{i:03}")).collect();
    for (i, corp) in small.iter().enumerate() {
        let spec = json!({"corp_id": corp, "users": 40, "seed": 100 + i});
        system.sim.create_corp(&spec).await;
        system
            .sim
            .call(Method::POST, &format!("/sim/corps/{corp}/authorize"), None)
            .await;
        if i == 2 {
            system.auth_workers.remove(0).kill().await;
            system.start_auth_worker().await;
        }
    }
    mutations::apply(&system.sim, &small[0], 100, 7, Pace::Queued).await;
    system.sim.wait_deliveries_settled().await;

    system.sim.set_faults(&json!({})).await;
    for corp in small.iter().chain([&big.to_owned()]) {
        system.wait_status(corp, "active", LIMIT).await;
        system::wait_converged(&system, corp, LIMIT).await;
    }
    // The run was resumed from its checkpoint, not restarted: far fewer than two full passes.
    let departments = system.sim.directory(big).await["departments"]
        .as_array()
        .unwrap()
        .len() as u64;
    let pages = corp_calls(&system, big, "user/list").await;
    assert!(
        pages < departments + departments / 2,
        "{pages} user/list calls for {departments} departments: the sync restarted"
    );
    assert_every_code_exchanged_once(&system, 7).await;
    assert_no_dead_letters(&system).await;
    system.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_delays_callbacks_and_loses_none() {
    let mut system = System::start(Options::default()).await;
    system.sim.push_ticket(SUITE_ID).await;
    let corp = "wwbrokeroutage01";
    authorize(&system, corp, 500, 31).await;
    system.wait_status(corp, "active", LIMIT).await;
    system::wait_converged(&system, corp, LIMIT).await;

    // 20 s without the broker: the ingress answers 503, WeCom keeps retrying.
    system.broker.cut();
    let outage = tokio::time::Instant::now();
    let changes = mutations::apply(&system.sim, corp, 60, 11, Pace::Queued).await;
    let late = "wwbrokeroutage02";
    system
        .sim
        .create_corp(&json!({"corp_id": late, "users": 30, "seed": 32}))
        .await;
    system
        .sim
        .call(Method::POST, &format!("/sim/corps/{late}/authorize"), None)
        .await;
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed())).await;
    let attempts_during_outage = system.sim.stats().await["callbacks"]["attempts"]
        .as_u64()
        .unwrap();
    system.broker.restore();

    system.sim.wait_deliveries_settled().await;
    let callbacks = system.sim.stats().await["callbacks"].clone();
    let deliveries = system
        .sim
        .call(Method::GET, "/sim/deliveries?limit=1000", None)
        .await;
    let retried = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["attempts"].as_u64().unwrap_or(0) > 1)
        .count();
    assert!(
        retried > 0,
        "callbacks during the outage were refused and retried: {callbacks}"
    );
    assert!(attempts_during_outage > 0);
    let unavailable = system
        .ingress()
        .metric_sum("ingress_requests_total", "outcome=\"unavailable\"")
        .await;
    assert!(
        unavailable > 0.0,
        "the ingress answered 503 during the outage"
    );
    assert_eq!(changes.total, 60);
    system.wait_status(late, "active", LIMIT).await;
    system::wait_converged(&system, corp, LIMIT).await;
    system::wait_converged(&system, late, LIMIT).await;
    // Every process reconnected by itself.
    system.assert_all_running();
    assert_every_code_exchanged_once(&system, 2).await;
    assert_no_dead_letters(&system).await;
    system.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_killed_and_the_database_away_lose_nothing() {
    let mut system = System::start(Options::default()).await;
    system.sim.push_ticket(SUITE_ID).await;
    let corp = "wwdatabasefault1";
    authorize(&system, corp, 2_000, 41).await;

    // Backends terminated again and again while the full sync and a change stream run.
    let changes = tokio::spawn({
        let sim = system.sim.clone();
        async move { mutations::apply(&sim, corp, 150, 13, Pace::Delivered).await }
    });
    let mut terminated = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        terminated += system.terminate_database_backends().await;
    }
    assert!(terminated > 0, "backends were terminated");
    assert_eq!(changes.await.unwrap().total, 150);

    // The database away for 10 s (as during a restart): every connection dropped, new ones
    // refused, while a corp authorizes.
    system.database.cut();
    let late = "wwdatabasefault2";
    system
        .sim
        .create_corp(&json!({"corp_id": late, "users": 30, "seed": 42}))
        .await;
    system
        .sim
        .call(Method::POST, &format!("/sim/corps/{late}/authorize"), None)
        .await;
    mutations::apply(&system.sim, corp, 30, 14, Pace::Queued).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    system.database.restore();

    system.sim.wait_deliveries_settled().await;
    for corp in [corp, late] {
        system.wait_status(corp, "active", LIMIT).await;
        system::wait_converged(&system, corp, LIMIT).await;
    }
    system.assert_all_running();
    assert_every_code_exchanged_once(&system, 2).await;
    assert_no_dead_letters(&system).await;
    system.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_failing_throttling_and_slow_during_a_full_sync() {
    let system = System::start(Options {
        sync_env: system::vars(&[("SYNC_RATE_LIMIT_HOLD_SECS", "2")]),
        ..Options::default()
    })
    .await;
    system.sim.push_ticket(SUITE_ID).await;
    // -1 on a fifth of the directory calls, 10–40 ms latency, and user/list limited to 60 calls
    // per 2 s per corp (45009 past it).
    system
        .sim
        .set_faults(&json!({
            "fault_rate": 0.2,
            "latency_ms": 10,
            "latency_jitter_ms": 30,
            "fault_apis": ["user/list", "user/get", "department/list", "tag/list", "tag/get", "user/list_id"],
            "rate_limits": {"user/list": {"limit": 60, "window_secs": 2}},
        }))
        .await;
    let corp = "wwwecomfaults001";
    authorize(&system, corp, 4_000, 51).await;
    system.wait_status(corp, "active", LIMIT).await;
    mutations::apply(&system.sim, corp, 50, 15, Pace::Delivered).await;
    system::wait_converged(&system, corp, LIMIT).await;
    let errcodes = system.sim.stats().await["errcodes"].clone();
    assert!(
        errcodes["-1"].as_u64().unwrap_or(0) > 0,
        "-1 answered: {errcodes}"
    );
    assert!(
        errcodes["45009"].as_u64().unwrap_or(0) > 0,
        "45009 answered: {errcodes}"
    );
    system.sim.set_faults(&json!({})).await;
    assert_every_code_exchanged_once(&system, 1).await;
    assert_no_dead_letters(&system).await;
    system.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_callback_three_times_in_random_order() {
    let system = System::start(Options {
        sim_env: system::vars(&[
            ("SIM_DUPLICATE_RATE", "1"),
            ("SIM_DUPLICATE_COPIES", "2"),
            ("SIM_SHUFFLE", "true"),
            ("SIM_SHUFFLE_WINDOW_MS", "300"),
            ("SIM_CALLBACK_CONCURRENCY", "4"),
        ]),
        ..Options::default()
    })
    .await;
    system.sim.push_ticket(SUITE_ID).await;
    let corps = ["wwtriple0000001", "wwtriple0000002", "wwtriple0000003"];
    for (i, corp) in corps.iter().enumerate() {
        let spec = json!({"corp_id": corp, "users": 300, "seed": 60 + i});
        system.sim.create_corp(&spec).await;
        system
            .sim
            .call(Method::POST, &format!("/sim/corps/{corp}/authorize"), None)
            .await;
    }
    for corp in corps {
        system.wait_status(corp, "active", LIMIT).await;
    }
    for (i, corp) in corps.iter().enumerate() {
        mutations::apply(&system.sim, corp, 100, 20 + i as u64, Pace::Queued).await;
    }
    system.sim.wait_deliveries_settled().await;
    for corp in corps {
        system::wait_converged(&system, corp, LIMIT).await;
    }
    let callbacks = system.sim.stats().await["callbacks"].clone();
    assert_eq!(
        callbacks["duplicates"].as_u64().unwrap() * 3,
        callbacks["delivered"].as_u64().unwrap() * 2,
        "every callback went three times: {callbacks}"
    );
    assert_every_code_exchanged_once(&system, 3).await;
    // One tenant.activated per corp, whatever the copies.
    let activations: i64 =
        sqlx::query_scalar("select count(*) from tenants where status = 'active'")
            .fetch_one(system.pool())
            .await
            .unwrap();
    assert_eq!(activations, 3);
    assert_no_dead_letters(&system).await;
    system.close().await;
}

/// The state of `corp_id`'s newest AuthCode in `auth_codes` and whether it is claimed.
async fn code_state(system: &System) -> Option<(String, bool)> {
    sqlx::query_as(
        "select state, coalesce(claim_id is not null and claimed_until > now(), false) from auth_codes
         order by received_at desc limit 1",
    )
    .fetch_optional(system.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_interrupted_at_each_step_never_exchanges_a_code_twice() {
    let mut system = System::start(Options {
        auth_workers: 1,
        contact_syncs: 0,
        auth_env: system::vars(&[("AUTH_WORKER_CLAIM_LEASE_SECS", "15")]),
        ..Options::default()
    })
    .await;
    system.sim.push_ticket(SUITE_ID).await;

    // Before the call: the worker is gone when create_auth arrives; a new one exchanges it.
    system.auth_workers.remove(0).kill().await;
    authorize(&system, "wwinterrupted001", 20, 71).await;
    system.start_auth_worker().await;
    system
        .wait_status("wwinterrupted001", "active", LIMIT)
        .await;

    // During the call: killed while WeCom is answering. WeCom has the request and acts on it
    // (the simulator, like WeCom, finishes a call whose caller went away), so the permanent
    // code in its answer dies with the process: no client can keep it. What daikai owes then:
    // the redelivery waits out the claim without being dead-lettered, sends the code once
    // more, gets 40078 and records the code as burnt (one alert, no loop); the provider's
    // 重新获取secret (reset_permanent_code with a fresh AuthCode) recovers the tenant.
    slow(&system, "service/v2/get_permanent_code").await;
    authorize(&system, "wwinterrupted002", 20, 72).await;
    system::wait_long("the exchange call is in flight", LIMIT, || async {
        code_state(&system).await == Some(("received".to_owned(), true))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.auth_workers.remove(0).kill().await;
    system.sim.set_faults(&json!({})).await;
    system.start_auth_worker().await;
    system::wait_long("the burnt code is recorded", LIMIT, || async {
        code_state(&system).await == Some(("failed".to_owned(), false))
    })
    .await;
    assert_no_dead_letters(&system).await;
    system
        .sim
        .corp_step("wwinterrupted002", "reset-secret", None)
        .await;
    system
        .wait_status("wwinterrupted002", "active", LIMIT)
        .await;

    // After the call: WeCom answered, the worker dies fetching the auth info. The permanent
    // code was committed first; the next replica completes the tenant without a second exchange.
    slow(&system, "service/v2/get_auth_info").await;
    authorize(&system, "wwinterrupted003", 20, 73).await;
    system::wait_long("the code is exchanged", LIMIT, || async {
        code_state(&system)
            .await
            .is_some_and(|(state, _)| state == "exchanged")
    })
    .await;
    system.auth_workers.remove(0).kill().await;
    system.sim.set_faults(&json!({})).await;
    system.start_auth_worker().await;
    system
        .wait_status("wwinterrupted003", "active", LIMIT)
        .await;
    system::wait_long("the auth info is completed", LIMIT, || async {
        system
            .api
            .tenant(SUITE_ID, "wwinterrupted003")
            .await
            .is_some_and(|t| t["agent_id"].is_i64())
    })
    .await;

    // Four AuthCodes (three authorizations and the reset), each answered by WeCom once; the
    // one burnt with the killed process was sent once more and refused, nothing else.
    let codes = system.sim.stats().await["auth_codes"].clone();
    assert_eq!(codes["issued"], 4, "{codes}");
    assert_eq!(codes["consumed"], 4, "{codes}");
    assert_eq!(codes["rejected"], 1, "{codes}");
    assert_no_dead_letters(&system).await;
    system.close().await;
}

/// Makes the simulator take 3 s to answer `api`.
async fn slow(system: &System, api: &str) {
    system
        .sim
        .set_faults(&json!({"latency_ms": 3_000, "fault_apis": [api]}))
        .await;
}
