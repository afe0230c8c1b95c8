//! WeCom's side of the callbacks: what the simulator pushes decrypts with `crates/wecom`
//! exactly as the ingress will decrypt it, and delivery retries, duplicates and shuffles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    AES_KEY, APP_AES_KEY, APP_TOKEN, Received, Receiver, SUITE_ID, SUITE_SECRET, TOKEN, config,
    dept, start, uid,
};
use serde_json::json;
use wecom::callback::{CallbackQuery, EncryptedEnvelope};
use wecom::crypto::CallbackCrypto;
use wecom::event::{ContactChange, Event, Framing};
use wecom::ids::CorpId;

/// Opens a received push as the ingress would: signature, decryption, receiveid, parse.
fn open(
    received: &Received,
    token: &str,
    key: &str,
    receive_id: &str,
) -> (Event, EncryptedEnvelope) {
    let query = CallbackQuery::parse(&received.query).unwrap();
    let envelope = EncryptedEnvelope::parse(received.body.as_bytes()).unwrap();
    let crypto = CallbackCrypto::new(token, key).unwrap();
    let plain = crypto
        .open(
            &query.msg_signature,
            &query.timestamp,
            &query.nonce,
            &envelope.encrypt,
        )
        .unwrap();
    plain.check_receive_id(&[receive_id]).unwrap();
    (Event::parse(&plain.message).unwrap(), envelope)
}

fn with_receiver(base: &str) -> wecom_sim::SimConfig {
    let mut config = config();
    config.delivery.callback_base = Some(base.parse().unwrap());
    config
}

#[tokio::test]
async fn template_callbacks_decrypt_with_the_suite_keys() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let ticket = h
        .ok(
            "POST",
            &format!("/sim/suites/{SUITE_ID}/ticket?wait=true"),
            None,
        )
        .await;
    assert_eq!(ticket["deliveries"][0]["delivered"], true);
    let corp = h.corp(json!({ "users": 3 })).await;
    let granted = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/authorize?wait=true"),
            Some(json!({ "state": "s1" })),
        )
        .await;
    assert_eq!(granted["deliveries"][0]["delivered"], true);
    let got = receiver.wait_for(2).await;
    assert!(
        got.iter()
            .all(|r| r.path == format!("/callback/suite/{SUITE_ID}"))
    );

    let (event, envelope) = open(&got[0], TOKEN, AES_KEY, SUITE_ID);
    assert_eq!(envelope.to_user_name.as_deref(), Some(SUITE_ID));
    assert!(envelope.agent_id.unwrap_or_default().is_empty());
    let Event::SuiteTicket(pushed_ticket) = event else {
        panic!("expected suite_ticket, got {event:?}");
    };
    assert_eq!(
        pushed_ticket.suite_ticket.expose(),
        ticket["suite_ticket"].as_str().unwrap()
    );
    // The pushed ticket is the one get_suite_token accepts.
    h.client
        .get_suite_token(
            &SUITE_ID.parse().unwrap(),
            SUITE_SECRET,
            &pushed_ticket.suite_ticket.expose().parse().unwrap(),
        )
        .await
        .unwrap();

    let (event, _) = open(&got[1], TOKEN, AES_KEY, SUITE_ID);
    let Event::CreateAuth(create) = event else {
        panic!("expected create_auth, got {event:?}");
    };
    assert_eq!(
        create.auth_code.expose(),
        granted["auth_code"].as_str().unwrap()
    );
    assert_eq!(create.state.as_deref(), Some("s1"));

    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/change-scope?wait=true"),
        Some(json!({ "permissions": [] })),
    )
    .await;
    h.ok("POST", &format!("/sim/corps/{corp}/cancel?wait=true"), None)
        .await;
    let got = receiver.wait_for(4).await;
    let kinds: Vec<String> = got[2..]
        .iter()
        .map(|r| open(r, TOKEN, AES_KEY, SUITE_ID).0.kind())
        .collect();
    assert_eq!(kinds, ["change_auth", "cancel_auth"]);
    assert_eq!(
        open(&got[3], TOKEN, AES_KEY, SUITE_ID)
            .0
            .auth_corp_id()
            .map(CorpId::as_str),
        Some(corp.as_str())
    );
}

