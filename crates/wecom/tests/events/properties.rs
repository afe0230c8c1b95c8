//! Properties: arbitrary input never panics, and generated events survive `to_xml` and JSON.

use super::*;
use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;

/// Any string: CDATA keeps it verbatim, `]]>` included.
fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

/// An id or credential (`wecom::ids`): what its parser accepts.
fn id<T: std::str::FromStr + std::fmt::Debug>() -> impl Strategy<Value = T> {
    "[!-~\u{4e00}-\u{4e10}]{1,64}".prop_filter_map("a valid id", |s| s.parse().ok())
}

/// A userid as a list item: no comma, no surrounding whitespace.
fn item() -> impl Strategy<Value = UserId> {
    "[A-Za-z0-9_.@\\-\u{4e00}-\u{4e10}]{1,16}".prop_map(|s| valid(UserId::parse(s)))
}

/// A numeric id (`DepartmentId`, `TagId`, `AgentId`): any positive number.
fn number_id<T: TryFrom<i64> + std::fmt::Debug>() -> impl Strategy<Value = T> {
    (1..=i64::MAX).prop_filter_map("a valid id", |n| T::try_from(n).ok())
}

/// A dispatch name (`Event`, `MsgType`, `ChangeType`).
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_]{1,20}"
}

const KNOWN: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Event",
    "AgentID",
    "InfoType",
    "MsgId",
    "Content",
];

fn fields() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        "[A-Z][A-Za-z0-9_]{0,12}".prop_filter("known", |k| !KNOWN.contains(&k.as_str())),
        text(),
        0..4,
    )
}

fn ext_attr() -> impl Strategy<Value = ExtAttr> {
    let value = prop_oneof![
        text().prop_map(|value| ExtAttrValue::Text { value }),
        (text(), text()).prop_map(|(title, url)| ExtAttrValue::Web { title, url }),
        any::<i64>()
            .prop_filter("0 and 1 are text and web", |c| *c > 1 || *c < 0)
            .prop_map(|type_code| ExtAttrValue::Other { type_code }),
    ];
    (text(), value).prop_map(|(name, value)| ExtAttr { name, value })
}

prop_compose! {
    fn user()(
        ids in (id(), of(id()), of(text()), of(text())),
        depts in (of(vec(number_id(), 0..5)), of(number_id()), of(vec(any::<bool>(), 0..5)),
                  of(vec(item(), 0..4))),
        contact in (of(text()), of(text()), of(any::<u8>()), of(text()), of(text()), of(any::<u8>())),
        more in (of(text()), of(text()), of(text()), of(text()), of(vec(ext_attr(), 0..3))),
    ) -> UserChange {
        UserChange {
            user_id: ids.0, new_user_id: ids.1, open_user_id: ids.2, name: ids.3,
            department: depts.0, main_department: depts.1, is_leader_in_dept: depts.2,
            direct_leader: depts.3,
            position: contact.0, mobile: contact.1, gender: contact.2, email: contact.3,
            biz_mail: contact.4, status: contact.5,
            avatar: more.0, alias: more.1, telephone: more.2, address: more.3, ext_attr: more.4,
        }
    }
}

fn party() -> impl Strategy<Value = PartyChange> {
    (number_id(), of(text()), of(number_id()), of(any::<u64>())).prop_map(
        |(id, name, parent_id, order)| PartyChange {
            id,
            name,
            parent_id,
            order,
        },
    )
}

fn tag() -> impl Strategy<Value = TagChange> {
    (
        number_id(),
        of(vec(item(), 0..4)),
        of(vec(item(), 0..4)),
        of(vec(number_id(), 0..4)),
        of(vec(number_id(), 0..4)),
    )
        .prop_map(|(tag_id, au, du, ap, dp)| TagChange {
            tag_id,
            add_user_items: au,
            del_user_items: du,
            add_party_items: ap,
            del_party_items: dp,
        })
}

fn change() -> BoxedStrategy<ContactChange> {
    const KNOWN_CHANGES: &[&str] = &[
        "create_user",
        "update_user",
        "delete_user",
        "create_party",
        "update_party",
        "delete_party",
        "update_tag",
    ];
    prop_oneof![
        user().boxed().prop_map(ContactChange::CreateUser),
        user().boxed().prop_map(ContactChange::UpdateUser),
        user().boxed().prop_map(ContactChange::DeleteUser),
        party().prop_map(ContactChange::CreateParty),
        party().prop_map(ContactChange::UpdateParty),
        party().prop_map(ContactChange::DeleteParty),
        tag().prop_map(ContactChange::UpdateTag),
        "[a-z_]{0,12}"
            .prop_filter("known", |c| !KNOWN_CHANGES.contains(&c.as_str()))
            .prop_map(|change_type| ContactChange::Unknown { change_type }),
    ]
    .boxed()
}

