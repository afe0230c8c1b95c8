//! Every event kind of the protocol page, encrypted as WeCom does, lands on the right queue with
//! the right envelope and AMQP properties.

use bus::{DedupeKey, Source, WorkQueue};
use wecom::event::Event;

use crate::helpers::{CORP_ID, Options, Push, SUITE_ID, TestApp, app_path, spawn_app, suite_path};

/// Where a push should end up.
#[derive(Debug, Clone, Copy)]
enum Dest {
    Auth,
    Contacts,
    Unrouted,
}

struct Case {
    xml: String,
    kind: &'static str,
    dest: Dest,
}

fn case(xml: &str, kind: &'static str, dest: Dest) -> Case {
    Case {
        xml: xml.to_owned(),
        kind,
        dest,
    }
}

/// Template (instruction) callbacks, XML as in docs/wecom.md §2.
fn template_cases() -> Vec<Case> {
    let s = SUITE_ID;
    vec![
        case(
            &format!(
                "<xml><SuiteId><![CDATA[{s}]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>\
                 <TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket></xml>"
            ),
            "suite_ticket",
            Dest::Auth,
        ),
        case(
            &format!(
                "<xml><SuiteId><![CDATA[{s}]]></SuiteId><AuthCode><![CDATA[AUTHCODE]]></AuthCode>\
                 <InfoType><![CDATA[create_auth]]></InfoType><TimeStamp>1403610513</TimeStamp>\
                 <State><![CDATA[123]]></State><ExtraInfo></ExtraInfo></xml>"
            ),
            "create_auth",
            Dest::Auth,
        ),
        case(
            &format!(
                "<xml><SuiteId><![CDATA[{s}]]></SuiteId><InfoType><![CDATA[change_auth]]></InfoType>\
                 <TimeStamp>1403610513</TimeStamp><AuthCorpId><![CDATA[{CORP_ID}]]></AuthCorpId>\
                 <State><![CDATA[abc]]></State><ExtraInfo></ExtraInfo></xml>"
            ),
            "change_auth",
            Dest::Auth,
        ),
        case(
            &format!(
                "<xml><SuiteId><![CDATA[{s}]]></SuiteId><InfoType><![CDATA[cancel_auth]]></InfoType>\
                 <TimeStamp>1403610513</TimeStamp><AuthCorpId><![CDATA[{CORP_ID}]]></AuthCorpId></xml>"
            ),
            "cancel_auth",
            Dest::Auth,
        ),
        case(
            &format!(
                "<xml><SuiteId><![CDATA[{s}]]></SuiteId><AuthCode><![CDATA[AUTHCODE2]]></AuthCode>\
                 <InfoType><![CDATA[reset_permanent_code]]></InfoType><TimeStamp>1403610513</TimeStamp></xml>"
            ),
            "reset_permanent_code",
            Dest::Auth,
        ),
        case(
            &format!(
                "<xml><SuiteId>{s}</SuiteId><AuthCorpId>{CORP_ID}</AuthCorpId>\
                 <InfoType><![CDATA[change_contact]]></InfoType><TimeStamp>1403610513</TimeStamp>\
                 <ChangeType><![CDATA[create_user]]></ChangeType><UserID>zhangsan</UserID>\
                 <OpenUserID>woAJ2GCAAAXtWyujaWJHDDGi0mACH71w</OpenUserID><Name>张三</Name>\
                 <Department>1,2,3</Department><MainDepartment>1</MainDepartment>\
                 <IsLeaderInDept>1,0,0</IsLeaderInDept><DirectLeader>lisi,wangwu</DirectLeader></xml>"
            ),
            "change_contact.create_user",
            Dest::Contacts,
        ),
        case(
            &format!(
                "<xml><SuiteId>{s}</SuiteId><AuthCorpId>{CORP_ID}</AuthCorpId>\
                 <InfoType><![CDATA[change_contact]]></InfoType><TimeStamp>1403610513</TimeStamp>\
                 <ChangeType><![CDATA[update_tag]]></ChangeType><TagId>1</TagId>\
                 <AddUserItems>zhangsan,lisi</AddUserItems><AddPartyItems>1,2</AddPartyItems></xml>"
            ),
            "change_contact.update_tag",
            Dest::Contacts,
        ),
        case(
            &format!(
                "<xml><SuiteId><![CDATA[{s}]]></SuiteId><InfoType><![CDATA[change_app_admin]]></InfoType>\
                 <TimeStamp>1403610513</TimeStamp></xml>"
            ),
            "unknown",
            Dest::Unrouted,
        ),
    ]
}

fn app_event(body: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>{body}</xml>"
    )
}

