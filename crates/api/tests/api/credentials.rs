//! Tokens, invalidation, JS-SDK signatures and member logins, against the simulated WeCom.

use serde_json::json;
use sha1::{Digest as _, Sha1};
use store::api_keys::Scope;
use tokens::TicketKind;
use wecom_sim::TicketKind as SimTicket;

use crate::helpers::{SUITE_ID, call_at, start, tenant_path};

#[tokio::test]
async fn two_api_replicas_and_an_auth_worker_asking_at_once_make_one_gettoken() {
    let stack = start().await;
    let (suite_id, corp_id) = stack.tenant(SUITE_ID, "wwacme", 5).await;
    let second = stack.replica(&[]).await;
    let worker = stack.token_service().await;
    let key = stack.key(&[Scope::Tokens], None).await;
    let path = format!("{}/access-token", tenant_path(SUITE_ID, "wwacme"));
    let mut calls = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 {
            stack.api.clone()
        } else {
            second.clone()
        };
        let (http, path, key) = (stack.http.clone(), path.clone(), key.clone());
        calls.push(tokio::spawn(async move {
            call_at(&http, &base, "GET", &path, Some(&key), None).await
        }));
    }
    let from_worker = worker.corp_token(&suite_id, &corp_id).await.unwrap();
    let mut tokens = vec![from_worker.expose().to_owned()];
    for call in calls {
        let answer = call.await.unwrap();
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert!(answer.body["expires_in"].as_i64().unwrap() > 7000);
        tokens.push(answer.body["access_token"].as_str().unwrap().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert_eq!(
        stack.wecom_calls("gettoken"),
        1,
        "one gettoken for everyone"
    );
}

#[tokio::test]
async fn a_token_invalidated_by_one_caller_is_not_invalidated_again_by_a_second() {
    let stack = start().await;
    stack.tenant(SUITE_ID, "wwacme", 5).await;
    let key = stack.key(&[Scope::Tokens], None).await;
    let base = tenant_path(SUITE_ID, "wwacme");
    let old = stack.get(&format!("{base}/access-token"), &key).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // WeCom expires the token early: callers now get 42001 with it.
    stack
        .sim_ok("POST", "/sim/clock/advance", Some(json!({"secs": 7201})))
        .await;
    let first = stack
        .post(
            &format!("{base}/access-token/invalidate"),
            &key,
            json!({"access_token": old}),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["invalidated"], true);
    let fresh = first.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, old);
    let second = stack
        .post(
            &format!("{base}/access-token/invalidate"),
            &key,
            json!({"access_token": old}),
        )
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.body["invalidated"], false,
        "the replacement was kept"
    );
    assert_eq!(second.body["access_token"], fresh.as_str());
    assert_eq!(stack.wecom_calls("gettoken"), 2);
}

#[tokio::test]
async fn a_revoked_or_suspended_tenant_gets_409_and_no_wecom_call() {
    let stack = start().await;
    let (suite_id, corp_id) = stack.tenant(SUITE_ID, "wwacme", 5).await;
    let key = stack.admin_key().await;
    let base = tenant_path(SUITE_ID, "wwacme");
    assert_eq!(
        stack
            .get(&format!("{base}/access-token"), &key)
            .await
            .status,
        200
    );
    let mut conn = stack.db.pool().acquire().await.unwrap();
    store::tenants::set_tenant_status(
        &mut conn,
        &suite_id,
        &corp_id,
        store::tenants::TenantStatus::Suspended,
        1_700_000_100,
    )
    .await
    .unwrap();
    let suspended = stack.get(&format!("{base}/access-token"), &key).await;
    assert_eq!(suspended.status, 409);
    assert_eq!(suspended.code(), "tenant-suspended");
    store::tenants::revoke_tenant(&mut conn, &suite_id, &corp_id, 1_700_000_200)
        .await
        .unwrap();
    let calls = stack.wecom_calls("gettoken");
    for (method, path, body) in [
        ("GET", format!("{base}/access-token"), None),
        (
            "POST",
            format!("{base}/access-token/invalidate"),
            Some(json!({"access_token": "t"})),
        ),
        (
            "POST",
            format!("{base}/jssdk-config"),
            Some(json!({"url": "https://a.example/"})),
        ),
        (
            "POST",
            format!("{base}/oauth/userinfo"),
            Some(json!({"code": "c"})),
        ),
    ] {
        let answer = stack.call(method, &path, Some(&key), body).await;
        assert_eq!(answer.status, 409, "{method} {path}: {:?}", answer.body);
        assert_eq!(answer.code(), "tenant-revoked");
        assert!(answer.body.get("access_token").is_none());
    }
    assert_eq!(stack.wecom_calls("gettoken"), calls);
    let unknown = stack
        .get(
            &format!("{}/access-token", tenant_path(SUITE_ID, "wwnobody")),
            &key,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "tenant-not-found");
}

/// The documented algorithm, written out independently of `wecom::jssdk`.
fn documented_signature(ticket: &str, nonce: &str, timestamp: i64, url: &str) -> String {
    let text = format!("jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={url}");
    hex::encode(Sha1::digest(text.as_bytes()))
}

