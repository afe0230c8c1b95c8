//! Load benchmark of the ingress against the local RabbitMQ (issue 3, docs/architecture.md §5).
//!
//! One run interleaves `--rounds` rounds of three phases of `--requests` messages each (short
//! phases, many rounds: on a shared machine every kind of phase sees the same background noise):
//! - **raw 1536 B**: a lapin publisher with confirms, persistent 1.5 KB messages, 32 unconfirmed
//!   at a time on one channel, no HTTP — what the broker itself allows. It publishes where the
//!   ingress does (`wecom.events` → the quorum queue `wecom.contacts`);
//! - **raw at the envelope's size**: the same, with bodies as large as the ingress's envelopes;
//! - **ingress**: valid, distinct, encrypted `change_contact.update_user` callbacks POSTed with 32
//!   requests in flight (32 keep-alive connections, a minimal HTTP/1.1 client) to the
//!   `daikai-ingress` **release binary started as a child process** (so its RSS and CPU are its
//!   own), which verifies, decrypts, parses, publishes and waits for each confirm before
//!   answering `success`.
//!
//! Then once the 1.5 KB raw publisher into a classic durable queue, for reference.
//!
//! Prints throughput, p50/p99 latency and errors of every phase, pooled figures and the
//! ingress/raw ratios, the CPU each process spent per message (broker, ingress, load generator;
//! from `/proc`), the ingress's RSS (idle, after load, peak) and its own mean handling and
//! confirm times. Run (release build):
//!
//! ```text
//! cargo bench -p ingress --bench ingress_load -- [--requests 10000] [--concurrency 32] [--rounds 6]
//! ```
//!
//! The ingress runs with `INGRESS_KEEP_ALIVE_SECS=75` (its connections are reused).
//! `INGRESS_*` and `RUST_LOG` variables set for the bench are passed to the ingress
//! (e.g. `INGRESS_WORKERS=1`). `DAIKAI_INGRESS_BINARY=/path/to/daikai-ingress` runs another build
//! instead of this one, to compare two versions on the same machine.

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

    /// The `permille`-th latency (500 = p50, 990 = p99), nearest rank, in milliseconds.
    fn percentile_ms(&self, permille: usize) -> f64 {
        let Some(last) = self.latencies_us.len().checked_sub(1) else {
            return f64::NAN;
        };
        f64::from(self.latencies_us[(last * permille).div_ceil(1000)]) / 1000.0
    }

    fn line(&self) -> String {
        format!(
            "{:<22} {:>8} ok {:>6} err {:>9.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.name,
            self.ok,
            self.errors,
            self.rate(),
            self.percentile_ms(500),
            self.percentile_ms(990),
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
    let binary = std::env::var("DAIKAI_INGRESS_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_daikai-ingress").to_owned());
    let child = Command::new(binary)
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
        // The load generator reuses its connections, as a load balancer in front of the ingress
        // would; keep-alive is off by default (docs/ingress.md, slow clients).
        .env("INGRESS_KEEP_ALIVE_SECS", "75")
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
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
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
    fn add(&mut self, messages: usize, (ingress, broker, bench): (Duration, Duration, Duration)) {
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
    (
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
        after.2.saturating_sub(before.2),
    )
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

async fn ingress_phase(
    name: &str,
    addr: &str,
    requests: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Phase {
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
                    let Some(request) = requests.get(i) else {
                        break;
                    };
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
    size: usize,
    count: usize,
    concurrency: usize,
) -> Phase {
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
                            .basic_publish(
                                exchange.as_str().into(),
                                routing_key.as_str().into(),
                                BasicPublishOptions::default(),
                                &body,
                                props,
                            )
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
    let bench = Bench::setup(args()).await;
    bench.warm_up().await;
    let mut series = Series::default();
    for round in 0..bench.args.rounds {
        bench.round(round, &mut series).await;
    }
    let classic = bench.classic_reference().await;
    let (rss, hwm) = bench.ingress.rss_kib();
    series.report(bench.envelope_bytes, &classic, bench.rss_idle, rss, hwm);
    print_internal_means(&bench.ingress.addr).await;
    bench.teardown().await;
}

/// The broker side (own namespace, a classic queue for reference) and the ingress under test.
struct Bench {
    args: Args,
    topology: Topology,
    channel: Channel,
    _connection: lapin::Connection,
    ingress: Ingress,
    beam: Option<u32>,
    contacts: String,
    classic: String,
    envelope_bytes: usize,
    rss_idle: u64,
}

/// Where the ingress's `change_contact.update_user` events are routed; the raw publisher uses
/// the same key so both land in `wecom.contacts`.
const ROUTING_KEY: &str = "app.change_contact.update_user";

impl Bench {
    async fn setup(args: Args) -> Self {
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
            .queue_declare(classic.as_str().into(), durable, FieldTable::default())
            .await
            .unwrap();
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
        Self {
            args,
            contacts: topology.queue(WorkQueue::Contacts).work.clone(),
            topology,
            channel,
            _connection: connection,
            ingress,
            beam: beam_pid(),
            classic,
            envelope_bytes: envelope_size(),
            rss_idle,
        }
    }

    /// Not reported: connections, allocator, broker.
    async fn warm_up(&self) {
        let warm = Arc::new(prepare_requests(2_000, usize::MAX / 2));
        ingress_phase("warm-up", &self.ingress.addr, warm, self.args.concurrency).await;
        self.raw("warm-up", RAW_BODY_BYTES, 2_000).await;
        purge(&self.channel, &[&self.contacts]).await;
    }

    async fn raw(&self, name: &str, size: usize, count: usize) -> Phase {
        raw_phase(
            name,
            &self.channel,
            &self.topology.events_exchange,
            ROUTING_KEY,
            size,
            count,
            self.args.concurrency,
        )
        .await
    }

    /// Raw 1.5 KB, raw at the envelope's size, then the ingress; queues purged in between.
    async fn round(&self, round: usize, series: &mut Series) {
        let requests = Arc::new(prepare_requests(
            self.args.requests,
            round * self.args.requests,
        ));
        for size in [RAW_BODY_BYTES, self.envelope_bytes] {
            let before = cpu_snapshot(&self.ingress, self.beam);
            let phase = self
                .raw(&format!("raw {size} B #{round}"), size, self.args.requests)
                .await;
            let cpu = cpu_delta(before, cpu_snapshot(&self.ingress, self.beam));
            println!("{}", phase.line());
            if size == RAW_BODY_BYTES {
                series.raw_cpu.add(phase.ok + phase.errors, cpu);
                series.raw.push(phase);
            } else {
                series.raw_same_size_cpu.add(phase.ok + phase.errors, cpu);
                series.raw_same_size.push(phase);
            }
            purge(&self.channel, &[&self.contacts]).await;
        }
        let before = cpu_snapshot(&self.ingress, self.beam);
        let phase = ingress_phase(
            &format!("ingress #{round}"),
            &self.ingress.addr,
            requests,
            self.args.concurrency,
        )
        .await;
        let cpu = cpu_delta(before, cpu_snapshot(&self.ingress, self.beam));
        series.ingress_cpu.add(phase.ok + phase.errors, cpu);
        println!("{}", phase.line());
        series.ingress.push(phase);
        purge(&self.channel, &[&self.contacts]).await;
    }

    /// The 1.5 KB raw publisher into a classic durable queue, once, for reference.
    async fn classic_reference(&self) -> Phase {
        let phase = raw_phase(
            "raw 1536 B → classic",
            &self.channel,
            "",
            &self.classic,
            RAW_BODY_BYTES,
            self.args.requests,
            self.args.concurrency,
        )
        .await;
        println!("{}", phase.line());
        purge(&self.channel, &[&self.classic]).await;
        phase
    }

    async fn teardown(self) {
        drop(self.ingress);
        self.channel
            .queue_delete(self.classic.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        self.topology.delete(&self.channel).await.unwrap();
    }
}

/// Size of the envelope the ingress publishes for `update_user_xml(0)`.
fn envelope_size() -> usize {
    let xml = update_user_xml(0);
    let origin = bus::CallbackOrigin {
        source: bus::Source::App,
        suite_id: &SUITE_ID.parse().unwrap(),
        corp_id: Some(&CORP_ID.parse().unwrap()),
        receive_id: CORP_ID,
    };
    let event = wecom::event::Event::parse(&xml).unwrap();
    bus::Envelope::from_callback(origin, xml, event)
        .to_json()
        .unwrap()
        .len()
}

/// Every phase of the run, by kind, with the CPU each kind cost.
#[derive(Default)]
struct Series {
    raw: Vec<Phase>,
    raw_cpu: CpuShare,
    raw_same_size: Vec<Phase>,
    raw_same_size_cpu: CpuShare,
    ingress: Vec<Phase>,
    ingress_cpu: CpuShare,
}

impl Series {
    fn report(&self, envelope_bytes: usize, classic: &Phase, rss_idle: u64, rss: u64, hwm: u64) {
        let raw = pooled(&format!("raw {RAW_BODY_BYTES} B"), &self.raw);
        let same = pooled(&format!("raw {envelope_bytes} B"), &self.raw_same_size);
        let ingress = pooled("ingress", &self.ingress);
        println!("\n== pooled over all rounds (all into wecom.events → wecom.contacts) ==");
        for phase in [&raw, &same, &ingress] {
            println!("{}", phase.line());
        }
        println!("{}", self.raw_cpu.line("raw 1536", "publisher"));
        println!(
            "{}",
            self.raw_same_size_cpu
                .line(&format!("raw {envelope_bytes}"), "publisher")
        );
        println!("{}", self.ingress_cpu.line("ingress", "HTTP client"));
        let ratio = |a: &Phase, b: &Phase| {
            (
                a.rate() / b.rate(),
                a.percentile_ms(990) / b.percentile_ms(990),
            )
        };
        let (t, p) = ratio(&ingress, &raw);
        println!(
            "ingress / raw {RAW_BODY_BYTES} B: throughput {t:.2}× (budget ≥ 0.80), p99 {p:.2}× (budget ≤ 1.30)"
        );
        let (t, p) = ratio(&ingress, &same);
        println!(
            "ingress / raw {envelope_bytes} B: throughput {t:.2}×, p99 {p:.2}× (same message size)"
        );
        let (t, p) = ratio(&ingress, classic);
        println!("ingress / raw 1536 B → classic queue: throughput {t:.2}×, p99 {p:.2}×");
        println!(
            "ingress errors: {} (budget 0); RSS idle {:.1} MiB, after load {:.1} MiB, peak {:.1} MiB (budget ≤ 64 MiB)",
            ingress.errors,
            rss_idle as f64 / 1024.0,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
}

async fn purge(channel: &Channel, queues: &[&str]) {
    for queue in queues {
        channel
            .queue_purge((*queue).into(), QueuePurgeOptions::default())
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
        latencies_us: phases
            .iter()
            .flat_map(|p| p.latencies_us.iter().copied())
            .collect(),
    };
    all.latencies_us.sort_unstable();
    all
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
    let mean_ms =
        |metric: &str| 1000.0 * value(&format!("{metric}_sum")) / value(&format!("{metric}_count"));
    println!(
        "inside the ingress (all phases incl. warm-up): mean handling {:.2} ms, of which publish→confirm {:.2} ms",
        mean_ms("ingress_request_duration_seconds"),
        mean_ms("ingress_publish_confirm_seconds")
    );
}
