//! Load benchmark of the ingress against the local RabbitMQ (issue 3, ARCHITECTURE §5).
//!
//! In one run, `--rounds` alternating pairs of phases (short phases, many rounds: on a shared
//! machine both kinds then see the same background noise), each of `--requests` messages:
//! - **raw**: a lapin publisher with confirms, persistent 1.5 KB messages, 32 unconfirmed at a
//!   time on one channel, no HTTP — what the broker itself allows. It publishes to the same place
//!   the ingress does (the `wecom.events` exchange → the quorum queue `wecom.contacts`), and, for
//!   reference, to a classic durable queue;
//! - **ingress**: valid, distinct, encrypted `change_contact.update_user` callbacks POSTed with 32
//!   requests in flight (32 keep-alive connections) to a `daikai-ingress` **release binary
//!   started as a child process** (so its RSS is its own, not the load generator's), which
//!   verifies, decrypts, parses, publishes and waits for each confirm before answering `success`.
//!
//! Prints throughput, p50/p99 latency and errors of every phase, the ingress/raw ratios, and the
//! ingress's RSS (current and peak). Run:
//!
//! ```text
//! cargo bench -p ingress --bench ingress_load -- [--requests 10000] [--concurrency 32] [--rounds 6]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bus::testkit::{amqp_url, test_namespace};
use bus::{BrokerUrl, Topology, WorkQueue};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use wecom::crypto::CallbackCrypto;

const SUITE_ID: &str = "dkBenchSuite01";
const TOKEN: &str = "benchToken";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const CORP_ID: &str = "wwbenchcorp00001";
const RAW_BODY_BYTES: usize = 1536;

#[derive(Debug, Clone, Copy)]
struct Args {
    requests: usize,
    concurrency: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut args = Args {
        requests: 10_000,
        concurrency: 32,
        rounds: 6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--requests" => args.requests = value(),
            "--concurrency" => args.concurrency = value(),
            "--rounds" => args.rounds = value(),
            _ => {} // cargo passes --bench
        }
    }
    args
}

/// Outcome of one phase.
#[derive(Debug)]
struct Phase {
    name: String,
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    fn line(&self) -> String {
        format!(
            "{:<22} {:>8} ok {:>6} err {:>9.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.name,
            self.ok,
            self.errors,
            self.rate(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The ingress under test, as a child process.

struct Ingress {
    child: Child,
    addr: String,
}

async fn start_ingress(topology: &Topology) -> Ingress {
    // A free port, released just before the ingress binds it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_daikai-ingress"))
        .env_clear()
        .env("INGRESS_ADDR", &addr)
        .env("AMQP_URL", amqp_url())
        .env("AMQP_NAMESPACE", topology.namespace().as_str())
        .env("WECOM_SUITE_ID", SUITE_ID)
        .env("WECOM_SUITE_SECRET", "secret")
        .env("WECOM_TOKEN", TOKEN)
        .env("WECOM_ENCODING_AES_KEY", KEY)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        // INGRESS_* and RUST_LOG set for the bench are passed on (e.g. INGRESS_WORKERS).
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("INGRESS_") || k == "RUST_LOG"))
        .env("INGRESS_ADDR", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start daikai-ingress");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the ingress never became ready");
        if let Ok(stream) = TcpStream::connect(&addr).await {
            let mut conn = Conn {
                stream,
                buf: Vec::new(),
            };
            let ready = conn.call(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await;
            if ready.is_ok() && conn.buf.starts_with(b"HTTP/1.1 200") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ingress { child, addr }
}

impl Ingress {
    /// CPU time (user + system) the ingress has used so far.
    fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id().unwrap())
    }

    /// (VmRSS, VmHWM) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The broker's Erlang VM, if it runs on this machine (for its CPU share).
fn beam_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim() == "beam.smp").then_some(pid)
    })
}

/// CPU used per message during a phase, by process.
#[derive(Debug, Default, Clone, Copy)]
struct CpuShare {
    messages: usize,
    ingress: Duration,
    broker: Duration,
    bench: Duration,
}