#[tokio::test]
async fn contact_changes_go_to_the_app_url_with_the_app_keys() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h
        .corp(json!({ "users": 3, "permissions": ["contact:sensitive:user_name"] }))
        .await;
    let granted = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/authorize?wait=true"),
            None,
        )
        .await;
    let agent_id = granted["agentid"].as_i64().unwrap();
    let created = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/users?wait=true"),
            Some(json!({
                "userid": "zhangsan", "name": "张三", "department": [1],
                "mobile": "13800000000", "position": "经理"
            })),
        )
        .await;
    assert_eq!(created["deliveries"][0]["delivered"], true);
    let got = receiver.wait_for(2).await;
    let push = &got[1];
    assert_eq!(push.path, format!("/callback/app/{SUITE_ID}/{corp}"));
    let (event, envelope) = open(push, APP_TOKEN, APP_AES_KEY, &corp);
    assert_eq!(envelope.to_user_name.as_deref(), Some(corp.as_str()));
    assert_eq!(envelope.agent_id, Some(agent_id.to_string()));
    let Event::ChangeContact(change) = event else {
        panic!("expected change_contact, got {event:?}");
    };
    assert_eq!(change.framing, Framing::App);
    assert_eq!(
        change.auth_corp_id.as_ref().map(CorpId::as_str),
        Some(corp.as_str())
    );
    let ContactChange::CreateUser(user) = change.change else {
        panic!("expected create_user");
    };
    assert_eq!(user.user_id, "zhangsan");
    assert_eq!(user.name.as_deref(), Some("张三"), "name is granted");
    assert!(
        user.mobile.is_none() && user.position.is_none(),
        "not granted"
    );
    assert_eq!(user.department, Some(vec![dept(1)]));

    // The suite keys do not open an app push.
    let query = CallbackQuery::parse(&push.query).unwrap();
    let envelope = EncryptedEnvelope::parse(push.body.as_bytes()).unwrap();
    let suite_crypto = CallbackCrypto::new(TOKEN, AES_KEY).unwrap();
    assert!(
        suite_crypto
            .open(
                &query.msg_signature,
                &query.timestamp,
                &query.nonce,
                &envelope.encrypt
            )
            .is_err()
    );
}

#[tokio::test]
async fn every_directory_change_has_its_change_contact() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h.corp(json!({ "users": 3 })).await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/authorize?wait=true"),
        None,
    )
    .await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/users?wait=true"),
        Some(json!({ "userid": "zhangsan", "name": "张三", "department": [1] })),
    )
    .await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2);
    h.ok(
        "PATCH",
        &format!("/sim/corps/{corp}/users/zhangsan?wait=true"),
        Some(json!({ "alias": "zs" })),
    )
    .await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/departments?wait=true"),
        Some(json!({ "name": "新部门", "parentid": 1 })),
    )
    .await;
    h.ok(
        "PATCH",
        &format!("/sim/corps/{corp}/departments/2?wait=true"),
        Some(json!({ "name": "改名部门", "order": 5 })),
    )
    .await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/tags"),
        Some(json!({ "tagname": "新标签", "tagid": 77 })),
    )
    .await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/tags/77/members?wait=true"),
        Some(json!({ "add_users": ["zhangsan"] })),
    )
    .await;
    h.ok(
        "DELETE",
        &format!("/sim/corps/{corp}/users/zhangsan?wait=true"),
        None,
    )
    .await;
    h.ok(
        "DELETE",
        &format!("/sim/corps/{corp}/departments/2?wait=true"),
        None,
    )
    .await;
    let got = receiver.wait_for(8).await;
    let kinds: Vec<String> = got[2..]
        .iter()
        .map(|r| open(r, APP_TOKEN, APP_AES_KEY, &corp).0.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "change_contact.update_user",
            "change_contact.create_party",
            "change_contact.update_party",
            "change_contact.update_tag",
            "change_contact.delete_user",
            "change_contact.delete_party",
        ]
    );
    let Event::ChangeContact(update) = open(&got[2], APP_TOKEN, APP_AES_KEY, &corp).0 else {
        panic!("expected change_contact");
    };
    let ContactChange::UpdateUser(update) = update.change else {
        panic!("expected update_user");
    };
    assert_eq!(update.alias.as_deref(), Some("zs"));
    assert!(update.department.is_none(), "only changed fields");
}

