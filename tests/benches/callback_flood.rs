//! A callback flood through the real processes (docs/reliability.md §4): wecom-sim pushes
//! `change_contact` callbacks (a new member each) for a minute at a fixed offered rate to the
//! ingress, while two auth workers (fed suite tickets meanwhile) and two contact-sync replicas
//! run. Measures callback → committed row throughput and lag, queue depth over time, RSS and CPU
//! of every process; checks nothing is lost and nothing handled twice.
//!
//! ```sh
//! scripts/flood        # release build, then this bench, then the plot
//! FLOOD_RATE=300 FLOOD_SECS=60 cargo bench -p daikai-tests --bench callback_flood
//! ```
//! Writes `docs/reliability/callback-flood.csv` (one row per second) and prints the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
// Counts and durations of one run, far below 2^52: the float conversions are exact enough.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bus::WorkQueue;
use chrono::{DateTime, Utc};
use daikai_tests::SUITE_ID;
use daikai_tests::system::{self, Options, System};
use reqwest::Method;
use serde_json::json;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One sample of the timeline.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    contacts_depth: u32,
    auth_depth: u32,
    rss_kib: HashMap<String, u64>,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(flood());
}

async fn flood() {
    let rate = setting("FLOOD_RATE", 300);
    let secs = setting("FLOOD_SECS", 60);
    let corps = setting("FLOOD_CORPS", 4);
    let options = Options {
        sim_env: vec![("SIM_CALLBACK_CONCURRENCY".into(), "8".into())],
        sync_env: vec![
            // The flood, not the per-corp WeCom budget, is what is measured here.
            ("SYNC_API_LIMIT_PER_MINUTE".into(), "10000000".into()),
            ("CONTACT_SYNC_PREFETCH".into(), "16".into()),
            ("DATABASE_MAX_CONNECTIONS".into(), "40".into()),
            ("RUST_LOG".into(), "warn".into()),
        ],
        auth_env: vec![("RUST_LOG".into(), "warn".into())],
        ..Options::default()
    };
    let system = System::start(options).await;
    system.sim.push_ticket(SUITE_ID).await;
    let corp_ids: Vec<String> = (0..corps).map(|i| format!("wwflood{i:09}")).collect();
    for (i, corp) in corp_ids.iter().enumerate() {
        let spec = json!({"corp_id": corp, "users": 200, "seed": 900 + i});
        system.sim.create_corp(&spec).await;
        system.sim.corp_step(corp, "authorize", None).await;
    }
    for corp in &corp_ids {
        system::wait_converged(&system, corp, Duration::from_mins(3)).await;
    }
    let cpu_before = cpu_times(&system);
    let handled_before = contact_messages(&system).await;

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let started = Instant::now();
    let sent: Vec<(String, String, SystemTime)> = {
        let sampling = sample_timeline(&system, started, Arc::clone(&samples));
        tokio::pin!(sampling);
        let sent = tokio::select! {
            sent = send_flood(&system, &corp_ids, rate, secs) => sent,
            () = &mut sampling => unreachable!("the sampler runs until stopped"),
        };
        // Keep sampling until every row is in.
        tokio::select! {
            () = wait_drained(&system, &sent) => {},
            () = &mut sampling => unreachable!("the sampler runs until stopped"),
        }
        sent
    };
    let cpu_after = cpu_times(&system);
    let handled = contact_messages(&system).await - handled_before;
    let commits = committed(&system, &corp_ids).await;
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    report(
        &system,
        &sent,
        &commits,
        &samples,
        handled,
        &cpu_before,
        &cpu_after,
        rate,
        secs,
    )
    .await;
    system.close().await;
}

