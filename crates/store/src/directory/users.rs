//! Members (`directory_users`) and their departments (`directory_user_departments`).

use sqlx::{AssertSqlSafe, PgConnection};
use wecom::api::{ExtAttr, User};
use wecom::ids::{DepartmentId, UserId};

use super::{Entity, Observation, Written, content_hash, json_text, tombstone, written};
use crate::error::StoreError;

/// Columns of one member, as `unnest` takes them: one vector per column.
#[derive(Default)]
struct Columns {
    user_id: Vec<String>,
    open_userid: Vec<Option<String>>,
    name: Vec<Option<String>>,
    position: Vec<Option<String>>,
    mobile: Vec<Option<String>>,
    gender: Vec<Option<String>>,
    email: Vec<Option<String>>,
    biz_mail: Vec<Option<String>>,
    avatar: Vec<Option<String>>,
    thumb_avatar: Vec<Option<String>>,
    telephone: Vec<Option<String>>,
    alias: Vec<Option<String>>,
    address: Vec<Option<String>>,
    qr_code: Vec<Option<String>>,
    main_department: Vec<Option<i64>>,
    direct_leaders: Vec<Option<String>>,
    status: Vec<Option<i32>>,
    extattr: Vec<Option<String>>,
    external_position: Vec<Option<String>>,
    external_profile: Vec<Option<String>>,
    content_hash: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, user: &User) {
        self.user_id.push(user.userid.as_str().to_owned());
        self.open_userid.push(user.open_userid.clone());
        self.name.push(user.name.clone());
        self.position.push(user.position.clone());
        self.mobile.push(user.mobile.clone());
        self.gender.push(user.gender.clone());
        self.email.push(user.email.clone());
        self.biz_mail.push(user.biz_mail.clone());
        self.avatar.push(user.avatar.clone());
        self.thumb_avatar.push(user.thumb_avatar.clone());
        self.telephone.push(user.telephone.clone());
        self.alias.push(user.alias.clone());
        self.address.push(user.address.clone());
        self.qr_code.push(user.qr_code.clone());
        self.main_department
            .push(user.main_department.map(DepartmentId::get));
        self.direct_leaders.push(json_text(&user.direct_leader));
        self.status
            .push(user.status.and_then(|s| i32::try_from(s).ok()));
        self.extattr.push(user.extattr.as_ref().and_then(json_text));
        self.external_position.push(user.external_position.clone());
        self.external_profile
            .push(user.external_profile.as_ref().and_then(json_text));
        self.content_hash.push(content_hash(user));
    }
}

/// The memberships of a batch, one vector per column.
#[derive(Default)]
struct Memberships {
    user_id: Vec<String>,
    department_id: Vec<i64>,
    position: Vec<i32>,
    sort_order: Vec<Option<i64>>,
    is_leader: Vec<Option<bool>>,
}

impl Memberships {
    fn push(&mut self, user: &User) {
        for (index, department) in user.department.iter().enumerate() {
            self.user_id.push(user.userid.as_str().to_owned());
            self.department_id.push(department.get());
            self.position.push(i32::try_from(index).unwrap_or(i32::MAX));
            self.sort_order.push(
                user.order
                    .get(index)
                    .and_then(|order| i64::try_from(*order).ok()),
            );
            self.is_leader
                .push(user.is_leader_in_dept.get(index).map(|flag| *flag == 1));
        }
    }
}

