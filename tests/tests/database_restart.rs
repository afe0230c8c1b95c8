//! Postgres itself restarted under the running processes (docs/reliability.md §3). Its own test
//! binary, with one test: cargo runs test binaries one after another, so no other test is using
//! the server while it restarts.
//!
//! It restarts the local cluster with `pg_ctlcluster` (how scripts/lib/services.sh starts it).
//! Where Postgres is not a local cluster on the port of `DATABASE_URL` (Docker, a remote server),
//! it says so and does nothing: the proxy-cut scenario of `faults.rs` still covers an outage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::Command;
use std::time::Duration;

use daikai_tests::SUITE_ID;
use daikai_tests::system::mutations::{self, Pace};
use daikai_tests::system::{self, Options, System};
use reqwest::Method;
use serde_json::json;

const LIMIT: Duration = Duration::from_mins(3);

/// The version of the local cluster that serves `port`, if `pg_lsclusters` lists one online.
fn local_cluster(port: u16) -> Option<String> {
    let listed = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .ok()?;
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let serves = fields.get(1) == Some(&"main")
                && fields.get(2) == Some(&port.to_string().as_str())
                && fields.get(3) == Some(&"online");
            serves.then(|| fields[0].to_owned())
        })
}

fn restart(version: &str) {
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            version,
            "main",
            "restart",
            "--mode",
            "fast",
        ])
        .status()
        .expect("running pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster restart failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_the_running_processes_loses_nothing() {
    let url = url::Url::parse(&test_support::database_url()).unwrap();
    let Some(version) = local_cluster(url.port().unwrap_or(5432)) else {
        eprintln!("skipped: Postgres is not a local pg_ctlcluster cluster here; nothing restarted");
        return;
    };
    let system = System::start(Options::default()).await;
    system.sim.push_ticket(SUITE_ID).await;
    let corp = "wwpgrestart00001";
    system
        .sim
        .create_corp(&json!({"corp_id": corp, "users": 3_000, "seed": 81}))
        .await;
    system.sim.corp_step(corp, "authorize", None).await;

    // Restart while the full sync runs and changes are queued; a corp authorizes meanwhile.
    mutations::apply(&system.sim, corp, 100, 17, Pace::Queued).await;
    restart(&version);
    let late = "wwpgrestart00002";
    system
        .sim
        .create_corp(&json!({"corp_id": late, "users": 30, "seed": 82}))
        .await;
    system
        .sim
        .call(Method::POST, &format!("/sim/corps/{late}/authorize"), None)
        .await;

    for corp in [corp, late] {
        // Until the API's pool has reconnected it may answer 503: not yet.
        system.wait_status(corp, "active", LIMIT).await;
        system::wait_converged(&system, corp, LIMIT).await;
    }
    let codes = system.sim.stats().await["auth_codes"].clone();
    assert_eq!(codes["issued"], 2, "{codes}");
    assert_eq!(codes["consumed"], 2, "{codes}");
    assert_eq!(codes["rejected"], 0, "{codes}");
    for queue in [bus::WorkQueue::Auth, bus::WorkQueue::Contacts] {
        assert_eq!(
            system.queue_depth(queue).await.1,
            0,
            "dead letters on {queue:?}"
        );
    }
    let mut system = system;
    system.assert_all_running();
    system.close().await;
}