#[tokio::test]
async fn push_false_changes_state_without_a_callback() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h.corp(json!({ "users": 3 })).await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/authorize?wait=true"),
        None,
    )
    .await;
    let outcome = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/users?push=false"),
            Some(json!({ "userid": "silent", "name": "静默", "department": [1] })),
        )
        .await;
    assert_eq!(outcome["pushes"], json!([]));
    assert_eq!(outcome["change"]["change_type"], "create_user");
    let truth = h
        .ok("GET", &format!("/sim/corps/{corp}/directory"), None)
        .await;
    assert!(
        truth["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userid"] == "silent")
    );
    // A pushed change afterwards arrives; the silent one never did.
    h.ok(
        "DELETE",
        &format!("/sim/corps/{corp}/users/u000001?wait=true"),
        None,
    )
    .await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "create_auth and delete_user only");
    let stats = h.ok("GET", "/sim/stats", None).await;
    assert_eq!(stats["callbacks"]["delivered"], 2);
}

#[tokio::test]
async fn out_of_scope_changes_are_not_pushed() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h
        .corp(json!({ "users": 20, "departments": 5, "scope": { "departments": [2] } }))
        .await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/authorize?wait=true"),
        None,
    )
    .await;
    let hidden = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/users?wait=true"),
            Some(json!({ "userid": "outside", "name": "外", "department": [1] })),
        )
        .await;
    assert_eq!(hidden["pushes"], json!([]));
    let shown = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/users?wait=true"),
            Some(json!({ "userid": "inside", "name": "内", "department": [2] })),
        )
        .await;
    assert_eq!(shown["deliveries"][0]["delivered"], true);
    // Moving out of scope is still news for the app.
    let moved = h
        .ok(
            "PATCH",
            &format!("/sim/corps/{corp}/users/inside?wait=true"),
            Some(json!({ "department": [1] })),
        )
        .await;
    assert_eq!(moved["deliveries"][0]["delivered"], true);
    assert_eq!(receiver.received().len(), 3);
    // Tag items are limited to what the app can see.
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/users?push=false"),
        Some(json!({ "userid": "inside2", "name": "内2", "department": [2] })),
    )
    .await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/tags/1/members?wait=true"),
        Some(json!({ "add_users": ["inside2", "outside"], "add_parties": [1, 2] })),
    )
    .await;
    let got = receiver.wait_for(4).await;
    let Event::ChangeContact(change) = open(&got[3], APP_TOKEN, APP_AES_KEY, &corp).0 else {
        panic!("expected change_contact");
    };
    let ContactChange::UpdateTag(tag) = change.change else {
        panic!("expected update_tag");
    };
    assert_eq!(tag.add_user_items, Some(vec![uid("inside2")]));
    assert_eq!(tag.add_party_items, Some(vec![dept(2)]));
}

