//! The server APIs through `wecom::api::Client`: WeCom's token, AuthCode and ticket rules,
//! rate limits, scope and grants, pagination.

mod common;

use common::{SUITE_ID, SUITE_SECRET, agent as agent_id_of, code, config, dept, start, tag, uid};
use serde_json::json;
use wecom::api::ErrorClass;
use wecom::ids::{DepartmentId, UserId};

#[tokio::test]
async fn auth_code_is_single_use() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let auth_code = h.authorize(&corp).await;
    let suite_token = h.suite_token().await;
    let first = h
        .client
        .get_permanent_code(&suite_token, &auth_code)
        .await
        .unwrap();
    assert_eq!(first.auth_corp_info.corpid, corp);
    let agent = &first.auth_info.agent[0];
    assert_eq!(agent.is_customized_app, Some(true));
    assert!(
        first.access_token.is_none(),
        "代开发 answers carry no access_token"
    );
    let reuse = h.client.get_permanent_code(&suite_token, &auth_code).await;
    assert_eq!(code(reuse), 40078);
    let reuse_v2 = h
        .client
        .get_permanent_code_v2(&suite_token, &auth_code)
        .await;
    assert_eq!(code(reuse_v2), 40078);
    let stats = h.ok("GET", "/sim/stats", None).await;
    assert_eq!(stats["auth_codes"]["consumed"], 1);
    assert_eq!(stats["auth_codes"]["rejected"], 2);
}

#[tokio::test]
async fn auth_code_expires_after_ten_minutes() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let auth_code = h.authorize(&corp).await;
    h.advance(601).await;
    let suite_token = h.suite_token().await;
    assert_eq!(
        code(
            h.client
                .get_permanent_code_v2(&suite_token, &auth_code)
                .await
        ),
        40078
    );
}

#[tokio::test]
async fn v2_exchange_and_auth_info() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let auth_code = h.authorize(&corp).await;
    let suite_token = h.suite_token().await;
    let v2 = h
        .client
        .get_permanent_code_v2(&suite_token, &auth_code)
        .await
        .unwrap();
    assert_eq!(v2.auth_corp_info.corpid, corp);
    let info = h
        .client
        .get_auth_info_v2(&suite_token, &corp.parse().unwrap(), &v2.permanent_code)
        .await
        .unwrap();
    let privilege = info.auth_info.agent[0].privilege.clone().unwrap();
    assert_eq!(privilege.allow_party, vec![1]);
    assert!(info.auth_corp_info.corp_ex_name.is_some());
    let v1 = h
        .client
        .get_auth_info(&suite_token, &corp.parse().unwrap(), &v2.permanent_code)
        .await
        .unwrap();
    assert!(v1.auth_corp_info.corp_wxqrcode.is_some());
    assert_eq!(
        code(
            h.client
                .get_auth_info(&suite_token, &corp.parse().unwrap(), "wrong")
                .await
        ),
        40084
    );
}

#[tokio::test]
async fn stale_or_unknown_ticket_is_40085() {
    let h = start(config()).await;
    let unknown = h
        .client
        .get_suite_token(
            &SUITE_ID.parse().unwrap(),
            SUITE_SECRET,
            &"never-issued".parse().unwrap(),
        )
        .await;
    assert_eq!(code(unknown), 40085);
    let ticket = h.ticket().await;
    // A ticket lives 30 minutes; a newer one does not invalidate it.
    h.advance(600).await;
    let _newer = h.ticket().await;
    assert!(
        h.client
            .get_suite_token(
                &SUITE_ID.parse().unwrap(),
                SUITE_SECRET,
                &ticket.parse().unwrap()
            )
            .await
            .is_ok()
    );
    h.advance(1200).await;
    let stale = h
        .client
        .get_suite_token(
            &SUITE_ID.parse().unwrap(),
            SUITE_SECRET,
            &ticket.parse().unwrap(),
        )
        .await;
    assert_eq!(code(stale), 40085);
    assert_eq!(
        code(
            h.client
                .get_suite_token(
                    &SUITE_ID.parse().unwrap(),
                    "wrong",
                    &ticket.parse().unwrap()
                )
                .await
        ),
        40001
    );
    assert_eq!(
        code(
            h.client
                .get_suite_token(
                    &"dknope".parse().unwrap(),
                    SUITE_SECRET,
                    &ticket.parse().unwrap()
                )
                .await
        ),
        40083
    );
}

