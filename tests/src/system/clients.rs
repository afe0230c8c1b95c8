//! HTTP clients of the two services a test talks to from outside: wecom-sim's control API
//! (docs/wecom-sim.md, "Control API reference") and the provider API (docs/api.md).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// wecom-sim's control API and its WeCom APIs.
#[derive(Debug, Clone)]
pub struct SimClient {
    http: reqwest::Client,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
}

impl SimClient {
    /// A client of the simulator at `base`.
    pub fn new(base: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
        }
    }

    /// One request; the status and the JSON answer (`null` when it is not JSON).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("wecom-sim {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// One request that must succeed; its JSON answer.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.try_call(method, path, body).await;
        assert!(status.is_success(), "wecom-sim {path}: {status} {answer}");
        answer
    }

    /// Issues a suite ticket and waits until its push was delivered.
    pub async fn push_ticket(&self, suite_id: &str) -> Value {
        let answer = self
            .call(
                Method::POST,
                &format!("/sim/suites/{suite_id}/ticket?wait=true"),
                None,
            )
            .await;
        assert_delivered(&answer);
        answer
    }

    /// Creates and seeds a corp (`spec` as `POST /sim/corps` takes it).
    pub async fn create_corp(&self, spec: &Value) -> Value {
        self.call(Method::POST, "/sim/corps", Some(spec)).await
    }

    /// A lifecycle step on a corp (`authorize`, `reset-secret`, `cancel`, `disable`, `enable`,
    /// `change-scope`), waiting until its push was delivered.
    pub async fn corp_step(&self, corp_id: &str, step: &str, body: Option<&Value>) -> Value {
        let answer = self
            .call(
                Method::POST,
                &format!("/sim/corps/{corp_id}/{step}?wait=true"),
                body,
            )
            .await;
        assert_delivered(&answer);
        answer
    }

    /// What WeCom's API shows the app of `corp_id`: `{"departments", "users", "tags"}`, each
    /// sorted by id.
    pub async fn directory(&self, corp_id: &str) -> Value {
        let view = self
            .call(
                Method::GET,
                &format!("/sim/corps/{corp_id}/directory?view=app"),
                None,
            )
            .await;
        normalized(
            view["departments"].clone(),
            view["users"].clone(),
            view["tags"].clone(),
        )
    }

    /// `GET /sim/stats`.
    pub async fn stats(&self) -> Value {
        self.call(Method::GET, "/sim/stats", None).await
    }

    /// Replaces the fault settings (`{}` turns them off).
    pub async fn set_faults(&self, faults: &Value) {
        self.call(Method::POST, "/sim/faults", Some(faults)).await;
    }

    /// Changes delivery settings (absent fields keep their value).
    pub async fn set_delivery(&self, delivery: &Value) {
        self.call(Method::POST, "/sim/delivery", Some(delivery))
            .await;
    }

    /// Calls the simulator answered for `api` (e.g. `service/v2/get_permanent_code`).
    pub async fn api_calls(&self, api: &str) -> u64 {
        self.stats().await["api_calls"][api].as_u64().unwrap_or(0)
    }

    /// Waits until every queued push was delivered or given up on; panics on a given-up one.
    pub async fn wait_deliveries_settled(&self) {
        test_support::wait_until("every queued callback is delivered", || async {
            let callbacks = self.stats().await["callbacks"].clone();
            let count = |field: &str| callbacks[field].as_u64().unwrap_or(0);
            count("queued") == count("delivered") + count("failed")
        })
        .await;
        let failed = self.stats().await["callbacks"]["failed"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(failed, 0, "wecom-sim gave up on {failed} callbacks");
    }
}

/// Panics unless every delivery report in `answer["deliveries"]` says delivered.
pub(super) fn assert_delivered(answer: &Value) {
    if let Some(reports) = answer["deliveries"].as_array() {
        for report in reports {
            assert_eq!(
                report["delivered"], true,
                "a push was not delivered: {report}"
            );
        }
    }
}

/// `{"departments", "users", "tags"}` sorted by id, the shape both sides are compared in.
pub fn normalized(departments: Value, users: Value, tags: Value) -> Value {
    let sorted = |list: Value, key: &str| {
        let mut items = list.as_array().cloned().unwrap_or_default();
        items.sort_by(|a, b| a[key].to_string().cmp(&b[key].to_string()));
        Value::Array(items)
    };
    json!({
        "departments": sorted(departments, "id"),
        "users": sorted(users, "userid"),
        "tags": sorted(tags, "tagid"),
    })
}

/// The provider API, with an API key of every scope.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    key: String,
}

impl ApiClient {
    /// A client of the API at `base`, authenticating with `key`.
    pub fn new(base: String, key: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            key,
        }
    }

    /// The API key (a secret: tests check no process logs it).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// One request; the status and the JSON answer.
    pub async fn request(&self, method: Method, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("daikai-api {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.request(Method::GET, path).await;
        assert!(status.is_success(), "daikai-api {path}: {status} {answer}");
        answer
    }

    /// The tenant as the API shows it, or `None` (404).
    pub async fn tenant(&self, suite_id: &str, corp_id: &str) -> Option<Value> {
        let (status, answer) = self
            .request(Method::GET, &format!("/v1/tenants/{suite_id}/{corp_id}"))
            .await;
        match status {
            StatusCode::OK => Some(answer),
            StatusCode::NOT_FOUND => None,
            other => panic!("daikai-api tenant {corp_id}: {other} {answer}"),
        }
    }

    /// The tenant's directory as the API serves it, in the shape of [`SimClient::directory`];
    /// `None` while the API refuses it (a revoked tenant: 409).
    pub async fn directory(&self, suite_id: &str, corp_id: &str) -> Option<Value> {
        let tenant = format!("/v1/tenants/{suite_id}/{corp_id}");
        let (status, departments) = self
            .request(Method::GET, &format!("{tenant}/departments"))
            .await;
        if status != StatusCode::OK {
            return None;
        }
        let mut users = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{tenant}/members?limit=1000&cursor={c}"),
                None => format!("{tenant}/members?limit=1000"),
            };
            let page = self.get(&page_path).await;
            users.extend(page["members"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let tags = self.get(&format!("{tenant}/tags")).await;
        Some(normalized(
            departments["departments"].clone(),
            Value::Array(users),
            tags["tags"].clone(),
        ))
    }
}
