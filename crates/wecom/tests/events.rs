//! Typed events from WeCom's XML: every documented example (docs/wecom.md §2 and §3),
//! both framings of every contact change, the official message vector, hostile input, and
//! round trips through `to_xml` and JSON (the same types travel on the bus).

use std::collections::BTreeMap;

use wecom::ids::{AgentId, CorpId, DepartmentId, SuiteId, TagId, UserId};

use wecom::event::{
    AppEvent, CancelAuth, ChangeAuth, ChangeContact, ContactChange, CreateAuth, Event, EventError,
    ExtAttr, ExtAttrValue, Framing, MAX_DEPTH, MAX_XML_BYTES, Message, PartyChange,
    ResetPermanentCode, SuiteTicket, TagChange, Unknown, UserChange,
};

#[path = "events/examples.rs"]
mod examples;
#[path = "events/properties.rs"]
mod properties;

use examples::*;

fn parse(xml: &str) -> Event {
    match Event::parse(xml) {
        Ok(event) => event,
        Err(err) => panic!("{err}: {xml}"),
    }
}

fn contact_change(xml: &str) -> ChangeContact {
    match parse(xml) {
        Event::ChangeContact(change) => change,
        other => panic!("not a change_contact: {other:?}"),
    }
}

fn user_change(xml: &str) -> UserChange {
    match contact_change(xml).change {
        ContactChange::CreateUser(user)
        | ContactChange::UpdateUser(user)
        | ContactChange::DeleteUser(user) => user,
        other => panic!("not a user change: {other:?}"),
    }
}

/// An id the test knows to be valid.
fn valid<T>(id: Result<T, wecom::ids::IdError>) -> T {
    match id {
        Ok(id) => id,
        Err(err) => panic!("{err}"),
    }
}

fn uid(id: &str) -> UserId {
    valid(UserId::parse(id))
}

fn users(items: &[&str]) -> Vec<UserId> {
    items.iter().copied().map(uid).collect()
}

fn dept(id: i64) -> DepartmentId {
    valid(DepartmentId::new(id))
}

fn depts(ids: &[i64]) -> Vec<DepartmentId> {
    ids.iter().copied().map(dept).collect()
}

fn tag(id: i64) -> TagId {
    valid(TagId::new(id))
}

fn agent(id: i64) -> AgentId {
    valid(AgentId::new(id))
}

// ---------------------------------------------------------------------------------------------
// docs/wecom.md §2: template (instruction) callbacks (the XML is in events/examples.rs)

#[test]
fn suite_ticket_example_parses() {
    let event = parse(SUITE_TICKET);
    assert_eq!(
        event,
        Event::SuiteTicket(SuiteTicket {
            suite_id: "dkXXXXXXXX".parse().unwrap(),
            suite_ticket: "asdfasfdasdfasdf".parse().unwrap(),
            timestamp: 1_403_610_513,
        })
    );
    assert_eq!(event.kind(), "suite_ticket");
    assert_eq!(
        event.suite_id().as_ref().map(SuiteId::as_str),
        Some("dkXXXXXXXX")
    );
    assert_eq!(event.auth_corp_id(), None);
    assert_eq!(event.wecom_time(), Some(1_403_610_513));
}

#[test]
fn create_auth_example_keeps_state_and_an_empty_extra_info() {
    let event = parse(CREATE_AUTH);
    assert_eq!(
        event,
        Event::CreateAuth(CreateAuth {
            suite_id: "dkXXXXXXXX".parse().unwrap(),
            auth_code: "AUTHCODE".parse().unwrap(),
            timestamp: 1_403_610_513,
            state: Some("123".into()),
            extra_info: Some(String::new()),
        })
    );
    assert_eq!(event.kind(), "create_auth");
    assert_eq!(
        event.auth_corp_id(),
        None,
        "create_auth does not name the corp"
    );
}

#[test]
fn create_auth_without_state_or_extra_info_parses() {
    let xml = "<xml><SuiteId>dk1</SuiteId><AuthCode>c</AuthCode><InfoType>create_auth</InfoType>\
               <TimeStamp>1</TimeStamp></xml>";
    let Event::CreateAuth(auth) = parse(xml) else {
        panic!("not create_auth")
    };
    assert_eq!((auth.state, auth.extra_info), (None, None));
}

#[test]
fn change_auth_example_parses_with_comments_between_elements() {
    let event = parse(CHANGE_AUTH);
    assert_eq!(
        event,
        Event::ChangeAuth(ChangeAuth {
            suite_id: "dkXXXXXXXX".parse().unwrap(),
            auth_corp_id: "wxf8b4f85f3a794e77".parse().unwrap(),
            timestamp: 1_403_610_513,
            state: Some("abc".into()),
            extra_info: Some(String::new()),
        })
    );
    assert_eq!(event.kind(), "change_auth");
    assert_eq!(
        event.auth_corp_id().map(CorpId::as_str),
        Some("wxf8b4f85f3a794e77")
    );
}