#[tokio::test]
async fn tokens_are_stable_then_expire() {
    let mut config = config();
    config.ttl.corp_token_secs = 60;
    config.ttl.suite_token_secs = 120;
    let h = start(config).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let (permanent, token) = h.activate(&corp).await;
    let again = h
        .client
        .get_token(&corp.parse().unwrap(), &permanent)
        .await
        .unwrap();
    assert_eq!(again.access_token, token, "same token while valid");
    assert!(again.expires_in <= 60);
    assert!(h.client.department_list(&token, None).await.is_ok());
    h.advance(61).await;
    let expired = h.client.department_list(&token, None).await;
    let err = expired.unwrap_err();
    assert_eq!(err.code(), Some(42001));
    assert!(matches!(err.class(), ErrorClass::TokenExpired(_)));
    let fresh = h
        .client
        .get_token(&corp.parse().unwrap(), &permanent)
        .await
        .unwrap();
    assert_ne!(fresh.access_token, token);
    assert!(
        h.client
            .department_list(&fresh.access_token, None)
            .await
            .is_ok()
    );
    assert_eq!(code(h.client.department_list("garbage", None).await), 40014);

    let suite_token = h.suite_token().await;
    h.advance(121).await;
    assert_eq!(
        code(
            h.client
                .get_auth_info(&suite_token, &corp.parse().unwrap(), &permanent)
                .await
        ),
        42009
    );
    assert_eq!(
        code(
            h.client
                .get_auth_info("garbage", &corp.parse().unwrap(), &permanent)
                .await
        ),
        40082
    );
}

#[tokio::test]
async fn gettoken_rules_through_reset_and_cancel() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let (permanent, token) = h.activate(&corp).await;
    assert_eq!(
        code(h.client.get_token(&corp.parse().unwrap(), "wrong").await),
        40001
    );
    assert_eq!(
        code(
            h.client
                .get_token(&"wwunknown".parse().unwrap(), &permanent)
                .await
        ),
        40013
    );

    let reset = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/reset-secret?push=false"),
            None,
        )
        .await;
    let auth_code = reset["auth_code"].as_str().unwrap();
    assert_eq!(
        code(h.client.get_token(&corp.parse().unwrap(), &permanent).await),
        40001
    );
    assert_eq!(
        code(h.client.user_get(&token, &uid("u000001")).await),
        40014
    );
    let suite_token = h.suite_token().await;
    let renewed = h
        .client
        .get_permanent_code(&suite_token, auth_code)
        .await
        .unwrap();
    assert_ne!(renewed.permanent_code, permanent);
    let token = h
        .client
        .get_token(&corp.parse().unwrap(), &renewed.permanent_code)
        .await
        .unwrap()
        .access_token;

    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/cancel?push=false"),
        None,
    )
    .await;
    let after_cancel = h
        .client
        .get_token(&corp.parse().unwrap(), &renewed.permanent_code)
        .await
        .unwrap_err();
    assert_eq!(after_cancel.code(), Some(48004));
    assert_eq!(after_cancel.class(), ErrorClass::TenantBroken);
    assert_eq!(
        code(h.client.user_get(&token, &uid("u000001")).await),
        48004
    );

    // Re-authorizing gives a new secret; the cancelled app's token stays dead.
    let (again, _) = h.activate(&corp).await;
    assert_ne!(again, renewed.permanent_code);
    assert_eq!(
        code(h.client.user_get(&token, &uid("u000001")).await),
        40014
    );
}

