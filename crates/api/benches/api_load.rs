//! Load benchmark of the provider API (issue 12, docs/benchmarks.md "Provider API").
//!
//! Sets up a database of its own, wecom-sim in-process, one active tenant and one key, then runs
//! the **release `daikai-api` binary as a child process** (so its RSS and CPU are its own) and
//! sends, with `--concurrency` keep-alive connections (a minimal HTTP/1.1 client), for
//! `--seconds` each:
//! - **access-token**: `GET /v1/tenants/{suite}/{corp}/access-token` with the cache warm (one
//!   `gettoken` before the phase; the phase itself reads the shared cache in Postgres: key
//!   check, rate limit, one cached-token read and its decryption per request);
//! - **member**: `GET /v1/tenants/{suite}/{corp}/members/{userid}` over a mirrored directory of
//!   `--members` members (written from the simulator's answers, as contact sync writes them),
//!   each connection cycling through every userid.
//!
//! Prints, per phase: requests, rate, p50/p99/max latency, non-200 answers, the API's CPU per
//! request; and the API's RSS (idle, after load, peak). Run:
//!
//! ```text
//! cargo bench -p api --bench api_load -- [--seconds 10] [--concurrency 32] [--members 10000]
//! ```
//!
//! `API_*` and `RUST_LOG` variables set for the bench are passed to the API (e.g.
//! `API_WORKERS=1`); `DATABASE_URL` names the Postgres server (default the local one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use store::api_keys::{NewApiKey, Scope, create_api_key};
use store::tenants::Activation;
use store::testing::TestDatabase;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use wecom::ids::{CorpId, SuiteId};
use wecom::suite::Suites;
use wecom_sim::SimConfig;

const SUITE_ID: &str = "dkbenchsuite1";
const CORP_ID: &str = "wwbenchcorp";
const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