#[test]
fn cancel_auth_example_parses() {
    let event = parse(CANCEL_AUTH);
    assert_eq!(
        event,
        Event::CancelAuth(CancelAuth {
            suite_id: "dkXXXXXXXX".parse().unwrap(),
            auth_corp_id: "wxf8b4f85f3a794e77".parse().unwrap(),
            timestamp: 1_403_610_513,
        })
    );
    assert_eq!(event.kind(), "cancel_auth");
    assert_eq!(
        event.auth_corp_id().map(CorpId::as_str),
        Some("wxf8b4f85f3a794e77")
    );
}

#[test]
fn reset_permanent_code_example_parses() {
    let event = parse(RESET_PERMANENT_CODE);
    assert_eq!(
        event,
        Event::ResetPermanentCode(ResetPermanentCode {
            suite_id: "dk4asffe9xxx4c0f4c".parse().unwrap(),
            auth_code: "AUTHCODE".parse().unwrap(),
            timestamp: 1_403_610_513,
        })
    );
    assert_eq!(event.kind(), "reset_permanent_code");
    assert_eq!(
        event.suite_id().as_ref().map(SuiteId::as_str),
        Some("dk4asffe9xxx4c0f4c")
    );
}

#[test]
fn template_framed_create_user_example_parses() {
    let change = contact_change(TEMPLATE_CREATE_USER);
    assert_eq!(change.framing, Framing::Template);
    assert_eq!(change.suite_id, Some("dkXXXXXXXX".parse().unwrap()));
    assert_eq!(
        change.auth_corp_id,
        Some("wxf8b4f85f3a794e77".parse().unwrap())
    );
    assert_eq!(change.time, Some(1_403_610_513));
    let expected = UserChange {
        open_user_id: Some("woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA".into()),
        name: Some("张三".into()),
        department: Some(depts(&[1, 2, 3])),
        main_department: Some(dept(1)),
        is_leader_in_dept: Some(vec![true, false, false]),
        direct_leader: Some(users(&["lisi", "wangwu"])),
        mobile: Some("13800000000".into()),
        position: Some("产品经理".into()),
        gender: Some(1),
        email: Some("zhangsan@gzdev.com".into()),
        biz_mail: Some("zhangsan@qyycs2.wecom.work".into()),
        avatar: Some("http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0".into()),
        alias: Some("zhangsan".into()),
        telephone: Some("020-123456".into()),
        ext_attr: Some(vec![ExtAttr {
            name: "爱好".into(),
            value: ExtAttrValue::Text {
                value: "旅游".into(),
            },
        }]),
        ..UserChange::new(uid("zhangsan"))
    };
    assert_eq!(change.change, ContactChange::CreateUser(expected));
    let event = parse(TEMPLATE_CREATE_USER);
    assert_eq!(event.kind(), "change_contact.create_user");
    assert_eq!(
        event.suite_id().as_ref().map(SuiteId::as_str),
        Some("dkXXXXXXXX")
    );
    assert_eq!(
        event.auth_corp_id().map(CorpId::as_str),
        Some("wxf8b4f85f3a794e77")
    );
    assert_eq!(event.wecom_time(), Some(1_403_610_513));
}

#[test]
fn template_framed_update_tag_parses_items() {
    let xml = "<xml><SuiteId>dk1</SuiteId><AuthCorpId>wwcorp</AuthCorpId>\
               <InfoType>change_contact</InfoType><TimeStamp>1403610513</TimeStamp>\
               <ChangeType>update_tag</ChangeType><TagId>1</TagId>\
               <AddUserItems>zhangsan,lisi</AddUserItems><AddPartyItems>1,2</AddPartyItems></xml>";
    let change = contact_change(xml);
    assert_eq!(
        change.change,
        ContactChange::UpdateTag(TagChange {
            add_user_items: Some(users(&["zhangsan", "lisi"])),
            add_party_items: Some(depts(&[1, 2])),
            ..TagChange::new(tag(1))
        })
    );
}

#[test]
fn unknown_info_type_is_kept_as_unknown_with_its_raw_xml() {
    let xml = "<xml><SuiteId>dk1</SuiteId><AuthCorpId>wwcorp</AuthCorpId>\
               <InfoType><![CDATA[change_app_admin]]></InfoType><TimeStamp>1</TimeStamp></xml>";
    let event = parse(xml);
    assert_eq!(
        event,
        Event::Unknown(Unknown {
            info_type: Some("change_app_admin".into()),
            msg_type: None,
            event: None,
            change_type: None,
            parse_error: None,
            raw_xml: xml.into(),
        })
    );
    assert_eq!(event.kind(), "unknown");
    assert_eq!(
        event.to_xml(),
        xml,
        "to_xml of an unknown event is its raw xml"
    );
}