/// Creates one member per tick at `rate` per second for `secs`, round-robin over the corps,
/// without waiting for the push (wecom-sim queues and pushes it). A suite ticket every 10 s.
async fn send_flood(
    system: &System,
    corps: &[String],
    rate: u64,
    secs: u64,
) -> Vec<(String, String, SystemTime)> {
    let total = rate * secs;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate).unwrap());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let mut sent = Vec::with_capacity(usize::try_from(total).unwrap());
    for i in 0..total {
        ticks.tick().await;
        let corp = corps[usize::try_from(i).unwrap() % corps.len()].clone();
        let userid = format!("flood{i}");
        let body = json!({"userid": userid, "name": format!("洪水{i}"), "department": [1]});
        let sim = system.sim.clone();
        let path = format!("/sim/corps/{corp}/users?wait=false");
        sent.push((corp, userid, SystemTime::now()));
        calls.spawn(async move { sim.call(Method::POST, &path, Some(&body)).await });
        if i % (rate * 10) == 0 {
            let sim = system.sim.clone();
            calls.spawn(async move {
                sim.call(
                    Method::POST,
                    &format!("/sim/suites/{SUITE_ID}/ticket"),
                    None,
                )
                .await
            });
        }
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    sent
}

/// Samples queue depths and every process's RSS twice a second, until dropped.
async fn sample_timeline(system: &System, started: Instant, samples: Arc<Mutex<Vec<Sample>>>) {
    loop {
        let (contacts_depth, _) = system.queue_depth(WorkQueue::Contacts).await;
        let (auth_depth, _) = system.queue_depth(WorkQueue::Auth).await;
        let rss_kib = system
            .processes()
            .filter_map(|p| Some((p.name().to_owned(), p.rss_kib()?)))
            .collect();
        samples.lock().unwrap().push(Sample {
            at: started.elapsed(),
            contacts_depth,
            auth_depth,
            rss_kib,
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Until every flood member is in the mirror (or 5 minutes passed).
async fn wait_drained(system: &System, sent: &[(String, String, SystemTime)]) {
    let expected = i64::try_from(sent.len()).unwrap();
    system::wait_long("every flood member is committed", Duration::from_mins(5), || async {
        let rows: i64 = sqlx::query_scalar(
            "select count(*) from directory_users where user_id like 'flood%' and deleted_at is null",
        )
        .fetch_one(system.pool())
        .await
        .unwrap();
        rows >= expected
    })
    .await;
}

/// `(corp, userid)` → the time its row was committed (the writing transaction's time).
async fn committed(system: &System, corps: &[String]) -> HashMap<(String, String), DateTime<Utc>> {
    let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "select t.corp_id, u.user_id, u.updated_at from directory_users u
         join tenants t on t.id = u.tenant_id
         where u.user_id like 'flood%' and t.corp_id = any($1)",
    )
    .bind(corps)
    .fetch_all(system.pool())
    .await
    .unwrap();
    rows.into_iter().map(|(c, u, at)| ((c, u), at)).collect()
}

/// change_contact messages the contact-sync replicas handled so far.
async fn contact_messages(system: &System) -> f64 {
    let mut total = 0.0;
    for process in &system.contact_syncs {
        total += process
            .metric_sum("daikai_contact_messages_total", "")
            .await;
    }
    total
}

fn cpu_times(system: &System) -> HashMap<String, Duration> {
    system
        .processes()
        .filter_map(|p| Some((p.name().to_owned(), p.cpu_time()?)))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_arguments)]
async fn report(
    system: &System,
    sent: &[(String, String, SystemTime)],
    commits: &HashMap<(String, String), DateTime<Utc>>,
    samples: &[Sample],
    handled: f64,
    cpu_before: &HashMap<String, Duration>,
    cpu_after: &HashMap<String, Duration>,
    rate: u64,
    secs: u64,
) {
    let first_sent = sent.first().map(|s| s.2).unwrap();
    let mut lags = Vec::new();
    let mut lost = 0;
    let mut last_commit = first_sent;
    let mut per_second: HashMap<u64, Vec<f64>> = HashMap::new();
    for (corp, userid, at) in sent {
        let Some(commit) = commits.get(&(corp.clone(), userid.clone())) else {
            lost += 1;
            continue;
        };
        let commit = SystemTime::from(*commit);
        last_commit = last_commit.max(commit);
        let lag = commit.duration_since(*at).unwrap_or_default().as_secs_f64() * 1000.0;
        lags.push(lag);
        let second = at.duration_since(first_sent).unwrap_or_default().as_secs();
        per_second.entry(second).or_default().push(lag);
    }
    lags.sort_by(f64::total_cmp);
    let span = last_commit
        .duration_since(first_sent)
        .unwrap_or_default()
        .as_secs_f64();
    let duplicates = handled - sent.len() as f64;
    let cpu = |names: &str| -> f64 {
        cpu_after
            .iter()
            .filter(|(n, _)| n.starts_with(names))
            .map(|(n, after)| {
                after
                    .saturating_sub(cpu_before.get(n).copied().unwrap_or_default())
                    .as_secs_f64()
            })
            .sum()
    };
    let n = sent.len() as f64;
    let mut out = String::new();
    writeln!(
        out,
        "offered: {rate}/s for {secs} s = {} callbacks",
        sent.len()
    )
    .unwrap();
    writeln!(
        out,
        "committed: {} rows, lost {lost}, handled more than once {duplicates}",
        commits.len()
    )
    .unwrap();
    writeln!(
        out,
        "throughput (first callback → last commit): {:.0}/s over {span:.1} s",
        n / span
    )
    .unwrap();
    writeln!(
        out,
        "lag callback → committed row: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or_default()
    )
    .unwrap();
    let max_depth = samples.iter().map(|s| s.contacts_depth).max().unwrap_or(0);
    writeln!(out, "wecom.contacts depth: max {max_depth}").unwrap();
    for role in ["ingress", "contact-sync", "auth-worker", "wecom-sim", "api"] {
        writeln!(
            out,
            "CPU {role}: {:.2} s total, {:.0} µs per callback",
            cpu(role),
            cpu(role) / n * 1e6
        )
        .unwrap();
    }
    let mut peaks: HashMap<&str, u64> = HashMap::new();
    for sample in samples {
        for (name, rss) in &sample.rss_kib {
            let peak = peaks.entry(name.as_str()).or_default();
            *peak = (*peak).max(*rss);
        }
    }
    let mut peaks: Vec<_> = peaks.into_iter().collect();
    peaks.sort_unstable();
    for (name, kib) in peaks {
        writeln!(out, "RSS peak {name}: {:.1} MiB", kib as f64 / 1024.0).unwrap();
    }
    println!("{out}");
    write_csv(samples, &per_second);
    let callbacks = system.sim.stats().await["callbacks"].clone();
    println!("wecom-sim callbacks: {callbacks}");
    assert_eq!(lost, 0, "every callback became a committed row");
}

/// One row per second: queue depths (max of the samples in it) and the lag of the callbacks
/// sent in it.
fn write_csv(samples: &[Sample], per_second: &HashMap<u64, Vec<f64>>) {
    let mut by_second: HashMap<u64, (u32, u32)> = HashMap::new();
    for sample in samples {
        let entry = by_second.entry(sample.at.as_secs()).or_default();
        entry.0 = entry.0.max(sample.contacts_depth);
        entry.1 = entry.1.max(sample.auth_depth);
    }
    let last = by_second
        .keys()
        .chain(per_second.keys())
        .copied()
        .max()
        .unwrap_or(0);
    let mut csv = String::from("second,contacts_depth,auth_depth,sent,lag_p50_ms,lag_p99_ms\n");
    for second in 0..=last {
        let (contacts, auth) = by_second.get(&second).copied().unwrap_or_default();
        let mut lags = per_second.get(&second).cloned().unwrap_or_default();
        lags.sort_by(f64::total_cmp);
        writeln!(
            csv,
            "{second},{contacts},{auth},{},{:.1},{:.1}",
            lags.len(),
            percentile(&lags, 50.0),
            percentile(&lags, 99.0)
        )
        .unwrap();
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reliability");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("callback-flood.csv"), csv).unwrap();
}
