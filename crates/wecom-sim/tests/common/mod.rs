//! Test harness: a simulator in-process on port 0, a `wecom::api::Client` pointed at it, a
//! control-API helper, and a tiny callback receiver.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wecom::api::{Client, ClientConfig};
use wecom::suite::Suites;
use wecom_sim::{Sim, SimConfig};

pub const SUITE_ID: &str = "dktestsuite01";
pub const SUITE_SECRET: &str = "suite-secret";
pub const TOKEN: &str = "QDG6eK";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const APP_TOKEN: &str = "apptoken";
pub const APP_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// The test suite, with different keys for the app callback URL.
pub fn suites() -> Suites {
    Suites::from_toml(&format!(
        r#"
        [suites.{SUITE_ID}]
        suite_secret = "{SUITE_SECRET}"
        token = "{TOKEN}"
        encoding_aes_key = "{AES_KEY}"
        app_token = "{APP_TOKEN}"
        app_encoding_aes_key = "{APP_AES_KEY}"
        "#
    ))
    .unwrap()
}

/// A config for tests: port 0, one worker, no periodic tickets, fast retries.
pub fn config() -> SimConfig {
    let mut config = SimConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ticket_interval: Duration::ZERO,
        ticket_on_start: false,
        suites: suites().iter().cloned().collect(),
        ..SimConfig::default()
    };
    config.delivery.retry_interval_ms = 20;
    config
}

/// A running simulator.
pub struct Harness {
    pub base: String,
    pub client: Client,
    pub http: reqwest::Client,
    pub sim: Arc<Sim>,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(config: SimConfig) -> Harness {
    let app = wecom_sim::build(config).unwrap();
    let base = app.base_url();
    let sim = app.sim();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let client = Client::new(ClientConfig::new(base.parse().unwrap())).unwrap();
    let harness = Harness {
        base,
        client,
        http: reqwest::Client::new(),
        sim,
        shutdown,
    };
    harness.wait_ready().await;
    harness
}

impl Harness {
    async fn wait_ready(&self) {
        for _ in 0..1000 {
            let response = self.http.get(format!("{}/healthz", self.base)).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("simulator did not become ready");
    }

    /// A control call; returns (status, JSON body).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PATCH" => self.http.patch(url),
            "DELETE" => self.http.delete(url),
            other => panic!("method {other}"),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A control call that must succeed (2xx).
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} -> {status}: {value}"
        );
        value
    }

    /// Issues a suite ticket without pushing it.
    pub async fn ticket(&self) -> String {
        let value = self
            .ok(
                "POST",
                &format!("/sim/suites/{SUITE_ID}/ticket?push=false"),
                None,
            )
            .await;
        value["suite_ticket"].as_str().unwrap().to_owned()
    }

    /// A valid suite access token.
    pub async fn suite_token(&self) -> String {
        let ticket = self.ticket().await;
        self.client
            .get_suite_token(
                &SUITE_ID.parse().unwrap(),
                SUITE_SECRET,
                &ticket.parse().unwrap(),
            )
            .await
            .unwrap()
            .access_token
    }

    /// Creates a corp from `spec`; returns its id.
    pub async fn corp(&self, spec: Value) -> String {
        let value = self.ok("POST", "/sim/corps", Some(spec)).await;
        value["corp_id"].as_str().unwrap().to_owned()
    }

    /// Authorizes `corp` without pushing; returns the AuthCode.
    pub async fn authorize(&self, corp: &str) -> String {
        let value = self
            .ok(
                "POST",
                &format!("/sim/corps/{corp}/authorize?push=false"),
                None,
            )
            .await;
        value["auth_code"].as_str().unwrap().to_owned()
    }

    /// Authorizes and exchanges: returns (permanent code, corp access token).
    pub async fn activate(&self, corp: &str) -> (String, String) {
        let code = self.authorize(corp).await;
        let suite_token = self.suite_token().await;
        let permanent = self
            .client
            .get_permanent_code(&suite_token, &code)
            .await
            .unwrap()
            .permanent_code;
        let token = self
            .client
            .get_token(&corp.parse().unwrap(), &permanent)
            .await
            .unwrap()
            .access_token;
        (permanent, token)
    }

    pub async fn advance(&self, secs: u64) {
        self.ok("POST", "/sim/clock/advance", Some(json!({ "secs": secs })))
            .await;
    }
}

