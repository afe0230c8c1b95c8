//! Tags (`directory_tags`) with their members and departments.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, PgConnection};
use wecom::ids::{DepartmentId, TagId, UserId};

use super::{Entity, Observation, Written, content_hash, tombstone, written};
use crate::error::StoreError;

/// A tag as `tag/list` and `tag/get` show it to the app, members and departments sorted. The
/// JSON field names are WeCom's (`tagid`, `tagname`, `userlist`, `partylist`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSnapshot {
    /// The tag.
    #[serde(rename = "tagid")]
    pub tag_id: TagId,
    /// Its name.
    #[serde(rename = "tagname", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tagged members, sorted.
    #[serde(rename = "userlist")]
    pub users: Vec<UserId>,
    /// Tagged departments, sorted.
    #[serde(rename = "partylist")]
    pub departments: Vec<DepartmentId>,
}

impl TagSnapshot {
    /// A snapshot with its members sorted and deduplicated (the canonical form stored and
    /// compared).
    pub fn new(
        tag_id: TagId,
        name: Option<String>,
        mut users: Vec<UserId>,
        mut departments: Vec<DepartmentId>,
    ) -> Self {
        users.sort();
        users.dedup();
        departments.sort();
        departments.dedup();
        Self {
            tag_id,
            name,
            users,
            departments,
        }
    }
}

/// Writes a batch of tags observed by one read (each only if no later observation is stored) and
/// replaces the members and departments of those written.
pub async fn upsert_tags(
    conn: &mut PgConnection,
    observation: &Observation,
    tags: &[TagSnapshot],
) -> Result<Written, StoreError> {
    let ids: Vec<i64> = tags.iter().map(|tag| tag.tag_id.get()).collect();
    let names: Vec<Option<String>> = tags.iter().map(|tag| tag.name.clone()).collect();
    let hashes: Vec<Vec<u8>> = tags.iter().map(content_hash).collect();
    let rows: Vec<(i64, bool, bool)> = sqlx::query_as(
        "with input as (
           select * from unnest($5::bigint[], $6::text[], $7::bytea[]) as t(tag_id, name, content_hash)
         ),
         old as (
           select d.tag_id, d.content_hash, d.deleted_at
           from directory_tags d join input i on d.tag_id = i.tag_id where d.tenant_id = $1
         ),
         written as (
           insert into directory_tags as d (tenant_id, tag_id, name, observed_at, wecom_time,
               deleted_at, seen_run, content_hash, updated_at)
           select $1, tag_id, name, $2, $4, null, $3, content_hash, now() from input
           on conflict (tenant_id, tag_id) do update set
             name = excluded.name, observed_at = excluded.observed_at,
             wecom_time = greatest(d.wecom_time, excluded.wecom_time), deleted_at = null,
             seen_run = coalesce(excluded.seen_run, d.seen_run),
             content_hash = excluded.content_hash,
             updated_at = case when d.content_hash is distinct from excluded.content_hash
                                 or d.deleted_at is not null then now() else d.updated_at end
           where d.observed_at <= excluded.observed_at
           returning d.tag_id
         )
         select w.tag_id,
                (o.tag_id is null or o.deleted_at is not null) as added,
                (o.tag_id is not null and o.deleted_at is null
                 and o.content_hash is distinct from i.content_hash) as changed
         from written w join input i on i.tag_id = w.tag_id
         left join old o on o.tag_id = w.tag_id",
    )
    .bind(observation.tenant_id)
    .bind(observation.observed_at)
    .bind(observation.run)
    .bind(observation.wecom_time)
    .bind(&ids)
    .bind(&names)
    .bind(&hashes)
    .fetch_all(&mut *conn)
    .await?;
    let written_ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
    let chosen: Vec<&TagSnapshot> = tags
        .iter()
        .filter(|tag| written_ids.contains(&tag.tag_id.get()))
        .collect();
    replace_members(conn, observation.tenant_id, &written_ids, &chosen).await?;
    let flags: Vec<(bool, bool)> = rows.iter().map(|(_, a, c)| (*a, *c)).collect();
    Ok(written(&flags))
}

async fn replace_members(
    conn: &mut PgConnection,
    tenant_id: i64,
    tag_ids: &[i64],
    tags: &[&TagSnapshot],
) -> Result<(), StoreError> {
    if tag_ids.is_empty() {
        return Ok(());
    }
    let (mut user_tags, mut users) = (Vec::new(), Vec::new());
    let (mut department_tags, mut departments) = (Vec::new(), Vec::new());
    for tag in tags {
        for user in &tag.users {
            user_tags.push(tag.tag_id.get());
            users.push(user.as_str().to_owned());
        }
        for department in &tag.departments {
            department_tags.push(tag.tag_id.get());
            departments.push(department.get());
        }
    }
    for table in ["directory_tag_users", "directory_tag_departments"] {
        sqlx::query(AssertSqlSafe(format!(
            "delete from {table} where tenant_id = $1 and tag_id = any($2::bigint[])"
        )))
        .bind(tenant_id)
        .bind(tag_ids)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "insert into directory_tag_users (tenant_id, tag_id, user_id)
         select $1, tag_id, user_id from unnest($2::bigint[], $3::text[]) as t(tag_id, user_id)
         on conflict do nothing",
    )
    .bind(tenant_id)
    .bind(&user_tags)
    .bind(&users)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into directory_tag_departments (tenant_id, tag_id, department_id)
         select $1, tag_id, department_id from unnest($2::bigint[], $3::bigint[])
           as t(tag_id, department_id)
         on conflict do nothing",
    )
    .bind(tenant_id)
    .bind(&department_tags)
    .bind(&departments)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the tag no longer exists (a tombstone unless a later observation is stored) and
/// drops its members. Returns whether a live row became a tombstone.
pub async fn tombstone_tag(
    conn: &mut PgConnection,
    observation: &Observation,
    tag_id: TagId,
) -> Result<bool, StoreError> {
    let Some(was_live) = tombstone(&mut *conn, Entity::Tag, observation, tag_id.get()).await?
    else {
        return Ok(false);
    };
    replace_members(conn, observation.tenant_id, &[tag_id.get()], &[]).await?;
    Ok(was_live)
}

/// A tag row with its member and department lists.
type TagRow = (i64, Option<String>, Vec<String>, Vec<i64>);

/// The tenant's live tags with their members, ordered by id (members sorted).
pub async fn read_tags(
    conn: &mut PgConnection,
    tenant_id: i64,
) -> Result<Vec<TagSnapshot>, StoreError> {
    let rows: Vec<TagRow> = sqlx::query_as(
        "select t.tag_id, t.name,
                array(select u.user_id from directory_tag_users u
                      where u.tenant_id = t.tenant_id and u.tag_id = t.tag_id order by u.user_id),
                array(select d.department_id from directory_tag_departments d
                      where d.tenant_id = t.tenant_id and d.tag_id = t.tag_id order by d.department_id)
         from directory_tags t where t.tenant_id = $1 and t.deleted_at is null order by t.tag_id",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(tag_id, name, users, departments)| {
            Ok(TagSnapshot::new(
                TagId::new(tag_id)?,
                name,
                users
                    .into_iter()
                    .map(UserId::parse)
                    .collect::<Result<_, _>>()?,
                departments
                    .into_iter()
                    .map(DepartmentId::new)
                    .collect::<Result<_, _>>()?,
            ))
        })
        .collect()
}