/// App (data) callbacks, XML as in docs/wecom.md §3.
fn app_cases() -> Vec<Case> {
    let contact = |change: &str, rest: &str| {
        app_event(&format!(
            "<Event><![CDATA[change_contact]]></Event><ChangeType>{change}</ChangeType>{rest}"
        ))
    };
    vec![
        case(
            &contact(
                "create_user",
                "<UserID><![CDATA[zhangsan]]></UserID><Name><![CDATA[张三]]></Name>\
                 <Department><![CDATA[1,2,3]]></Department><MainDepartment>1</MainDepartment>\
                 <IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept>\
                 <DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader><Position><![CDATA[产品经理]]></Position>\
                 <Mobile>13800000000</Mobile><Gender>1</Gender><Email><![CDATA[zhangsan@gzdev.com]]></Email>\
                 <BizMail><![CDATA[zhangsan@qyycs2.wecom.work]]></BizMail><Status>1</Status>\
                 <Avatar><![CDATA[http://wx.qlogo.cn/x]]></Avatar><Alias><![CDATA[zhangsan]]></Alias>\
                 <Telephone><![CDATA[020-123456]]></Telephone><Address><![CDATA[广州市]]></Address>\
                 <ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item>\
                 <Item><Name><![CDATA[卡号]]></Name><Type>1</Type><Web><Title>t</Title><Url>http://x</Url></Web></Item></ExtAttr>",
            ),
            "change_contact.create_user",
            Dest::Contacts,
        ),
        case(
            &contact(
                "update_user",
                "<UserID><![CDATA[zhangsan]]></UserID><NewUserID><![CDATA[zhangsan2]]></NewUserID>",
            ),
            "change_contact.update_user",
            Dest::Contacts,
        ),
        case(
            &contact("delete_user", "<UserID><![CDATA[zhangsan]]></UserID>"),
            "change_contact.delete_user",
            Dest::Contacts,
        ),
        case(
            &contact(
                "create_party",
                "<Id>2</Id><Name><![CDATA[研发部]]></Name><ParentId><![CDATA[1]]></ParentId><Order>1</Order>",
            ),
            "change_contact.create_party",
            Dest::Contacts,
        ),
        case(
            &contact(
                "update_party",
                "<Id>2</Id><ParentId><![CDATA[3]]></ParentId>",
            ),
            "change_contact.update_party",
            Dest::Contacts,
        ),
        case(
            &contact("delete_party", "<Id>2</Id>"),
            "change_contact.delete_party",
            Dest::Contacts,
        ),
        case(
            &contact(
                "<![CDATA[update_tag]]>",
                "<TagId>1</TagId><AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems>\
                 <DelUserItems><![CDATA[zhangsan1,lisi1]]></DelUserItems>\
                 <AddPartyItems><![CDATA[1,2]]></AddPartyItems><DelPartyItems><![CDATA[3,4]]></DelPartyItems>",
            ),
            "change_contact.update_tag",
            Dest::Contacts,
        ),
        case(
            &contact("rename_universe", "<UserID>x</UserID>"),
            "change_contact.unknown",
            Dest::Contacts,
        ),
        case(
            &app_event("<Event><![CDATA[subscribe]]></Event><AgentID>1000002</AgentID>"),
            "event.subscribe",
            Dest::Unrouted,
        ),
        case(
            &app_event("<Event><![CDATA[unlicensed_notify]]></Event><AgentID>1000002</AgentID>"),
            "event.unlicensed_notify",
            Dest::Unrouted,
        ),
        case(
            &format!(
                "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>\
                 <CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                 <Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>"
            ),
            "message.text",
            Dest::Unrouted,
        ),
        case(
            "<xml><Something>else entirely</Something></xml>",
            "unknown",
            Dest::Unrouted,
        ),
    ]
}

impl TestApp {
    fn dest_queue(&self, dest: Dest) -> String {
        match dest {
            Dest::Auth => self.queue(WorkQueue::Auth),
            Dest::Contacts => self.queue(WorkQueue::Contacts),
            Dest::Unrouted => self.topology.unrouted_queue.clone(),
        }
    }
}