#[tokio::test]
async fn rate_limit_blocks_for_the_rest_of_the_window() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let other = h.corp(json!({ "users": 5 })).await;
    let (_, token) = h.activate(&corp).await;
    let (_, other_token) = h.activate(&other).await;
    h.ok(
        "POST",
        "/sim/faults",
        Some(json!({ "rate_limits": { "user/get": { "limit": 3, "window_secs": 60 } } })),
    )
    .await;
    for _ in 0..3 {
        h.client.user_get(&token, &uid("u000001")).await.unwrap();
    }
    let limited = h
        .client
        .user_get(&token, &uid("u000001"))
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Some(45009));
    assert!(matches!(limited.class(), ErrorClass::RateLimited { .. }));
    h.advance(30).await;
    assert_eq!(
        code(h.client.user_get(&token, &uid("u000001")).await),
        45009
    );
    // Per corp and per API.
    assert!(
        h.client
            .user_get(&other_token, &uid("u000001"))
            .await
            .is_ok()
    );
    assert!(h.client.department_list(&token, None).await.is_ok());
    h.advance(31).await;
    assert!(h.client.user_get(&token, &uid("u000001")).await.is_ok());
}

#[tokio::test]
async fn fault_rate_answers_system_busy() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let (_, token) = h.activate(&corp).await;
    h.ok(
        "POST",
        "/sim/faults",
        Some(json!({ "fault_rate": 1.0, "fault_apis": ["user/list"] })),
    )
    .await;
    let busy = h.client.user_list(&token, dept(1)).await.unwrap_err();
    assert_eq!(busy.code(), Some(-1));
    assert_eq!(busy.class(), ErrorClass::Retryable);
    assert!(h.client.user_get(&token, &uid("u000001")).await.is_ok());
    h.ok("POST", "/sim/faults", Some(json!({}))).await;
    assert!(h.client.user_list(&token, dept(1)).await.is_ok());
}