/// The errcode of a failed API call.
pub fn code<T: std::fmt::Debug>(result: Result<T, wecom::api::ApiError>) -> i64 {
    result
        .expect_err("expected a WeCom error")
        .code()
        .expect("expected an errcode")
}

/// A userid from a literal.
pub fn uid(id: &str) -> wecom::ids::UserId {
    id.parse().unwrap()
}

/// A department id from a literal.
pub fn dept(id: i64) -> wecom::ids::DepartmentId {
    wecom::ids::DepartmentId::new(id).unwrap()
}

/// A tag id from a literal.
pub fn tag(id: i64) -> wecom::ids::TagId {
    wecom::ids::TagId::new(id).unwrap()
}

/// An agentid from a number.
pub fn agent(id: i64) -> wecom::ids::AgentId {
    wecom::ids::AgentId::new(id).unwrap()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: String,
    pub body: String,
}

/// How the receiver answers: a script of statuses (then `success` forever), optional delay.
#[derive(Debug, Default)]
struct Behaviour {
    statuses: VecDeque<u16>,
    delay_first: Option<Duration>,
    /// Token and key to answer URL-verification GETs with.
    verifier: Option<(String, String)>,
}

/// A callback receiver on port 0 that records every request.
pub struct Receiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    received: web::Data<Mutex<Vec<Received>>>,
    behaviour: web::Data<Mutex<Behaviour>>,
) -> HttpResponse {
    let (status, delay, verifier) = {
        let mut b = behaviour.lock().unwrap();
        let status = b.statuses.pop_front().unwrap_or(200);
        (status, b.delay_first.take(), b.verifier.clone())
    };
    received.lock().unwrap().push(Received {
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if req.method() == actix_web::http::Method::GET {
        return echo(req.query_string(), verifier);
    }
    if status == 200 {
        HttpResponse::Ok().body("success")
    } else {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("busy")
    }
}

/// Answers a URL verification as an ingress would: the decrypted echostr, raw.
fn echo(query: &str, verifier: Option<(String, String)>) -> HttpResponse {
    let Some((token, key)) = verifier else {
        return HttpResponse::NotFound().finish();
    };
    let query = wecom::callback::CallbackQuery::parse(query).unwrap();
    let echostr = query.echostr.unwrap_or_default();
    let crypto = wecom::crypto::CallbackCrypto::new(&token, &key).unwrap();
    match crypto.open(
        &query.msg_signature,
        &query.timestamp,
        &query.nonce,
        &echostr,
    ) {
        Ok(plain) => HttpResponse::Ok().body(plain.message),
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

impl Receiver {
    /// Answers URL-verification GETs with these keys from now on.
    pub fn verify_with(&self, token: &str, key: &str) {
        self.behaviour.lock().unwrap().verifier = Some((token.to_owned(), key.to_owned()));
    }

    pub fn start() -> Self {
        let received = web::Data::new(Mutex::new(Vec::new()));
        let behaviour = web::Data::new(Mutex::new(Behaviour::default()));
        let (r, b) = (received.clone(), behaviour.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(r.clone())
                .app_data(b.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            received: received.into_inner(),
            behaviour: behaviour.into_inner(),
            handle,
        }
    }

    /// Answers these statuses to the next requests (then 200 `success`).
    pub fn answer(&self, statuses: &[u16]) {
        self.behaviour.lock().unwrap().statuses.extend(statuses);
    }

    /// Sleeps this long before answering the next request.
    pub fn delay_next(&self, delay: Duration) {
        self.behaviour.lock().unwrap().delay_first = Some(delay);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (generously) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "receiver got {} requests, expected {n}",
            self.received().len()
        );
    }
}