/// Writes a batch of members (with their departments) observed by one read, in two statements.
/// A member appearing twice keeps its last occurrence. Each row is written only if no later
/// observation is stored; the memberships of the rows written are replaced.
pub async fn upsert_users(
    conn: &mut PgConnection,
    observation: &Observation,
    users: &[User],
) -> Result<Written, StoreError> {
    let mut latest: std::collections::HashMap<&str, &User> = std::collections::HashMap::new();
    for user in users {
        latest.insert(user.userid.as_str(), user);
    }
    let mut columns = Columns::default();
    for user in latest.values() {
        columns.push(user);
    }
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(UPSERT)
        .bind(observation.tenant_id)
        .bind(observation.observed_at)
        .bind(observation.run)
        .bind(observation.wecom_time)
        .bind(&columns.user_id)
        .bind(&columns.open_userid)
        .bind(&columns.name)
        .bind(&columns.position)
        .bind(&columns.mobile)
        .bind(&columns.gender)
        .bind(&columns.email)
        .bind(&columns.biz_mail)
        .bind(&columns.avatar)
        .bind(&columns.thumb_avatar)
        .bind(&columns.telephone)
        .bind(&columns.alias)
        .bind(&columns.address)
        .bind(&columns.qr_code)
        .bind(&columns.main_department)
        .bind(&columns.direct_leaders)
        .bind(&columns.status)
        .bind(&columns.extattr)
        .bind(&columns.external_position)
        .bind(&columns.external_profile)
        .bind(&columns.content_hash)
        .fetch_all(&mut *conn)
        .await?;
    let mut memberships = Memberships::default();
    for (user_id, _, _) in &rows {
        if let Some(user) = latest.get(user_id.as_str()) {
            memberships.push(user);
        }
    }
    let written_ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    replace_memberships(conn, observation.tenant_id, &written_ids, &memberships).await?;
    let flags: Vec<(bool, bool)> = rows.iter().map(|(_, a, c)| (*a, *c)).collect();
    Ok(written(&flags))
}

const UPSERT: &str = "
with input as (
  select * from unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                       $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                       $17::text[], $18::text[], $19::bigint[], $20::text[], $21::int[], $22::text[],
                       $23::text[], $24::text[], $25::bytea[])
    as t(user_id, open_userid, name, position, mobile, gender, email, biz_mail, avatar,
         thumb_avatar, telephone, alias, address, qr_code, main_department, direct_leaders,
         status, extattr, external_position, external_profile, content_hash)
),
old as (
  select u.user_id, u.content_hash, u.deleted_at
  from directory_users u join input i on u.user_id = i.user_id
  where u.tenant_id = $1
),
written as (
  insert into directory_users as d (tenant_id, user_id, open_userid, name, position, mobile,
      gender, email, biz_mail, avatar, thumb_avatar, telephone, alias, address, qr_code,
      main_department, direct_leaders, status, extattr, external_position, external_profile,
      observed_at, wecom_time, deleted_at, seen_run, content_hash, updated_at)
  select $1, user_id, open_userid, name, position, mobile, gender, email, biz_mail, avatar,
      thumb_avatar, telephone, alias, address, qr_code, main_department, direct_leaders::jsonb,
      status, extattr::jsonb, external_position, external_profile::jsonb,
      $2, $4, null, $3, content_hash, now()
  from input
  on conflict (tenant_id, user_id) do update set
      open_userid = excluded.open_userid, name = excluded.name, position = excluded.position,
      mobile = excluded.mobile, gender = excluded.gender, email = excluded.email,
      biz_mail = excluded.biz_mail, avatar = excluded.avatar,
      thumb_avatar = excluded.thumb_avatar, telephone = excluded.telephone,
      alias = excluded.alias, address = excluded.address, qr_code = excluded.qr_code,
      main_department = excluded.main_department, direct_leaders = excluded.direct_leaders,
      status = excluded.status, extattr = excluded.extattr,
      external_position = excluded.external_position,
      external_profile = excluded.external_profile,
      observed_at = excluded.observed_at,
      wecom_time = greatest(d.wecom_time, excluded.wecom_time),
      deleted_at = null,
      seen_run = coalesce(excluded.seen_run, d.seen_run),
      content_hash = excluded.content_hash,
      updated_at = case when d.content_hash is distinct from excluded.content_hash
                          or d.deleted_at is not null then now() else d.updated_at end
  where d.observed_at <= excluded.observed_at
  returning d.user_id
)
select w.user_id,
       (o.user_id is null or o.deleted_at is not null) as added,
       (o.user_id is not null and o.deleted_at is null
        and o.content_hash is distinct from i.content_hash) as changed
from written w
join input i on i.user_id = w.user_id
left join old o on o.user_id = w.user_id";

async fn replace_memberships(
    conn: &mut PgConnection,
    tenant_id: i64,
    user_ids: &[&str],
    memberships: &Memberships,
) -> Result<(), StoreError> {
    if user_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "delete from directory_user_departments where tenant_id = $1 and user_id = any($2::text[])",
    )
    .bind(tenant_id)
    .bind(user_ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into directory_user_departments
             (tenant_id, user_id, department_id, position, sort_order, is_leader)
         select $1, user_id, department_id, position, sort_order, is_leader
         from unnest($2::text[], $3::bigint[], $4::int[], $5::bigint[], $6::bool[])
           as t(user_id, department_id, position, sort_order, is_leader)
         on conflict (tenant_id, user_id, department_id) do nothing",
    )
    .bind(tenant_id)
    .bind(&memberships.user_id)
    .bind(&memberships.department_id)
    .bind(&memberships.position)
    .bind(&memberships.sort_order)
    .bind(&memberships.is_leader)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that WeCom no longer shows `user_id` to the app (deleted, or out of the scope), as a
