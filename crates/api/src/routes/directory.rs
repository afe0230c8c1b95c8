//! The directory of a tenant, read from the mirror contact sync keeps in Postgres, never from
//! WeCom (scope `directory:read`, docs/api.md §9). Departments, members and tags come in WeCom's
//! own shapes (`department/list`, `user/get`, `tag/get`), so code written against WeCom reads
//! them unchanged. A revoked tenant's mirror is purged: 409.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::api_keys::Scope;
use store::directory::{self as mirror, runs};
use utoipa::{IntoParams, ToSchema};
use wecom::api::{Department, User};
use wecom::ids::{DepartmentId, UserId};

use super::{TenantPath, decode_cursor, encode_cursor, load_tenant, page_limit, require_readable};
use crate::auth::Caller;
use crate::error::{Problem, ProblemBody};
use crate::state::AppState;

/// The mirror's size and its last full sync (part of a tenant's detail).
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryStatus {
    /// Live departments.
    departments: i64,
    /// Live members.
    users: i64,
    /// Live tags.
    tags: i64,
    /// The latest full sync, finished or not.
    last_sync: Option<SyncView>,
}

/// A full sync of the directory (`sync_runs`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncView {
    /// Run id.
    id: i64,
    /// Why it ran: `activated`, `changed`, `requested`, `reconcile`, …
    reason: String,
    /// `running`, `completed`, `failed` or `cancelled`.
    status: String,
    /// Where it is or stopped: `departments`, `users`, `members`, `tags`, `sweep`, `done`.
    phase: String,
    /// Started.
    started_at: DateTime<Utc>,
    /// Finished, if it did.
    finished_at: Option<DateTime<Utc>>,
    /// WeCom calls made.
    api_calls: i64,
    /// Departments written.
    departments: i64,
    /// Members written.
    users: i64,
    /// Tags written.
    tags: i64,
    /// Drift found: rows missing from the mirror.
    rows_added: i64,
    /// Drift found: rows that differed.
    rows_changed: i64,
    /// Drift found: rows WeCom no longer shows.
    rows_removed: i64,
    /// Why it failed or was cancelled.
    error: Option<String>,
}

impl From<runs::SyncRun> for SyncView {
    fn from(run: runs::SyncRun) -> Self {
        Self {
            id: run.id,
            reason: run.reason,
            status: run.status,
            phase: run.phase,
            started_at: run.started_at,
            finished_at: run.finished_at,
            api_calls: run.api_calls,
            departments: run.departments,
            users: run.users,
            tags: run.tags,
            rows_added: run.rows_added,
            rows_changed: run.rows_changed,
            rows_removed: run.rows_removed,
            error: run.error,
        }
    }
}

/// The mirror's counts and last run for the tenant `tenant_id`.
pub async fn status(state: &AppState, tenant_id: i64) -> Result<DirectoryStatus, Problem> {
    let mut conn = state.pool.acquire().await?;
    let counts = mirror::counts(&mut conn, tenant_id).await?;
    let last_sync = runs::recent_runs(&mut conn, tenant_id, 1)
        .await?
        .into_iter()
        .next()
        .map(SyncView::from);
    Ok(DirectoryStatus {
        departments: counts.departments,
        users: counts.users,
        tags: counts.tags,
        last_sync,
    })
}

/// `…/departments` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DepartmentsQuery {
    /// `flat` (default): every department in id order; `tree`: nested under `children`.
    view: Option<String>,
}

/// The departments, flat or as a tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentList {
    /// `department/list` entries (`id`, `name`, `name_en`, `department_leader`, `parentid`,
    /// `order`); in the tree view each also has `children`, and the top level holds the
    /// departments whose parent the app does not see.
    #[schema(value_type = Vec<Object>)]
    departments: Vec<DepartmentNode>,
}

/// A department and, in the tree view, its children.
#[derive(Debug, Serialize)]
struct DepartmentNode {
    #[serde(flatten)]
    department: Department,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<DepartmentNode>>,
}

/// The tenant's departments, from the mirror.
#[utoipa::path(
    tag = "directory",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
        DepartmentsQuery,
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, body = DepartmentList),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}/departments")]
pub async fn departments(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    query: web::Query<DepartmentsQuery>,
) -> Result<web::Json<DepartmentList>, Problem> {
    caller.require_for(Scope::DirectoryRead, path.suite_id())?;
    let tree = match query.view.as_deref() {
        None | Some("" | "flat") => false,
        Some("tree") => true,
        Some(_) => return Err(Problem::bad_request("view must be flat or tree")),
    };
    let tenant_id = readable_tenant(&state, &path).await?;
    let mut conn = state.pool.acquire().await?;
    let list = mirror::departments::read_departments(&mut conn, tenant_id).await?;
    let nodes = if tree {
        build_tree(list)
    } else {
        list.into_iter()
            .map(|department| DepartmentNode {
                department,
                children: None,
            })
            .collect()
    };
    Ok(web::Json(DepartmentList { departments: nodes }))
}