#[tokio::test]
async fn a_receiver_answering_503_gets_retries() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    receiver.answer(&[503, 503]);
    let first = h
        .ok(
            "POST",
            &format!("/sim/suites/{SUITE_ID}/ticket?wait=true"),
            None,
        )
        .await;
    let report = &first["deliveries"][0];
    assert_eq!(report["delivered"], true);
    assert_eq!(report["attempts"], 3);
    let got = receiver.wait_for(3).await;
    assert_eq!(got[0].body, got[2].body, "a retry resends the same push");

    receiver.answer(&[503, 503, 503, 503]);
    let failed = h
        .ok(
            "POST",
            &format!("/sim/suites/{SUITE_ID}/ticket?wait=true"),
            None,
        )
        .await;
    let report = &failed["deliveries"][0];
    assert_eq!(report["delivered"], false, "{report}");
    assert_eq!(report["attempts"], 4, "first try + 3 retries");
    assert_eq!(report["last_status"], 503);
    assert_eq!(receiver.received().len(), 7);
    let stats = h.ok("GET", "/sim/stats", None).await;
    assert_eq!(stats["callbacks"]["attempts"], 7);
    assert_eq!(stats["callbacks"]["failed"], 1);
    let log = h.ok("GET", "/sim/deliveries", None).await;
    assert_eq!(log.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_gets_a_retry() {
    let receiver = Receiver::start();
    let mut config = with_receiver(&receiver.base);
    config.delivery.timeout_ms = 500;
    let h = start(config).await;
    receiver.delay_next(Duration::from_secs(3));
    let outcome = h
        .ok(
            "POST",
            &format!("/sim/suites/{SUITE_ID}/ticket?wait=true"),
            None,
        )
        .await;
    let report = &outcome["deliveries"][0];
    assert_eq!(report["delivered"], true, "{report}");
    assert_eq!(report["attempts"], 2);
}

#[tokio::test]
async fn anything_but_success_is_not_an_ack() {
    let receiver = Receiver::start();
    let mut config = with_receiver(&receiver.base);
    config.delivery.retries = 0;
    let h = start(config).await;
    receiver.answer(&[400]);
    let outcome = h
        .ok(
            "POST",
            &format!("/sim/suites/{SUITE_ID}/ticket?wait=true"),
            None,
        )
        .await;
    assert_eq!(outcome["deliveries"][0]["delivered"], false);
    assert_eq!(outcome["deliveries"][0]["attempts"], 1);
}

#[tokio::test]
async fn duplicate_mode_delivers_every_push_twice() {
    let receiver = Receiver::start();
    let mut config = with_receiver(&receiver.base);
    config.delivery.duplicate_rate = 1.0;
    let h = start(config).await;
    h.ok("POST", &format!("/sim/suites/{SUITE_ID}/ticket"), None)
        .await;
    let got = receiver.wait_for(2).await;
    let a = open(&got[0], TOKEN, AES_KEY, SUITE_ID).0;
    let b = open(&got[1], TOKEN, AES_KEY, SUITE_ID).0;
    assert_eq!(a, b);
    assert_ne!(got[0].query, got[1].query, "each copy is signed afresh");
    let stats = h.ok("GET", "/sim/stats", None).await;
    assert_eq!(stats["callbacks"]["duplicates"], 1);
}

#[tokio::test]
async fn duplicate_copies_deliver_a_push_three_times() {
    let receiver = Receiver::start();
    let mut config = with_receiver(&receiver.base);
    config.delivery.duplicate_rate = 1.0;
    config.delivery.duplicate_copies = 2;
    let h = start(config).await;
    h.ok("POST", &format!("/sim/suites/{SUITE_ID}/ticket"), None)
        .await;
    let got = receiver.wait_for(3).await;
    let plain: Vec<_> = got
        .iter()
        .map(|r| open(r, TOKEN, AES_KEY, SUITE_ID).0)
        .collect();
    assert!(plain.iter().all(|p| *p == plain[0]));
    let stats = h.ok("GET", "/sim/stats", None).await;
    assert_eq!(stats["callbacks"]["duplicates"], 2);
}

#[tokio::test]
async fn shuffle_mode_delivers_everything_in_some_order() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h.corp(json!({ "users": 3 })).await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/authorize?wait=true"),
        None,
    )
    .await;
    h.ok(
        "POST",
        "/sim/delivery",
        Some(json!({ "shuffle": true, "shuffle_window_ms": 300 })),
    )
    .await;
    let mut expected = BTreeSet::new();
    for i in 0..12 {
        let userid = format!("shuffled{i:02}");
        h.ok(
            "POST",
            &format!("/sim/corps/{corp}/users"),
            Some(json!({ "userid": userid, "name": "乱序", "department": [1] })),
        )
        .await;
        expected.insert(userid);
    }
    let got = receiver.wait_for(13).await;
    let order: Vec<String> = got[1..]
        .iter()
        .map(|r| match open(r, APP_TOKEN, APP_AES_KEY, &corp).0 {
            Event::ChangeContact(c) => match c.change {
                ContactChange::CreateUser(u) => u.user_id.into(),
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(order.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(order.len(), 12);
}

#[tokio::test]
async fn url_verification_get_is_answered_with_the_echo() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h.corp(json!({ "users": 1 })).await;
    receiver.verify_with(TOKEN, AES_KEY);
    let report = h
        .ok("POST", &format!("/sim/suites/{SUITE_ID}/verify-url"), None)
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["receive_id"], "wwprovider0000000");
    let got = receiver.wait_for(1).await;
    assert!(got[0].query.contains("echostr="));
    // The app URL uses the app keys: the template keys cannot answer it.
    let report = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/verify-url?receive_id={corp}"),
            None,
        )
        .await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["receive_id"], corp.as_str());
    receiver.verify_with(APP_TOKEN, APP_AES_KEY);
    let report = h
        .ok("POST", &format!("/sim/corps/{corp}/verify-url"), None)
        .await;
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn disable_and_enable_push_change_auth_and_silence_the_app_meanwhile() {
    let receiver = Receiver::start();
    let h = start(with_receiver(&receiver.base)).await;
    let corp = h.corp(json!({ "users": 3 })).await;
    h.ok(
        "POST",
        &format!("/sim/corps/{corp}/authorize?wait=true"),
        None,
    )
    .await;
    let disabled = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/disable?wait=true"),
            None,
        )
        .await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["pushes"][0]["kind"], "change_auth");
    assert_eq!(disabled["deliveries"][0]["delivered"], true);
    // A disabled app hears no contact change (it resyncs once enabled).
    let silent = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/users?wait=true"),
            Some(json!({ "userid": "quiet", "name": "安静", "department": [1] })),
        )
        .await;
    assert_eq!(silent["pushes"], json!([]));
    let enabled = h
        .ok("POST", &format!("/sim/corps/{corp}/enable?wait=true"), None)
        .await;
    assert_eq!(enabled["disabled"], false);
    assert_eq!(enabled["deliveries"][0]["delivered"], true);
    h.ok(
        "DELETE",
        &format!("/sim/corps/{corp}/users/quiet?wait=true"),
        None,
    )
    .await;

    let got = receiver.wait_for(4).await;
    assert_eq!(got.len(), 4, "create_auth, two change_auth, delete_user");
    for pushed in &got[1..3] {
        assert_eq!(pushed.path, format!("/callback/suite/{SUITE_ID}"));
        let (event, _) = open(pushed, TOKEN, AES_KEY, SUITE_ID);
        let Event::ChangeAuth(change) = event else {
            panic!("expected change_auth, got {event:?}");
        };
        assert_eq!(change.auth_corp_id, corp);
        assert_eq!(change.suite_id, SUITE_ID);
    }
    let (event, _) = open(&got[3], APP_TOKEN, APP_AES_KEY, &corp);
    assert_eq!(event.kind(), "change_contact.delete_user");

    // push=false changes the state only.
    let quiet = h
        .ok(
            "POST",
            &format!("/sim/corps/{corp}/disable?push=false"),
            None,
        )
        .await;
    assert_eq!(quiet["pushes"], json!([]));
    assert_eq!(receiver.received().len(), 4);
}