impl CpuShare {
    fn add(&mut self, messages: usize, ingress: Duration, broker: Duration, bench: Duration) {
        self.messages += messages;
        self.ingress += ingress;
        self.broker += broker;
        self.bench += bench;
    }

    fn per_message_us(total: Duration, messages: usize) -> f64 {
        total.as_secs_f64() * 1e6 / messages.max(1) as f64
    }

    fn line(&self, name: &str, bench_role: &str) -> String {
        format!(
            "{name:<8} CPU per message: broker {:.1} µs, ingress {:.1} µs, {bench_role} {:.1} µs",
            Self::per_message_us(self.broker, self.messages),
            Self::per_message_us(self.ingress, self.messages),
            Self::per_message_us(self.bench, self.messages),
        )
    }
}

/// Snapshot of the three processes' CPU times.
fn cpu_snapshot(ingress: &Ingress, beam: Option<u32>) -> (Duration, Duration, Duration) {
    (
        ingress.cpu_time(),
        beam.map_or(Duration::ZERO, cpu_time),
        cpu_time(std::process::id()),
    )
}

fn cpu_delta(
    before: (Duration, Duration, Duration),
    after: (Duration, Duration, Duration),
) -> (Duration, Duration, Duration) {
    (after.0 - before.0, after.1 - before.1, after.2 - before.2)
}

// ---------------------------------------------------------------------------------------------
// Callbacks, prepared before the clock starts.

fn update_user_xml(i: usize) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType>\
         <UserID><![CDATA[user{i:08}]]></UserID><Name><![CDATA[张三{i}]]></Name>\
         <Department><![CDATA[1,2,3]]></Department><MainDepartment>1</MainDepartment>\
         <IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept><DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader>\
         <Position><![CDATA[产品经理]]></Position><Mobile>13800000000</Mobile><Gender>1</Gender>\
         <Email><![CDATA[user{i}@example.com]]></Email><BizMail><![CDATA[user{i}@corp.wecom.work]]></BizMail>\
         <Status>1</Status><Avatar><![CDATA[http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0]]></Avatar>\
         <Alias><![CDATA[user{i}]]></Alias><Telephone><![CDATA[020-123456]]></Telephone>\
         <Address><![CDATA[广州市海珠区新港中路]]></Address><ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type>\
         <Text><Value><![CDATA[旅游]]></Value></Text></Item></ExtAttr></xml>"
    )
}

fn prepare_requests(count: usize, offset: usize) -> Vec<Vec<u8>> {
    let crypto = CallbackCrypto::new(TOKEN, KEY).unwrap();
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    (offset..offset + count)
        .map(|i| {
            let xml = update_user_xml(i);
            let encrypt = crypto.encrypt(&xml, CORP_ID).unwrap();
            let nonce = i.to_string();
            let signature = crypto.signature(&timestamp, &nonce, &encrypt);
            let body = format!(
                "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>\
                 <AgentID><![CDATA[1000002]]></AgentID></xml>"
            );
            let mut request = String::with_capacity(body.len() + 300);
            write!(
                request,
                "POST /callback/app/{SUITE_ID}/{CORP_ID}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce} HTTP/1.1\r\n\
                 Host: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            request.into_bytes()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client: one request in flight per connection.

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request; true if the answer is `200` with body `success`.
    async fn call(&mut self, request: &[u8]) -> std::io::Result<bool> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while self.buf.len() < header_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(head.starts_with("http/1.1 200") && &self.buf[header_end..] == b"success")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn ingress_phase(name: &str, addr: &str, requests: Arc<Vec<Vec<u8>>>, concurrency: usize) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::open(addr).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, requests) = (next.clone(), requests.clone());
            let addr = addr.to_owned();
            tokio::spawn(async move {
                let (mut lat, mut ok, mut errors) = (Vec::new(), 0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else { break };
                    let t = Instant::now();
                    match conn.call(request).await {
                        Ok(true) => {
                            ok += 1;
                            lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                        Ok(false) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = Conn::open(&addr).await;
                        }
                    }
                }
                (lat, ok, errors)
            })
        })
        .collect();
    collect(name, started, tasks).await
}

