//! From a corp admin's QR scan to its directory in Postgres: wecom-sim pushes create_auth through
//! the ingress, the auth worker exchanges the AuthCode and activates the tenant, contact sync
//! mirrors the corp (10,000 members by default; `ONBOARDING_USERS` to change). All in-process,
//! release build, the machine's Postgres and RabbitMQ (docs/benchmarks.md, "Contact sync").
//!
//! `cargo bench -p daikai-tests --bench onboarding`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use daikai_tests::Stack;
use serde_json::json;
use store::tenants::TenantStatus;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run only for the former.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(onboarding());
}

async fn onboarding() {
    let users: u64 = std::env::var("ONBOARDING_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut stack = Stack::start().await;
    stack.add_contact_sync().await;
    stack.push_ticket().await;
    let corp = "wwonboarding01";
    let spec =
        json!({"corp_id": corp, "users": users, "departments": users / 40, "tags": 10, "seed": 3});
    let created = reqwest::Client::new()
        .post(format!(
            "{}/sim/corps",
            stack.sim_base.trim_end_matches('/')
        ))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let started = Instant::now();
    stack.authorize(corp).await;
    let tenant = stack
        .wait_tenant(corp, |t| t.status == TenantStatus::Active)
        .await;
    let active = started.elapsed();
    let run = loop {
        let mut conn = stack.pool().acquire().await.unwrap();
        let runs = store::directory::runs::recent_runs(&mut conn, tenant.id, 1)
            .await
            .unwrap();
        if let Some(run) = runs.into_iter().find(|r| r.status == "completed") {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let done = started.elapsed();
    println!(
        "onboarding: create_auth pushed → tenant active in {:.2} s → {} members, {} departments, {} tags committed in {:.2} s ({} WeCom directory calls)",
        active.as_secs_f64(),
        run.users,
        run.departments,
        run.tags,
        done.as_secs_f64(),
        run.api_calls
    );
    stack.close().await;
}