fn change_contact() -> impl Strategy<Value = ChangeContact> {
    (
        prop_oneof![Just(Framing::Template), Just(Framing::App)],
        (of(id()), of(id()), of(text()), of(number_id())),
        of(any::<i64>()),
        change(),
    )
        .prop_map(|(framing, ids, time, change)| ChangeContact {
            framing,
            suite_id: ids.0,
            auth_corp_id: ids.1,
            from_user_name: ids.2,
            agent_id: ids.3,
            time,
            change,
        })
}

fn app_event() -> impl Strategy<Value = AppEvent> {
    (
        (of(id()), of(text()), of(any::<i64>()), of(number_id())),
        name().prop_filter("change_contact", |e| {
            !e.eq_ignore_ascii_case("change_contact")
        }),
        fields(),
    )
        .prop_map(|(envelope, event, fields)| AppEvent {
            to_user_name: envelope.0,
            from_user_name: envelope.1,
            create_time: envelope.2,
            agent_id: envelope.3,
            event,
            fields,
        })
}

fn message() -> impl Strategy<Value = Message> {
    (
        (of(id()), of(id()), of(any::<i64>())),
        name().prop_filter("event", |m| !m.eq_ignore_ascii_case("event")),
        (of(text()), of(number_id()), of(text())),
        fields(),
    )
        .prop_map(|(envelope, msg_type, body, fields)| Message {
            to_user_name: envelope.0,
            from_user_name: envelope.1,
            create_time: envelope.2,
            msg_type,
            msg_id: body.0,
            agent_id: body.1,
            content: body.2,
            fields,
        })
}

fn template_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (id(), id(), any::<i64>()).prop_map(|(suite_id, suite_ticket, timestamp)| {
            Event::SuiteTicket(SuiteTicket {
                suite_id,
                suite_ticket,
                timestamp,
            })
        }),
        (id(), id(), any::<i64>(), of(text()), of(text())).prop_map(
            |(suite_id, auth_code, timestamp, state, extra_info)| {
                Event::CreateAuth(CreateAuth {
                    suite_id,
                    auth_code,
                    timestamp,
                    state,
                    extra_info,
                })
            }
        ),
        (id(), id(), any::<i64>(), of(text()), of(text())).prop_map(
            |(suite_id, auth_corp_id, timestamp, state, extra_info)| {
                Event::ChangeAuth(ChangeAuth {
                    suite_id,
                    auth_corp_id,
                    timestamp,
                    state,
                    extra_info,
                })
            }
        ),
        (id(), id(), any::<i64>()).prop_map(|(suite_id, auth_corp_id, timestamp)| {
            Event::CancelAuth(CancelAuth {
                suite_id,
                auth_corp_id,
                timestamp,
            })
        }),
        (id(), id(), any::<i64>()).prop_map(|(suite_id, auth_code, timestamp)| {
            Event::ResetPermanentCode(ResetPermanentCode {
                suite_id,
                auth_code,
                timestamp,
            })
        }),
    ]
}

fn event() -> BoxedStrategy<Event> {
    prop_oneof![
        template_event().boxed(),
        change_contact().boxed().prop_map(Event::ChangeContact),
        app_event().boxed().prop_map(Event::AppEvent),
        message().boxed().prop_map(Event::Message),
    ]
    .boxed()
}

