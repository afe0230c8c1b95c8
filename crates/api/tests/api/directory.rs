//! The directory routes answer what wecom-sim's own API answers for the same corp: the mirror is
//! written here from the simulator's answers (as contact sync writes it), then every route is
//! compared with the simulator's `department/list`, `user/get`, `user/list` and `tag/get`.

use std::collections::BTreeSet;

use serde_json::Value;
use store::api_keys::Scope;
use store::directory::Observation;
use store::directory::tags::TagSnapshot;
use wecom::api::{Department, User};
use wecom::ids::{CorpId, SuiteId};

use crate::helpers::{SUITE_ID, Stack, start, tenant_path};

/// What the simulated WeCom shows the app: departments, members (each once), tags.
struct Truth {
    departments: Vec<Department>,
    users: Vec<User>,
    tags: Vec<TagSnapshot>,
    token: String,
}

async fn truth(stack: &Stack, suite_id: &SuiteId, corp_id: &CorpId) -> Truth {
    let tokens = stack.token_service().await;
    let token = tokens
        .corp_token(suite_id, corp_id)
        .await
        .unwrap()
        .expose()
        .to_owned();
    let client = tokens.client();
    let mut departments = client.department_list(&token, None).await.unwrap();
    departments.sort_by_key(|d| d.id);
    let mut users: Vec<User> = Vec::new();
    for department in &departments {
        for user in client.user_list(&token, department.id).await.unwrap() {
            if !users.iter().any(|u| u.userid == user.userid) {
                users.push(user);
            }
        }
    }
    users.sort_by(|a, b| a.userid.cmp(&b.userid));
    let mut tags = Vec::new();
    for tag in client.tag_list(&token).await.unwrap() {
        let members = client.tag_get(&token, tag.tagid).await.unwrap();
        tags.push(TagSnapshot::new(
            tag.tagid,
            members.tagname.or(tag.tagname),
            members.userlist.into_iter().map(|u| u.userid).collect(),
            members.partylist,
        ));
    }
    Truth {
        departments,
        users,
        tags,
        token,
    }
}

/// Writes the truth to the mirror, as one observation.
async fn mirror(stack: &Stack, suite_id: &SuiteId, corp_id: &CorpId, truth: &Truth) {
    let tenant = test_support::tenant(stack.db.pool(), suite_id, corp_id)
        .await
        .unwrap();
    let mut conn = stack.db.pool().acquire().await.unwrap();
    let observation = Observation {
        tenant_id: tenant.id,
        observed_at: store::directory::observation_time(&mut conn).await.unwrap(),
        run: None,
        wecom_time: None,
    };
    store::directory::departments::upsert_departments(&mut conn, &observation, &truth.departments)
        .await
        .unwrap();
    store::directory::users::upsert_users(&mut conn, &observation, &truth.users)
        .await
        .unwrap();
    store::directory::tags::upsert_tags(&mut conn, &observation, &truth.tags)
        .await
        .unwrap();
}

/// A department with its leaders sorted (the mirror keeps them as a set).
fn normalized(mut department: Department) -> Value {
    department.department_leader.sort();
    serde_json::to_value(department).unwrap()
}

/// A stack with the corp `wwacme` (60 members) mirrored; the truth, a `directory:read` key and
/// the tenant's path.
async fn mirrored() -> (Stack, Truth, String, String) {
    let stack = start().await;
    let (suite_id, corp_id) = stack.tenant(SUITE_ID, "wwacme", 60).await;
    let truth = truth(&stack, &suite_id, &corp_id).await;
    assert!(truth.departments.len() > 1 && truth.users.len() == 60 && !truth.tags.is_empty());
    mirror(&stack, &suite_id, &corp_id, &truth).await;
    let key = stack.key(&[Scope::DirectoryRead], None).await;
    (stack, truth, key, tenant_path(SUITE_ID, "wwacme"))
}