/// tombstone observed at `observation.observed_at` (unless a later observation is stored), and
/// removes its memberships and tag memberships. Returns whether a live row became a tombstone.
pub async fn tombstone_user(
    conn: &mut PgConnection,
    observation: &Observation,
    user_id: &UserId,
) -> Result<bool, StoreError> {
    let Some(was_live) = tombstone(&mut *conn, Entity::User, observation, user_id.clone()).await?
    else {
        return Ok(false);
    };
    sqlx::query(
        "with memberships as (
           delete from directory_user_departments where tenant_id = $1 and user_id = $2
         )
         delete from directory_tag_users where tenant_id = $1 and user_id = $2",
    )
    .bind(observation.tenant_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(was_live)
}

/// Which of `user_ids` the run `run` has already written (full sync: members listed by
/// department need no second read).
pub async fn seen_by_run(
    conn: &mut PgConnection,
    tenant_id: i64,
    run: i64,
    user_ids: &[String],
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "select user_id from directory_users
         where tenant_id = $1 and user_id = any($2::text[]) and seen_run = $3",
    )
    .bind(tenant_id)
    .bind(user_ids)
    .bind(run)
    .fetch_all(conn)
    .await?)
}

#[derive(sqlx::FromRow)]
struct UserRow {
    user_id: String,
    open_userid: Option<String>,
    name: Option<String>,
    position: Option<String>,
    mobile: Option<String>,
    gender: Option<String>,
    email: Option<String>,
    biz_mail: Option<String>,
    avatar: Option<String>,
    thumb_avatar: Option<String>,
    telephone: Option<String>,
    alias: Option<String>,
    address: Option<String>,
    qr_code: Option<String>,
    main_department: Option<i64>,
    direct_leaders: Option<serde_json::Value>,
    status: Option<i32>,
    extattr: Option<serde_json::Value>,
    external_position: Option<String>,
    external_profile: Option<serde_json::Value>,
    departments: Option<Vec<i64>>,
    orders: Option<Vec<Option<i64>>>,
    leaders: Option<Vec<Option<bool>>>,
}

/// The tenant's live members in WeCom's `user/get` shape, ordered by userid. Readers of the
/// mirror (tests comparing with WeCom, the provider API) rebuild members through this.
pub async fn read_users(conn: &mut PgConnection, tenant_id: i64) -> Result<Vec<User>, StoreError> {
    read_where(conn, tenant_id, &Filter::default(), None).await
}

/// One page of live members with userid greater than `after`, ordered by userid.
pub async fn read_users_page(
    conn: &mut PgConnection,
    tenant_id: i64,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let filter = Filter {
        after,
        ..Filter::default()
    };
    read_where(conn, tenant_id, &filter, Some(limit)).await
}

/// One page of the live members of any of `departments` (a member of several counts once), with
/// userid greater than `after`, ordered by userid (the provider API's members of a department).
pub async fn read_department_users_page(
    conn: &mut PgConnection,
    tenant_id: i64,
    departments: &[DepartmentId],
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let departments: Vec<i64> = departments.iter().map(|d| d.get()).collect();
    let filter = Filter {
        after,
        departments: Some(&departments),
        user: None,
    };
    read_where(conn, tenant_id, &filter, Some(limit)).await
}

/// One live member, if the mirror has them.
pub async fn read_user(
    conn: &mut PgConnection,
    tenant_id: i64,
    user_id: &UserId,
) -> Result<Option<User>, StoreError> {
    let filter = Filter {
        user: Some(user_id.as_str()),
        ..Filter::default()
    };
    Ok(read_where(conn, tenant_id, &filter, Some(1)).await?.pop())
}

/// Which live members [`read_where`] reads.
#[derive(Default)]
struct Filter<'a> {
    /// Userids greater than this.
    after: Option<&'a str>,
    /// Only members of one of these departments.
    departments: Option<&'a [i64]>,
    /// Only this member.
    user: Option<&'a str>,
}

