//! WeCom's documented XML examples (docs/wecom.md §2, §3), verbatim but for `…` placeholders, and
//! builders for both framings of a contact change.

use wecom::event::{ExtAttr, ExtAttrValue, UserChange};

use super::{dept, depts, uid, users};

// docs/wecom.md §2: template (instruction) callbacks

pub const SUITE_TICKET: &str = r"<xml>
  <SuiteId><![CDATA[dkXXXXXXXX]]></SuiteId>
  <InfoType><![CDATA[suite_ticket]]></InfoType>
  <TimeStamp>1403610513</TimeStamp>
  <SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket>
</xml>";

pub const CREATE_AUTH: &str = r"<xml>
  <SuiteId><![CDATA[dkXXXXXXXX]]></SuiteId>
  <AuthCode><![CDATA[AUTHCODE]]></AuthCode>
  <InfoType><![CDATA[create_auth]]></InfoType>
  <TimeStamp>1403610513</TimeStamp>
  <State><![CDATA[123]]></State>
  <ExtraInfo></ExtraInfo>
</xml>";

pub const CHANGE_AUTH: &str = r"<xml>
  <SuiteId><![CDATA[dkXXXXXXXX]]></SuiteId>
  <InfoType><![CDATA[change_auth]]></InfoType>
  <TimeStamp>1403610513</TimeStamp>
  <AuthCorpId><![CDATA[wxf8b4f85f3a794e77]]></AuthCorpId>
  <State><![CDATA[abc]]></State>        <!-- optional -->
  <ExtraInfo></ExtraInfo>               <!-- optional -->
</xml>";

pub const CANCEL_AUTH: &str = r"<xml>
  <SuiteId><![CDATA[dkXXXXXXXX]]></SuiteId>
  <InfoType><![CDATA[cancel_auth]]></InfoType>
  <TimeStamp>1403610513</TimeStamp>
  <AuthCorpId><![CDATA[wxf8b4f85f3a794e77]]></AuthCorpId>
</xml>";

pub const RESET_PERMANENT_CODE: &str = r"<xml>
  <SuiteId><![CDATA[dk4asffe9xxx4c0f4c]]></SuiteId>
  <AuthCode><![CDATA[AUTHCODE]]></AuthCode>
  <InfoType><![CDATA[reset_permanent_code]]></InfoType>
  <TimeStamp>1403610513</TimeStamp>
</xml>";

/// docs/wecom.md §2.6, the third-party `InfoType` framing of a contact change, placeholders
/// filled in.
pub const TEMPLATE_CREATE_USER: &str = r"<xml>
  <SuiteId>dkXXXXXXXX</SuiteId><AuthCorpId>wxf8b4f85f3a794e77</AuthCorpId>
  <InfoType><![CDATA[change_contact]]></InfoType><TimeStamp>1403610513</TimeStamp>
  <ChangeType><![CDATA[create_user]]></ChangeType>
  <UserID>zhangsan</UserID><OpenUserID>woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA</OpenUserID><Name>张三</Name><Department>1,2,3</Department>
  <MainDepartment>1</MainDepartment><IsLeaderInDept>1,0,0</IsLeaderInDept><DirectLeader>lisi,wangwu</DirectLeader>
  <Mobile>13800000000</Mobile><Position>产品经理</Position><Gender>1</Gender><Email>zhangsan@gzdev.com</Email><BizMail>zhangsan@qyycs2.wecom.work</BizMail>
  <Avatar>http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0</Avatar><Alias>zhangsan</Alias><Telephone>020-123456</Telephone><ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item></ExtAttr>
</xml>";

// docs/wecom.md §3: app (data) callbacks

