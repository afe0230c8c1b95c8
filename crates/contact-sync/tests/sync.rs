//! Contact sync against the real Postgres and RabbitMQ, with wecom-sim as WeCom. Every test
//! checks one sentence: once events go quiet, the mirror equals what WeCom's API shows the app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bus::TenantEvent;
use common::{Bench, corp_id};
use reqwest::Method;
use serde_json::{Value, json};
use wecom::event::ContactChange;

/// A corp whose scope hides part of it (two departments' subtrees, one member outside them, one
/// tag) and whose grants leave most sensitive fields out.
fn partial_corp() -> Value {
    json!({
        "users": 300, "departments": 40, "tags": 4, "seed": 11,
        "permissions": ["contact:sensitive:user_name", "contact:sensitive:department_name"],
        "scope": {"departments": [2, 3], "users": ["u000007"], "tags": [1]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_mirrors_exactly_what_the_app_may_see() {
    let bench = Bench::new().await;
    let tenant = bench.authorized_corp("wwpartial01", partial_corp()).await;
    let worker = bench.worker().await;
    bench
        .publish_tenant_event(TenantEvent::Activated, "wwpartial01")
        .await;
    let run = bench.completed_runs(tenant, 1).await;
    bench.assert_converges("wwpartial01", tenant).await;
    let counts = bench.counts(tenant).await;
    assert!(
        counts.users > 0 && counts.users < 300,
        "the scope hides part of the corp: {counts:?}"
    );
    assert!(counts.departments > 1 && counts.tags > 0, "{counts:?}");
    assert_eq!(run.rows_removed, 0);
    assert!(
        run.api_calls > 0 && run.pages > 0,
        "progress is recorded: {run:?}"
    );
    // Ungranted fields stay NULL, not empty.
    let mobiles: i64 = sqlx::query_scalar(
        "select count(*) from directory_users where tenant_id = $1 and mobile is not null",
    )
    .bind(tenant)
    .fetch_one(bench.db.pool())
    .await
    .unwrap();
    assert_eq!(mobiles, 0);
    worker.stop().await;
    bench.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_shuffled_events_from_two_consumers_during_a_full_sync_converge() {
    for seed in [1_u64, 2, 3] {
        let bench = Bench::new().await;
        let corp = format!("wwmutate{seed:02}");
        let tenant = bench
            .authorized_corp(
                &corp,
                json!({"users": 120, "departments": 12, "tags": 3, "seed": seed}),
            )
            .await;
        let first = bench.worker().await;
        let second = bench.worker().await;
        bench
            .publish_tenant_event(TenantEvent::Activated, &corp)
            .await;
        // Mutations and deliveries interleave: each change is published twice, in shuffled
        // batches of a few, while later mutations are made and both consumers (and the
        // activation's full sync) read WeCom; jittered latency lets reads overtake each other.
        bench
            .sim(
                Method::POST,
                "/sim/faults",
                json!({"latency_jitter_ms": 15}),
            )
            .await;
        let mut rng = seed;
        let mut pending: Vec<(ContactChange, i64)> = Vec::new();
        for step in 0..80_u64 {
            if let Some(change) = mutate(&bench, &corp, &mut rng, step).await {
                let time = 1_700_000_000 + i64::try_from(step).unwrap();
                pending.push((change.clone(), time));
                pending.push((change, time));
            }
            if pending.len() >= 8 || step == 79 {
                shuffle(&mut pending, &mut rng);
                for (change, time) in pending.drain(..) {
                    bench.publish_change(&corp, change, time).await;
                }
            }
        }
        bench.sim(Method::POST, "/sim/faults", json!({})).await;
        bench.assert_converges(&corp, tenant).await;
        first.stop().await;
        second.stop().await;
        bench.close().await;
    }
}

/// One random directory mutation through the simulator's control API (state only: the test
/// delivers the change itself). Renames, moves, deletes and re-creates of one userid included.
async fn mutate(bench: &Bench, corp: &str, rng: &mut u64, step: u64) -> Option<ContactChange> {
    let pick = next(rng) % 7;
    let user = format!("m{:03}", next(rng) % 12);
    let (method, path, body) = match pick {
        0 | 1 => (
            Method::POST,
            format!("/sim/corps/{corp}/users?push=false"),
            json!({"userid": user, "name": format!("成员{step}"), "department": [1 + next(rng) % 5], "is_leader_in_dept": [next(rng) % 2]}),
        ),
        2 => (
            Method::PATCH,
            format!("/sim/corps/{corp}/users/{user}?push=false"),
            json!({"position": format!("p{step}"), "department": [1, 2 + next(rng) % 4]}),
        ),
        3 => (
            Method::PATCH,
            format!("/sim/corps/{corp}/users/{user}?push=false"),
            json!({"new_userid": format!("m{:03}", next(rng) % 12)}),
        ),
        4 => (
            Method::DELETE,
            format!("/sim/corps/{corp}/users/{user}?push=false"),
            Value::Null,
        ),
        5 => (
            Method::PATCH,
            format!(
                "/sim/corps/{corp}/departments/{}?push=false",
                2 + next(rng) % 8
            ),
            json!({"name": format!("部门{step}"), "order": next(rng) % 100}),
        ),
        _ => (
            Method::POST,
            format!("/sim/corps/{corp}/tags/1/members?push=false"),
            json!({"add_users": [user]}),
        ),
    };
    let response = bench
        .http
        .request(method, format!("{}{path}", bench.sim_base))
        .json(&body)
        .send()
        .await
        .unwrap();
    if !response.status().is_success() {
        return None; // e.g. a user that does not exist (yet): no change
    }
    let answer: Value = response.json().await.unwrap();
    serde_json::from_value(answer["change"].clone()).ok()
}

fn next(state: &mut u64) -> u64 {
    // SplitMix64: deterministic per seed.
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn shuffle<T>(items: &mut [T], rng: &mut u64) {
    for i in (1..items.len()).rev() {
        let j = usize::try_from(next(rng) % (i as u64 + 1)).unwrap();
        items.swap(i, j);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_run_is_resumed_where_it_stopped() {
    let bench = Bench::new().await;
    let tenant = bench
        .authorized_corp(
            "wwlarge0001",
            json!({"users": 6000, "departments": 300, "seed": 5}),
        )
        .await;
    // Slow WeCom down so the kill lands mid-run.
    bench
        .sim(Method::POST, "/sim/faults", json!({"latency_ms": 15}))
        .await;
    let doomed = bench.worker().await;
    bench
        .publish_tenant_event(TenantEvent::Activated, "wwlarge0001")
        .await;
    test_support::wait_until("the run has done a few batches", || async {
        bench
            .runs(tenant)
            .await
            .first()
            .is_some_and(|r| r.phase == "users" && r.pages >= 64)
    })
    .await;
    doomed.kill();
    let listed_before = bench.api_calls("user/list").await;
    let before = bench.runs(tenant).await[0].clone();
    bench.sim(Method::POST, "/sim/faults", json!({})).await;
    let rescuer = bench.worker().await;
    let run = bench.completed_runs(tenant, 1).await;
    assert_eq!(run.id, before.id, "the same run was resumed");
    assert!(run.takeovers >= 1, "{run:?}");
    let listed_after = bench.api_calls("user/list").await;
    let departments = 300_u64;
    assert!(
        listed_after - listed_before < departments,
        "pages already done are not fetched again: {} more user/list calls for {departments} departments",
        listed_after - listed_before
    );
    bench.assert_converges("wwlarge0001", tenant).await;
    rescuer.stop().await;
    bench.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_finds_and_fixes_drift_from_lost_callbacks() {
    let bench = Bench::new().await;
    let tenant = bench
        .authorized_corp("wwdrift0001", json!({"users": 80, "seed": 9}))
        .await;
    let worker = bench.worker().await;
    bench
        .publish_tenant_event(TenantEvent::Activated, "wwdrift0001")
        .await;
    bench.completed_runs(tenant, 1).await;
    // Three changes whose callbacks WeCom "lost".
    bench
        .sim(
            Method::DELETE,
            "/sim/corps/wwdrift0001/users/u000002?push=false",
            Value::Null,
        )
        .await;
    bench
        .sim(
            Method::PATCH,
            "/sim/corps/wwdrift0001/users/u000003?push=false",
            json!({"alias": "drifted"}),
        )
        .await;
    bench
        .sim(
            Method::POST,
            "/sim/corps/wwdrift0001/users?push=false",
            json!({"userid": "newcomer", "name": "新人", "department": [1]}),
        )
        .await;
    bench
        .publish_tenant_event(TenantEvent::SyncRequested, "wwdrift0001")
        .await;
    let run = bench.completed_runs(tenant, 2).await;
    assert_eq!(
        (run.rows_added, run.rows_changed, run.rows_removed),
        (1, 1, 1),
        "{run:?}"
    );
    bench.assert_converges("wwdrift0001", tenant).await;
    worker.stop().await;
    bench.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_and_widening_the_scope_and_grants_follow_the_api() {
    let bench = Bench::new().await;
    let tenant = bench
        .authorized_corp(
            "wwscope0001",
            json!({"users": 150, "departments": 15, "seed": 4}),
        )
        .await;
    let worker = bench.worker().await;
    bench
        .publish_tenant_event(TenantEvent::Activated, "wwscope0001")
        .await;
    bench.completed_runs(tenant, 1).await;
    bench.assert_converges("wwscope0001", tenant).await;
    let whole = bench.counts(tenant).await;
    bench
        .sim(
            Method::POST,
            "/sim/corps/wwscope0001/change-scope?push=false",
            json!({"scope": {"departments": [2]}, "permissions": []}),
        )
        .await;
    bench
        .publish_tenant_event(TenantEvent::Changed, "wwscope0001")
        .await;
    bench.completed_runs(tenant, 2).await;
    bench.assert_converges("wwscope0001", tenant).await;
    let narrow = bench.counts(tenant).await;
    assert!(narrow.users < whole.users && narrow.departments < whole.departments);
    let names: i64 = sqlx::query_scalar(
        "select count(*) from directory_users where tenant_id = $1 and name is not null",
    )
    .bind(tenant)
    .fetch_one(bench.db.pool())
    .await
    .unwrap();
    assert_eq!(names, 0, "a withdrawn grant empties its column");
    bench
        .sim(
            Method::POST,
            "/sim/corps/wwscope0001/change-scope?push=false",
            json!({"scope": {"departments": [1]}}),
        )
        .await;
    bench
        .publish_tenant_event(TenantEvent::Changed, "wwscope0001")
        .await;
    bench.completed_runs(tenant, 3).await;
    bench.assert_converges("wwscope0001", tenant).await;
    assert_eq!(bench.counts(tenant).await.users, whole.users);
    worker.stop().await;
    bench.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_purges_the_directory_and_later_events_are_not_applied() {
    let bench = Bench::new().await;
    let tenant = bench
        .authorized_corp("wwrevoke001", json!({"users": 60, "seed": 3}))
        .await;
    let worker = bench.worker().await;
    bench
        .publish_tenant_event(TenantEvent::Activated, "wwrevoke001")
        .await;
    bench.completed_runs(tenant, 1).await;
    assert!(bench.counts(tenant).await.users > 0);
    {
        let mut conn = bench.db.pool().acquire().await.unwrap();
        store::tenants::revoke_tenant(
            &mut conn,
            &common::suite(),
            &corp_id("wwrevoke001"),
            1_800_000_000,
        )
        .await
        .unwrap();
    }
    bench
        .publish_tenant_event(TenantEvent::Revoked, "wwrevoke001")
        .await;
    test_support::wait_until("the directory is purged", || async {
        bench.counts(tenant).await == store::directory::Counts::default()
    })
    .await;
    let change: ContactChange = serde_json::from_value(
        bench
            .sim(
                Method::POST,
                "/sim/corps/wwrevoke001/users?push=false",
                json!({"userid": "late", "name": "迟到", "department": [1]}),
            )
            .await["change"]
            .clone(),
    )
    .unwrap();
    bench
        .publish_change("wwrevoke001", change, 1_900_000_000)
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        bench.counts(tenant).await,
        store::directory::Counts::default()
    );
    worker.stop().await;
    bench.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_under_busy_and_rate_limit_bursts_slows_down_and_completes() {
    let bench = Bench::new().await;
    let tenant = bench
        .authorized_corp(
            "wwfaulty001",
            json!({"users": 120, "departments": 8, "seed": 8}),
        )
        .await;
    bench
        .sim(
            Method::POST,
            "/sim/faults",
            json!({
                "fault_rate": 0.15,
                "rate_limits": {"user/list": {"limit": 4, "window_secs": 1}}
            }),
        )
        .await;
    let worker = bench.worker().await;
    bench
        .publish_tenant_event(TenantEvent::Activated, "wwfaulty001")
        .await;
    let run = bench.completed_runs(tenant, 1).await;
    bench.sim(Method::POST, "/sim/faults", json!({})).await;
    bench.assert_converges("wwfaulty001", tenant).await;
    let stats = bench.sim(Method::GET, "/sim/stats", Value::Null).await;
    assert!(
        stats["errcodes"]["45009"].as_u64().unwrap_or(0) > 0,
        "the limit was hit: {stats}"
    );
    assert!(run.rate_limit_waits >= 0);
    worker.stop().await;
    bench.close().await;
}

/// WeCom refuses the listing APIs (48002 not allowed for this app, 45029 response too large):
/// the full sync falls back to `department/simplelist`, `user/list_id` and `user/get`, and the
/// mirror is still exactly what the app may see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_listing_apis_fall_back_and_still_mirror_the_corp() {
    let bench = Bench::new().await;
    let worker = bench.worker().await;
    for (corp, refuse) in [
        (
            "wwrefused0001",
            json!({"department/list": 48002, "user/list": 48002}),
        ),
        (
            "wwrefused0002",
            json!({"department/list": 45029, "user/list": 45029}),
        ),
    ] {
        let tenant = bench
            .authorized_corp(
                corp,
                json!({"users": 150, "departments": 12, "tags": 2, "seed": 21}),
            )
            .await;
        bench
            .sim(Method::POST, "/sim/faults", json!({"refuse": refuse}))
            .await;
        bench
            .sim(Method::POST, "/sim/stats/reset", Value::Null)
            .await;
        bench
            .publish_tenant_event(TenantEvent::Activated, corp)
            .await;
        bench.completed_runs(tenant, 1).await;
        let stats = bench.sim(Method::GET, "/sim/stats", Value::Null).await;
        bench.sim(Method::POST, "/sim/faults", json!({})).await;
        bench.assert_converges(corp, tenant).await;
        let calls = &stats["api_calls"];
        assert!(
            calls["department/simplelist"].as_u64().unwrap_or(0) > 0,
            "{corp}: {calls}"
        );
        assert!(
            calls["user/list_id"].as_u64().unwrap_or(0) > 0,
            "{corp}: {calls}"
        );
        assert!(
            calls["user/get"].as_u64().unwrap_or(0) >= 150,
            "{corp}: {calls}"
        );
    }
    worker.stop().await;
    bench.close().await;
}
