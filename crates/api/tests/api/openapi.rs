//! The OpenAPI document is valid, lists every route, and every route it lists is served; the
//! operational routes; errors as problem+json.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{SUITE_ID, start};

/// Every route the API serves: (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{suite_id}/{corp_id}"),
    ("get", "/v1/tenants/{suite_id}/{corp_id}/access-token"),
    (
        "post",
        "/v1/tenants/{suite_id}/{corp_id}/access-token/invalidate",
    ),
    ("post", "/v1/tenants/{suite_id}/{corp_id}/jssdk-config"),
    ("post", "/v1/tenants/{suite_id}/{corp_id}/oauth/userinfo"),
    ("get", "/v1/tenants/{suite_id}/{corp_id}/departments"),
    (
        "get",
        "/v1/tenants/{suite_id}/{corp_id}/departments/{department_id}/members",
    ),
    ("get", "/v1/tenants/{suite_id}/{corp_id}/members"),
    ("get", "/v1/tenants/{suite_id}/{corp_id}/members/{userid}"),
    ("get", "/v1/tenants/{suite_id}/{corp_id}/tags"),
];

/// Every `$ref` in `value` resolves inside `doc`.
fn check_refs(doc: &Value, value: &Value, at: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("{at}: external $ref {target}"));
                assert!(
                    doc.pointer(pointer).is_some(),
                    "{at}: $ref {target} does not resolve"
                );
            }
            for (k, v) in map {
                check_refs(doc, v, &format!("{at}/{k}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, at)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_exactly_the_served_routes() {
    let stack = start().await;
    let answer = stack.call("GET", "/openapi.json", None, None).await;
    assert_eq!(answer.status, 200);
    let doc = answer.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    check_refs(&doc, &doc, "#");

    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            let params: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    params.contains(name),
                    "{method} {path}: path parameter {name} undocumented"
                );
            }
            if path.starts_with("/v1/") {
                assert_eq!(
                    operation["security"][0]["api_key"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
            }
            listed.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed, expected);

    // Every listed route is served: with a key, none answers "no such route".
    let key = stack.admin_key().await;
    for (method, path) in &listed {
        let concrete = path
            .replace("{suite_id}", SUITE_ID)
            .replace("{corp_id}", "wwnobody");
        let body = (method == "post").then(|| serde_json::json!({}));
        let answer = stack
            .call(&method.to_uppercase(), &concrete, Some(&key), body)
            .await;
        assert_ne!(answer.code(), "no-such-route", "{method} {path}");
    }
}

#[tokio::test]
async fn operational_routes_and_problems_for_unknown_routes() {
    let stack = start().await;
    assert_eq!(stack.call("GET", "/healthz", None, None).await.body, "ok");
    let ready = stack.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    let unknown = stack.call("GET", "/v2/nothing", None, None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "no-such-route");
    let wrong_method = stack.call("DELETE", "/v1/tenants", None, None).await;
    assert_eq!(wrong_method.status, 404);
    assert_eq!(wrong_method.code(), "no-such-route");
    let key = stack.admin_key().await;
    assert_eq!(stack.get("/v1/tenants", &key).await.status, 200);
    assert_eq!(
        stack.call("GET", "/v1/tenants", None, None).await.status,
        401
    );
    let metrics = stack.call("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    let id = store::api_keys::PresentedKey::parse(&key)
        .unwrap()
        .id()
        .to_owned();
    assert!(
        text.contains(&format!(
            "daikai_api_requests_total{{key=\"{id}\",outcome=\"ok\",route=\"/v1/tenants\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("outcome=\"unauthorized\""), "{text}");
    assert!(!text.contains(key.rsplit_once('_').unwrap().1));
}
