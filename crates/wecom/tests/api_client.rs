//! The WeCom API client against a wiremock WeCom: request shapes, realistic answers from
//! docs/wecom.md §4, and every error class of docs/wecom.md §5 as the client reports it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns unwrap too; a panic is a failed test"
)]

use std::time::Duration;

use serde_json::{Value, json};
use url::Url;
use wecom::api::{
    AccessToken, ApiError, Client, ClientConfig, Envelope, ErrorClass, PermanentCodeV1,
    PermanentCodeV2, TokenKind, User, classify,
};
use wecom::ids::{AgentId, DepartmentId, TagId, UserId};
use wiremock::matchers::{body_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "CORP-ACCESS-TOKEN-d41d8cd98f00b204e980";
const SUITE_TOKEN: &str = "SUITE-ACCESS-TOKEN-61xj0ZJx2hsV6oOB";

fn dept(id: i64) -> DepartmentId {
    DepartmentId::new(id).unwrap()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn wecom() -> (MockServer, Client) {
    let server = MockServer::start().await;
    let client = Client::new(ClientConfig::new(Url::parse(&server.uri()).unwrap())).unwrap();
    (server, client)
}

fn ok(body: Value) -> ResponseTemplate {
    let mut body = body;
    body["errcode"] = json!(0);
    body["errmsg"] = json!("ok");
    ResponseTemplate::new(200).set_body_json(body)
}

fn wecom_error(code: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "errcode": code,
        "errmsg": format!("error {code}, hint: [1700000000_1_abc], more info at https://open.work.weixin.qq.com/devtool/query?e={code}"),
    }))
}

fn v1_permanent_code_body() -> Value {
    json!({
        "errcode": 0, "errmsg": "ok",
        "access_token": "xxxxxx", "expires_in": 7200,
        "permanent_code": "PERMANENT-SECRET-xyz",
        "dealer_corp_info": {"corpid": "wwdealer", "corp_name": "dealer"},
        "auth_corp_info": {
            "corpid": "wpAbCdEf012345", "corp_name": "name", "corp_type": "verified",
            "corp_square_logo_url": "https://p.qlogo.cn/logo", "corp_user_max": 50,
            "corp_full_name": "full name", "verified_end_time": 1_431_775_834_i64, "subject_type": 1,
            "corp_wxqrcode": "https://qr", "corp_scale": "1-50人", "corp_industry": "IT服务",
            "corp_sub_industry": "计算机软件/硬件/信息服务"
        },
        "auth_info": {"agent": [{
            "agentid": 1_000_002, "name": "NAME", "round_logo_url": "https://round",
            "square_logo_url": "https://square", "appid": 1, "auth_mode": 1,
            "is_customized_app": true, "auth_from_thirdapp": false,
            "privilege": {"level": 1, "allow_party": [1, 2, 3], "allow_user": ["zhansan"],
                          "allow_tag": [1], "extra_party": [], "extra_user": [], "extra_tag": []},
            "shared_from": {"corpid": "wwyyyyy", "share_type": 1}
        }]},
        "auth_user_info": {"userid": "aa", "open_userid": "woAA", "name": "admin", "avatar": "https://a"},
        "register_code_info": {"register_code": "rc", "template_id": "dk1", "state": "s"},
        "state": "tenant-42",
        "some_future_field": {"nested": true}
    })
}

// ---------------------------------------------------------------- provider & template credentials

#[tokio::test]
async fn get_suite_token_posts_credentials_and_accepts_an_answer_without_errcode() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_suite_token"))
        .and(body_json(
            json!({"suite_id": "dk123", "suite_secret": "S3CR3T", "suite_ticket": "TICKET"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"suite_access_token": SUITE_TOKEN, "expires_in": 7200})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let token = client
        .get_suite_token(
            &"dk123".parse().unwrap(),
            "S3CR3T",
            &"TICKET".parse().unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(token.access_token, SUITE_TOKEN);
    assert_eq!(token.expires_in, 7200);
}

#[tokio::test]
async fn get_provider_token_posts_corpid_and_secret() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_provider_token"))
        .and(body_json(
            json!({"corpid": "wwprovider", "provider_secret": "PS"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"provider_access_token": "PROVIDER-TOKEN", "expires_in": 7200}),
            ),
        )
        .mount(&server)
        .await;

    let token = client
        .get_provider_token(&"wwprovider".parse().unwrap(), "PS")
        .await
        .unwrap();

    assert_eq!(token.access_token, "PROVIDER-TOKEN");
}

#[tokio::test]
async fn get_token_sends_corpid_and_permanent_code_as_gettoken_query() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .and(query_param("corpid", "wpAbCdEf012345"))
        .and(query_param("corpsecret", "PERMANENT-SECRET-xyz"))
        .respond_with(ok(json!({"access_token": TOKEN, "expires_in": 7200})))
        .expect(1)
        .mount(&server)
        .await;

    let token = client
        .get_token(&"wpAbCdEf012345".parse().unwrap(), "PERMANENT-SECRET-xyz")
        .await
        .unwrap();

    assert_eq!(
        token,
        AccessToken {
            access_token: TOKEN.to_owned(),
            expires_in: 7200
        }
    );
}