/// The columns of a member and its memberships, in `user/get` order.
const USER_SELECT: &str = "select u.user_id, u.open_userid, u.name, u.position, u.mobile, u.gender,
        u.email, u.biz_mail, u.avatar, u.thumb_avatar, u.telephone, u.alias, u.address, u.qr_code,
        u.main_department, u.direct_leaders, u.status, u.extattr, u.external_position,
        u.external_profile,
        array(select m.department_id from directory_user_departments m
              where m.tenant_id = u.tenant_id and m.user_id = u.user_id order by m.position) as departments,
        array(select m.sort_order from directory_user_departments m
              where m.tenant_id = u.tenant_id and m.user_id = u.user_id order by m.position) as orders,
        array(select m.is_leader from directory_user_departments m
              where m.tenant_id = u.tenant_id and m.user_id = u.user_id order by m.position) as leaders
    from directory_users u";

/// Reads the live members `filter` selects, ordered by userid. The statement names only the
/// conditions in use, so each shape gets its own plan: a single member is a primary-key lookup,
/// not a scan of the tenant's members under a generic plan.
async fn read_where(
    conn: &mut PgConnection,
    tenant_id: i64,
    filter: &Filter<'_>,
    limit: Option<i64>,
) -> Result<Vec<User>, StoreError> {
    let mut conditions = vec![
        "u.tenant_id = $1".to_owned(),
        "u.deleted_at is null".to_owned(),
    ];
    let mut next = 2;
    let mut placeholder = || {
        let p = format!("${next}");
        next += 1;
        p
    };
    if filter.user.is_some() {
        conditions.push(format!("u.user_id = {}", placeholder()));
    }
    if filter.after.is_some() {
        conditions.push(format!("u.user_id > {}", placeholder()));
    }
    if filter.departments.is_some() {
        conditions.push(format!(
            "exists (select 1 from directory_user_departments m
                     where m.tenant_id = u.tenant_id and m.user_id = u.user_id
                       and m.department_id = any({}))",
            placeholder()
        ));
    }
    let limit_clause = limit.map_or_else(String::new, |_| format!(" limit {}", placeholder()));
    let sql = format!(
        "{USER_SELECT} where {} order by u.user_id{limit_clause}",
        conditions.join(" and ")
    );
    // Only constant text and `$n` placeholders went into `sql`; the values are bound.
    let mut query = sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql)).bind(tenant_id);
    if let Some(user) = filter.user {
        query = query.bind(user);
    }
    if let Some(after) = filter.after {
        query = query.bind(after);
    }
    if let Some(departments) = filter.departments {
        query = query.bind(departments);
    }
    if let Some(limit) = limit {
        query = query.bind(limit);
    }
    let rows = query.fetch_all(conn).await?;
    rows.into_iter().map(UserRow::into_user).collect()
}

impl UserRow {
    fn into_user(self) -> Result<User, StoreError> {
        let corrupt = |column: &'static str| {
            move |error: serde_json::Error| StoreError::Corrupt {
                column,
                detail: error.to_string(),
            }
        };
        let department = self
            .departments
            .unwrap_or_default()
            .into_iter()
            .map(DepartmentId::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(User {
            userid: UserId::parse(self.user_id)?,
            name: self.name,
            department,
            order: self
                .orders
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .filter_map(|order| u64::try_from(order).ok())
                .collect(),
            position: self.position,
            mobile: self.mobile,
            gender: self.gender,
            email: self.email,
            biz_mail: self.biz_mail,
            is_leader_in_dept: self
                .leaders
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .map(u8::from)
                .collect(),
            direct_leader: match self.direct_leaders {
                Some(value) => serde_json::from_value(value)
                    .map_err(corrupt("directory_users.direct_leaders"))?,
                None => Vec::new(),
            },
            avatar: self.avatar,
            thumb_avatar: self.thumb_avatar,
            telephone: self.telephone,
            alias: self.alias,
            address: self.address,
            open_userid: self.open_userid,
            main_department: self.main_department.map(DepartmentId::new).transpose()?,
            extattr: self
                .extattr
                .map(serde_json::from_value::<ExtAttr>)
                .transpose()
                .map_err(corrupt("directory_users.extattr"))?,
            status: self.status.map(i64::from),
            qr_code: self.qr_code,
            external_position: self.external_position,
            external_profile: self.external_profile,
        })
    }
}