#[test]
fn a_known_kind_that_does_not_fit_its_type_keeps_its_kind() {
    let cases = [
        (
            "<xml><SuiteId>dk1</SuiteId><InfoType>create_auth</InfoType>\
             <AuthCode>AC</AuthCode><TimeStamp>soon</TimeStamp></xml>",
            "create_auth",
        ),
        (
            "<xml><ToUserName>ww1</ToUserName><MsgType>event</MsgType>\
             <Event>change_contact</Event><ChangeType>update_party</ChangeType>\
             <Id>x</Id></xml>",
            "change_contact.update_party",
        ),
        (
            "<xml><InfoType>change_contact</InfoType><ChangeType>brand_new</ChangeType></xml>",
            "change_contact.unknown",
        ),
    ];
    for (xml, kind) in cases {
        let event = Event::parse_or_unknown(xml).unwrap();
        assert_eq!(event.kind(), kind, "{xml}");
        if matches!(event, Event::Unknown(_)) {
            assert_eq!(event.to_xml(), xml, "the raw XML is kept");
        }
    }
    let Event::Unknown(unknown) = Event::parse_or_unknown(cases[0].0).unwrap() else {
        panic!("create_auth with a bad TimeStamp is not a CreateAuth");
    };
    assert!(unknown.parse_error.unwrap().contains("TimeStamp"));
    assert_eq!(unknown_field(cases[0].0, "AuthCode").as_deref(), Some("AC"));
    // Not XML at all is still an error.
    assert!(Event::parse_or_unknown("nope").is_err());
}

#[test]
fn an_invalid_id_makes_the_contact_change_unknown_with_its_kind() {
    for (body, field) in [
        (
            "<ChangeType>update_user</ChangeType><UserID>a b</UserID>",
            "UserID",
        ),
        (
            "<ChangeType>update_user</ChangeType><UserID>u</UserID><Department>1,0</Department>",
            "Department",
        ),
        (
            "<ChangeType>update_user</ChangeType><UserID>u</UserID><DirectLeader>a,b c</DirectLeader>",
            "DirectLeader",
        ),
        ("<ChangeType>update_party</ChangeType><Id>-2</Id>", "Id"),
        (
            "<ChangeType>update_tag</ChangeType><TagId>0</TagId>",
            "TagId",
        ),
        (
            "<ChangeType>update_tag</ChangeType><TagId>1</TagId><DelUserItems>a\u{1}</DelUserItems>",
            "DelUserItems",
        ),
    ] {
        let xml = app_change(body);
        assert!(Event::parse(&xml).is_err(), "{xml}");
        let Event::Unknown(unknown) = Event::parse_or_unknown(&xml).unwrap() else {
            panic!("{xml}");
        };
        assert!(unknown.kind().starts_with("change_contact."), "{xml}");
        assert!(unknown.parse_error.unwrap().contains(field), "{xml}");
    }
    let bad_corp = "<xml><ToUserName>w w</ToUserName><MsgType>event</MsgType>\
                    <Event>change_contact</Event><ChangeType>delete_user</ChangeType>\
                    <UserID>u</UserID></xml>";
    assert_eq!(
        Event::parse_or_unknown(bad_corp).unwrap().kind(),
        "change_contact.delete_user"
    );
    assert!(matches!(
        Event::parse_or_unknown(bad_corp).unwrap(),
        Event::Unknown(_)
    ));
}

#[test]
fn empty_optional_ids_are_absent_and_a_root_parent_is_none() {
    let xml = "<xml><ToUserName></ToUserName><MsgType>event</MsgType>\
               <Event>change_contact</Event><AgentID></AgentID>\
               <ChangeType>update_party</ChangeType><Id>2</Id><ParentId>0</ParentId></xml>";
    let change = contact_change(xml);
    assert_eq!((change.auth_corp_id, change.agent_id), (None, None));
    assert_eq!(
        change.change,
        ContactChange::UpdateParty(PartyChange::new(dept(2)))
    );
}

#[test]
fn an_agent_id_written_as_a_string_is_still_read_from_json() {
    let json = serde_json::json!({
        "type": "app_event", "to_user_name": "ww1", "agent_id": "1000002", "event": "subscribe"
    });
    let Event::AppEvent(app) = serde_json::from_value(json).unwrap() else {
        panic!("not an app event");
    };
    assert_eq!(app.agent_id, Some(agent(1_000_002)));
    let json = serde_json::json!({"type": "app_event", "agent_id": "", "event": "subscribe"});
    let Event::AppEvent(app) = serde_json::from_value(json).unwrap() else {
        panic!("not an app event");
    };
    assert_eq!(app.agent_id, None);
    let json = serde_json::json!({"type": "app_event", "agent_id": 0, "event": "subscribe"});
    assert!(serde_json::from_value::<Event>(json).is_err());
}