#[tokio::test]
async fn departments_tags_and_counts_equal_wecom_sim_s_api_for_the_same_corp() {
    let (stack, truth, key, base) = mirrored().await;
    // Departments, flat: department/list.
    let flat = stack.get(&format!("{base}/departments"), &key).await;
    assert_eq!(flat.status, 200, "{:?}", flat.body);
    let expected: Vec<Value> = truth.departments.iter().cloned().map(normalized).collect();
    let got: Vec<Value> = flat.body["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| normalized(serde_json::from_value(d.clone()).unwrap()))
        .collect();
    assert_eq!(got, expected);

    // The tree holds every department once, each under its parent.
    let tree = stack
        .get(&format!("{base}/departments?view=tree"), &key)
        .await;
    let mut seen = Vec::new();
    let mut stack_nodes: Vec<(Option<i64>, Value)> = tree.body["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (None, n.clone()))
        .collect();
    while let Some((parent, node)) = stack_nodes.pop() {
        if let Some(parent) = parent {
            assert_eq!(node["parentid"].as_i64(), Some(parent));
        }
        let id = node["id"].as_i64().unwrap();
        seen.push(id);
        for child in node["children"].as_array().unwrap() {
            stack_nodes.push((Some(id), child.clone()));
        }
    }
    seen.sort_unstable();
    let ids: Vec<i64> = truth.departments.iter().map(|d| d.id.get()).collect();
    assert_eq!(seen, ids);

    // Tags: tag/get of each.
    let tags = stack.get(&format!("{base}/tags"), &key).await;
    assert_eq!(
        tags.body["tags"],
        serde_json::to_value(&truth.tags).unwrap()
    );

    // The tenant's detail counts the mirror.
    let detail = stack
        .get(&base, &stack.key(&[Scope::TenantsRead], None).await)
        .await;
    assert_eq!(
        detail.body["directory"]["users"].as_u64(),
        Some(truth.users.len() as u64)
    );
    assert_eq!(
        detail.body["directory"]["departments"].as_u64(),
        Some(truth.departments.len() as u64)
    );
}

#[tokio::test]
async fn members_equal_wecom_sim_s_user_get_and_user_list() {
    let (stack, truth, key, base) = mirrored().await;
    // Every member, in pages: user/get of each.
    let mut members = Vec::new();
    let mut path = format!("{base}/members?limit=7");
    loop {
        let page = stack.get(&path, &key).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        members.extend(page.body["members"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("{base}/members?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let client = stack.token_service().await.client().clone();
    assert_eq!(members.len(), truth.users.len());
    for (member, user) in members.iter().zip(&truth.users) {
        let from_wecom = client.user_get(&truth.token, &user.userid).await.unwrap();
        assert_eq!(member, &serde_json::to_value(&from_wecom).unwrap());
    }

    // One member.
    let one = &truth.users[3];
    let answer = stack
        .get(&format!("{base}/members/{}", one.userid), &key)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        serde_json::to_value(client.user_get(&truth.token, &one.userid).await.unwrap()).unwrap()
    );

    // Members of a department: user/list, directly and with the subtree.
    let parent = truth
        .departments
        .iter()
        .find(|d| truth.departments.iter().any(|c| c.parentid == Some(d.id)))
        .unwrap();
    let direct: BTreeSet<String> = client
        .user_list(&truth.token, parent.id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.userid.to_string())
        .collect();
    let answer = stack
        .get(
            &format!("{base}/departments/{}/members?limit=1000", parent.id),
            &key,
        )
        .await;
    let got: BTreeSet<String> = userids(&answer.body);
    assert_eq!(got, direct);
    let mut below = vec![parent.id];
    let mut i = 0;
    while i < below.len() {
        let id = below[i];
        below.extend(
            truth
                .departments
                .iter()
                .filter(|d| d.parentid == Some(id))
                .map(|d| d.id),
        );
        i += 1;
    }
    let mut recursive = BTreeSet::new();
    for id in below {
        for user in client.user_list(&truth.token, id).await.unwrap() {
            recursive.insert(user.userid.to_string());
        }
    }
    let answer = stack
        .get(
            &format!(
                "{base}/departments/{}/members?recursive=true&limit=1000",
                parent.id
            ),
            &key,
        )
        .await;
    assert_eq!(userids(&answer.body), recursive);
    assert!(recursive.len() > direct.len(), "the subtree adds members");

    // Not in the mirror.
    let missing = stack.get(&format!("{base}/members/nobody"), &key).await;
    assert_eq!((missing.status, missing.code()), (404, "not-found"));
    let missing = stack
        .get(&format!("{base}/departments/99999/members"), &key)
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_revoked_tenant_s_directory_is_409() {
    let (stack, _, key, base) = mirrored().await;
    let (suite_id, corp_id) = (test_support::suite(SUITE_ID), test_support::corp("wwacme"));
    // A revoked tenant's directory is gone: 409.
    let mut conn = stack.db.pool().acquire().await.unwrap();
    store::tenants::revoke_tenant(&mut conn, &suite_id, &corp_id, 1_700_000_500)
        .await
        .unwrap();
    let revoked = stack.get(&format!("{base}/members"), &key).await;
    assert_eq!((revoked.status, revoked.code()), (409, "tenant-revoked"));
}

fn userids(body: &Value) -> BTreeSet<String> {
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userid"].as_str().unwrap().to_owned())
        .collect()
}
