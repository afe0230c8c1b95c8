//! `GET /v1/tenants` (filters, cursor pagination, the key's suites) and one tenant.

use std::collections::BTreeSet;

use store::api_keys::Scope;

use crate::helpers::{OTHER_SUITE, SUITE_ID, start, tenant_path};

#[tokio::test]
async fn tenants_are_paged_with_a_cursor_filtered_and_limited_to_the_key_s_suites() {
    let stack = start().await;
    for i in 0..5 {
        stack.tenant(SUITE_ID, &format!("wwcorp{i}"), 2).await;
    }
    let (other_suite, other_corp) = stack.tenant(OTHER_SUITE, "wwother", 2).await;
    let mut conn = stack.db.pool().acquire().await.unwrap();
    store::tenants::revoke_tenant(&mut conn, &other_suite, &other_corp, 1_700_000_100)
        .await
        .unwrap();
    let key = stack.key(&[Scope::TenantsRead], None).await;

    let mut seen = Vec::new();
    let mut path = "/v1/tenants?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let answer = stack.get(&path, &key).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        pages += 1;
        for tenant in answer.body["tenants"].as_array().unwrap() {
            seen.push(tenant["corp_id"].as_str().unwrap().to_owned());
        }
        match answer.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/tenants?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 6);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        6,
        "no tenant twice"
    );

    let revoked = stack.get("/v1/tenants?status=revoked", &key).await;
    let corps: Vec<&str> = revoked.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["corp_id"].as_str().unwrap())
        .collect();
    assert_eq!(corps, ["wwother"]);
    assert!(revoked.body["tenants"][0]["revoked_at"].is_string());
    let by_suite = stack
        .get(&format!("/v1/tenants?suite_id={OTHER_SUITE}"), &key)
        .await;
    assert_eq!(by_suite.body["tenants"].as_array().unwrap().len(), 1);

    let limited = stack.key(&[Scope::TenantsRead], Some(&[OTHER_SUITE])).await;
    let answer = stack.get("/v1/tenants", &limited).await;
    assert_eq!(
        answer.body["tenants"].as_array().unwrap().len(),
        1,
        "only its suite"
    );
    let refused = stack
        .get(&format!("/v1/tenants?suite_id={SUITE_ID}"), &limited)
        .await;
    assert_eq!(refused.status, 403);

    let bad_cursor = stack.get("/v1/tenants?cursor=nonsense", &key).await;
    assert_eq!(bad_cursor.status, 400);
    assert_eq!(bad_cursor.code(), "invalid-cursor");
    let bad_status = stack.get("/v1/tenants?status=gone", &key).await;
    assert_eq!(bad_status.status, 400);
    let bad_limit = stack.get("/v1/tenants?limit=0", &key).await;
    assert_eq!(bad_limit.status, 400);
}

#[tokio::test]
async fn one_tenant_shows_its_app_scope_grants_and_times() {
    let stack = start().await;
    stack.tenant(SUITE_ID, "wwacme", 3).await;
    let key = stack.key(&[Scope::TenantsRead], None).await;
    let answer = stack.get(&tenant_path(SUITE_ID, "wwacme"), &key).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let body = &answer.body;
    assert_eq!(body["suite_id"], SUITE_ID);
    assert_eq!(body["corp_id"], "wwacme");
    assert_eq!(body["status"], "active");
    assert_eq!(body["corp_name"], "Acme");
    assert!(body["agent_id"].as_i64().unwrap() > 0);
    assert_eq!(body["scope"]["departments"], serde_json::json!([1]));
    assert!(body["authorized_at"].is_string());
    assert!(body["changed_at"].is_string());
    assert!(body["revoked_at"].is_null());
    let grants: Vec<&str> = body["field_grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert!(
        grants.contains(&"contact:sensitive:user_name"),
        "{grants:?}"
    );
    let missing = stack.get(&tenant_path(SUITE_ID, "wwnobody"), &key).await;
    assert_eq!(missing.status, 404);
    let malformed = stack.get(&tenant_path(SUITE_ID, "a%20b"), &key).await;
    assert_eq!(malformed.status, 400);
}