fn unknown_field(xml: &str, name: &str) -> Option<String> {
    match Event::parse_or_unknown(xml) {
        Ok(Event::Unknown(unknown)) => unknown.field(name),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_known_info_type_wins_over_app_framing_elements() {
    let xml = "<xml><MsgType>event</MsgType><Event>subscribe</Event>\
               <SuiteId>dk1</SuiteId><InfoType>cancel_auth</InfoType>\
               <TimeStamp>5</TimeStamp><AuthCorpId>ww1</AuthCorpId></xml>";
    assert_eq!(parse(xml).kind(), "cancel_auth");
}

// ---------------------------------------------------------------------------------------------
// docs/wecom.md §3: app (data) callbacks

#[test]
fn app_framed_create_user_example_parses_every_field() {
    assert_eq!(
        contact_change(APP_CREATE_USER),
        ChangeContact {
            framing: Framing::App,
            suite_id: None,
            auth_corp_id: Some("toUser".parse().unwrap()),
            from_user_name: Some("sys".into()),
            agent_id: None,
            time: Some(1_403_610_513),
            change: ContactChange::CreateUser(zhangsan()),
        }
    );
    let event = parse(APP_CREATE_USER);
    assert_eq!(event.kind(), "change_contact.create_user");
    assert_eq!(event.auth_corp_id().map(CorpId::as_str), Some("toUser"));
    assert_eq!(event.wecom_time(), Some(1_403_610_513));
    assert_eq!(event.suite_id(), None);
}

#[test]
fn ext_attr_keeps_text_and_web_items_in_order() {
    let attrs = user_change(APP_CREATE_USER).ext_attr;
    assert_eq!(attrs, zhangsan().ext_attr);
}

#[test]
fn ext_attr_of_another_type_is_kept_by_code_and_a_missing_type_is_inferred() {
    let xml = app_change(
        "<ChangeType>update_user</ChangeType><UserID>u</UserID><ExtAttr>\
         <Item><Name>小程序</Name><Type>2</Type><Miniprogram><Appid>wx1</Appid></Miniprogram></Item>\
         <Item><Name>t</Name><Text><Value>v</Value></Text></Item>\
         <Item><Name>w</Name><Web><Url>https://x</Url></Web></Item></ExtAttr>",
    );
    let values: Vec<ExtAttrValue> = user_change(&xml)
        .ext_attr
        .unwrap()
        .into_iter()
        .map(|a| a.value)
        .collect();
    assert_eq!(
        values,
        vec![
            ExtAttrValue::Other { type_code: 2 },
            ExtAttrValue::Text { value: "v".into() },
            ExtAttrValue::Web {
                title: String::new(),
                url: "https://x".into()
            },
        ]
    );
}

#[test]
fn app_framed_create_party_example_parses_cdata_parent_id() {
    let change = contact_change(APP_CREATE_PARTY);
    assert_eq!(change.framing, Framing::App);
    assert_eq!(
        change.change,
        ContactChange::CreateParty(PartyChange {
            id: dept(2),
            name: Some("张三".into()),
            parent_id: Some(dept(1)),
            order: Some(1),
        })
    );
    assert_eq!(
        parse(APP_CREATE_PARTY).kind(),
        "change_contact.create_party"
    );
}

#[test]
fn app_framed_update_tag_example_parses_all_four_lists() {
    assert_eq!(
        contact_change(APP_UPDATE_TAG).change,
        ContactChange::UpdateTag(TagChange {
            tag_id: tag(1),
            add_user_items: Some(users(&["zhangsan", "lisi"])),
            del_user_items: Some(users(&["zhangsan1", "lisi1"])),
            add_party_items: Some(depts(&[1, 2])),
            del_party_items: Some(depts(&[3, 4])),
        })
    );
    assert_eq!(parse(APP_UPDATE_TAG).kind(), "change_contact.update_tag");
}

#[test]
fn update_user_carries_the_new_user_id() {
    let xml = app_change(
        "<ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID>\
         <NewUserID><![CDATA[zhangsan001]]></NewUserID>",
    );
    assert_eq!(
        contact_change(&xml).change,
        ContactChange::UpdateUser(UserChange {
            new_user_id: Some(uid("zhangsan001")),
            ..UserChange::new(uid("zhangsan"))
        })
    );
}

#[test]
fn multi_department_user_keeps_every_department_and_leader_flag_in_order() {
    let xml = app_change(
        "<ChangeType>update_user</ChangeType><UserID>lisi</UserID>\
         <Department><![CDATA[7, 3,12]]></Department><MainDepartment>3</MainDepartment>\
         <IsLeaderInDept><![CDATA[0,1,0]]></IsLeaderInDept>",
    );
    let user = user_change(&xml);
    assert_eq!(user.department, Some(depts(&[7, 3, 12])));
    assert_eq!(user.is_leader_in_dept, Some(vec![false, true, false]));
    assert_eq!(user.main_department, Some(dept(3)));
}

#[test]
fn user_event_without_sensitive_fields_leaves_them_absent() {
    let xml = app_change(
        "<ChangeType>create_user</ChangeType><UserID>u1</UserID><Department>1</Department>",
    );
    assert_eq!(
        user_change(&xml),
        UserChange {
            department: Some(depts(&[1])),
            ..UserChange::new(uid("u1"))
        }
    );
}

#[test]
fn delete_events_carry_only_the_id() {
    let user = contact_change(&app_change(
        "<ChangeType>delete_user</ChangeType><UserID>u1</UserID>",
    ));
    assert_eq!(
        user.change,
        ContactChange::DeleteUser(UserChange::new(uid("u1")))
    );
    let party = contact_change(&app_change(
        "<ChangeType>delete_party</ChangeType><Id>9</Id>",
    ));
    assert_eq!(
        party.change,
        ContactChange::DeleteParty(PartyChange::new(dept(9)))
    );
}

#[test]
fn unknown_change_type_stays_a_change_contact() {
    let event = parse(&app_change(
        "<ChangeType>future_change</ChangeType><UserID>u1</UserID>",
    ));
    let Event::ChangeContact(change) = &event else {
        panic!("not a change_contact: {event:?}")
    };
    assert_eq!(
        change.change,
        ContactChange::Unknown {
            change_type: "future_change".into()
        }
    );
    assert_eq!(change.change.change_type(), "future_change");
    assert_eq!(event.kind(), "change_contact.unknown");
}

#[test]
fn a_change_contact_without_change_type_is_an_unknown_change() {
    let event = parse(&app_change("<UserID>u1</UserID>"));
    assert_eq!(event.kind(), "change_contact.unknown");
}

#[test]
fn unlicensed_notify_is_an_app_event_with_the_envelope_fields() {
    let event = parse(UNLICENSED_NOTIFY);
    assert_eq!(
        event,
        Event::AppEvent(AppEvent {
            to_user_name: Some("ww4asffe9xxx4c0f4c".parse().unwrap()),
            from_user_name: Some("sys".into()),
            create_time: Some(1_403_610_513),
            agent_id: Some(agent(1_000_002)),
            event: "unlicensed_notify".into(),
            fields: BTreeMap::new(),
        })
    );
    assert_eq!(event.kind(), "event.unlicensed_notify");
    assert_eq!(
        event.auth_corp_id().map(CorpId::as_str),
        Some("ww4asffe9xxx4c0f4c")
    );
}

#[test]
fn app_event_name_is_lowercased_in_kind_and_other_fields_are_kept() {
    let event = parse(LOCATION);
    assert_eq!(event.kind(), "event.location");
    let Event::AppEvent(app) = event else {
        panic!("not an app event")
    };
    assert_eq!(app.event, "LOCATION");
    let fields: Vec<(&str, &str)> = app
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("AppType", "wxwork"),
            ("Latitude", "23.104105"),
            ("Longitude", "113.320107"),
            ("Precision", "65.000000"),
        ]
    );
}

