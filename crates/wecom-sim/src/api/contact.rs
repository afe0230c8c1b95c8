//! Directory endpoints, seen through the app's visibility scope (60011 outside it) and grants
//! (ungranted sensitive fields absent).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use wecom::api::{
    DepartmentGetResponse, DepartmentListResponse, DepartmentSimpleListResponse, DeptUser, Tag,
    TagListResponse, TagMembers, TagUser, UserIdPage, UserListResponse, UserSimpleListResponse,
    paths,
};
use wecom::ids::{CorpId, DepartmentId, TagId, UserId};

use super::corp::with_app;
use super::{Query, Shape, json_body, number_param, param, respond};
use crate::directory::{Directory, view};
use crate::errcode::{self, ApiFailure};
use crate::scope::{Visibility, grant};
use crate::sim::Sim;
use crate::state::Corp;

/// The departments to list: the subtree of `?id` (which must be visible), or every visible one.
fn listed_departments(
    corp: &Corp,
    vis: &Visibility<'_>,
    query: &Query,
) -> Result<Vec<DepartmentId>, ApiFailure> {
    let dir = &corp.directory;
    match param(query, "id") {
        Some(_) => {
            let id = department_param(query, "id")?;
            visible_department(dir, vis, id)?;
            Ok(dir.subtree(id))
        }
        None => Ok(dir
            .departments()
            .map(|d| d.id)
            .filter(|id| vis.department(*id))
            .collect()),
    }
}

/// A department id parameter: 40058 when absent or not a number, 60003 when no department can
/// have it (0).
fn department_param(query: &Query, name: &str) -> Result<DepartmentId, ApiFailure> {
    let id: u64 = number_param(query, name, errcode::INVALID_PARAMETER)?;
    i64::try_from(id)
        .ok()
        .and_then(|id| DepartmentId::new(id).ok())
        .ok_or(errcode::DEPARTMENT_NOT_FOUND)
}

/// 60003 for an unknown department, 60011 for one outside the scope.
fn visible_department(
    dir: &Directory,
    vis: &Visibility<'_>,
    id: DepartmentId,
) -> Result<(), ApiFailure> {
    if dir.department(id).is_none() {
        return Err(errcode::DEPARTMENT_NOT_FOUND);
    }
    if vis.department(id) {
        Ok(())
    } else {
        Err(errcode::NO_PRIVILEGE)
    }
}

/// `GET /cgi-bin/department/list`.
pub(crate) async fn department_list(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::DEPARTMENT_LIST, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            let vis = corp.visibility();
            let dir = &corp.directory;
            let mut ids = listed_departments(corp, &vis, &query)?;
            ids.sort_unstable();
            Ok(DepartmentListResponse {
                department: ids
                    .into_iter()
                    .filter_map(|id| dir.department(id))
                    .map(|d| view::department(dir, d, &corp.grants))
                    .collect(),
            })
        })
    })
    .await
}

/// `GET /cgi-bin/department/simplelist`.
pub(crate) async fn department_simplelist(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(
        &sim,
        paths::DEPARTMENT_SIMPLELIST,
        Shape::WithStatus,
        |call| {
            with_app(call, &query, |corp, _| {
                let vis = corp.visibility();
                let mut ids = listed_departments(corp, &vis, &query)?;
                ids.sort_unstable();
                Ok(DepartmentSimpleListResponse {
                    department_id: ids
                        .into_iter()
                        .filter_map(|id| corp.directory.department(id))
                        .map(view::department_ref)
                        .collect(),
                })
            })
        },
    )
    .await
}

/// `GET /cgi-bin/department/get`.
pub(crate) async fn department_get(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::DEPARTMENT_GET, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            let id = department_param(&query, "id")?;
            let dir = &corp.directory;
            visible_department(dir, &corp.visibility(), id)?;
            let department = dir.department(id).ok_or(errcode::DEPARTMENT_NOT_FOUND)?;
            Ok(DepartmentGetResponse {
                department: view::department(dir, department, &corp.grants),
            })
        })
    })
    .await
}

/// `GET /cgi-bin/user/get`.
pub(crate) async fn user_get(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::USER_GET, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            let userid = param(&query, "userid").ok_or(errcode::MISSING_USERID)?;
            let member = UserId::parse(userid)
                .ok()
                .and_then(|userid| corp.directory.user(&userid))
                .ok_or(errcode::USERID_NOT_FOUND)?;
            if !corp.visibility().user(member) {
                return Err(errcode::NO_PRIVILEGE);
            }
            Ok(view::user(member, &corp.grants))
        })
    })
    .await
}

/// The visible department of `?department_id`.
fn listed_department(corp: &Corp, query: &Query) -> Result<DepartmentId, ApiFailure> {
    let id = department_param(query, "department_id")?;
    visible_department(&corp.directory, &corp.visibility(), id)?;
    Ok(id)
}

/// `GET /cgi-bin/user/list` (direct members only, like WeCom since `fetch_child` was removed).
pub(crate) async fn user_list(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::USER_LIST, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            let id = listed_department(corp, &query)?;
            Ok(UserListResponse {
                userlist: corp
                    .directory
                    .members_of(id)
                    .map(|m| view::user(m, &corp.grants))
                    .collect(),
            })
        })
    })
    .await
}

/// `GET /cgi-bin/user/simplelist` (direct members only).
pub(crate) async fn user_simplelist(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::USER_SIMPLELIST, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            let id = listed_department(corp, &query)?;
            Ok(UserSimpleListResponse {
                userlist: corp
                    .directory
                    .members_of(id)
                    .map(|m| view::user_ref(m, &corp.grants))
                    .collect(),
            })
        })
    })
    .await
}