#[tokio::test]
async fn scope_limits_what_the_app_sees() {
    let h = start(config()).await;
    let corp = h
        .corp(json!({
            "users": 400, "departments": 20, "seed": 9,
            "scope": { "departments": [2], "users": [], "tags": [] }
        }))
        .await;
    let (_, token) = h.activate(&corp).await;
    let truth = h
        .ok("GET", &format!("/sim/corps/{corp}/directory"), None)
        .await;
    let app = h
        .ok(
            "GET",
            &format!("/sim/corps/{corp}/directory?view=app"),
            None,
        )
        .await;
    let visible: Vec<&str> = app["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    let hidden = truth["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .find(|u| !visible.contains(u))
        .expect("some member is outside the scope");
    assert!(!visible.is_empty());
    assert_eq!(code(h.client.user_get(&token, &uid(hidden)).await), 60011);
    assert!(h.client.user_get(&token, &uid(visible[0])).await.is_ok());
    assert_eq!(code(h.client.department_get(&token, dept(1)).await), 60011);
    assert_eq!(code(h.client.user_list(&token, dept(1)).await), 60011);
    assert_eq!(
        code(h.client.department_list(&token, Some(dept(1))).await),
        60011
    );
    assert!(h.client.department_get(&token, dept(2)).await.is_ok());
    assert_eq!(code(h.client.user_get(&token, &uid("nobody")).await), 60111);
    let departments = h.client.department_list(&token, None).await.unwrap();
    let app_departments = app["departments"].as_array().unwrap();
    assert_eq!(departments.len(), app_departments.len());
    assert!(departments.iter().all(|d| d.id != 1));
}

#[tokio::test]
async fn sensitive_fields_need_grants() {
    let h = start(config()).await;
    let bare = h.corp(json!({ "users": 5, "permissions": [] })).await;
    let named = h
        .corp(json!({ "users": 5, "permissions": ["contact:sensitive:user_name"] }))
        .await;
    let (_, bare_token) = h.activate(&bare).await;
    let (_, named_token) = h.activate(&named).await;
    let user = h
        .client
        .user_get(&bare_token, &uid("u000001"))
        .await
        .unwrap();
    assert!(user.name.is_none() && user.mobile.is_none() && user.avatar.is_none());
    assert!(!user.department.is_empty() && user.main_department.is_some());
    let department = h.client.department_get(&bare_token, dept(1)).await.unwrap();
    assert!(department.name.is_none());
    let user = h
        .client
        .user_get(&named_token, &uid("u000001"))
        .await
        .unwrap();
    assert!(user.name.is_some() && user.mobile.is_none());
    let permissions = h.client.agent_get_permissions(&named_token).await.unwrap();
    assert_eq!(
        permissions.app_permissions,
        vec!["contact:sensitive:user_name".to_owned()]
    );
}

#[tokio::test]
async fn list_id_pages_cover_every_row_once() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 2500, "seed": 3 })).await;
    let (_, token) = h.activate(&corp).await;
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h
            .client
            .user_list_id(&token, cursor.as_deref(), 1000)
            .await
            .unwrap();
        assert!(page.dept_user.len() <= 1000);
        rows.extend(
            page.dept_user
                .iter()
                .map(|r| (r.userid.clone(), r.department)),
        );
        pages += 1;
        match page.next_page() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let truth = h
        .ok("GET", &format!("/sim/corps/{corp}/directory"), None)
        .await;
    let mut expected: Vec<(UserId, DepartmentId)> = Vec::new();
    for user in truth["users"].as_array().unwrap() {
        for department in user["department"].as_array().unwrap() {
            expected.push((
                uid(user["userid"].as_str().unwrap()),
                dept(department.as_i64().unwrap()),
            ));
        }
    }
    assert!(
        expected.len() > 2500,
        "some members are in several departments"
    );
    assert_eq!(pages, expected.len().div_ceil(1000));
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn list_id_rejects_bad_cursors() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 30 })).await;
    let other = h.corp(json!({ "users": 30 })).await;
    let (_, token) = h.activate(&corp).await;
    let (_, other_token) = h.activate(&other).await;
    let page = h.client.user_list_id(&token, None, 10).await.unwrap();
    let cursor = page.next_page().unwrap().to_owned();
    assert_eq!(
        code(h.client.user_list_id(&token, Some("garbage"), 10).await),
        50100
    );
    let mut tampered = cursor.clone();
    tampered.replace_range(0..2, "ff");
    assert_eq!(
        code(h.client.user_list_id(&token, Some(&tampered), 10).await),
        50100
    );
    // A cursor is bound to its corp.
    assert_eq!(
        code(h.client.user_list_id(&other_token, Some(&cursor), 10).await),
        50100
    );
    assert!(
        h.client
            .user_list_id(&token, Some(&cursor), 10)
            .await
            .is_ok()
    );
    assert_eq!(code(h.client.user_list_id(&token, None, 0).await), 40058);
}

#[tokio::test]
async fn directory_endpoints_match_the_ground_truth() {
    let h = start(config()).await;
    let corp = h
        .corp(json!({ "users": 300, "departments": 12, "tags": 3, "seed": 11 }))
        .await;
    let (_, token) = h.activate(&corp).await;
    let truth = h
        .ok("GET", &format!("/sim/corps/{corp}/directory"), None)
        .await;

    let simple = h.client.department_simplelist(&token, None).await.unwrap();
    assert_eq!(simple.len(), 12);
    let sub = h
        .client
        .department_simplelist(&token, Some(dept(2)))
        .await
        .unwrap();
    assert!(sub.iter().any(|d| d.id == 2) && sub.len() < 12);

    let mut listed = 0;
    for department in &simple {
        let users = h.client.user_list(&token, department.id).await.unwrap();
        let simple_users = h
            .client
            .user_simplelist(&token, department.id)
            .await
            .unwrap();
        assert_eq!(users.len(), simple_users.len());
        assert!(users.iter().all(|u| u.department.contains(&department.id)));
        listed += users.len();
    }
    let memberships: usize = truth["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["department"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed, memberships);

    let user = h.client.user_get(&token, &uid("u000007")).await.unwrap();
    let truth_user = truth["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userid"] == "u000007")
        .unwrap();
    assert_eq!(serde_json::to_value(&user).unwrap(), *truth_user);

    let tags = h.client.tag_list(&token).await.unwrap();
    assert_eq!(tags.len(), 3);
    let members = h.client.tag_get(&token, tags[0].tagid).await.unwrap();
    let truth_tag = &truth["tags"][0];
    assert_eq!(
        members.userlist.len(),
        truth_tag["userlist"].as_array().unwrap().len()
    );
    assert_eq!(code(h.client.tag_get(&token, tag(999)).await), 40068);

    let agent_id =
        h.ok("GET", &format!("/sim/corps/{corp}"), None).await["authorizations"][0]["agent_id"]
            .as_i64()
            .unwrap();
    let agent = h
        .client
        .agent_get(&token, agent_id_of(agent_id))
        .await
        .unwrap();
    assert_eq!(agent.allow_partys.unwrap().partyid, vec![1]);
    assert_eq!(
        code(h.client.agent_get(&token, agent_id_of(agent_id + 1)).await),
        40056
    );
}

