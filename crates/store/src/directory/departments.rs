//! Departments (`directory_departments`).

use sqlx::PgConnection;
use wecom::api::Department;
use wecom::ids::{DepartmentId, UserId};

use super::{Entity, Observation, Written, content_hash, tombstone, written};
use crate::error::StoreError;

/// Writes a batch of departments observed by one read, in one statement; each row only if no
/// later observation is stored. A department appearing twice keeps its last occurrence.
pub async fn upsert_departments(
    conn: &mut PgConnection,
    observation: &Observation,
    departments: &[Department],
) -> Result<Written, StoreError> {
    let mut latest = std::collections::BTreeMap::new();
    for department in departments {
        latest.insert(department.id, department);
    }
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut names_en = Vec::new();
    let mut parents = Vec::new();
    let mut orders = Vec::new();
    let mut hashes = Vec::new();
    for department in latest.values() {
        ids.push(department.id.get());
        names.push(department.name.clone());
        names_en.push(department.name_en.clone());
        parents.push(department.parentid.map(DepartmentId::get));
        orders.push(department.order.and_then(|order| i64::try_from(order).ok()));
        // The leaders are derived from the memberships (see `read_departments`), so they are not
        // part of what this row holds.
        let mut own = (*department).clone();
        own.department_leader.clear();
        hashes.push(content_hash(&own));
    }
    let rows: Vec<(bool, bool)> = sqlx::query_as(
        "with input as (
           select * from unnest($5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[],
                                $10::bytea[])
             as t(department_id, name, name_en, parent_id, sort_order, content_hash)
         ),
         old as (
           select d.department_id, d.content_hash, d.deleted_at
           from directory_departments d join input i on d.department_id = i.department_id
           where d.tenant_id = $1
         ),
         written as (
           insert into directory_departments as d (tenant_id, department_id, name, name_en,
               parent_id, sort_order, observed_at, wecom_time, deleted_at, seen_run,
               content_hash, updated_at)
           select $1, department_id, name, name_en, parent_id, sort_order,
                  $2, $4, null, $3, content_hash, now()
           from input
           on conflict (tenant_id, department_id) do update set
             name = excluded.name, name_en = excluded.name_en, parent_id = excluded.parent_id,
             sort_order = excluded.sort_order,
             observed_at = excluded.observed_at,
             wecom_time = greatest(d.wecom_time, excluded.wecom_time),
             deleted_at = null,
             seen_run = coalesce(excluded.seen_run, d.seen_run),
             content_hash = excluded.content_hash,
             updated_at = case when d.content_hash is distinct from excluded.content_hash
                                 or d.deleted_at is not null then now() else d.updated_at end
           where d.observed_at <= excluded.observed_at
           returning d.department_id
         )
         select (o.department_id is null or o.deleted_at is not null) as added,
                (o.department_id is not null and o.deleted_at is null
                 and o.content_hash is distinct from i.content_hash) as changed
         from written w
         join input i on i.department_id = w.department_id
         left join old o on o.department_id = w.department_id",
    )
    .bind(observation.tenant_id)
    .bind(observation.observed_at)
    .bind(observation.run)
    .bind(observation.wecom_time)
    .bind(&ids)
    .bind(&names)
    .bind(&names_en)
    .bind(&parents)
    .bind(&orders)
    .bind(&hashes)
    .fetch_all(conn)
    .await?;
    Ok(written(&rows))
}

/// Records that WeCom no longer shows the department to the app (deleted or out of scope) as a
/// tombstone, unless a later observation is stored, and removes it from tags. Returns whether a
/// live row became a tombstone.
pub async fn tombstone_department(
    conn: &mut PgConnection,
    observation: &Observation,
    department_id: DepartmentId,
) -> Result<bool, StoreError> {
    let Some(was_live) = tombstone(
        &mut *conn,
        Entity::Department,
        observation,
        department_id.get(),
    )
    .await?
    else {
        return Ok(false);
    };
    sqlx::query(
        "delete from directory_tag_departments where tenant_id = $1 and department_id = $2",
    )
    .bind(observation.tenant_id)
    .bind(department_id.get())
    .execute(conn)
    .await?;
    Ok(was_live)
}

/// Whether the mirror holds the department as live.
pub async fn is_live(
    conn: &mut PgConnection,
    tenant_id: i64,
    department_id: DepartmentId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from directory_departments
                        where tenant_id = $1 and department_id = $2 and deleted_at is null)",
    )
    .bind(tenant_id)
    .bind(department_id.get())
    .fetch_one(conn)
    .await?)
}

#[derive(sqlx::FromRow)]
struct DepartmentRow {
    department_id: i64,
    name: Option<String>,
    name_en: Option<String>,
    parent_id: Option<i64>,
    sort_order: Option<i64>,
    leaders: Vec<String>,
}

/// The tenant's live departments in WeCom's `department/get` shape, ordered by id. The leaders
/// are the live members whose membership of the department has `is_leader`, sorted.
pub async fn read_departments(
    conn: &mut PgConnection,
    tenant_id: i64,
) -> Result<Vec<Department>, StoreError> {
    let rows: Vec<DepartmentRow> = sqlx::query_as(
        "select d.department_id, d.name, d.name_en, d.parent_id, d.sort_order,
                array(select m.user_id from directory_user_departments m
                      join directory_users u on u.tenant_id = m.tenant_id and u.user_id = m.user_id
                      where m.tenant_id = d.tenant_id and m.department_id = d.department_id
                        and m.is_leader and u.deleted_at is null) as leaders
         from directory_departments d where d.tenant_id = $1 and d.deleted_at is null
         order by d.department_id",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let mut leaders = row
                .leaders
                .into_iter()
                .map(UserId::parse)
                .collect::<Result<Vec<_>, _>>()?;
            leaders.sort();
            Ok(Department {
                id: DepartmentId::new(row.department_id)?,
                name: row.name,
                name_en: row.name_en,
                department_leader: leaders,
                parentid: row.parent_id.map(DepartmentId::new).transpose()?,
                order: row.sort_order.and_then(|order| u64::try_from(order).ok()),
            })
        })
        .collect()
}
