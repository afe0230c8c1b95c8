//! The client's `CallObserver`: told of every call, once, with the endpoint's name and the
//! outcome the caller receives (what the services count as `daikai_wecom_calls_total`).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns unwrap too; a panic is a failed test"
)]

use std::sync::{Arc, Mutex};

use serde_json::json;
use url::Url;
use wecom::api::{ApiError, CallObserver, Client, ClientConfig, ErrorClass};
use wecom::ids::CorpId;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every (api, class) observed, `ok` for a success.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(String, String)>>);

impl CallObserver for Recorder {
    fn observe(&self, api: &'static str, outcome: Result<(), &ApiError>) {
        let class = outcome.map_or_else(|e| e.class().as_str(), |()| "ok");
        self.0
            .lock()
            .unwrap()
            .push((api.to_owned(), class.to_owned()));
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }
}

fn pair(api: &str, class: &str) -> (String, String) {
    (api.to_owned(), class.to_owned())
}

#[tokio::test]
async fn every_call_is_observed_once_with_its_api_and_class() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errcode": 0, "errmsg": "ok", "access_token": "T", "expires_in": 7200
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 40001, "errmsg": "x"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/tag/list"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": -1, "errmsg": "busy"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/get_jsapi_ticket"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 45009, "errmsg": "limit"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/user/list_id"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 42001, "errmsg": "exp"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/v2/get_permanent_code"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})),
        )
        .mount(&server)
        .await;
    // No route: wiremock answers 404, an HTTP status error (permanent).
    let recorder = Arc::new(Recorder::default());
    let client = Client::new(ClientConfig::new(Url::parse(&server.uri()).unwrap()))
        .unwrap()
        .with_observer(recorder.clone());
    let clone = client.clone();
    let corp = CorpId::parse("wwobserved").unwrap();

    assert!(client.get_token(&corp, "secret").await.is_ok());
    let err = clone.get_token(&corp, "secret").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::TenantBroken);
    assert!(client.tag_list("T").await.is_err());
    assert!(client.get_jsapi_ticket("T").await.is_err());
    assert!(client.user_list_id("T", None, 100).await.is_err());
    // A success answer without the permanent code cannot be kept: a failed (permanent) call.
    assert!(client.get_permanent_code_v2("S", "A").await.is_err());
    assert!(client.agent_get_permissions("T").await.is_err());

    assert_eq!(
        recorder.seen(),
        vec![
            pair("gettoken", "ok"),
            pair("gettoken", "tenant_broken"),
            pair("tag/list", "retryable"),
            pair("get_jsapi_ticket", "rate_limited"),
            pair("user/list_id", "token_expired"),
            pair("service/v2/get_permanent_code", "permanent"),
            pair("agent/get_permissions", "permanent"),
        ]
    );
}

#[tokio::test]
async fn a_client_without_an_observer_calls_as_before() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errcode": 0, "errmsg": "ok", "access_token": "T", "expires_in": 7200
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = Client::new(ClientConfig::new(Url::parse(&server.uri()).unwrap())).unwrap();
    let corp = CorpId::parse("wwplain").unwrap();
    assert_eq!(
        client
            .get_token(&corp, "secret")
            .await
            .unwrap()
            .access_token,
        "T"
    );
}