/// docs/wecom.md §3.1 with the two `…` of the Web attribute filled in.
pub const APP_CREATE_USER: &str = r"<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[sys]]></FromUserName>
  <CreateTime>1403610513</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[change_contact]]></Event>
  <ChangeType>create_user</ChangeType>        <!-- update_user | delete_user -->
  <UserID><![CDATA[zhangsan]]></UserID>
  <Name><![CDATA[张三]]></Name>
  <Department><![CDATA[1,2,3]]></Department>
  <MainDepartment>1</MainDepartment>
  <IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept>
  <DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader>
  <Position><![CDATA[产品经理]]></Position>
  <Mobile>13800000000</Mobile>
  <Gender>1</Gender>
  <Email><![CDATA[zhangsan@gzdev.com]]></Email>
  <BizMail><![CDATA[zhangsan@qyycs2.wecom.work]]></BizMail>
  <Status>1</Status>
  <Avatar><![CDATA[http://wx.qlogo.cn/...]]></Avatar>
  <Alias><![CDATA[zhangsan]]></Alias>
  <Telephone><![CDATA[020-123456]]></Telephone>
  <Address><![CDATA[广州市]]></Address>
  <ExtAttr>
    <Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item>
    <Item><Name><![CDATA[卡号]]></Name><Type>1</Type><Web><Title>招商银行</Title><Url>https://work.weixin.qq.com</Url></Web></Item>
  </ExtAttr>
</xml>";

/// docs/wecom.md §3.2 with the envelope `…` filled in.
pub const APP_CREATE_PARTY: &str = r"<xml><ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime>
  <MsgType><![CDATA[event]]></MsgType> <Event><![CDATA[change_contact]]></Event>
  <ChangeType>create_party</ChangeType>   <!-- update_party | delete_party -->
  <Id>2</Id>
  <Name><![CDATA[张三]]></Name>          <!-- 代开发: only if admin authorised -->
  <ParentId><![CDATA[1]]></ParentId>
  <Order>1</Order>
</xml>";

/// docs/wecom.md §3.3 with the envelope `…` filled in.
pub const APP_UPDATE_TAG: &str = r"<xml><ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime>
  <MsgType><![CDATA[event]]></MsgType> <Event><![CDATA[change_contact]]></Event>
  <ChangeType><![CDATA[update_tag]]></ChangeType>
  <TagId>1</TagId>
  <AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems>
  <DelUserItems><![CDATA[zhangsan1,lisi1]]></DelUserItems>
  <AddPartyItems><![CDATA[1,2]]></AddPartyItems>
  <DelPartyItems><![CDATA[3,4]]></DelPartyItems>
</xml>";

/// docs/wecom.md §3.4 `unlicensed_notify`: envelope fields only.
pub const UNLICENSED_NOTIFY: &str = r"<xml>
  <ToUserName><![CDATA[ww4asffe9xxx4c0f4c]]></ToUserName>
  <FromUserName><![CDATA[sys]]></FromUserName>
  <CreateTime>1403610513</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[unlicensed_notify]]></Event>
  <AgentID>1000002</AgentID>
</xml>";

pub const LOCATION: &str = r"<xml><ToUserName><![CDATA[ww1]]></ToUserName>
<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1348831860</CreateTime>
<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event>
<Latitude>23.104105</Latitude><Longitude>113.320107</Longitude><Precision>65.000000</Precision>
<AgentID>1</AgentID><AppType><![CDATA[wxwork]]></AppType></xml>";

/// The member of the docs/wecom.md §3.1 example.
pub fn zhangsan() -> UserChange {
    UserChange {
        name: Some("张三".into()),
        department: Some(depts(&[1, 2, 3])),
        main_department: Some(dept(1)),
        is_leader_in_dept: Some(vec![true, false, false]),
        direct_leader: Some(users(&["lisi", "wangwu"])),
        position: Some("产品经理".into()),
        mobile: Some("13800000000".into()),
        gender: Some(1),
        email: Some("zhangsan@gzdev.com".into()),
        biz_mail: Some("zhangsan@qyycs2.wecom.work".into()),
        status: Some(1),
        avatar: Some("http://wx.qlogo.cn/...".into()),
        alias: Some("zhangsan".into()),
        telephone: Some("020-123456".into()),
        address: Some("广州市".into()),
        ext_attr: Some(vec![
            ExtAttr {
                name: "爱好".into(),
                value: ExtAttrValue::Text {
                    value: "旅游".into(),
                },
            },
            ExtAttr {
                name: "卡号".into(),
                value: ExtAttrValue::Web {
                    title: "招商银行".into(),
                    url: "https://work.weixin.qq.com".into(),
                },
            },
        ]),
        ..UserChange::new(uid("zhangsan"))
    }
}

// Both framings of a contact change (docs/wecom.md §3)

pub const CORP: &str = "wwcorp";

/// A contact change body in the template (`InfoType`) framing.
pub fn template_change(body: &str) -> String {
    format!(
        "<xml><SuiteId><![CDATA[dk1]]></SuiteId><AuthCorpId><![CDATA[{CORP}]]></AuthCorpId>\
         <InfoType><![CDATA[change_contact]]></InfoType><TimeStamp>1403610513</TimeStamp>\n{body}\n</xml>"
    )
}

/// A contact change body in the app (`MsgType`/`Event`) framing.
pub fn app_change(body: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\n\
         <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\n\
         <Event><![CDATA[change_contact]]></Event><AgentID>1000002</AgentID>\n{body}\n</xml>"
    )
}

/// A body for every `ChangeType`, and the `kind()` suffix it must give.
pub const CHANGE_BODIES: &[(&str, &str)] = &[
    (
        "create_user",
        "<ChangeType>create_user</ChangeType><UserID>u1</UserID><Name>N</Name><Department>1,2</Department>",
    ),
    (
        "update_user",
        "<ChangeType>update_user</ChangeType><UserID>u1</UserID><NewUserID>u2</NewUserID>",
    ),
    (
        "delete_user",
        "<ChangeType>delete_user</ChangeType><UserID>u1</UserID>",
    ),
    (
        "create_party",
        "<ChangeType>create_party</ChangeType><Id>2</Id><Name>D</Name><ParentId>1</ParentId><Order>3</Order>",
    ),
    (
        "update_party",
        "<ChangeType>update_party</ChangeType><Id>2</Id><Name>E</Name>",
    ),
    (
        "delete_party",
        "<ChangeType>delete_party</ChangeType><Id>2</Id>",
    ),
    (
        "update_tag",
        "<ChangeType>update_tag</ChangeType><TagId>5</TagId><AddUserItems>u1</AddUserItems><DelPartyItems>2</DelPartyItems>",
    ),
    (
        "unknown",
        "<ChangeType>merge_users</ChangeType><UserID>u1</UserID>",
    ),
];

/// Every example above, plus a message and an unknown event, in both framings where they apply.
pub fn every_example() -> Vec<String> {
    let mut examples: Vec<String> = [
        SUITE_TICKET,
        CREATE_AUTH,
        CHANGE_AUTH,
        CANCEL_AUTH,
        RESET_PERMANENT_CODE,
        TEMPLATE_CREATE_USER,
        APP_CREATE_USER,
        APP_CREATE_PARTY,
        APP_UPDATE_TAG,
        UNLICENSED_NOTIFY,
        LOCATION,
        "<xml><ToUserName>ww1</ToUserName><MsgType>text</MsgType><Content>hello</Content><MsgId>1</MsgId></xml>",
        "<xml><InfoType>change_app_admin</InfoType></xml>",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for (_, body) in CHANGE_BODIES {
        examples.push(template_change(body));
        examples.push(app_change(body));
    }
    examples
}