async fn deliver_and_check(app: &TestApp, case: &Case, source: Source) {
    let (path, push, receive_id, corp_id): (String, Push, &str, Option<&str>) =
        if source == Source::App {
            (
                app_path(),
                TestApp::app_push(&case.xml),
                CORP_ID,
                Some(CORP_ID),
            )
        } else {
            let expected = Event::parse(&case.xml).unwrap();
            (
                suite_path(),
                TestApp::suite_push(&case.xml),
                SUITE_ID,
                expected.auth_corp_id().map(|_| CORP_ID),
            )
        };
    let response = app.post(&path, &push).await;
    assert_eq!(response.status(), 200, "{}", case.kind);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "success");

    let queue = app.dest_queue(case.dest);
    let message = app
        .next_message(&queue)
        .await
        .unwrap_or_else(|| panic!("{} never reached {queue}", case.kind));
    let envelope = bus::Envelope::from_json(&message.delivery.data).unwrap();
    assert_eq!(envelope.kind, case.kind);
    assert_eq!(envelope.source, source);
    assert_eq!(envelope.schema, bus::SCHEMA_VERSION);
    assert_eq!(envelope.suite_id, SUITE_ID);
    assert_eq!(
        envelope.corp_id.as_ref().map(wecom::ids::CorpId::as_str),
        corp_id,
        "{}",
        case.kind
    );
    assert_eq!(envelope.raw_xml.as_deref(), Some(case.xml.as_str()));
    assert_eq!(
        envelope.dedupe_key,
        DedupeKey::of_callback(receive_id, &case.xml)
    );
    assert_eq!(
        envelope.wecom_event(),
        Some(&Event::parse(&case.xml).unwrap())
    );
    assert_eq!(
        message.delivery.routing_key.as_str(),
        format!("{source}.{}", case.kind)
    );

    let props = &message.delivery.properties;
    let text = |v: &Option<lapin::types::ShortString>| v.as_ref().map(ToString::to_string);
    assert_eq!(props.delivery_mode(), &Some(2));
    assert_eq!(
        text(props.content_type()).as_deref(),
        Some("application/json")
    );
    assert_eq!(text(props.message_id()), Some(envelope.id.to_string()));
    assert_eq!(text(props.correlation_id()), Some(request_id));
    assert_eq!(text(props.kind()).as_deref(), Some(case.kind));
}

#[tokio::test]
async fn every_template_event_lands_on_its_queue_with_its_envelope() {
    let app = spawn_app(Options::default()).await;
    for case in template_cases() {
        deliver_and_check(&app, &case, Source::Suite).await;
    }
    app.assert_all_queues_empty().await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"ingress_published_total{kind="suite_ticket",source="suite"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"ingress_requests_total{outcome="success",route="suite_post"} 8"#));
    app.stop().await;
}

#[tokio::test]
async fn every_app_event_lands_on_its_queue_with_its_envelope() {
    let app = spawn_app(Options::default()).await;
    for case in app_cases() {
        deliver_and_check(&app, &case, Source::App).await;
    }
    app.assert_all_queues_empty().await;
    app.stop().await;
}

#[tokio::test]
async fn a_retried_push_keeps_its_dedupe_key_and_distinct_pushes_in_one_second_do_not() {
    let app = spawn_app(Options::default()).await;
    let first = app_cases().remove(2).xml; // delete_user zhangsan
    let second = first.replace("zhangsan", "lisi"); // same CreateTime, another member
    let push = TestApp::app_push(&first);
    for _ in 0..3 {
        assert_eq!(app.post(&app_path(), &push).await.status(), 200);
    }
    assert_eq!(
        app.post(&app_path(), &TestApp::app_push(&second))
            .await
            .status(),
        200
    );
    let contacts = app.queue(WorkQueue::Contacts);
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let envelope = app.next_envelope(&contacts).await;
        keys.push(envelope.dedupe_key);
        ids.push(envelope.id);
    }
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[1], keys[2]);
    assert_ne!(keys[2], keys[3]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every message has its own id");
    app.stop().await;
}

#[tokio::test]
async fn suite_url_verification_answers_the_echostr_raw() {
    let app = spawn_app(Options::default()).await;
    for receive_id in [SUITE_ID, crate::helpers::PROVIDER_CORP_ID] {
        let query = crate::helpers::verification_query(
            crate::helpers::TOKEN,
            crate::helpers::KEY,
            receive_id,
            "1288432023552776189",
        );
        let response = app.get(&format!("{}?{query}", suite_path())).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "1288432023552776189");
    }
    let query = crate::helpers::verification_query(
        crate::helpers::APP_TOKEN,
        crate::helpers::APP_KEY,
        CORP_ID,
        "42",
    );
    let response = app.get(&format!("{}?{query}", app_path())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"42");
    app.stop().await;
}

#[tokio::test]
async fn suite_post_addressed_to_the_provider_corp_id_is_accepted_and_counted() {
    let app = spawn_app(Options::default()).await;
    let xml = &template_cases()[1].xml; // create_auth
    let push = crate::helpers::seal(
        crate::helpers::TOKEN,
        crate::helpers::KEY,
        crate::helpers::PROVIDER_CORP_ID,
        xml,
        &crate::helpers::now(),
    );
    assert_eq!(app.post(&suite_path(), &push).await.status(), 200);
    let envelope = app.next_envelope(&app.queue(WorkQueue::Auth)).await;
    assert_eq!(envelope.kind, "create_auth");
    assert!(
        app.metrics()
            .await
            .contains(r#"ingress_receive_id_provider_total{route="suite_post"} 1"#)
    );
    app.stop().await;
}
