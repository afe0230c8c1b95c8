//! A tenant's whole life, through the real binaries as separate processes
//! (docs/reliability.md §2): wecom-sim pushes every callback, encrypted, to the ingress; two auth workers and two
//! contact-sync replicas do the work; the provider API serves the result, and that is what is
//! checked against WeCom's ground truth after each step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use daikai_tests::SUITE_ID;
use daikai_tests::system::mutations::{self, Pace};
use daikai_tests::system::{self, Options, System};
use reqwest::{Method, StatusCode};
use serde_json::json;

const CORP: &str = "wwlifecycle00001";
/// A full sync of 10,000 members by debug binaries on a loaded 2-core machine.
const SYNC_LIMIT: Duration = Duration::from_mins(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lives_its_whole_life_through_the_real_processes() {
    let system = System::start(Options::default()).await;
    system.sim.push_ticket(SUITE_ID).await;

    // A 10,000-member corp authorizes the app: tenant active, directory mirrored.
    let spec = json!({"corp_id": CORP, "name": "生命周期", "users": 10_000, "seed": 15});
    system.sim.create_corp(&spec).await;
    system
        .sim
        .corp_step(CORP, "authorize", Some(&json!({"state": "e2e"})))
        .await;
    let tenant = system
        .wait_status(CORP, "active", Duration::from_mins(1))
        .await;
    let agent_id = tenant["agent_id"].as_i64().expect("an agent id");
    let directory = system::wait_converged(&system, CORP, SYNC_LIMIT).await;
    assert_eq!(system::member_count(&directory), 10_000);

    // 1,000 random directory changes, each pushed as its callback: the mirror follows.
    let applied = mutations::apply(&system.sim, CORP, 1_000, 0x5EED, Pace::Delivered).await;
    assert_eq!(applied.total, 1_000);
    system::wait_converged(&system, CORP, SYNC_LIMIT).await;

    // The provider resets the secret: the new one is used, tokens of the old one are refused.
    let mut secrets = vec![system.api.key().to_owned()];
    secrets.extend(permanent_codes(&system).await);
    let old_token = access_token(&system).await;
    secrets.push(old_token.clone());
    assert_eq!(wecom_errcode(&system, &old_token, agent_id).await, 0);
    system.sim.corp_step(CORP, "reset-secret", None).await;
    system::wait_long(
        "the API serves a token of the new secret",
        Duration::from_mins(1),
        || async {
            let token = access_token(&system).await;
            token != old_token && wecom_errcode(&system, &token, agent_id).await == 0
        },
    )
    .await;
    assert_ne!(
        wecom_errcode(&system, &old_token, agent_id).await,
        0,
        "the old token is refused"
    );

    // The corp narrows the app's scope to one department: rows outside it go.
    let narrowed = first_child_department(&system).await;
    let scope = json!({"scope": {"departments": [narrowed]}});
    system
        .sim
        .corp_step(CORP, "change-scope", Some(&scope))
        .await;
    let directory = system::wait_converged(&system, CORP, SYNC_LIMIT).await;
    let members = system::member_count(&directory);
    assert!(
        (1..10_000).contains(&members),
        "the narrowed scope shows {members} members"
    );

    // Disabled, then enabled again.
    system.sim.corp_step(CORP, "disable", None).await;
    system
        .wait_status(CORP, "suspended", Duration::from_mins(1))
        .await;
    system.sim.corp_step(CORP, "enable", None).await;
    system
        .wait_status(CORP, "active", Duration::from_mins(1))
        .await;
    system::wait_converged(&system, CORP, SYNC_LIMIT).await;

    // The corp removes the app: secret, tokens and directory purged; the API refuses it.
    system.sim.corp_step(CORP, "cancel", None).await;
    system
        .wait_status(CORP, "revoked", Duration::from_mins(1))
        .await;
    let (status, _) = system
        .api
        .request(
            Method::GET,
            &format!("/v1/tenants/{SUITE_ID}/{CORP}/access-token"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    system::wait_long(
        "the tenant's secrets and directory are purged",
        Duration::from_mins(1),
        || async { leftovers(&system).await == 0 },
    )
    .await;

    // Every AuthCode (authorize, reset) was exchanged exactly once.
    let stats = system.sim.stats().await;
    assert_eq!(stats["auth_codes"]["issued"], 2, "{stats}");
    assert_eq!(stats["auth_codes"]["consumed"], 2, "{stats}");
    assert_eq!(stats["auth_codes"]["rejected"], 0, "{stats}");
    // No daikai process logged a secret it handled: API key, permanent codes, corp tokens.
    system.assert_no_secret_logged(&secrets);
    let (_, dead) = system.queue_depth(bus::WorkQueue::Auth).await;
    assert_eq!(dead, 0, "nothing dead-lettered on the auth queue");
    let (_, dead) = system.queue_depth(bus::WorkQueue::Contacts).await;
    assert_eq!(dead, 0, "nothing dead-lettered on the contacts queue");
    system.close().await;
}

/// The app's permanent codes as WeCom holds them (the simulator's view of the corp).
async fn permanent_codes(system: &System) -> Vec<String> {
    let corp = system
        .sim
        .call(Method::GET, &format!("/sim/corps/{CORP}"), None)
        .await;
    let codes: Vec<String> = corp["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["permanent_code"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !codes.is_empty(),
        "wecom-sim shows the app's permanent code"
    );
    codes
}

/// The corp access token the provider API hands out.
async fn access_token(system: &System) -> String {
    let answer = system
        .api
        .get(&format!("/v1/tenants/{SUITE_ID}/{CORP}/access-token"))
        .await;
    answer["access_token"].as_str().expect("a token").to_owned()
}

/// The errcode WeCom (the simulator) answers `agent/get` with `token`.
async fn wecom_errcode(system: &System, token: &str, agent_id: i64) -> i64 {
    let path = format!("/cgi-bin/agent/get?access_token={token}&agentid={agent_id}");
    let (_, answer) = system.sim.try_call(Method::GET, &path, None).await;
    answer["errcode"].as_i64().unwrap_or(-1)
}

/// A department right below the root that has members of its own subtree.
async fn first_child_department(system: &System) -> i64 {
    let full = system
        .sim
        .call(
            Method::GET,
            &format!("/sim/corps/{CORP}/directory?view=full"),
            None,
        )
        .await;
    full["departments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["parentid"] == 1)
        .filter_map(|d| d["id"].as_i64())
        .min()
        .expect("a department below the root")
}

/// Rows of the tenant that a revocation must remove: its sealed secret, tokens, tickets and
/// every directory row (tombstones included).
async fn leftovers(system: &System) -> i64 {
    sqlx::query_scalar(
        "with t as (select id from tenants where corp_id = $1)
         select (select count(*) from tenants where corp_id = $1 and permanent_code_ciphertext is not null)
              + (select count(*) from corp_tokens where corp_id = $1)
              + (select count(*) from jsapi_tickets where corp_id = $1)
              + (select count(*) from directory_departments where tenant_id in (select id from t))
              + (select count(*) from directory_users where tenant_id in (select id from t))
              + (select count(*) from directory_tags where tenant_id in (select id from t))",
    )
    .bind(CORP)
    .fetch_one(system.pool())
    .await
    .unwrap()
}
