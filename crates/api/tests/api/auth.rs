//! Keys: every route refuses a request without a valid key (401), with the wrong scope or the
//! wrong suite (403), a revoked key (401), and a key over its rate limit (429 + Retry-After).

use serde_json::{Value, json};
use store::api_keys::Scope;

use crate::helpers::{OTHER_SUITE, SUITE_ID, start, tenant_path};

/// Every `/v1` route: method, path, the scope it needs, a body.
fn routes(tenant: &str) -> Vec<(&'static str, String, Scope, Option<Value>)> {
    vec![
        ("GET", "/v1/tenants".to_owned(), Scope::TenantsRead, None),
        ("GET", tenant.to_owned(), Scope::TenantsRead, None),
        ("GET", format!("{tenant}/access-token"), Scope::Tokens, None),
        (
            "POST",
            format!("{tenant}/access-token/invalidate"),
            Scope::Tokens,
            Some(json!({"access_token": "x"})),
        ),
        (
            "POST",
            format!("{tenant}/jssdk-config"),
            Scope::Jssdk,
            Some(json!({"url": "https://app.example.com/"})),
        ),
        (
            "POST",
            format!("{tenant}/oauth/userinfo"),
            Scope::Login,
            Some(json!({"code": "abc"})),
        ),
        (
            "GET",
            format!("{tenant}/departments"),
            Scope::DirectoryRead,
            None,
        ),
        (
            "GET",
            format!("{tenant}/departments/1/members"),
            Scope::DirectoryRead,
            None,
        ),
        (
            "GET",
            format!("{tenant}/members"),
            Scope::DirectoryRead,
            None,
        ),
        (
            "GET",
            format!("{tenant}/members/u000001"),
            Scope::DirectoryRead,
            None,
        ),
        ("GET", format!("{tenant}/tags"), Scope::DirectoryRead, None),
    ]
}

#[tokio::test]
async fn every_route_refuses_a_missing_or_bad_key_the_wrong_scope_and_the_wrong_suite() {
    let stack = start().await;
    let tenant = tenant_path(SUITE_ID, "wwacme");
    let other_suite_only = stack.key(&Scope::ALL, Some(&[OTHER_SUITE])).await;
    for (method, path, scope, body) in routes(&tenant) {
        let none = stack.call(method, &path, None, body.clone()).await;
        assert_eq!(
            none.status, 401,
            "{method} {path} without a key: {:?}",
            none.body
        );
        assert_eq!(none.code(), "unauthorized");
        assert_eq!(
            none.headers["content-type"], "application/problem+json",
            "{method} {path}"
        );
        assert!(none.headers.contains_key("www-authenticate"));
        assert_eq!(none.body["type"], "urn:daikai:problem:unauthorized");

        let garbage = stack
            .call(method, &path, Some("dk_nosuchkey000_secret"), body.clone())
            .await;
        assert_eq!(garbage.status, 401, "{method} {path} with an unknown key");

        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
        let wrong_scope = stack.key(&others, None).await;
        let answer = stack
            .call(method, &path, Some(&wrong_scope), body.clone())
            .await;
        assert_eq!(
            answer.status, 403,
            "{method} {path} without {scope}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "missing-scope");

        if path != "/v1/tenants" {
            let answer = stack
                .call(method, &path, Some(&other_suite_only), body)
                .await;
            assert_eq!(answer.status, 403, "{method} {path} for another suite");
            assert_eq!(answer.code(), "suite-not-allowed");
        }
    }
}

#[tokio::test]
async fn a_wrong_secret_for_a_real_key_id_is_refused() {
    let stack = start().await;
    let key = stack.admin_key().await;
    let (prefix, _) = key.rsplit_once('_').unwrap();
    let forged = format!("{prefix}_{}", "A".repeat(43));
    let answer = stack.call("GET", "/v1/tenants", Some(&forged), None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(stack.get("/v1/tenants", &key).await.status, 200);
    let answer = stack
        .http
        .get(format!("{}/v1/tenants", stack.api))
        .header("authorization", format!("Basic {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "only the Bearer scheme");
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_every_route() {
    let stack = start().await;
    stack.tenant(SUITE_ID, "wwacme", 5).await;
    let key = stack.admin_key().await;
    let tenant = tenant_path(SUITE_ID, "wwacme");
    assert_eq!(
        stack
            .get(&format!("{tenant}/access-token"), &key)
            .await
            .status,
        200
    );
    let id = store::api_keys::PresentedKey::parse(&key)
        .unwrap()
        .id()
        .to_owned();
    let mut conn = stack.db.pool().acquire().await.unwrap();
    store::api_keys::revoke_api_key(&mut conn, &id)
        .await
        .unwrap()
        .unwrap();
    for (method, path, _, body) in routes(&tenant) {
        let answer = stack.call(method, &path, Some(&key), body).await;
        assert_eq!(answer.status, 401, "{method} {path} with a revoked key");
        assert!(answer.body["detail"].as_str().unwrap().contains("revoked"));
    }
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_and_others_do_not() {
    let stack = start().await;
    let slow = stack
        .key_limited(&[Scope::TenantsRead], None, Some(2))
        .await;
    let other = stack.key(&[Scope::TenantsRead], None).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(stack.get("/v1/tenants", &slow).await);
    }
    assert_eq!(statuses[0].status, 200);
    assert_eq!(statuses[1].status, 200);
    let limited = statuses
        .iter()
        .find(|a| a.status == 429)
        .expect("a 429 after the burst");
    assert_eq!(limited.code(), "rate-limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    assert_eq!(stack.get("/v1/tenants", &other).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(stack.get("/v1/tenants", &slow).await.status, 200);
}

#[tokio::test]
async fn a_key_used_is_marked_used_and_its_secret_reaches_no_column() {
    let stack = start().await;
    let key = stack.admin_key().await;
    assert_eq!(stack.get("/v1/tenants", &key).await.status, 200);
    let id = store::api_keys::PresentedKey::parse(&key)
        .unwrap()
        .id()
        .to_owned();
    let pool = stack.db.pool().clone();
    test_support::wait_until("last_used_at is written", || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let record = store::api_keys::api_key(&mut conn, &id)
                .await
                .unwrap()
                .unwrap();
            record.last_used_at.is_some()
        }
    })
    .await;
    let secret = key.rsplit_once('_').unwrap().1;
    let dump: String =
        sqlx::query_scalar("select string_agg(row_to_json(k)::text, '') from api_keys k")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!dump.contains(secret));
}