// ---------------------------------------------------------------- AuthCode exchange & auth info

#[tokio::test]
async fn get_permanent_code_v1_parses_the_full_documented_body() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_permanent_code"))
        .and(query_param("suite_access_token", SUITE_TOKEN))
        .and(body_json(json!({"auth_code": "AUTHCODE"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(v1_permanent_code_body()))
        .expect(1)
        .mount(&server)
        .await;

    let code = client
        .get_permanent_code(SUITE_TOKEN, "AUTHCODE")
        .await
        .unwrap();

    assert_eq!(code.permanent_code, "PERMANENT-SECRET-xyz");
    assert_eq!(code.auth_corp_info.corpid, "wpAbCdEf012345");
    assert_eq!(code.auth_corp_info.corp_user_max, Some(50));
    assert_eq!(code.auth_corp_info.corp_scale.as_deref(), Some("1-50人"));
    assert_eq!(
        code.dealer_corp_info.unwrap().corpid.as_deref(),
        Some("wwdealer")
    );
    let agent = &code.auth_info.agent[0];
    assert_eq!(agent.agentid, 1_000_002);
    assert_eq!(agent.is_customized_app, Some(true));
    let privilege = agent.privilege.as_ref().unwrap();
    assert_eq!(privilege.allow_party, vec![1, 2, 3]);
    assert_eq!(privilege.allow_user, vec!["zhansan"]);
    assert_eq!(privilege.allow_tag, vec![1]);
    assert_eq!(code.auth_user_info.unwrap().userid.as_deref(), Some("aa"));
    assert_eq!(
        code.register_code_info.unwrap().template_id.as_deref(),
        Some("dk1")
    );
    assert_eq!(code.state.as_deref(), Some("tenant-42"));
}

#[tokio::test]
async fn get_permanent_code_v1_for_a_customized_app_has_no_access_token() {
    let (server, client) = wecom().await;
    let mut body = v1_permanent_code_body();
    let object = body.as_object_mut().unwrap();
    for field in [
        "access_token",
        "expires_in",
        "dealer_corp_info",
        "register_code_info",
        "state",
    ] {
        object.remove(field);
    }
    Mock::given(path("/cgi-bin/service/get_permanent_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;

    let code = client
        .get_permanent_code(SUITE_TOKEN, "AUTHCODE")
        .await
        .unwrap();

    assert_eq!(code.access_token, None);
    assert_eq!(code.expires_in, None);
    assert_eq!(code.state, None);
    assert_eq!(code.auth_info.agent.len(), 1);
}

#[tokio::test]
async fn get_permanent_code_v2_parses_the_slim_body() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/v2/get_permanent_code"))
        .and(query_param("suite_access_token", SUITE_TOKEN))
        .and(body_json(json!({"auth_code": "AUTHCODE"})))
        .respond_with(ok(json!({
            "permanent_code": "PERMANENT-SECRET-v2",
            "auth_corp_info": {"corpid": "wpXyZ", "corp_name": "测试企业"},
            "auth_user_info": {"userid": "admin", "open_userid": "woadmin"},
            "state": "tenant-7"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let code = client
        .get_permanent_code_v2(SUITE_TOKEN, "AUTHCODE")
        .await
        .unwrap();

    assert_eq!(code.permanent_code, "PERMANENT-SECRET-v2");
    assert_eq!(code.auth_corp_info.corpid, "wpXyZ");
    assert_eq!(code.auth_corp_info.corp_name.as_deref(), Some("测试企业"));
    assert_eq!(code.auth_corp_info.corp_type, None);
    assert_eq!(code.register_code_info, None);
    assert_eq!(code.state.as_deref(), Some("tenant-7"));
}

#[tokio::test]
async fn get_auth_info_v1_posts_corp_and_permanent_code() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/get_auth_info"))
        .and(query_param("suite_access_token", SUITE_TOKEN))
        .and(body_json(json!({"auth_corpid": "wpXyZ", "permanent_code": "PC"})))
        .respond_with(ok(json!({
            "auth_corp_info": {"corpid": "wpXyZ", "corp_name": "n", "corp_wxqrcode": "https://qr"},
            "auth_info": {"agent": [{"agentid": 1_000_005, "is_customized_app": true,
                                     "privilege": {"allow_party": [1], "allow_user": [], "allow_tag": []}}]}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let info = client
        .get_auth_info(SUITE_TOKEN, &"wpXyZ".parse().unwrap(), "PC")
        .await
        .unwrap();

    assert_eq!(info.auth_info.agent[0].agentid, 1_000_005);
    assert_eq!(
        info.auth_corp_info.corp_wxqrcode.as_deref(),
        Some("https://qr")
    );
    assert_eq!(info.dealer_corp_info, None);
}

#[tokio::test]
async fn get_auth_info_v2_parses_corp_ex_name() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/service/v2/get_auth_info"))
        .and(query_param("suite_access_token", SUITE_TOKEN))
        .and(body_json(
            json!({"auth_corpid": "wpXyZ", "permanent_code": "PC"}),
        ))
        .respond_with(ok(json!({
            "dealer_corp_info": {"corpid": "wwdealer", "corp_name": "dealer"},
            "auth_corp_info": {
                "corpid": "wpXyZ", "corp_name": "简称", "corp_type": "verified",
                "corp_square_logo_url": "https://logo", "corp_user_max": 200,
                "corp_full_name": "全称有限公司", "verified_end_time": 1_731_775_834_i64,
                "subject_type": 1, "corp_scale": "51-100人", "corp_industry": "IT服务",
                "corp_sub_industry": "软件", "location": "广东省广州市",
                "corp_ex_name": {"name_list": ["别名一", "别名二"]}
            },
            "auth_info": {"agent": [{
                "agentid": 1_000_009, "name": "代开发应用", "square_logo_url": "https://sq",
                "auth_mode": 0, "is_customized_app": true, "auth_from_thirdapp": false,
                "privilege": {"allow_party": [2, 3], "allow_user": ["lisi"], "allow_tag": [7],
                              "extra_party": [], "extra_user": [], "extra_tag": []}
            }]}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let info = client
        .get_auth_info_v2(SUITE_TOKEN, &"wpXyZ".parse().unwrap(), "PC")
        .await
        .unwrap();

    let corp = &info.auth_corp_info;
    assert_eq!(
        corp.corp_ex_name.as_ref().unwrap().name_list,
        vec!["别名一", "别名二"]
    );
    assert_eq!(corp.location.as_deref(), Some("广东省广州市"));
    assert_eq!(corp.corp_wxqrcode, None);
    let agent = &info.auth_info.agent[0];
    assert_eq!(agent.agentid, 1_000_009);
    assert_eq!(agent.privilege.as_ref().unwrap().allow_tag, vec![7]);
}

// ---------------------------------------------------------------- agent

#[tokio::test]
async fn agent_get_reads_the_visibility_scope() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/agent/get"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("agentid", "1000002"))
        .respond_with(ok(json!({
            "agentid": 1_000_002, "name": "NAME", "square_logo_url": "https://logo",
            "description": "desc",
            "allow_userinfos": {"user": [{"userid": "zhangshan"}, {"userid": "lisi"}]},
            "allow_partys": {"partyid": [1]}, "allow_tags": {"tagid": [1, 2, 3]},
            "close": 0, "redirect_domain": "open.work.weixin.qq.com", "report_location_flag": 0,
            "isreportenter": 0, "home_url": "https://open.work.weixin.qq.com",
            "customized_publish_status": 1
        })))
        .expect(1)
        .mount(&server)
        .await;

    let agent = client
        .agent_get(TOKEN, AgentId::new(1_000_002).unwrap())
        .await
        .unwrap();

    assert_eq!(agent.agentid, 1_000_002);
    assert_eq!(agent.allow_userinfos.unwrap().user[1].userid, "lisi");
    assert_eq!(agent.allow_partys.unwrap().partyid, vec![1]);
    assert_eq!(agent.allow_tags.unwrap().tagid, vec![1, 2, 3]);
    assert_eq!(agent.customized_publish_status, Some(1));
}

#[tokio::test]
async fn agent_get_permissions_posts_an_empty_object() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/agent/get_permissions"))
        .and(query_param("access_token", TOKEN))
        .and(body_json(json!({})))
        .respond_with(ok(json!({
            "app_permissions": ["contact:sensitive:user_name", "contact:sensitive:mobile"],
            "app_permissions_ext": [{"permission_name": "contact:sensitive:mobile", "expire_time": 1_800_000_000}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let permissions = client.agent_get_permissions(TOKEN).await.unwrap();

    assert!(permissions.has("contact:sensitive:user_name"));
    assert!(!permissions.has("contact:sensitive:email"));
    assert_eq!(
        permissions.app_permissions_ext[0].expire_time,
        Some(1_800_000_000)
    );
}

// ---------------------------------------------------------------- departments

#[tokio::test]
async fn department_list_without_id_asks_for_the_whole_tree() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/department/list"))
        .and(query_param("access_token", TOKEN))
        .and(query_param_is_missing("id"))
        .respond_with(ok(json!({"department": [
            {"id": 1, "name": "广州研发中心", "name_en": "RDGZ", "department_leader": ["zhangsan", "lisi"], "parentid": 0, "order": 10},
            {"id": 2, "parentid": 1, "order": 100_000_000}
        ]})))
        .expect(1)
        .mount(&server)
        .await;

    let departments = client.department_list(TOKEN, None).await.unwrap();

    assert_eq!(departments.len(), 2);
    assert_eq!(departments[0].department_leader, vec!["zhangsan", "lisi"]);
    assert_eq!(departments[0].parentid, None);
    assert_eq!(departments[1].name, None, "names need the admin's grant");
    assert_eq!(departments[1].order, Some(100_000_000));
}

#[tokio::test]
async fn department_list_with_id_asks_for_a_subtree() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/department/list"))
        .and(query_param("id", "5"))
        .respond_with(ok(json!({"department": []})))
        .expect(1)
        .mount(&server)
        .await;

    assert!(
        client
            .department_list(TOKEN, Some(dept(5)))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn department_simplelist_returns_the_id_tree() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/department/simplelist"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("id", "1"))
        .respond_with(ok(json!({"department_id": [
            {"id": 2, "parentid": 1, "order": 10},
            {"id": 3, "parentid": 2, "order": 40}
        ]})))
        .expect(1)
        .mount(&server)
        .await;

    let tree = client
        .department_simplelist(TOKEN, Some(dept(1)))
        .await
        .unwrap();

    assert_eq!(tree[1].id, 3);
    assert_eq!(tree[1].parentid, Some(dept(2)));
}

#[tokio::test]
async fn department_get_reads_one_department() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/department/get"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("id", "2"))
        .respond_with(ok(json!({"department": {
            "id": 2, "name": "广州研发中心", "name_en": "RDGZ",
            "department_leader": ["zhangsan"], "parentid": 1, "order": 10
        }})))
        .expect(1)
        .mount(&server)
        .await;

    let department = client.department_get(TOKEN, dept(2)).await.unwrap();

    assert_eq!(department.name.as_deref(), Some("广州研发中心"));
    assert_eq!(department.parentid, Some(dept(1)));
}

// ---------------------------------------------------------------- members

#[tokio::test]
async fn user_get_without_sensitive_fields_leaves_them_empty() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/user/get"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("userid", "woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"))
        .respond_with(ok(json!({
            "userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA",
            "department": [1, 2], "order": [1, 2], "position": "后台工程师",
            "is_leader_in_dept": [1, 0], "direct_leader": ["lisi"], "main_department": 1,
            "status": 1
        })))
        .expect(1)
        .mount(&server)
        .await;

    let user = client
        .user_get(TOKEN, &user("woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA"))
        .await
        .unwrap();

    assert_eq!(user.department, vec![1, 2]);
    assert_eq!(user.is_leader_in_dept, vec![1, 0]);
    assert_eq!(user.main_department, Some(dept(1)));
    assert_eq!(user.position.as_deref(), Some("后台工程师"));
    for missing in [
        &user.name,
        &user.mobile,
        &user.gender,
        &user.email,
        &user.avatar,
        &user.address,
    ] {
        assert_eq!(missing, &None);
    }
    assert_eq!(user.extattr, None);
}

#[tokio::test]
async fn user_get_with_every_field_parses_extattr_and_gender() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/user/get"))
        .respond_with(ok(json!({
            "userid": "zhangsan", "name": "张三", "department": [1, 2], "order": [1, 2],
            "position": "后台工程师", "mobile": "13800000000", "gender": "1",
            "email": "zhangsan@gzdev.com", "biz_mail": "zhangsan@qyycs2.wecom.work",
            "is_leader_in_dept": [1, 0], "direct_leader": ["lisi", "wangwu"],
            "avatar": "http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0",
            "thumb_avatar": "http://wx.qlogo.cn/mmopen/thumb/100", "telephone": "020-123456",
            "alias": "jackzhang", "address": "广州市海珠区新港中路", "open_userid": "xxxxxx",
            "main_department": 1, "status": 1, "qr_code": "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=xxx",
            "external_position": "高级产品经理",
            "extattr": {"attrs": [
                {"type": 0, "name": "文本名称", "text": {"value": "文本"}},
                {"type": 1, "name": "网页名称", "web": {"url": "http://www.test.com", "title": "标题"}}
            ]},
            "external_profile": {"external_corp_name": "企业简称", "external_attr": []}
        })))
        .mount(&server)
        .await;

    let user = client.user_get(TOKEN, &user("zhangsan")).await.unwrap();

    assert_eq!(user.name.as_deref(), Some("张三"));
    assert_eq!(user.gender.as_deref(), Some("1"));
    assert_eq!(user.direct_leader, vec!["lisi", "wangwu"]);
    let attrs = &user.extattr.as_ref().unwrap().attrs;
    assert_eq!(attrs[0].kind, Some(0));
    assert_eq!(attrs[0].text.as_ref().unwrap().value, "文本");
    assert_eq!(attrs[1].web.as_ref().unwrap().url, "http://www.test.com");
    assert!(user.external_profile.is_some());
}

#[tokio::test]
async fn gender_sent_as_a_number_is_accepted() {
    let user: User = serde_json::from_value(json!({"userid": "u", "gender": 2})).unwrap();
    assert_eq!(user.gender.as_deref(), Some("2"));
}

#[tokio::test]
async fn user_list_reads_a_departments_members() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/user/list"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("department_id", "1"))
        .respond_with(ok(json!({"userlist": [
            {"userid": "zhangsan", "name": "李四", "department": [1, 2], "order": [1, 2],
             "is_leader_in_dept": [1, 0], "main_department": 1, "status": 1},
            {"userid": "lisi", "department": [1]}
        ]})))
        .expect(1)
        .mount(&server)
        .await;

    let users = client.user_list(TOKEN, dept(1)).await.unwrap();

    assert_eq!(users.len(), 2);
    assert_eq!(users[0].department, vec![1, 2]);
    assert_eq!(users[1].name, None);
}

#[tokio::test]
async fn user_simplelist_reads_ids_and_departments() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/user/simplelist"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("department_id", "3"))
        .respond_with(ok(json!({"userlist": [
            {"userid": "zhangsan", "name": "张三", "department": [1, 2], "open_userid": "xxxxxx"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;

    let users = client.user_simplelist(TOKEN, dept(3)).await.unwrap();

    assert_eq!(users[0].userid, "zhangsan");
    assert_eq!(users[0].department, vec![1, 2]);
}

#[tokio::test]
async fn user_list_id_first_page_omits_the_cursor() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/user/list_id"))
        .and(query_param("access_token", TOKEN))
        .and(body_json(json!({"limit": 10_000})))
        .respond_with(ok(json!({
            "next_cursor": "aaaaaaaaa",
            "dept_user": [
                {"userid": "zhangsan", "department": 1},
                {"userid": "zhangsan", "department": 2},
                {"userid": "lisi", "department": 1}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let page = client.user_list_id(TOKEN, None, 10_000).await.unwrap();

    assert_eq!(page.next_page(), Some("aaaaaaaaa"));
    assert_eq!(page.dept_user.len(), 3);
    assert_eq!(page.dept_user[1].department, 2);
}

#[tokio::test]
async fn user_list_id_sends_the_cursor_and_ends_on_an_empty_next_cursor() {
    let (server, client) = wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/user/list_id"))
        .and(body_json(json!({"cursor": "aaaaaaaaa", "limit": 2})))
        .respond_with(ok(
            json!({"next_cursor": "", "dept_user": [{"userid": "wangwu", "department": 3}]}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let page = client
        .user_list_id(TOKEN, Some("aaaaaaaaa"), 2)
        .await
        .unwrap();

    assert_eq!(page.next_page(), None);
    assert_eq!(page.dept_user[0].userid, "wangwu");
}

#[tokio::test]
async fn user_list_id_page_without_next_cursor_is_the_last() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/user/list_id"))
        .respond_with(ok(json!({"dept_user": []})))
        .mount(&server)
        .await;

    let page = client.user_list_id(TOKEN, None, 100).await.unwrap();

    assert_eq!(page.next_page(), None);
}

// ---------------------------------------------------------------- tags

#[tokio::test]
async fn tag_list_reads_ids_and_names() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/tag/list"))
        .and(query_param("access_token", TOKEN))
        .respond_with(ok(json!({"taglist": [
            {"tagid": 1, "tagname": "a"}, {"tagid": 2}
        ]})))
        .expect(1)
        .mount(&server)
        .await;

    let tags = client.tag_list(TOKEN).await.unwrap();

    assert_eq!(tags[0].tagname.as_deref(), Some("a"));
    assert_eq!(tags[1].tagid, 2);
    assert_eq!(tags[1].tagname, None);
}

#[tokio::test]
async fn tag_get_reads_members_and_departments() {
    let (server, client) = wecom().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/tag/get"))
        .and(query_param("access_token", TOKEN))
        .and(query_param("tagid", "7"))
        .respond_with(ok(json!({
            "tagname": "乒乓球协会",
            "userlist": [{"userid": "zhangsan", "name": "李四"}, {"userid": "wangwu"}],
            "partylist": [2]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let members = client.tag_get(TOKEN, TagId::new(7).unwrap()).await.unwrap();

    assert_eq!(members.tagname.as_deref(), Some("乒乓球协会"));
    assert_eq!(members.userlist[1].userid, "wangwu");
    assert_eq!(members.userlist[1].name, None);
    assert_eq!(members.partylist, vec![2]);
}

// ---------------------------------------------------------------- error classes through the client

async fn user_get_error(code: i64) -> ApiError {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/user/get"))
        .respond_with(wecom_error(code))
        .mount(&server)
        .await;
    client.user_get(TOKEN, &user("zhangsan")).await.unwrap_err()
}

#[tokio::test]
async fn system_busy_is_retryable() {
    let err = user_get_error(-1).await;
    assert_eq!(err.code(), Some(-1));
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn expired_corp_token_asks_for_a_corp_token_refresh() {
    let err = user_get_error(42001).await;
    assert_eq!(err.class(), ErrorClass::TokenExpired(TokenKind::Corp));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn expired_suite_token_asks_for_a_suite_token_refresh() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/service/v2/get_permanent_code"))
        .respond_with(wecom_error(42009))
        .mount(&server)
        .await;

    let err = client
        .get_permanent_code_v2(SUITE_TOKEN, "AUTHCODE")
        .await
        .unwrap_err();

    assert_eq!(err.class(), ErrorClass::TokenExpired(TokenKind::Suite));
}

#[tokio::test]
async fn frequency_limit_is_rate_limited_for_a_minute() {
    let err = user_get_error(45009).await;
    assert_eq!(
        err.class(),
        ErrorClass::RateLimited {
            retry_after: Duration::from_secs(60)
        }
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn invalid_permanent_code_marks_the_tenant_broken() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/gettoken"))
        .respond_with(wecom_error(40084))
        .mount(&server)
        .await;

    let err = client
        .get_token(&"wpXyZ".parse().unwrap(), "PC")
        .await
        .unwrap_err();

    assert_eq!(err.class(), ErrorClass::TenantBroken);
}

#[tokio::test]
async fn burnt_auth_code_is_permanent() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/service/get_permanent_code"))
        .respond_with(wecom_error(40078))
        .mount(&server)
        .await;

    let err = client
        .get_permanent_code(SUITE_TOKEN, "AUTHCODE")
        .await
        .unwrap_err();

    assert!(matches!(
        err,
        ApiError::WeCom {
            code: 40078,
            class: ErrorClass::Permanent,
            ..
        }
    ));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn errcode_on_a_token_endpoint_wins_over_the_missing_payload() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/service/get_suite_token"))
        .respond_with(wecom_error(40085))
        .mount(&server)
        .await;

    let err = client
        .get_suite_token(&"dk1".parse().unwrap(), "S", &"stale".parse().unwrap())
        .await
        .unwrap_err();

    assert_eq!(err.code(), Some(40085));
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn http_502_is_a_retryable_transport_error() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&server)
        .await;

    let err = client.tag_list(TOKEN).await.unwrap_err();

    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.code(), None);
}

#[tokio::test]
async fn http_403_is_permanent() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;

    let err = client.tag_list(TOKEN).await.unwrap_err();

    assert!(matches!(err, ApiError::Http { status: 403 }));
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_is_a_retryable_transport_error() {
    let server = MockServer::start().await;
    let mut config = ClientConfig::new(Url::parse(&server.uri()).unwrap());
    config.timeout = Duration::from_millis(200);
    let client = Client::new(config).unwrap();
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ok(json!({"taglist": []})).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;

    let err = client.tag_list(TOKEN).await.unwrap_err();

    assert!(
        matches!(&err, ApiError::Transport(msg) if msg.starts_with("timeout")),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_permanent_decode_error() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/tag/list"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;

    let err = client.tag_list(TOKEN).await.unwrap_err();

    assert!(matches!(err, ApiError::Decode(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn a_success_body_of_the_wrong_shape_is_a_decode_error() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/gettoken"))
        .respond_with(ok(json!({"token": "renamed"})))
        .mount(&server)
        .await;

    let err = client
        .get_token(&"wpXyZ".parse().unwrap(), "PC")
        .await
        .unwrap_err();

    assert!(matches!(err, ApiError::Decode(_)), "{err:?}");
}

#[test]
fn a_base_url_that_is_not_http_is_rejected() {
    let config = ClientConfig::new(Url::parse("ftp://qyapi.weixin.qq.com").unwrap());
    assert!(matches!(
        Client::new(config),
        Err(ApiError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_keeps_it() {
    let server = MockServer::start().await;
    let base = Url::parse(&format!("{}/wecom/", server.uri())).unwrap();
    let client = Client::new(ClientConfig::new(base)).unwrap();
    Mock::given(path("/wecom/cgi-bin/tag/list"))
        .respond_with(ok(json!({"taglist": []})))
        .expect(1)
        .mount(&server)
        .await;

    assert!(client.tag_list(TOKEN).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- classification table

#[test]
fn classify_covers_every_code_of_the_protocol_table() {
    use ErrorClass::{Permanent, Retryable, TenantBroken};
    let suite = ErrorClass::TokenExpired(TokenKind::Suite);
    let corp = ErrorClass::TokenExpired(TokenKind::Corp);
    let table = [
        (-1, Retryable),
        (6000, Retryable),
        (40001, TenantBroken),
        (40013, Permanent),
        (40014, corp),
        (42001, corp),
        (40082, suite),
        (42009, suite),
        (40083, Permanent),
        (48003, Permanent),
        (40084, TenantBroken),
        (40085, Permanent),
        (40078, Permanent),
        (41025, Permanent),
        (40029, Permanent),
        (
            45009,
            ErrorClass::RateLimited {
                retry_after: Duration::from_secs(60),
            },
        ),
        (
            45033,
            ErrorClass::RateLimited {
                retry_after: Duration::from_secs(1),
            },
        ),
        (45029, Permanent),
        (48002, Permanent),
        (48004, TenantBroken),
        (48006, TenantBroken),
        (50003, TenantBroken),
        (60011, Permanent),
        (60020, Permanent),
        (60111, Permanent),
        (50100, Permanent),
        (701_000, Permanent),
        (701_008, Permanent),
        (701_999, Permanent),
        (99_999_999, Permanent),
    ];
    for (code, class) in table {
        assert_eq!(classify(code), class, "errcode {code}");
    }
}

#[test]
fn rate_limits_and_system_errors_are_the_only_retryable_wecom_codes() {
    for code in [-1, 6000, 45009, 45033] {
        assert!(ApiError::wecom(code, "x").is_retryable(), "errcode {code}");
    }
    for code in [
        40001, 40014, 42001, 40082, 42009, 40078, 40084, 60011, 12345,
    ] {
        assert!(!ApiError::wecom(code, "x").is_retryable(), "errcode {code}");
    }
}

// ---------------------------------------------------------------- secrets never printed

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
    }
}

#[tokio::test]
async fn transport_errors_never_show_the_token_or_secret_from_the_query() {
    let server = MockServer::start().await;
    let mut config = ClientConfig::new(Url::parse(&server.uri()).unwrap());
    config.timeout = Duration::from_millis(100);
    let client = Client::new(config).unwrap();
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;

    let timeout = client.user_get(TOKEN, &user("zhangsan")).await.unwrap_err();
    let gettoken = client
        .get_token(&"wpXyZ".parse().unwrap(), "PERMANENT-SECRET-xyz")
        .await
        .unwrap_err();

    for err in [timeout, gettoken] {
        assert_no_secret(
            &format!("{err} {err:?}"),
            &[TOKEN, "PERMANENT-SECRET-xyz", "access_token="],
        );
    }
}

#[tokio::test]
async fn connection_errors_never_show_the_token() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = Client::new(ClientConfig::new(base)).unwrap();

    let err = client
        .department_list(TOKEN, Some(dept(1)))
        .await
        .unwrap_err();

    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert_no_secret(&format!("{err} {err:?}"), &[TOKEN]);
}

#[test]
fn debug_output_redacts_tokens_and_permanent_codes() {
    let token = AccessToken {
        access_token: TOKEN.to_owned(),
        expires_in: 7200,
    };
    let v1: PermanentCodeV1 = serde_json::from_value(v1_permanent_code_body()).unwrap();
    let v2: PermanentCodeV2 = serde_json::from_value(json!({
        "permanent_code": "PERMANENT-SECRET-xyz", "auth_corp_info": {"corpid": "wpXyZ"}
    }))
    .unwrap();

    let printed = format!("{token:?} {v1:?} {v2:?}");

    assert_no_secret(&printed, &[TOKEN, "PERMANENT-SECRET-xyz", "xxxxxx"]);
    assert!(
        printed.contains("wpAbCdEf012345"),
        "non-secret fields stay visible: {printed}"
    );
}

// ---------------------------------------------------------------- the simulator's side: real shapes

#[test]
fn types_serialize_to_wecom_json_shapes() {
    let v1: PermanentCodeV1 = serde_json::from_value(v1_permanent_code_body()).unwrap();
    let served = serde_json::to_value(Envelope::ok(v1)).unwrap();

    assert_eq!(served["errcode"], 0);
    assert_eq!(served["errmsg"], "ok");
    assert_eq!(served["permanent_code"], "PERMANENT-SECRET-xyz");
    assert_eq!(
        served["auth_info"]["agent"][0]["privilege"]["allow_party"],
        json!([1, 2, 3])
    );
    assert_eq!(served["auth_user_info"]["userid"], "aa");

    let user: User = serde_json::from_value(json!({
        "userid": "zhangsan", "department": [1], "is_leader_in_dept": [1], "gender": "2",
        "extattr": {"attrs": [{"type": 0, "name": "n", "text": {"value": "v"}}]}
    }))
    .unwrap();
    let served = serde_json::to_value(&user).unwrap();
    assert_eq!(served["is_leader_in_dept"], json!([1]));
    assert_eq!(served["gender"], "2");
    assert_eq!(served["extattr"]["attrs"][0]["type"], 0);
    assert!(
        served.get("mobile").is_none(),
        "absent fields stay absent: {served}"
    );
}

#[tokio::test]
async fn a_body_over_the_size_cap_is_refused() {
    let (server, client) = wecom().await;
    Mock::given(path("/cgi-bin/user/list"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(vec![b' '; wecom::api::MAX_BODY_BYTES + 1]),
        )
        .mount(&server)
        .await;

    let err = client.user_list(TOKEN, dept(1)).await.unwrap_err();

    assert!(
        matches!(&err, ApiError::Decode(msg) if msg.contains("exceeds")),
        "{err:?}"
    );
}