async fn collect(
    name: &str,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, usize, usize)>>,
) -> Phase {
    let mut phase = Phase {
        name: name.to_owned(),
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (lat, ok, errors) = task.await.unwrap();
        phase.latencies_us.extend(lat);
        phase.ok += ok;
        phase.errors += errors;
    }
    phase.elapsed = started.elapsed();
    phase.latencies_us.sort_unstable();
    phase
}

// ---------------------------------------------------------------------------------------------
// The raw publisher.

async fn raw_phase(
    name: &str,
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    count: usize,
    concurrency: usize,
) -> Phase {
    // BENCH_RAW_BYTES overrides the size (to compare with the ingress's envelope size).
    let size = std::env::var("BENCH_RAW_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RAW_BODY_BYTES);
    let body: Arc<Vec<u8>> = Arc::new(std::iter::repeat_n(b'x', size).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (channel, next, body) = (channel.clone(), next.clone(), body.clone());
            let (exchange, routing_key) = (exchange.to_owned(), routing_key.to_owned());
            tokio::spawn(async move {
                let (mut lat, mut ok, mut errors) = (Vec::new(), 0, 0);
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let t = Instant::now();
                    let props = BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into());
                    let confirmed = async {
                        channel
                            .basic_publish(&exchange, &routing_key, BasicPublishOptions::default(), &body, props)
                            .await?
                            .await
                    }
                    .await;
                    match confirmed {
                        Ok(c) if c.is_ack() => {
                            ok += 1;
                            lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                        _ => errors += 1,
                    }
                }
                (lat, ok, errors)
            })
        })
        .collect();
    collect(name, started, tasks).await
}

// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let topology = Topology::new(test_namespace());
    let connection = bus::connect(&BrokerUrl::parse(&amqp_url()).unwrap(), "ingress-bench")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    topology.declare(&channel).await.unwrap();
    let classic = format!("{}bench.classic", topology.namespace().as_str());
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(&classic, durable, FieldTable::default())
        .await
        .unwrap();
    let contacts = topology.queue(WorkQueue::Contacts).work.clone();
    let key = "app.change_contact.update_user";

    let ingress = start_ingress(&topology).await;
    println!(
        "ingress_load: {} requests/phase, {} in flight, {} rounds; ingress pid {} at {}",
        args.requests,
        args.concurrency,
        args.rounds,
        ingress.child.id().unwrap_or(0),
        ingress.addr
    );
    let (rss_idle, _) = ingress.rss_kib();

    // Warm-up (not reported): connections, allocator, broker.
    let warm = Arc::new(prepare_requests(2_000, usize::MAX / 2));
    ingress_phase("warm-up", &ingress.addr, warm, args.concurrency).await;
    raw_phase("warm-up", &channel, &topology.events_exchange, key, 2_000, args.concurrency).await;
    purge(&channel, &[&contacts, &classic]).await;

    let mut raw_same = Vec::new();
    let mut http = Vec::new();
    let beam = beam_pid();
    let (mut raw_cpu, mut http_cpu) = (CpuShare::default(), CpuShare::default());
    for round in 0..args.rounds {
        let requests = Arc::new(prepare_requests(args.requests, round * args.requests));
        let before = cpu_snapshot(&ingress, beam);
        let phase = raw_phase(
            &format!("raw→wecom.contacts #{round}"),
            &channel,
            &topology.events_exchange,
            key,
            args.requests,
            args.concurrency,
        )
        .await;
        let (i, b, c) = cpu_delta(before, cpu_snapshot(&ingress, beam));
        raw_cpu.add(phase.ok + phase.errors, i, b, c);
        println!("{}", phase.line());
        raw_same.push(phase);
        purge(&channel, &[&contacts]).await;

        let before = cpu_snapshot(&ingress, beam);
        let phase = ingress_phase(
            &format!("ingress #{round}"),
            &ingress.addr,
            requests,
            args.concurrency,
        )
        .await;
        let (i, b, c) = cpu_delta(before, cpu_snapshot(&ingress, beam));
        http_cpu.add(phase.ok + phase.errors, i, b, c);
        println!("{}", phase.line());
        http.push(phase);
        if round == 0 {
            let sample = channel
                .basic_get(&contacts, lapin::options::BasicGetOptions::default())
                .await
                .unwrap()
                .map_or(0, |m| m.delivery.data.len());
            println!("(an ingress message body is {sample} bytes; raw bodies are {RAW_BODY_BYTES})");
        }
        purge(&channel, &[&contacts]).await;
    }
    println!("{}", raw_cpu.line("raw", "lapin publisher"));
    println!("{}", http_cpu.line("ingress", "HTTP client"));
    // For reference: the same raw publisher into a classic durable queue.
    let raw_classic = vec![
        raw_phase("raw→classic", &channel, "", &classic, args.requests, args.concurrency).await,
    ];
    println!("{}", raw_classic[0].line());
    purge(&channel, &[&classic]).await;
    let (rss, hwm) = ingress.rss_kib();
    report(&raw_same, &raw_classic, &http, rss_idle, rss, hwm);
    print_internal_means(&ingress.addr).await;

    drop(ingress);
    channel
        .queue_delete(&classic, QueueDeleteOptions::default())
        .await
        .unwrap();
    topology.delete(&channel).await.unwrap();
}