#[test]
fn change_app_admin_on_the_app_url_is_an_app_event() {
    let xml = "<xml><ToUserName>ww1</ToUserName><FromUserName>sys</FromUserName>\
               <CreateTime>1</CreateTime><MsgType>event</MsgType>\
               <Event>change_app_admin</Event><AgentID>1</AgentID></xml>";
    assert_eq!(parse(xml).kind(), "event.change_app_admin");
}

#[test]
fn official_message_vector_is_a_text_message_saying_hello() {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("data/wecom-crypto.json")).unwrap();
    let plaintext = file["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "post_xml")
        .and_then(|v| v["expected_plaintext"].as_str())
        .unwrap();
    let event = parse(plaintext);
    assert_eq!(
        event,
        Event::Message(Message {
            to_user_name: Some("wx5823bf96d3bd56c7".parse().unwrap()),
            from_user_name: Some(uid("mycreate")),
            create_time: Some(1_409_659_813),
            msg_type: "text".into(),
            msg_id: Some("4561255354251345929".into()),
            agent_id: Some(agent(218)),
            content: Some("hello".into()),
            fields: BTreeMap::new(),
        })
    );
    assert_eq!(event.kind(), "message.text");
    assert_eq!(event.wecom_time(), Some(1_409_659_813));
}

#[test]
fn image_message_keeps_its_other_fields() {
    let xml = "<xml><ToUserName>ww1</ToUserName><MsgType>image</MsgType>\
               <PicUrl><![CDATA[http://p]]></PicUrl><MediaId>m1</MediaId><MsgId>1</MsgId></xml>";
    let Event::Message(message) = parse(xml) else {
        panic!("not a message")
    };
    assert_eq!(message.msg_type, "image");
    assert_eq!(message.content, None);
    assert_eq!(
        message.fields.get("PicUrl").map(String::as_str),
        Some("http://p")
    );
    assert_eq!(
        message.fields.get("MediaId").map(String::as_str),
        Some("m1")
    );
}