#[tokio::test]
async fn a_disabled_app_says_close_and_answers_50003_until_enabled() {
    let h = start(config()).await;
    let corp = h.corp(json!({ "users": 5 })).await;
    let (permanent, token) = h.activate(&corp).await;
    let summary = h.ok("GET", &format!("/sim/corps/{corp}"), None).await;
    let agent_id = summary["authorizations"][0]["agent_id"].as_i64().unwrap();
    assert_eq!(
        h.client
            .agent_get(&token, agent_id_of(agent_id))
            .await
            .unwrap()
            .close,
        Some(0)
    );

    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/disable?push=false"),
        None,
    )
    .await;
    let agent = h
        .client
        .agent_get(&token, agent_id_of(agent_id))
        .await
        .unwrap();
    assert_eq!(agent.close, Some(1), "agent/get keeps answering, closed");
    assert_eq!(agent.agentid, agent_id);
    let disabled = h
        .client
        .user_get(&token, &uid("u000001"))
        .await
        .unwrap_err();
    assert_eq!(disabled.code(), Some(50003));
    assert_eq!(disabled.class(), ErrorClass::TenantBroken);
    assert_eq!(code(h.client.department_list(&token, None).await), 50003);
    assert_eq!(
        code(h.client.department_simplelist(&token, None).await),
        50003
    );
    assert_eq!(code(h.client.department_get(&token, dept(1)).await), 50003);
    assert_eq!(code(h.client.user_list(&token, dept(1)).await), 50003);
    assert_eq!(code(h.client.user_simplelist(&token, dept(1)).await), 50003);
    assert_eq!(code(h.client.user_list_id(&token, None, 100).await), 50003);
    assert_eq!(code(h.client.tag_list(&token).await), 50003);
    assert_eq!(code(h.client.tag_get(&token, tag(1)).await), 50003);
    assert_eq!(code(h.client.agent_get_permissions(&token).await), 50003);
    // The secret stays valid: gettoken (same token while valid) and the auth info still work.
    let again = h
        .client
        .get_token(&corp.parse().unwrap(), &permanent)
        .await
        .unwrap();
    assert_eq!(again.access_token, token);
    let suite_token = h.suite_token().await;
    let info = h
        .client
        .get_auth_info_v2(&suite_token, &corp.parse().unwrap(), &permanent)
        .await
        .unwrap();
    assert_eq!(info.auth_info.agent[0].agentid, agent_id);
    // Token rules come first: an unknown token is still 40014, not 50003.
    assert_eq!(
        code(h.client.user_get("garbage", &uid("u000001")).await),
        40014
    );

    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/enable?push=false"),
        None,
    )
    .await;
    assert_eq!(
        h.client
            .agent_get(&token, agent_id_of(agent_id))
            .await
            .unwrap()
            .close,
        Some(0)
    );
    assert!(h.client.user_get(&token, &uid("u000001")).await.is_ok());
    assert!(h.client.tag_list(&token).await.is_ok());
    let stats = h.ok("GET", "/sim/stats", None).await;
    assert_eq!(stats["errcodes"]["50003"], 10, "{stats}");
}
