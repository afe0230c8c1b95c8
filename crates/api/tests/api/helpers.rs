//! The stack these tests run: a database of the test's own, wecom-sim in-process playing WeCom,
//! and one or more `daikai-api` replicas on port 0, each with its own pool. Tenants are written
//! to the store with the permanent code the simulator issued, so tokens, tickets and logins are
//! real calls to the simulated WeCom.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api::{Application, Config};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use store::api_keys::{NewApiKey, Scope, create_api_key};
use store::tenants::Activation;
use store::testing::TestDatabase;
use store::{CorpId, SuiteId};
use tokio_util::sync::CancellationToken;
use wecom::suite::Suites;
use wecom_sim::{Sim, SimConfig};

pub const SUITE_ID: &str = "dktestsuite01";
pub const OTHER_SUITE: &str = "dkothersuite2";
const SECRET_KEY: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn suites() -> Suites {
    let suite = |id: &str| {
        format!(
            "[suites.{id}]\nsuite_secret = \"secret\"\ntoken = \"QDG6eK\"\n\
             encoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\"\n"
        )
    };
    let text = suite(SUITE_ID) + &suite(OTHER_SUITE);
    Suites::from_toml(&text).unwrap()
}

/// A running stack; everything stops when it is dropped.
pub struct Stack {
    pub db: TestDatabase,
    pub sim: Arc<Sim>,
    pub sim_base: String,
    pub api: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An API response: status, headers, JSON body (or the text as a JSON string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem `code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

pub async fn start() -> Stack {
    start_with(&[]).await
}

/// A stack whose API gets these extra environment variables.
pub async fn start_with(env: &[(&str, &str)]) -> Stack {
    test_support::init_logs();
    let db = test_support::test_db().await;
    let config = SimConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ticket_interval: Duration::ZERO,
        ticket_on_start: false,
        suites: suites().iter().cloned().collect(),
        ..SimConfig::default()
    };
    let sim_app = wecom_sim::build(config).unwrap();
    let sim_base = sim_app.base_url();
    let sim = sim_app.sim();
    let shutdown = CancellationToken::new();
    tokio::spawn(sim_app.run(shutdown.clone()));
    let mut stack = Stack {
        db,
        sim,
        sim_base,
        api: String::new(),
        http: reqwest::Client::new(),
        shutdown,
    };
    stack.api = stack.replica(env).await;
    stack
}

impl Stack {
    /// Starts another API replica (its own pool) and returns its base URL.
    pub async fn replica(&self, env: &[(&str, &str)]) -> String {
        let mut vars: HashMap<String, String> = [
            ("API_ADDR", "127.0.0.1:0"),
            ("API_WORKERS", "2"),
            ("API_KEY_CACHE_SECS", "0"),
            ("DATABASE_MAX_CONNECTIONS", "8"),
            ("DAIKAI_SECRET_KEY", SECRET_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.insert("DATABASE_URL".to_owned(), self.db.url().to_owned());
        vars.insert("WECOM_API_BASE".to_owned(), self.sim_base.clone());
        for (k, v) in env {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let app = Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
        base
    }

    /// A token service of its own pool, as another service (the auth worker) holds one.
    pub async fn token_service(&self) -> tokens::TokenService {
        let client = wecom::api::Client::new(wecom::api::ClientConfig::new(
            self.sim_base.parse().unwrap(),
        ))
        .unwrap();
        let pool = self.db.new_pool().await.unwrap();
        tokens::TokenService::new(pool, client, test_support::secrets())
    }

    /// A control call to the simulator that must succeed.
    pub async fn sim_ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.sim_base);
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
        let status = response.status();
        let value: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{method} {path} -> {status}: {value}");
        value
    }

    /// A corp in the simulator with `users` members, authorized for `suite`, and its tenant in
    /// the store (active, with the simulator's permanent code, agent id and auth info).
    pub async fn tenant(&self, suite: &str, corp: &str, users: usize) -> (SuiteId, CorpId) {
        self.sim_ok(
            "POST",
            "/sim/corps",
            Some(json!({"corp_id": corp, "name": "Acme", "users": users, "seed": 7})),
        )
        .await;
        self.sim_ok(
            "POST",
            &format!("/sim/corps/{corp}/authorize?suite={suite}&push=false"),
            None,
        )
        .await;
        let summary = self
            .sim_ok("GET", &format!("/sim/corps/{corp}"), None)
            .await;
        let auth = summary["authorizations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["suite_id"] == suite)
            .unwrap()
            .clone();
        let code = SecretString::from(auth["permanent_code"].as_str().unwrap().to_owned());
        let agent_id = auth["agent_id"].as_i64().unwrap();
        let (suite_id, corp_id) = (test_support::suite(suite), test_support::corp(corp));
        let auth_info = json!({"auth_info": {"agent": [{"agentid": agent_id, "privilege": {
            "allow_party": [1], "allow_user": [], "allow_tag": []}}]}});
        let mut conn = self.db.pool().acquire().await.unwrap();
        store::tenants::activate_tenant(
            &mut conn,
            &test_support::secrets(),
            &Activation {
                suite_id: &suite_id,
                corp_id: &corp_id,
                corp_name: Some("Acme"),
                agent_id: Some(agent_id),
                permanent_code: &code,
                auth_info: Some(&auth_info),
                state: None,
                event_time: 1_700_000_000,
            },
        )
        .await
        .unwrap();
        (suite_id, corp_id)
    }

    /// A key with these scopes (for every suite unless `suites` names some).
    pub async fn key(&self, scopes: &[Scope], suites: Option<&[&str]>) -> String {
        self.key_limited(scopes, suites, None).await
    }

    /// A key with a rate limit of its own.
    pub async fn key_limited(
        &self,
        scopes: &[Scope],
        suites: Option<&[&str]>,
        rate_limit: Option<i32>,
    ) -> String {
        let suites: Option<Vec<String>> =
            suites.map(|s| s.iter().map(|s| (*s).to_owned()).collect());
        let mut conn = self.db.pool().acquire().await.unwrap();
        let (key, _) = create_api_key(
            &mut conn,
            &NewApiKey {
                name: "test",
                scopes,
                suites: suites.as_deref(),
                rate_limit,
            },
        )
        .await
        .unwrap();
        key.key.expose_secret().to_owned()
    }

    /// A key with every scope, for every suite.
    pub async fn admin_key(&self) -> String {
        self.key(&Scope::ALL, None).await
    }

    /// `method path` on the first replica with `key` (none when `None`) and `body`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        call_at(&self.http, &self.api, method, path, key, body).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call("GET", path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call("POST", path, Some(key), Some(body)).await
    }

    /// How many times the simulated WeCom was called for `api` (e.g. `gettoken`).
    pub fn wecom_calls(&self, api: &str) -> u64 {
        self.sim
            .stats
            .snapshot()
            .api_calls
            .get(api)
            .copied()
            .unwrap_or(0)
    }
}

/// `method path` on `base`.
pub async fn call_at(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let url = format!("{base}{path}");
    let mut request = match method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        "DELETE" => http.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// The tenant path prefix.
pub fn tenant_path(suite: &str, corp: &str) -> String {
    format!("/v1/tenants/{suite}/{corp}")
}