/// Nests departments under their parents; a department whose parent is not in the list is a
/// root. Siblings keep WeCom's order (larger `order` first), then id.
fn build_tree(list: Vec<Department>) -> Vec<DepartmentNode> {
    let ids: BTreeSet<DepartmentId> = list.iter().map(|d| d.id).collect();
    let mut children: BTreeMap<Option<DepartmentId>, Vec<Department>> = BTreeMap::new();
    for department in list {
        let parent = department.parentid.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(department);
    }
    attach(None, &mut children)
}

/// The departments under `parent`, each with its own children, in WeCom's sibling order.
fn attach(
    parent: Option<DepartmentId>,
    children: &mut BTreeMap<Option<DepartmentId>, Vec<Department>>,
) -> Vec<DepartmentNode> {
    let mut level = children.remove(&parent).unwrap_or_default();
    level.sort_by(|a, b| b.order.cmp(&a.order).then(a.id.cmp(&b.id)));
    level
        .into_iter()
        .map(|department| {
            let id = department.id;
            DepartmentNode {
                department,
                children: Some(attach(Some(id), children)),
            }
        })
        .collect()
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// Members in `user/get` shape, ordered by userid.
    #[schema(value_type = Vec<Object>)]
    members: Vec<User>,
    /// Pass as `cursor` for the next page; absent on the last one.
    next_cursor: Option<String>,
}

/// A page query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `…/departments/{department_id}/members` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DepartmentMembersQuery {
    /// Include the members of every department below (default false: direct members only).
    recursive: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `{suite_id}/{corp_id}/departments/{department_id}`.
#[derive(Debug, Deserialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the names of the path's parameters"
)]
pub struct DepartmentPath {
    suite_id: String,
    corp_id: String,
    department_id: i64,
}

/// The members of a department (or of its subtree), paged by userid.
#[utoipa::path(
    tag = "directory",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
        ("department_id" = i64, Path, description = "The department"),
        DepartmentMembersQuery,
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, body = MemberPage),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}/departments/{department_id}/members")]
pub async fn department_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<DepartmentPath>,
    query: web::Query<DepartmentMembersQuery>,
) -> Result<web::Json<MemberPage>, Problem> {
    let path = path.into_inner();
    let tenant = TenantPath::new(path.suite_id, path.corp_id);
    caller.require_for(Scope::DirectoryRead, tenant.suite_id())?;
    let department = DepartmentId::new(path.department_id)
        .map_err(|e| Problem::bad_request(format!("department_id: {e}")))?;
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let after = query.cursor.map(|c| decode_cursor("m", &c)).transpose()?;
    let tenant_id = readable_tenant(&state, &tenant).await?;
    let mut conn = state.pool.acquire().await?;
    let all = mirror::departments::read_departments(&mut conn, tenant_id).await?;
    if !all.iter().any(|d| d.id == department) {
        return Err(Problem::not_found(&format!("department {department}")));
    }
    let wanted = if query.recursive.unwrap_or(false) {
        subtree(&all, department)
    } else {
        vec![department]
    };
    let found = mirror::users::read_department_users_page(
        &mut conn,
        tenant_id,
        &wanted,
        after.as_deref(),
        limit + 1,
    )
    .await?;
    Ok(web::Json(page(found, limit)))
}