#[test]
fn body_without_any_framing_is_unknown() {
    for xml in [
        "<xml><Foo>1</Foo></xml>",
        "<xml/>",
        "<xml><MsgType>event</MsgType></xml>",
        "<xml><MsgType></MsgType></xml>",
    ] {
        let event = parse(xml);
        assert_eq!(event.kind(), "unknown", "{xml}");
        let Event::Unknown(unknown) = event else {
            unreachable!()
        };
        assert_eq!(unknown.raw_xml, xml);
    }
}

// ---------------------------------------------------------------------------------------------
// Both framings of every ChangeType (docs/wecom.md §3)

#[test]
fn both_framings_of_every_change_type_parse_to_the_same_change() {
    for (suffix, body) in CHANGE_BODIES {
        let template = contact_change(&template_change(body));
        let app = contact_change(&app_change(body));
        assert_eq!(template.framing, Framing::Template, "{suffix}");
        assert_eq!(app.framing, Framing::App, "{suffix}");
        assert_eq!(template.change, app.change, "{suffix}");
        assert_eq!(
            template.auth_corp_id.as_ref().map(CorpId::as_str),
            Some(CORP),
            "{suffix}"
        );
        assert_eq!(
            app.auth_corp_id.as_ref().map(CorpId::as_str),
            Some(CORP),
            "{suffix}"
        );
        assert_eq!(
            (template.time, app.time),
            (Some(1_403_610_513), Some(1_403_610_513))
        );
        assert_eq!(template.suite_id.as_ref().map(SuiteId::as_str), Some("dk1"));
        assert_eq!(app.agent_id, Some(agent(1_000_002)));
        let kind = format!("change_contact.{suffix}");
        assert_eq!(parse(&template_change(body)).kind(), kind);
        assert_eq!(parse(&app_change(body)).kind(), kind);
    }
}

// ---------------------------------------------------------------------------------------------
// kind() for every variant

#[test]
fn kind_names_every_variant() {
    let cases: Vec<(String, &str)> = vec![
        (SUITE_TICKET.into(), "suite_ticket"),
        (CREATE_AUTH.into(), "create_auth"),
        (CHANGE_AUTH.into(), "change_auth"),
        (CANCEL_AUTH.into(), "cancel_auth"),
        (RESET_PERMANENT_CODE.into(), "reset_permanent_code"),
        (APP_CREATE_USER.into(), "change_contact.create_user"),
        (app_change(CHANGE_BODIES[1].1), "change_contact.update_user"),
        (app_change(CHANGE_BODIES[2].1), "change_contact.delete_user"),
        (APP_CREATE_PARTY.into(), "change_contact.create_party"),
        (
            app_change(CHANGE_BODIES[4].1),
            "change_contact.update_party",
        ),
        (
            app_change(CHANGE_BODIES[5].1),
            "change_contact.delete_party",
        ),
        (APP_UPDATE_TAG.into(), "change_contact.update_tag"),
        (app_change(CHANGE_BODIES[7].1), "change_contact.unknown"),
        (UNLICENSED_NOTIFY.into(), "event.unlicensed_notify"),
        (LOCATION.into(), "event.location"),
        (
            "<xml><MsgType>event</MsgType><Event>enter_agent</Event></xml>".into(),
            "event.enter_agent",
        ),
        (
            "<xml><MsgType>voice</MsgType><MediaId>m</MediaId></xml>".into(),
            "message.voice",
        ),
        (
            "<xml><InfoType>change_external_contact</InfoType></xml>".into(),
            "unknown",
        ),
    ];
    for (xml, kind) in cases {
        assert_eq!(parse(&xml).kind(), kind, "{xml}");
    }
}

// ---------------------------------------------------------------------------------------------
// Text handling

#[test]
fn entities_in_plain_text_are_unescaped_and_cdata_is_verbatim() {
    let xml = "<xml><MsgType>text</MsgType>\
               <Content>Tom &amp; Jerry &lt;3 &#20013;&#x6587;</Content>\
               <Title><![CDATA[a &amp; <b>]]></Title></xml>";
    let Event::Message(message) = parse(xml) else {
        panic!("not a message")
    };
    assert_eq!(message.content, Some("Tom & Jerry <3 中文".into()));
    assert_eq!(
        message.fields.get("Title").map(String::as_str),
        Some("a &amp; <b>")
    );
}

#[test]
fn surrounding_whitespace_of_plain_text_is_trimmed_and_cdata_whitespace_kept() {
    let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  <MsgType>\n text \n</MsgType>\n\
               <Content>\n  <![CDATA[ hi ]]>\n</Content>\n</xml>\n";
    let Event::Message(message) = parse(xml) else {
        panic!("not a message")
    };
    assert_eq!(message.msg_type, "text");
    assert_eq!(message.content, Some(" hi ".into()));
}