#[tokio::test]
async fn jssdk_signatures_follow_wecom_s_algorithm_with_tickets_fetched_once() {
    assert_eq!(
        documented_signature(
            "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
            "Wm3WZYTPz0wzccnW",
            1_414_587_457,
            "http://mp.weixin.qq.com?params=value"
        ),
        "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
        "the documented vector"
    );
    let stack = start().await;
    let (suite_id, corp_id) = stack.tenant(SUITE_ID, "wwacme", 5).await;
    let key = stack.key(&[Scope::Jssdk], None).await;
    let path = format!("{}/jssdk-config", tenant_path(SUITE_ID, "wwacme"));
    let page = "https://app.example.com/orders?id=7&x=a+b";
    let mut answers = Vec::new();
    for _ in 0..3 {
        let answer = stack
            .post(&path, &key, json!({"url": format!("{page}#/detail")}))
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answers.push(answer.body);
    }
    assert_eq!(stack.wecom_calls("get_jsapi_ticket"), 1);
    assert_eq!(stack.wecom_calls("ticket/get"), 1);
    // The tickets, as the service sees them (they are not in any answer).
    let service = stack.token_service().await;
    let corp_ticket = service
        .jsapi_ticket(&suite_id, &corp_id, TicketKind::Corp)
        .await
        .unwrap();
    let agent_ticket = service
        .jsapi_ticket(&suite_id, &corp_id, TicketKind::Agent)
        .await
        .unwrap();
    assert_ne!(corp_ticket.expose(), agent_ticket.expose());
    for body in &answers {
        let text = body.to_string();
        assert!(!text.contains(corp_ticket.expose()) && !text.contains(agent_ticket.expose()));
        assert_eq!(body["url"], page);
        let config = &body["config"];
        assert_eq!(config["appId"], "wwacme");
        assert_eq!(
            config["signature"],
            documented_signature(
                corp_ticket.expose(),
                config["nonceStr"].as_str().unwrap(),
                config["timestamp"].as_i64().unwrap(),
                page
            )
        );
        let agent = &body["agent_config"];
        assert_eq!(agent["corpid"], "wwacme");
        assert!(agent["agentid"].as_i64().unwrap() > 0);
        assert_eq!(
            agent["signature"],
            documented_signature(
                agent_ticket.expose(),
                agent["nonceStr"].as_str().unwrap(),
                agent["timestamp"].as_i64().unwrap(),
                page
            )
        );
    }
    let app = wecom_sim::AppRef {
        corp_id: "wwacme".parse().unwrap(),
        suite_id: SUITE_ID.parse().unwrap(),
    };
    let now = stack.sim.clock.now_ms();
    let (corp_valid, agent_valid) = {
        let world = stack.sim.read();
        (
            world.js_ticket_valid(&app, SimTicket::Corp, corp_ticket.expose(), now),
            world.js_ticket_valid(&app, SimTicket::Agent, agent_ticket.expose(), now),
        )
    };
    assert!(
        corp_valid && agent_valid,
        "the tickets signed with are WeCom's current ones"
    );
    let bad = stack.post(&path, &key, json!({"url": "not a url"})).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn an_oauth_code_names_the_member_once_and_a_second_use_is_a_clear_400() {
    let stack = start().await;
    stack.tenant(SUITE_ID, "wwacme", 5).await;
    let key = stack.key(&[Scope::Login], None).await;
    let path = format!("{}/oauth/userinfo", tenant_path(SUITE_ID, "wwacme"));
    let minted = stack
        .sim_ok(
            "POST",
            &format!("/sim/corps/wwacme/oauth-code?suite={SUITE_ID}"),
            Some(json!({"userid": "u000001", "private_info": true})),
        )
        .await;
    let code = minted["code"].as_str().unwrap();
    let first = stack.post(&path, &key, json!({"code": code})).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["userid"], "u000001");
    assert!(
        first.body["user_ticket"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(first.body["user_ticket_expires_in"], 1800);
    let again = stack.post(&path, &key, json!({"code": code})).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.code(), "invalid-oauth-code");
    assert_eq!(
        stack.wecom_calls("auth/getuserinfo"),
        2,
        "the used code was sent once more, not retried"
    );

    let outsider = stack
        .sim_ok(
            "POST",
            &format!("/sim/corps/wwacme/oauth-code?suite={SUITE_ID}"),
            Some(json!({"openid": "oABC", "external_userid": "wmXYZ"})),
        )
        .await;
    let answer = stack
        .post(&path, &key, json!({"code": outsider["code"]}))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["openid"], "oABC");
    assert_eq!(answer.body["external_userid"], "wmXYZ");
    assert!(answer.body.get("userid").is_none());

    let expired = stack
        .sim_ok(
            "POST",
            &format!("/sim/corps/wwacme/oauth-code?suite={SUITE_ID}"),
            Some(json!({"userid": "u000001"})),
        )
        .await;
    stack
        .sim_ok("POST", "/sim/clock/advance", Some(json!({"secs": 301})))
        .await;
    let late = stack
        .post(&path, &key, json!({"code": expired["code"]}))
        .await;
    assert_eq!(late.status, 400);
    assert_eq!(late.code(), "invalid-oauth-code");
}