/// `root` and every department below it.
fn subtree(all: &[Department], root: DepartmentId) -> Vec<DepartmentId> {
    let mut children: BTreeMap<DepartmentId, Vec<DepartmentId>> = BTreeMap::new();
    for department in all {
        if let Some(parent) = department.parentid {
            children.entry(parent).or_default().push(department.id);
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let id = found[next];
        next += 1;
        if let Some(below) = children.get(&id) {
            found.extend(below.iter().copied().filter(|d| *d != root));
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// The first `limit` of `members` (read with one more) and the cursor after them.
fn page(mut found: Vec<User>, limit: i64) -> MemberPage {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = found.len() > limit;
    found.truncate(limit);
    let next_cursor = more
        .then(|| found.last().map(|m| encode_cursor("m", m.userid.as_str())))
        .flatten();
    MemberPage {
        members: found,
        next_cursor,
    }
}

/// Every member of the tenant, paged by userid.
#[utoipa::path(
    tag = "directory",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
        PageQuery,
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, body = MemberPage),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}/members")]
pub async fn members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<MemberPage>, Problem> {
    caller.require_for(Scope::DirectoryRead, path.suite_id())?;
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let after = query.cursor.map(|c| decode_cursor("m", &c)).transpose()?;
    let tenant_id = readable_tenant(&state, &path).await?;
    let mut conn = state.pool.acquire().await?;
    let found =
        mirror::users::read_users_page(&mut conn, tenant_id, after.as_deref(), limit + 1).await?;
    Ok(web::Json(page(found, limit)))
}

/// `{suite_id}/{corp_id}/members/{userid}`.
#[derive(Debug, Deserialize)]
pub struct MemberPath {
    suite_id: String,
    corp_id: String,
    userid: String,
}

/// One member, in `user/get` shape.
#[utoipa::path(
    tag = "directory",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
        ("userid" = String, Path, description = "The member's userid"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "the member, as `user/get` answers", body = Object),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}/members/{userid}")]
pub async fn member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<MemberPath>,
) -> Result<web::Json<User>, Problem> {
    let path = path.into_inner();
    let tenant = TenantPath::new(path.suite_id, path.corp_id);
    caller.require_for(Scope::DirectoryRead, tenant.suite_id())?;
    let userid =
        UserId::parse(path.userid).map_err(|e| Problem::bad_request(format!("userid: {e}")))?;
    let tenant_id = readable_tenant(&state, &tenant).await?;
    let mut conn = state.pool.acquire().await?;
    mirror::users::read_user(&mut conn, tenant_id, &userid)
        .await?
        .map(web::Json)
        .ok_or_else(|| Problem::not_found(&format!("member {userid}")))
}

/// The tags.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagList {
    /// Each tag as `tag/get` shows it to the app: `tagid`, `tagname`, `userlist` (userids) and
    /// `partylist` (department ids).
    #[schema(value_type = Vec<Object>)]
    tags: Vec<mirror::tags::TagSnapshot>,
}

/// The tenant's tags with their members and departments.
#[utoipa::path(
    tag = "directory",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, body = TagList),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}/tags")]
pub async fn tags(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<web::Json<TagList>, Problem> {
    caller.require_for(Scope::DirectoryRead, path.suite_id())?;
    let tenant_id = readable_tenant(&state, &path).await?;
    let mut conn = state.pool.acquire().await?;
    let found = mirror::tags::read_tags(&mut conn, tenant_id).await?;
    Ok(web::Json(TagList { tags: found }))
}

/// The tenant's id, when its directory may be read.
async fn readable_tenant(state: &AppState, path: &TenantPath) -> Result<i64, Problem> {
    let (suite_id, corp_id) = path.ids()?;
    let tenant = load_tenant(state, &suite_id, &corp_id).await?;
    require_readable(&tenant)?;
    Ok(tenant.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department(id: i64, parent: Option<i64>, order: u64) -> Department {
        Department {
            id: DepartmentId::new(id).unwrap(),
            parentid: parent.map(|p| DepartmentId::new(p).unwrap()),
            order: Some(order),
            name: None,
            name_en: None,
            department_leader: Vec::new(),
        }
    }

    #[test]
    fn the_tree_nests_by_parent_and_orders_siblings_like_wecom() {
        let tree = build_tree(vec![
            department(1, None, 0),
            department(2, Some(1), 10),
            department(3, Some(1), 20),
            department(4, Some(2), 0),
            department(9, Some(7), 0),
        ]);
        let ids = |nodes: &[DepartmentNode]| -> Vec<i64> {
            nodes.iter().map(|n| n.department.id.get()).collect()
        };
        assert_eq!(
            ids(&tree),
            [1, 9],
            "a department with an invisible parent is a root"
        );
        let children = tree[0].children.as_ref().unwrap();
        assert_eq!(ids(children), [3, 2], "larger order first");
        assert_eq!(ids(children[1].children.as_ref().unwrap()), [4]);
    }

    #[test]
    fn a_subtree_holds_the_department_and_everything_below() {
        let all = vec![
            department(1, None, 0),
            department(2, Some(1), 0),
            department(3, Some(2), 0),
            department(4, Some(1), 0),
        ];
        let ids: Vec<i64> = subtree(&all, DepartmentId::new(2).unwrap())
            .into_iter()
            .map(DepartmentId::get)
            .collect();
        assert_eq!(ids, [2, 3]);
    }
}