#[test]
fn empty_lists_are_present_and_empty_and_empty_numbers_are_absent() {
    let xml = app_change(
        "<ChangeType>update_user</ChangeType><UserID>u</UserID>\
         <Department></Department><DirectLeader><![CDATA[]]></DirectLeader>\
         <IsLeaderInDept/><MainDepartment></MainDepartment><Alias></Alias>",
    );
    let user = user_change(&xml);
    assert_eq!(user.department, Some(vec![]));
    assert_eq!(user.direct_leader, Some(vec![]));
    assert_eq!(user.is_leader_in_dept, Some(vec![]));
    assert_eq!(user.main_department, None);
    assert_eq!(
        user.alias,
        Some(String::new()),
        "a cleared alias differs from an unchanged one"
    );
    assert_eq!(user.mobile, None);
}

#[test]
fn list_items_are_trimmed_and_empty_items_dropped() {
    let xml = app_change(
        "<ChangeType>update_tag</ChangeType><TagId> 3 </TagId>\
         <AddUserItems> a , b ,</AddUserItems><AddPartyItems>1,,2</AddPartyItems>",
    );
    let ContactChange::UpdateTag(tag) = contact_change(&xml).change else {
        panic!("not update_tag")
    };
    assert_eq!(tag.tag_id, 3);
    assert_eq!(tag.add_user_items, Some(users(&["a", "b"])));
    assert_eq!(tag.add_party_items, Some(depts(&[1, 2])));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn text_that_is_not_xml_is_refused() {
    for input in [
        "",
        "hello",
        "{\"ToUserName\":\"ww1\"}",
        "<xml><MsgType>text</xml>",
        "<xml><MsgType>text</MsgType>",
        "<xml></xml><xml></xml>",
        "<xml>&bogus;</xml>",
    ] {
        assert!(
            matches!(Event::parse(input), Err(EventError::NotXml(_))),
            "{input:?} gave {:?}",
            Event::parse(input)
        );
    }
}

#[test]
fn doctype_with_entity_expansion_is_refused() {
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<xml><MsgType>text</MsgType><Content>&lol9;</Content></xml>"#;
    assert_eq!(Event::parse(billion_laughs), Err(EventError::Doctype));
    let external = r#"<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"#;
    assert_eq!(Event::parse(external), Err(EventError::Doctype));
}

#[test]
fn an_entity_without_a_doctype_is_never_expanded() {
    let xml = "<xml><MsgType>text</MsgType><Content>&lol9;</Content></xml>";
    assert!(matches!(Event::parse(xml), Err(EventError::NotXml(_))));
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("<xml>{}{}</xml>", "<a>".repeat(100), "</a>".repeat(100));
    assert_eq!(Event::parse(&deep), Err(EventError::TooDeep));
    let just_too_deep = format!(
        "{}{}",
        "<a>".repeat(MAX_DEPTH + 1),
        "</a>".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(Event::parse(&just_too_deep), Err(EventError::TooDeep));
    let unclosed = "<a>".repeat(10_000);
    assert_eq!(Event::parse(&unclosed), Err(EventError::TooDeep));
}

#[test]
fn body_over_the_size_limit_is_refused() {
    let huge = format!(
        "<xml><MsgType>text</MsgType><Content>{}</Content></xml>",
        "a".repeat(MAX_XML_BYTES)
    );
    assert_eq!(
        Event::parse(&huge),
        Err(EventError::TooLarge {
            size: huge.len(),
            max: MAX_XML_BYTES
        })
    );
    let at_limit = format!(
        "<xml><MsgType>text</MsgType><Content>{}</Content></xml>",
        "a".repeat(MAX_XML_BYTES - 64)
    );
    assert!(at_limit.len() <= MAX_XML_BYTES);
    assert_eq!(parse(&at_limit).kind(), "message.text");
}

#[test]
fn suite_ticket_without_its_ticket_names_the_missing_field() {
    let xml = SUITE_TICKET.replace(
        "<SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket>",
        "",
    );
    assert_eq!(
        Event::parse(&xml),
        Err(EventError::MissingField("SuiteTicket"))
    );
    let empty = SUITE_TICKET.replace("asdfasfdasdfasdf", "  ");
    assert_eq!(
        Event::parse(&empty),
        Err(EventError::MissingField("SuiteTicket"))
    );
    let no_time = SUITE_TICKET.replace("<TimeStamp>1403610513</TimeStamp>", "");
    assert_eq!(
        Event::parse(&no_time),
        Err(EventError::MissingField("TimeStamp"))
    );
}

#[test]
fn required_ids_of_auth_and_contact_events_are_checked() {
    let no_code = CREATE_AUTH.replace("<AuthCode><![CDATA[AUTHCODE]]></AuthCode>", "");
    assert_eq!(
        Event::parse(&no_code),
        Err(EventError::MissingField("AuthCode"))
    );
    let no_corp = CANCEL_AUTH.replace("wxf8b4f85f3a794e77", "");
    assert_eq!(
        Event::parse(&no_corp),
        Err(EventError::MissingField("AuthCorpId"))
    );
    let no_user = app_change("<ChangeType>create_user</ChangeType><Name>x</Name>");
    assert_eq!(
        Event::parse(&no_user),
        Err(EventError::MissingField("UserID"))
    );
    let no_id = app_change("<ChangeType>update_party</ChangeType>");
    assert_eq!(Event::parse(&no_id), Err(EventError::MissingField("Id")));
    let no_tag = app_change("<ChangeType>update_tag</ChangeType>");
    assert_eq!(
        Event::parse(&no_tag),
        Err(EventError::MissingField("TagId"))
    );
}

#[test]
fn non_numeric_department_is_an_invalid_field() {
    let xml = app_change(
        "<ChangeType>update_user</ChangeType><UserID>u</UserID><Department>1,two,3</Department>",
    );
    assert_eq!(
        Event::parse(&xml),
        Err(EventError::InvalidField {
            field: "Department",
            value: "two".into()
        })
    );
}

#[test]
fn other_malformed_values_are_invalid_fields() {
    let cases = [
        (SUITE_TICKET.replace("1403610513", "yesterday"), "TimeStamp"),
        (
            app_change(
                "<ChangeType>update_user</ChangeType><UserID>u</UserID><IsLeaderInDept>1,yes</IsLeaderInDept>",
            ),
            "IsLeaderInDept",
        ),
        (
            app_change(
                "<ChangeType>update_user</ChangeType><UserID>u</UserID><Gender>300</Gender>",
            ),
            "Gender",
        ),
        (
            app_change("<ChangeType>update_party</ChangeType><Id>-1</Id>"),
            "Id",
        ),
        (
            app_change(
                "<ChangeType>update_tag</ChangeType><TagId>1</TagId><DelPartyItems>x</DelPartyItems>",
            ),
            "DelPartyItems",
        ),
        (
            "<xml><MsgType>text</MsgType><CreateTime>soon</CreateTime></xml>".to_owned(),
            "CreateTime",
        ),
    ];
    for (xml, field) in cases {
        let err = Event::parse(&xml);
        assert!(
            matches!(&err, Err(EventError::InvalidField { field: f, .. }) if *f == field),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn an_invalid_value_is_quoted_short() {
    let long = "x".repeat(10_000);
    let xml = app_change(&format!(
        "<ChangeType>update_party</ChangeType><Id>{long}</Id>"
    ));
    let Err(EventError::InvalidField { value, .. }) = Event::parse(&xml) else {
        panic!("expected an invalid field")
    };
    assert!(value.chars().count() <= 65, "{}", value.len());
}

// ---------------------------------------------------------------------------------------------
// Round trips: to_xml and JSON

#[test]
fn every_example_survives_to_xml_and_parse() {
    for xml in every_example() {
        let event = parse(&xml);
        assert_eq!(Event::parse(&event.to_xml()), Ok(event.clone()), "{xml}");
    }
}

#[test]
fn every_example_survives_json() {
    for xml in every_example() {
        let event = parse(&xml);
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<Event>(&json).unwrap(),
            event,
            "{json}"
        );
    }
}

#[test]
fn json_shape_is_tagged_by_type_and_change_type() {
    let json = serde_json::to_value(parse(&app_change(CHANGE_BODIES[1].1))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "type": "change_contact",
            "framing": "app",
            "auth_corp_id": CORP,
            "from_user_name": "sys",
            "agent_id": 1_000_002,
            "time": 1_403_610_513,
            "change": {"change_type": "update_user", "user_id": "u1", "new_user_id": "u2"}
        })
    );
    let unknown = serde_json::to_value(parse(&app_change(CHANGE_BODIES[7].1))).unwrap();
    assert_eq!(
        unknown["change"],
        serde_json::json!({"change_type": "unknown", "raw_change_type": "merge_users"})
    );
    let ticket = serde_json::to_value(parse(SUITE_TICKET)).unwrap();
    assert_eq!(
        ticket,
        serde_json::json!({"type": "suite_ticket", "suite_id": "dkXXXXXXXX",
                           "suite_ticket": "asdfasfdasdfasdf", "timestamp": 1_403_610_513})
    );
}

#[test]
fn to_xml_splits_cdata_terminators_in_strings() {
    let event = Event::Message(Message {
        to_user_name: Some("ww1".parse().unwrap()),
        from_user_name: None,
        create_time: None,
        msg_type: "text".into(),
        msg_id: None,
        agent_id: None,
        content: Some("a]]>b]]]]>c<![CDATA[&amp;".into()),
        fields: BTreeMap::new(),
    });
    let xml = event.to_xml();
    assert_eq!(Event::parse(&xml), Ok(event), "{xml}");
}

#[test]
fn to_xml_looks_like_what_wecom_sends() {
    let xml = parse(SUITE_TICKET).to_xml();
    assert_eq!(
        xml,
        "<xml><SuiteId><![CDATA[dkXXXXXXXX]]></SuiteId>\n\
         <InfoType><![CDATA[suite_ticket]]></InfoType>\n\
         <TimeStamp>1403610513</TimeStamp>\n\
         <SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket>\n</xml>"
    );
}
