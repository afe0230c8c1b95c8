//! Spawning an ingress in-process (port 0, own AMQP namespace, optionally behind a fault proxy)
//! and speaking to it the way WeCom does.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bus::testkit::{FaultProxy, amqp_url, test_namespace};
use bus::{BrokerUrl, Envelope, Topology, WorkQueue};
use ingress::{Application, Config};
use lapin::message::BasicGetMessage;
use lapin::options::BasicGetOptions;
use lapin::{Channel, Connection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wecom::crypto::CallbackCrypto;

pub const SUITE_ID: &str = "dkTestSuite0001";
pub const TOKEN: &str = "suiteToken1";
pub const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const APP_TOKEN: &str = "appToken1";
pub const APP_KEY: &str = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut";
pub const CORP_ID: &str = "wwcorp0000000001";
pub const PROVIDER_CORP_ID: &str = "wwprovider000001";

/// The suite of the official test vectors (token `QDG6eK`, receiveid `wx5823bf96d3bd56c7`).
pub const VECTOR_SUITE_ID: &str = "dkVectors";
pub const VECTOR_TOKEN: &str = "QDG6eK";
pub const VECTOR_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// Knobs of one test's ingress.
#[derive(Debug, Clone)]
pub struct Options {
    pub publish_timeout: Duration,
    pub max_clock_skew_secs: u64,
    pub max_body_bytes: usize,
    pub via_proxy: bool,
    pub provider_corp_id: Option<String>,
    /// `INGRESS_BODY_TIMEOUT_MS`, `INGRESS_HEADER_TIMEOUT_MS` and `INGRESS_KEEP_ALIVE_SECS`
    /// when set; the production defaults otherwise.
    pub body_timeout: Option<Duration>,
    pub header_timeout: Option<Duration>,
    pub keep_alive_secs: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            publish_timeout: Duration::from_secs(5),
            max_clock_skew_secs: 600,
            max_body_bytes: 65536,
            via_proxy: false,
            provider_corp_id: Some(PROVIDER_CORP_ID.to_owned()),
            body_timeout: None,
            header_timeout: None,
            keep_alive_secs: None,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub topology: Topology,
    pub proxy: Option<FaultProxy>,
    pub channel: Channel,
    _inspector: Connection,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
}

fn suites_toml() -> String {
    format!(
        r#"
        [suites.{SUITE_ID}]
        suite_secret = "suite-secret"
        token = "{TOKEN}"
        encoding_aes_key = "{KEY}"
        app_token = "{APP_TOKEN}"
        app_encoding_aes_key = "{APP_KEY}"

        [suites.{VECTOR_SUITE_ID}]
        suite_secret = "vector-secret"
        token = "{VECTOR_TOKEN}"
        encoding_aes_key = "{VECTOR_KEY}"
        "#
    )
}

pub fn broker_addr() -> SocketAddr {
    let url = amqp_url();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .unwrap()
        .next()
        .unwrap()
}

pub async fn spawn_app(options: Options) -> TestApp {
    let topology = Topology::new(test_namespace());
    let proxy = if options.via_proxy {
        Some(FaultProxy::start(broker_addr()).await.unwrap())
    } else {
        None
    };
    let url = proxy
        .as_ref()
        .map_or_else(amqp_url, |p| p.amqp_url(&amqp_url()));
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("INGRESS_ADDR", "127.0.0.1:0".to_owned()),
        ("INGRESS_WORKERS", "2".to_owned()),
        ("AMQP_URL", url),
        ("AMQP_NAMESPACE", topology.namespace().as_str().to_owned()),
        ("DAIKAI_SUITES_FILE", "/suites.toml".to_owned()),
        (
            "INGRESS_PUBLISH_TIMEOUT_MS",
            options.publish_timeout.as_millis().to_string(),
        ),
        (
            "INGRESS_MAX_CLOCK_SKEW_SECS",
            options.max_clock_skew_secs.to_string(),
        ),
        ("INGRESS_MAX_BODY_BYTES", options.max_body_bytes.to_string()),
    ]);
    if let Some(provider) = &options.provider_corp_id {
        vars.insert("WECOM_PROVIDER_CORP_ID", provider.clone());
    }
    if let Some(timeout) = options.body_timeout {
        vars.insert("INGRESS_BODY_TIMEOUT_MS", timeout.as_millis().to_string());
    }
    if let Some(timeout) = options.header_timeout {
        vars.insert("INGRESS_HEADER_TIMEOUT_MS", timeout.as_millis().to_string());
    }
    if let Some(secs) = options.keep_alive_secs {
        vars.insert("INGRESS_KEEP_ALIVE_SECS", secs.to_string());
    }
    let config =
        Config::from_lookup(|name| vars.get(name).cloned(), |_| Ok(suites_toml())).unwrap();
    let app = Application::build(config).unwrap();
    let addr = app.local_addr();
    let publisher = app.publisher().clone();
    assert!(
        publisher.wait_ready(Duration::from_secs(30)).await,
        "the ingress never connected to the broker"
    );
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let inspector = bus::connect(&BrokerUrl::parse(&amqp_url()).unwrap(), "ingress-test")
        .await
        .unwrap();
    let channel = inspector.create_channel().await.unwrap();
    TestApp {
        base: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        topology,
        proxy,
        channel,
        _inspector: inspector,
        shutdown,
        server: Some(server),
    }
}