/// Framings, so random documents reach every typed path.
const HEADERS: &[&str] = &[
    "<SuiteId>dk1</SuiteId><TimeStamp>1</TimeStamp><InfoType>suite_ticket</InfoType>",
    "<SuiteId>dk1</SuiteId><TimeStamp>1</TimeStamp><InfoType>create_auth</InfoType>",
    "<SuiteId>dk1</SuiteId><TimeStamp>1</TimeStamp><InfoType>change_auth</InfoType>",
    "<SuiteId>dk1</SuiteId><TimeStamp>1</TimeStamp><InfoType>cancel_auth</InfoType>",
    "<SuiteId>dk1</SuiteId><TimeStamp>1</TimeStamp><InfoType>reset_permanent_code</InfoType>",
    "<SuiteId>dk1</SuiteId><TimeStamp>1</TimeStamp><InfoType>change_contact</InfoType>",
    "<MsgType>event</MsgType><Event>change_contact</Event>",
    "<MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_user</ChangeType><UserID>u</UserID>",
    "<InfoType>change_contact</InfoType><ChangeType>create_user</ChangeType><UserID>u</UserID>",
    "<MsgType>event</MsgType><Event>change_contact</Event><ChangeType>delete_party</ChangeType><Id>1</Id>",
    "<InfoType>change_contact</InfoType><ChangeType>update_party</ChangeType><Id>1</Id>",
    "<MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_tag</ChangeType><TagId>1</TagId>",
    "<MsgType>event</MsgType><Event>LOCATION</Event>",
    "<MsgType>text</MsgType>",
    "",
];

/// Element names the parsers read.
const NAMES: &[&str] = &[
    "SuiteTicket",
    "AuthCode",
    "AuthCorpId",
    "State",
    "ChangeType",
    "ChangeType",
    "ChangeType",
    "UserID",
    "UserID",
    "NewUserID",
    "Department",
    "IsLeaderInDept",
    "DirectLeader",
    "Gender",
    "MainDepartment",
    "Id",
    "ParentId",
    "TagId",
    "AddPartyItems",
    "DelUserItems",
    "ExtAttr",
    "Item",
    "Type",
    "Text",
    "Value",
    "Web",
    "Url",
    "CreateTime",
    "Content",
    "MsgId",
    "Name",
];

/// Well-formed values.
const VALUES: &[&str] = &[
    "create_user",
    "update_user",
    "delete_user",
    "create_party",
    "update_party",
    "delete_party",
    "update_tag",
    "1",
    "0",
    "1,2",
    " 3 , 4 ,",
    "-3",
    "x",
    "",
    "1403610513",
    "&amp;&#20013;",
    "99999999999999999999",
    "<![CDATA[1]]>",
    "<![CDATA[a]]]]><![CDATA[>b]]>",
    "1,x",
    "<Type>1</Type><Web><Title>t</Title></Web>",
    "<Item><Name>n</Name><Type>0</Type></Item>",
];

/// Values that break the document.
const BROKEN: &[&str] = &["<", "&lol;", "<Item>", "]]>", "<!DOCTYPE x>"];

/// Documents with a random framing and random (mostly well-formed) fields.
fn xmlish() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        30 => prop::sample::select(NAMES).prop_map(ToString::to_string),
        1 => "[^\\s<>/]{1,6}",
    ];
    let value = prop_oneof![
        60 => prop::sample::select(VALUES),
        1 => prop::sample::select(BROKEN),
    ];
    let element = (name, value, any::<bool>()).prop_map(|(n, v, nested)| {
        if nested {
            format!("<{n}><Item><{n}>{v}</{n}></Item></{n}>")
        } else {
            format!("<{n}>{v}</{n}>")
        }
    });
    (prop::sample::select(HEADERS), vec(element, 0..16))
        .prop_map(|(header, body)| format!("<xml>{header}{}</xml>", body.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        let _ = Event::parse(&input);
    }

    #[test]
    fn markup_soup_never_panics(input in "(<[a-zA-Z!?/]{0,4}|>|/>|&[a-z#0-9]{0,5};?|<!\\[CDATA\\[|\\]\\]>|[a-z0-9 ,\n]{0,5}|<!DOCTYPE|<!--|-->)*") {
        let _ = Event::parse(&input);
    }

    #[test]
    fn whatever_parses_survives_to_xml(input in xmlish()) {
        if let Ok(event) = Event::parse(&input)
            && !matches!(event, Event::Unknown(_))
        {
            prop_assert_eq!(Event::parse(&event.to_xml()), Ok(event));
        }
    }

    #[test]
    fn every_prefix_of_a_real_body_never_panics(cut in 0..APP_CREATE_USER.len()) {
        if let Some(prefix) = APP_CREATE_USER.get(..cut) {
            let _ = Event::parse(prefix);
        }
    }

    #[test]
    fn generated_events_survive_to_xml(event in event()) {
        let xml = event.to_xml();
        prop_assert_eq!(Event::parse(&xml), Ok(event), "{}", xml);
    }

    #[test]
    fn generated_events_survive_json(event in event()) {
        let json = serde_json::to_string(&event).unwrap();
        prop_assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    }
}