/// The body of `user/list_id` (limit defaults to 1000 here; WeCom's documented range 1..=10000).
#[derive(Deserialize)]
struct ListIdBody {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// Where a page starts: the member (`None`: the first) and the index into its departments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    userid: Option<UserId>,
    index: usize,
}

/// `POST /cgi-bin/user/list_id`: (userid, department) rows of every visible member, by userid.
pub(crate) async fn user_list_id(
    sim: web::Data<Sim>,
    query: Query,
    body: web::Bytes,
) -> HttpResponse {
    respond(&sim, paths::USER_LIST_ID, Shape::WithStatus, |call| {
        let sim = call.sim;
        with_app(call, &query, |corp, _| {
            let req: ListIdBody = json_body(&body)?;
            let limit = req.limit.unwrap_or(1000);
            if !(1..=10_000).contains(&limit) {
                return Err(errcode::INVALID_PARAMETER);
            }
            let start = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
                Some(cursor) => decode_cursor(sim, &corp.id, cursor)?,
                None => Position {
                    userid: None,
                    index: 0,
                },
            };
            let (rows, next) = page(corp, &start, usize::try_from(limit).unwrap_or(1000));
            Ok(UserIdPage {
                next_cursor: Some(
                    next.map(|p| encode_cursor(sim, &corp.id, &p))
                        .unwrap_or_default(),
                ),
                dept_user: rows,
            })
        })
    })
    .await
}

/// Up to `limit` rows from `start`, and where the next page starts (if anywhere).
fn page(corp: &Corp, start: &Position, limit: usize) -> (Vec<DeptUser>, Option<Position>) {
    let vis = corp.visibility();
    let mut rows = Vec::with_capacity(limit.min(10_000));
    for member in corp.directory.users_from(start.userid.as_ref()) {
        if !vis.user(member) {
            continue;
        }
        let first = if start.userid.as_ref() == Some(&member.userid) {
            start.index
        } else {
            0
        };
        for (index, dept) in member.departments.iter().enumerate().skip(first) {
            if rows.len() == limit {
                let next = Position {
                    userid: Some(member.userid.clone()),
                    index,
                };
                return (rows, Some(next));
            }
            rows.push(DeptUser {
                userid: member.userid.clone(),
                open_userid: None,
                department: *dept,
            });
        }
    }
    (rows, None)
}

fn encode_cursor(sim: &Sim, corp_id: &CorpId, position: &Position) -> String {
    let userid = position.userid.as_ref().map_or("", UserId::as_str);
    let payload = format!("{}.{}", to_hex(userid.as_bytes()), position.index);
    let sum = sim.checksum(&[corp_id.as_str(), &payload]);
    format!("{payload}.{sum:016x}")
}

/// 50100 unless `cursor` is one this process issued for this corp.
fn decode_cursor(sim: &Sim, corp_id: &CorpId, cursor: &str) -> Result<Position, ApiFailure> {
    let bad = || errcode::INVALID_CURSOR;
    let (payload, sum) = cursor.rsplit_once('.').ok_or_else(bad)?;
    if format!("{:016x}", sim.checksum(&[corp_id.as_str(), payload])) != sum {
        return Err(bad());
    }
    let (userid, index) = payload.split_once('.').ok_or_else(bad)?;
    let userid = String::from_utf8(from_hex(userid).ok_or_else(bad)?).map_err(|_| bad())?;
    let userid = if userid.is_empty() {
        None
    } else {
        Some(UserId::parse(userid).map_err(|_| bad())?)
    };
    let index = index.parse().map_err(|_| bad())?;
    Ok(Position { userid, index })
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `GET /cgi-bin/tag/list`: every tag of the corp.
pub(crate) async fn tag_list(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::TAG_LIST, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            Ok(TagListResponse {
                taglist: corp
                    .directory
                    .tags()
                    .map(|t| Tag {
                        tagid: t.id,
                        tagname: Some(t.name.clone()),
                    })
                    .collect(),
            })
        })
    })
    .await
}

/// `GET /cgi-bin/tag/get`: the tag's members and departments inside the scope.
pub(crate) async fn tag_get(sim: web::Data<Sim>, query: Query) -> HttpResponse {
    respond(&sim, paths::TAG_GET, Shape::WithStatus, |call| {
        with_app(call, &query, |corp, _| {
            let id: u64 = number_param(&query, "tagid", errcode::MISSING_TAGID)?;
            let tag = i64::try_from(id)
                .ok()
                .and_then(|id| TagId::new(id).ok())
                .and_then(|id| corp.directory.tag(id))
                .ok_or(errcode::INVALID_TAGID)?;
            let vis = corp.visibility();
            let named = corp.grants.has(grant::USER_NAME);
            Ok(TagMembers {
                tagname: Some(tag.name.clone()),
                userlist: tag
                    .users
                    .iter()
                    .filter_map(|u| corp.directory.user(u))
                    .filter(|m| vis.user(m))
                    .map(|m| TagUser {
                        userid: m.userid.clone(),
                        name: named.then(|| m.name.clone()),
                    })
                    .collect(),
                partylist: tag
                    .parties
                    .iter()
                    .copied()
                    .filter(|d| vis.department(*d))
                    .collect(),
            })
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        assert_eq!(from_hex(&to_hex(b"u000001")).unwrap(), b"u000001");
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }
}