struct Args {
    seconds: u64,
    concurrency: usize,
    members: usize,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 10,
        concurrency: 32,
        members: 10_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "--seconds" => args.seconds = argv[i + 1].parse().unwrap(),
            "--concurrency" => args.concurrency = argv[i + 1].parse().unwrap(),
            "--members" => args.members = argv[i + 1].parse().unwrap(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

#[tokio::main]
async fn main() {
    let args = args();
    let admin =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| store::testing::DEFAULT_URL.to_owned());
    let db = TestDatabase::create(&admin).await.unwrap();
    let shutdown = CancellationToken::new();
    let sim_base = start_sim(&shutdown);
    let http = reqwest::Client::new();
    let code = authorize(&http, &sim_base, args.members).await;
    let key = seed(&db, &code).await;
    let userids = mirror(&db, &sim_base).await;

    let port = free_port();
    let mut api = start_api(&db, &sim_base, port);
    let base = format!("127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    let pid = api.id().unwrap();
    let idle = rss_kib(pid, "VmRSS");
    let path = format!("/v1/tenants/{SUITE_ID}/{CORP_ID}/access-token");
    let warm = http
        .get(format!("http://{base}{path}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200, "{:?}", warm.text().await);

    println!(
        "provider API load: {} connections, {} s per phase, release daikai-api (pid {pid})",
        args.concurrency, args.seconds
    );
    let cpu_before = cpu_ticks(pid);
    let phase = run_phase(&base, &[path], &key, &args).await;
    let cpu = cpu_ticks(pid) - cpu_before;
    phase.print("access-token (cache warm)", cpu);
    let paths: Vec<String> = userids
        .iter()
        .map(|u| format!("/v1/tenants/{SUITE_ID}/{CORP_ID}/members/{u}"))
        .collect();
    let cpu_before = cpu_ticks(pid);
    let phase = run_phase(&base, &paths, &key, &args).await;
    let cpu = cpu_ticks(pid) - cpu_before;
    phase.print(&format!("member lookup ({} members)", userids.len()), cpu);
    println!(
        "daikai-api RSS: idle {} MiB, after load {} MiB, peak {} MiB",
        idle / 1024,
        rss_kib(pid, "VmRSS") / 1024,
        rss_kib(pid, "VmHWM") / 1024
    );
    api.kill().await.unwrap();
    shutdown.cancel();
    db.drop_database().await.unwrap();
}

fn start_sim(shutdown: &CancellationToken) -> String {
    let suites = Suites::from_toml(&format!(
        "[suites.{SUITE_ID}]\nsuite_secret = \"s\"\ntoken = \"QDG6eK\"\n\
         encoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\"\n"
    ))
    .unwrap();
    let config = SimConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ticket_interval: Duration::ZERO,
        ticket_on_start: false,
        suites: suites.iter().cloned().collect(),
        ..SimConfig::default()
    };
    let app = wecom_sim::build(config).unwrap();
    let base = app.base_url();
    tokio::spawn(app.run(shutdown.clone()));
    base
}

/// Creates and authorizes the corp in the simulator; its permanent code and agent id.
async fn authorize(http: &reqwest::Client, sim: &str, members: usize) -> (String, i64) {
    for _ in 0..200 {
        if http.get(format!("{sim}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let post = |path: String, body: Value| {
        let http = http.clone();
        async move { http.post(path).json(&body).send().await.unwrap() }
    };
    post(
        format!("{sim}/sim/corps"),
        json!({"corp_id": CORP_ID, "users": members, "seed": 7}),
    )
    .await;
    post(
        format!("{sim}/sim/corps/{CORP_ID}/authorize?push=false"),
        json!({}),
    )
    .await;
    let summary: Value = http
        .get(format!("{sim}/sim/corps/{CORP_ID}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = &summary["authorizations"][0];
    (
        auth["permanent_code"].as_str().unwrap().to_owned(),
        auth["agent_id"].as_i64().unwrap(),
    )
}

/// The active tenant and a key without a practical rate limit; the key.
async fn seed(db: &TestDatabase, (code, agent_id): &(String, i64)) -> String {
    let keyring = store::Keyring::parse(SECRET_KEY, "").unwrap();
    let secrets = store::SecretBox::new(keyring);
    let mut conn = db.pool().acquire().await.unwrap();
    store::tenants::activate_tenant(
        &mut conn,
        &secrets,
        &Activation {
            suite_id: &SuiteId::parse(SUITE_ID).unwrap(),
            corp_id: &CorpId::parse(CORP_ID).unwrap(),
            corp_name: Some("Bench"),
            agent_id: Some(*agent_id),
            permanent_code: &SecretString::from(code.clone()),
            auth_info: None,
            state: None,
            event_time: 1_700_000_000,
        },
    )
    .await
    .unwrap();
    let (key, _) = create_api_key(
        &mut conn,
        &NewApiKey {
            name: "bench",
            scopes: &Scope::ALL,
            suites: None,
            rate_limit: Some(i32::MAX),
        },
    )
    .await
    .unwrap();
    key.key.expose_secret().to_owned()
}

/// Writes the corp's directory to the mirror from the simulator's answers (departments and
/// `user/list` of each); the userids.
async fn mirror(db: &TestDatabase, sim: &str) -> Vec<String> {
    let client =
        wecom::api::Client::new(wecom::api::ClientConfig::new(sim.parse().unwrap())).unwrap();
    let keyring = store::Keyring::parse(SECRET_KEY, "").unwrap();
    let tokens = tokens::TokenService::new(
        db.pool().clone(),
        client.clone(),
        store::SecretBox::new(keyring),
    );
    let (suite_id, corp_id) = (
        SuiteId::parse(SUITE_ID).unwrap(),
        CorpId::parse(CORP_ID).unwrap(),
    );
    let token = tokens.corp_token(&suite_id, &corp_id).await.unwrap();
    let departments = client.department_list(token.expose(), None).await.unwrap();
    let mut users = std::collections::BTreeMap::new();
    for department in &departments {
        for user in client
            .user_list(token.expose(), department.id)
            .await
            .unwrap()
        {
            users.insert(user.userid.to_string(), user);
        }
    }
    let mut conn = db.pool().acquire().await.unwrap();
    let tenant = store::tenants::tenant(&mut conn, &suite_id, &corp_id)
        .await
        .unwrap()
        .unwrap();
    let observation = store::directory::Observation {
        tenant_id: tenant.id,
        observed_at: store::directory::observation_time(&mut conn).await.unwrap(),
        run: None,
        wecom_time: None,
    };
    store::directory::departments::upsert_departments(&mut conn, &observation, &departments)
        .await
        .unwrap();
    let all: Vec<wecom::api::User> = users.values().cloned().collect();
    for chunk in all.chunks(1000) {
        store::directory::users::upsert_users(&mut conn, &observation, chunk)
            .await
            .unwrap();
    }
    users.into_keys().collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_api(db: &TestDatabase, sim: &str, port: u16) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_daikai-api"));
    command
        .env_clear()
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db.url())
        .env("WECOM_API_BASE", sim)
        .env("DAIKAI_SECRET_KEY", SECRET_KEY)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in std::env::vars() {
        if name.starts_with("API_") && name != "API_ADDR" || name == "RUST_LOG" {
            command.env(name, value);
        }
    }
    command.spawn().unwrap()
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..500 {
        if let Ok(r) = http.get(format!("http://{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("daikai-api did not become ready");
}

struct Phase {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Phase {
    fn print(mut self, name: &str, cpu_ticks: u64) {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        let at = |percent: usize| self.latencies[(n * percent / 100).min(n - 1)];
        let ticks_per_sec = 100.0;
        println!(
            "{name}: {n} requests in {:.1} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             {} non-200; daikai-api CPU {:.0} µs/request",
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64(),
            at(50).as_secs_f64() * 1e3,
            at(99).as_secs_f64() * 1e3,
            self.latencies[n - 1].as_secs_f64() * 1e3,
            self.errors,
            cpu_ticks as f64 / ticks_per_sec / n as f64 * 1e6,
        );
    }
}

/// Every connection sends requests for `paths` in turn, each starting at its own offset.
async fn run_phase(base: &str, paths: &[String], key: &str, args: &Args) -> Phase {
    let requests: Vec<String> = paths
        .iter()
        .map(|path| {
            format!("GET {path} HTTP/1.1\r\nHost: {base}\r\nAuthorization: Bearer {key}\r\n\r\n")
        })
        .collect();
    let requests = std::sync::Arc::new(requests);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..args.concurrency {
        let (base, requests) = (base.to_owned(), requests.clone());
        let mut next = connection * requests.len() / args.concurrency;
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&base).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buf = Vec::with_capacity(4096);
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let request = &requests[next % requests.len()];
                next += 1;
                let sent = Instant::now();
                let status = exchange(&mut stream, &mut buf, request.as_bytes()).await;
                latencies.push(sent.elapsed());
                if status != 200 {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut phase = Phase {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        phase.latencies.extend(latencies);
        phase.errors += errors;
    }
    phase.elapsed = started.elapsed();
    phase
}

/// Sends one request on a kept-alive connection and reads one response; its status.
async fn exchange(stream: &mut TcpStream, buf: &mut Vec<u8>, request: &[u8]) -> u16 {
    stream.write_all(request).await.unwrap();
    buf.clear();
    let mut chunk = [0_u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the API closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])
                .unwrap()
                .to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the API closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
    std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap()
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .map_or(0, |v| v.parse().unwrap())
}

/// utime + stime of the process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