pub fn now() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// Percent-encodes a query value the way WeCom does (`+`, `/`, `=` escaped).
pub fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// One push as WeCom would send it: the query string and the XML body.
#[derive(Debug, Clone)]
pub struct Push {
    pub query: String,
    pub body: String,
    pub encrypt: String,
}

/// Encrypts `xml` for `receive_id` and signs it, as WeCom does for a POST.
pub fn seal(token: &str, key: &str, receive_id: &str, xml: &str, timestamp: &str) -> Push {
    let crypto = CallbackCrypto::new(token, key).unwrap();
    let encrypt = crypto.encrypt(xml, receive_id).unwrap();
    sign(token, key, &encrypt, receive_id, timestamp)
}

/// Signs an arbitrary `Encrypt` text (for malformed ciphertexts with valid signatures).
pub fn sign(token: &str, key: &str, encrypt: &str, to_user: &str, timestamp: &str) -> Push {
    let crypto = CallbackCrypto::new(token, key).unwrap();
    let nonce = "1372623149";
    let signature = crypto.signature(timestamp, nonce, encrypt);
    Push {
        query: format!("msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"),
        body: format!(
            "<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>\n\
             <Encrypt><![CDATA[{encrypt}]]></Encrypt>\n<AgentID><![CDATA[]]></AgentID>\n</xml>"
        ),
        encrypt: encrypt.to_owned(),
    }
}

/// The GET query of URL verification for `plaintext`.
pub fn verification_query(token: &str, key: &str, receive_id: &str, plaintext: &str) -> String {
    let crypto = CallbackCrypto::new(token, key).unwrap();
    let echostr = crypto.encrypt(plaintext, receive_id).unwrap();
    let timestamp = now();
    let signature = crypto.signature(&timestamp, "42", &echostr);
    format!(
        "msg_signature={signature}&timestamp={timestamp}&nonce=42&echostr={}",
        urlencode(&echostr)
    )
}

/// The suite (template) callback path of the test suite.
pub fn suite_path() -> String {
    format!("/callback/suite/{SUITE_ID}")
}

/// The app callback path of the test suite's corp.
pub fn app_path() -> String {
    format!("/callback/app/{SUITE_ID}/{CORP_ID}")
}

impl TestApp {
    pub async fn post(&self, path: &str, push: &Push) -> reqwest::Response {
        self.http
            .post(format!("{}{path}?{}", self.base, push.query))
            .header("content-type", "text/xml")
            .body(push.body.clone())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// A template callback to the suite URL, addressed to the suite id.
    pub fn suite_push(xml: &str) -> Push {
        seal(TOKEN, KEY, SUITE_ID, xml, &now())
    }

    /// An app callback to the app URL, addressed to the corp, with the app's own keys.
    pub fn app_push(xml: &str) -> Push {
        seal(APP_TOKEN, APP_KEY, CORP_ID, xml, &now())
    }

    pub fn queue(&self, queue: WorkQueue) -> String {
        self.topology.queue(queue).work.clone()
    }

    /// The next message of `queue`, polled for up to 10 s.
    pub async fn next_message(&self, queue: &str) -> Option<BasicGetMessage> {
        self.poll_message(queue, Duration::from_secs(10)).await
    }

    pub async fn poll_message(&self, queue: &str, wait: Duration) -> Option<BasicGetMessage> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let message = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            if message.is_some() || tokio::time::Instant::now() >= until {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn next_envelope(&self, queue: &str) -> Envelope {
        let message = self
            .next_message(queue)
            .await
            .unwrap_or_else(|| panic!("no message arrived on {queue}"));
        Envelope::from_json(&message.delivery.data).unwrap()
    }

    /// Asserts every queue of the topology is empty.
    pub async fn assert_all_queues_empty(&self) {
        for queue in self.topology.all_queues() {
            let left = self.poll_message(&queue, Duration::ZERO).await;
            assert!(left.is_none(), "{queue} should be empty");
        }
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Stops the ingress gracefully and removes the test's topology.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.topology.delete(&self.channel).await.unwrap();
    }
}