async fn purge(channel: &Channel, queues: &[&str]) {
    for queue in queues {
        channel
            .queue_purge(queue, QueuePurgeOptions::default())
            .await
            .unwrap();
    }
}

/// Pools the phases of one kind: total ok / total time, percentiles over all latencies.
fn pooled(name: &str, phases: &[Phase]) -> Phase {
    let mut all = Phase {
        name: name.to_owned(),
        ok: phases.iter().map(|p| p.ok).sum(),
        errors: phases.iter().map(|p| p.errors).sum(),
        elapsed: phases.iter().map(|p| p.elapsed).sum(),
        latencies_us: phases.iter().flat_map(|p| p.latencies_us.iter().copied()).collect(),
    };
    all.latencies_us.sort_unstable();
    all
}

fn report(raw_same: &[Phase], raw_classic: &[Phase], http: &[Phase], rss_idle: u64, rss: u64, hwm: u64) {
    let raw = pooled("raw→wecom.contacts", raw_same);
    let classic = pooled("raw→classic", raw_classic);
    let ingress = pooled("ingress", http);
    println!("\n== pooled over all rounds ==");
    for phase in [&raw, &classic, &ingress] {
        println!("{}", phase.line());
    }
    let ratio = |a: &Phase, b: &Phase| (a.rate() / b.rate(), a.percentile_ms(0.99) / b.percentile_ms(0.99));
    let (t_same, p_same) = ratio(&ingress, &raw);
    let (t_classic, p_classic) = ratio(&ingress, &classic);
    println!(
        "ingress / raw→wecom.contacts: throughput {t_same:.2}× (budget ≥ 0.80), p99 {p_same:.2}× (budget ≤ 1.30)"
    );
    println!(
        "ingress / raw→classic:        throughput {t_classic:.2}×, p99 {p_classic:.2}×"
    );
    println!(
        "ingress errors: {} (budget 0); RSS idle {:.1} MiB, after load {:.1} MiB, peak {:.1} MiB (budget ≤ 64 MiB)",
        ingress.errors,
        rss_idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

/// Mean time inside the ingress (from its own histograms): handling and publish→confirm, to
/// tell the ingress's own share of the client-side latency from the broker's.
async fn print_internal_means(addr: &str) {
    let mut conn = Conn::open(addr).await;
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    drop(conn.call(request).await);
    let text = String::from_utf8_lossy(&conn.buf).into_owned();
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mean_ms = |metric: &str| {
        1000.0 * value(&format!("{metric}_sum")) / value(&format!("{metric}_count"))
    };
    println!(
        "inside the ingress (all phases incl. warm-up): mean handling {:.2} ms, of which publish→confirm {:.2} ms",
        mean_ms("ingress_request_duration_seconds"),
        mean_ms("ingress_publish_confirm_seconds")
    );
}
