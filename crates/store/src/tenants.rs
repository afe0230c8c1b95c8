//! `tenants`: one row per authorizing corp of a suite, its lifecycle status and its sealed
//! permanent code (the 代开发 app secret).
//!
//! Lifecycle writes are ordered by WeCom's `TimeStamp`, not by processing order: replicas take
//! auth events out of order, and an uninstall followed by a reinstall must not end revoked. Each
//! write reports an [`Outcome`] so the caller publishes `tenant.*` events only for real changes.
//! Every write that changes or removes the secret drops the cached corp token in the same
//! statement, so a token minted from an old secret never outlives it.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::StoreError;
use crate::ids::{CorpId, SuiteId};
use crate::sealed::{from_columns, wecom_time};
use crate::secret::{Sealed, SecretBox, SecretContext};

/// Where a tenant is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// Known but not usable yet (no permanent code); daikai's auth worker goes straight to
    /// `Active`, so only external tooling creates pending tenants.
    Pending,
    /// Authorized and enabled: WeCom calls are made for it.
    Active,
    /// The corp disabled the app (change_auth): secret kept, no calls made.
    Suspended,
    /// The corp removed the app (cancel_auth): secret and tokens deleted.
    Revoked,
}

impl TenantStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Active, Self::Suspended, Self::Revoked];

    /// The value stored in `tenants.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a stored value.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "pending" => Ok(Self::Pending),
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "revoked" => Ok(Self::Revoked),
            other => Err(StoreError::Corrupt {
                column: "tenants.status",
                detail: format!("unknown status {other:?}"),
            }),
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A tenant row, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Surrogate key, stable for the life of the row (directory tables may reference it).
    pub id: i64,
    /// The suite.
    pub suite_id: SuiteId,
    /// The corp.
    pub corp_id: CorpId,
    /// The corp's short name.
    pub corp_name: Option<String>,
    /// The 代开发 app's agentid in the corp.
    pub agent_id: Option<i64>,
    /// Lifecycle status.
    pub status: TenantStatus,
    /// The get_auth_info answer (no secrets).
    pub auth_info: Option<Value>,
    /// The authorization QR's `State`.
    pub state: Option<String>,
    /// Id of the key the permanent code is sealed under; `None` when no code is stored.
    pub permanent_code_key_id: Option<String>,
    /// When the permanent code was last stored.
    pub permanent_code_updated_at: Option<DateTime<Utc>>,
    /// WeCom time of the newest lifecycle event applied.
    pub last_event_time: Option<DateTime<Utc>>,
    /// Row creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last activation.
    pub activated_at: Option<DateTime<Utc>>,
    /// Revocation, while revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a lifecycle write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The row changed: publish the matching `tenant.*` event.
    Applied,
    /// The row was already in that state: nothing to publish.
    Unchanged,
    /// A newer event was already applied (WeCom `TimeStamp`): this one is ignored.
    Stale,
}

/// A tenant after a lifecycle write, and what the write did.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The row as it is now.
    pub tenant: Tenant,
    /// What the write did.
    pub outcome: Outcome,
}

/// Everything known about a tenant after a successful AuthCode exchange.
#[derive(Debug, Clone, Copy)]
pub struct Activation<'a> {
    /// The suite.
    pub suite_id: &'a SuiteId,
    /// `auth_corp_info.corpid` of the exchange answer.
    pub corp_id: &'a CorpId,
    /// `auth_corp_info.corp_name`.
    pub corp_name: Option<&'a str>,
    /// The app's agentid.
    pub agent_id: Option<i64>,
    /// The permanent code (sealed before it is written).
    pub permanent_code: &'a SecretString,
    /// The get_auth_info answer; keys that name secrets are stripped before storing.
    pub auth_info: Option<&'a Value>,
    /// The authorization QR's `State`.
    pub state: Option<&'a str>,
    /// WeCom `TimeStamp` of the create_auth event.
    pub event_time: i64,
}

/// Auth info re-read after a change_auth.
#[derive(Debug, Clone, Copy)]
pub struct AuthInfoUpdate<'a> {
    /// The suite.
    pub suite_id: &'a SuiteId,
    /// The corp.
    pub corp_id: &'a CorpId,
    /// New corp name, if known (`None` keeps the stored one).
    pub corp_name: Option<&'a str>,
    /// New agentid, if known (`None` keeps the stored one).
    pub agent_id: Option<i64>,
    /// The get_auth_info answer; keys that name secrets are stripped before storing.
    pub auth_info: &'a Value,
}

// Spliced into queries with `format!`, hence `AssertSqlSafe` there: the SQL text is built
// from constants only; every value is a bind parameter.
const COLUMNS: &str = "id, suite_id, corp_id, corp_name, agent_id, status, auth_info, state,
    permanent_code_key_id, permanent_code_updated_at, last_event_time, created_at, updated_at,
    activated_at, revoked_at";

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: i64,
    suite_id: SuiteId,
    corp_id: CorpId,
    corp_name: Option<String>,
    agent_id: Option<i64>,
    status: String,
    auth_info: Option<Value>,
    state: Option<String>,
    permanent_code_key_id: Option<String>,
    permanent_code_updated_at: Option<DateTime<Utc>>,
    last_event_time: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    activated_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;

    fn try_from(row: TenantRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            suite_id: row.suite_id,
            corp_id: row.corp_id,
            corp_name: row.corp_name,
            agent_id: row.agent_id,
            status: TenantStatus::parse(&row.status)?,
            auth_info: row.auth_info,
            state: row.state,
            permanent_code_key_id: row.permanent_code_key_id,
            permanent_code_updated_at: row.permanent_code_updated_at,
            last_event_time: row.last_event_time,
            created_at: row.created_at,
            updated_at: row.updated_at,
            activated_at: row.activated_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// One tenant.
pub async fn tenant(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<Option<Tenant>, StoreError> {
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from tenants where suite_id = $1 and corp_id = $2"
    )))
    .bind(suite_id)
    .bind(corp_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Tenant::try_from).transpose()
}

/// All tenants (optionally of one status), ordered by suite and corp.
pub async fn list_tenants(
    conn: &mut PgConnection,
    status: Option<TenantStatus>,
) -> Result<Vec<Tenant>, StoreError> {
    let rows: Vec<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from tenants where $1::text is null or status = $1
         order by suite_id, corp_id"
    )))
    .bind(status.map(TenantStatus::as_str))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Tenant::try_from).collect()
}

/// How many tenants have each status: every status, zero included (for the
/// `daikai_tenants{status}` gauge, which must fall to zero rather than keep its last value).
pub async fn count_by_status(
    conn: &mut PgConnection,
) -> Result<Vec<(TenantStatus, i64)>, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select status, count(*) from tenants group by status")
            .fetch_all(&mut *conn)
            .await?;
    let mut counts: Vec<(TenantStatus, i64)> = TenantStatus::ALL.iter().map(|s| (*s, 0)).collect();
    for (status, n) in rows {
        let status = TenantStatus::parse(&status)?;
        if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == status) {
            entry.1 = n;
        }
    }
    Ok(counts)
}

/// One page of tenants in id order: those with an id above `after`, optionally only of `suites`
/// and of one `status`, at most `limit` of them (the provider API's cursor pagination).
pub async fn tenants_page(
    conn: &mut PgConnection,
    suites: Option<&[String]>,
    status: Option<TenantStatus>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Tenant>, StoreError> {
    let rows: Vec<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from tenants
         where ($1::text[] is null or suite_id = any($1))
           and ($2::text is null or status = $2)
           and ($3::bigint is null or id > $3)
         order by id
         limit $4"
    )))
    .bind(suites)
    .bind(status.map(TenantStatus::as_str))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Tenant::try_from).collect()
}

/// Makes the tenant `active` with a fresh permanent code (create_auth): inserts it, or
/// re-activates an existing row (a reinstall after a cancel), and drops any cached corp token.
/// [`Outcome::Stale`] when a newer lifecycle event or a newer code is already stored — or a
/// revocation of the same second: within one second revocation wins, and only a create_auth of
/// a later second proves a reinstall (WeCom's `TimeStamp` has one-second resolution, and
/// keeping a secret the corp withdrew is the worse mistake).
pub async fn activate_tenant(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    activation: &Activation<'_>,
) -> Result<Transition, StoreError> {
    let event_time = wecom_time(activation.event_time)?;
    let sealed = seal_code(
        secrets,
        activation.suite_id,
        activation.corp_id,
        activation.permanent_code,
    )?;
    let auth_info = activation.auth_info.map(sanitized_auth_info);
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with upserted as (
             insert into tenants as t (suite_id, corp_id, corp_name, agent_id, status,
                 permanent_code_ciphertext, permanent_code_nonce, permanent_code_key_id,
                 permanent_code_updated_at, permanent_code_event_time, auth_info, state,
                 last_event_time, activated_at)
             values ($1, $2, $3, $4, 'active', $5, $6, $7, now(), $8, $9, $10, $8, now())
             on conflict (suite_id, corp_id) do update set
                 corp_name = coalesce(excluded.corp_name, t.corp_name),
                 agent_id = coalesce(excluded.agent_id, t.agent_id),
                 status = 'active',
                 permanent_code_ciphertext = excluded.permanent_code_ciphertext,
                 permanent_code_nonce = excluded.permanent_code_nonce,
                 permanent_code_key_id = excluded.permanent_code_key_id,
                 permanent_code_updated_at = now(),
                 permanent_code_event_time = excluded.permanent_code_event_time,
                 auth_info = coalesce(excluded.auth_info, t.auth_info),
                 state = coalesce(excluded.state, t.state),
                 last_event_time = excluded.last_event_time,
                 activated_at = now(),
                 revoked_at = null,
                 updated_at = now()
             where (t.last_event_time is null or t.last_event_time < excluded.last_event_time
                    or (t.last_event_time = excluded.last_event_time and t.status <> 'revoked'))
               and (t.permanent_code_event_time is null
                    or t.permanent_code_event_time <= excluded.permanent_code_event_time)
             returning {COLUMNS}
         ), dropped as (
             delete from corp_tokens c using upserted u
             where c.suite_id = u.suite_id and c.corp_id = u.corp_id
         )
         select * from upserted"
    )))
    .bind(activation.suite_id)
    .bind(activation.corp_id)
    .bind(activation.corp_name)
    .bind(activation.agent_id)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.key_id)
    .bind(event_time)
    .bind(auth_info)
    .bind(activation.state)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return applied(row);
    }
    let tenant = require(conn, activation.suite_id, activation.corp_id).await?;
    Ok(Transition {
        tenant,
        outcome: Outcome::Stale,
    })
}

/// Replaces the permanent code (reset_permanent_code) and drops the cached corp token, in one
/// statement. The tenant must exist and not be revoked; [`Outcome::Stale`] when a code from a
/// newer event is already stored.
pub async fn rotate_permanent_code(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    permanent_code: &SecretString,
    event_time: i64,
) -> Result<Transition, StoreError> {
    let event_time = wecom_time(event_time)?;
    let sealed = seal_code(secrets, suite_id, corp_id, permanent_code)?;
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with rotated as (
             update tenants set
                 permanent_code_ciphertext = $3, permanent_code_nonce = $4,
                 permanent_code_key_id = $5, permanent_code_updated_at = now(),
                 permanent_code_event_time = $6, updated_at = now()
             where suite_id = $1 and corp_id = $2 and status <> 'revoked'
               and (permanent_code_event_time is null or permanent_code_event_time <= $6)
             returning {COLUMNS}
         ), dropped as (
             delete from corp_tokens c using rotated r
             where c.suite_id = r.suite_id and c.corp_id = r.corp_id
         )
         select * from rotated"
    )))
    .bind(suite_id)
    .bind(corp_id)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.key_id)
    .bind(event_time)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return applied(row);
    }
    let tenant = require(conn, suite_id, corp_id).await?;
    if tenant.status == TenantStatus::Revoked {
        return Err(invalid_transition(&tenant, "rotating the permanent code"));
    }
    Ok(Transition {
        tenant,
        outcome: Outcome::Stale,
    })
}

/// Moves an `active` or `suspended` tenant to `status` (`Active` or `Suspended`; change_auth).
/// Revocation goes through [`revoke_tenant`], activation of a new secret through
/// [`activate_tenant`].
pub async fn set_tenant_status(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    status: TenantStatus,
    event_time: i64,
) -> Result<Transition, StoreError> {
    if !matches!(status, TenantStatus::Active | TenantStatus::Suspended) {
        return Err(StoreError::invalid(
            "target status",
            "set_tenant_status only moves between active and suspended",
        ));
    }
    let event_time = wecom_time(event_time)?;
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update tenants set status = $3, last_event_time = $4, updated_at = now()
         where suite_id = $1 and corp_id = $2 and status in ('active', 'suspended')
           and status <> $3 and (last_event_time is null or last_event_time <= $4)
         returning {COLUMNS}"
    )))
    .bind(suite_id)
    .bind(corp_id)
    .bind(status.as_str())
    .bind(event_time)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return applied(row);
    }
    let tenant = require(conn, suite_id, corp_id).await?;
    let outcome = if tenant.status == status {
        Outcome::Unchanged
    } else if matches!(
        tenant.status,
        TenantStatus::Active | TenantStatus::Suspended
    ) {
        Outcome::Stale
    } else {
        return Err(invalid_transition(&tenant, "changing the status"));
    };
    Ok(Transition { tenant, outcome })
}

/// Stores auth info re-read from WeCom (change_auth). The tenant must exist and not be revoked.
pub async fn update_auth_info(
    conn: &mut PgConnection,
    update: &AuthInfoUpdate<'_>,
) -> Result<Tenant, StoreError> {
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update tenants set auth_info = $3, corp_name = coalesce($4, corp_name),
             agent_id = coalesce($5, agent_id), updated_at = now()
         where suite_id = $1 and corp_id = $2 and status <> 'revoked'
         returning {COLUMNS}"
    )))
    .bind(update.suite_id)
    .bind(update.corp_id)
    .bind(sanitized_auth_info(update.auth_info))
    .bind(update.corp_name)
    .bind(update.agent_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Tenant::try_from(row);
    }
    let tenant = require(conn, update.suite_id, update.corp_id).await?;
    Err(invalid_transition(&tenant, "updating auth info"))
}

/// Revokes a tenant (cancel_auth): status `revoked`, permanent code, cached corp token and JS-SDK
/// tickets deleted in one statement. An unknown tenant gets a revoked row, so that a create_auth older
/// than this cancel, processed later, stays ignored.
pub async fn revoke_tenant(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    event_time: i64,
) -> Result<Transition, StoreError> {
    let event_time = wecom_time(event_time)?;
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with revoked as (
             insert into tenants as t (suite_id, corp_id, status, revoked_at, last_event_time)
             values ($1, $2, 'revoked', now(), $3)
             on conflict (suite_id, corp_id) do update set
                 status = 'revoked',
                 permanent_code_ciphertext = null, permanent_code_nonce = null,
                 permanent_code_key_id = null, permanent_code_updated_at = null,
                 permanent_code_event_time = null,
                 revoked_at = now(), last_event_time = excluded.last_event_time,
                 updated_at = now()
             where t.status <> 'revoked'
               and (t.last_event_time is null or t.last_event_time <= excluded.last_event_time)
             returning {COLUMNS}
         ), dropped as (
             delete from corp_tokens c using revoked r
             where c.suite_id = r.suite_id and c.corp_id = r.corp_id
         ), dropped_tickets as (
             delete from jsapi_tickets j using revoked r
             where j.suite_id = r.suite_id and j.corp_id = r.corp_id
         )
         select * from revoked"
    )))
    .bind(suite_id)
    .bind(corp_id)
    .bind(event_time)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return applied(row);
    }
    let tenant = require(conn, suite_id, corp_id).await?;
    let outcome = if tenant.status == TenantStatus::Revoked {
        Outcome::Unchanged
    } else {
        Outcome::Stale
    };
    Ok(Transition { tenant, outcome })
}

/// The tenant's permanent code, opened (for `get_auth_info`, which takes it as input). Errors
/// when the tenant does not exist or has no code (pending, revoked).
pub async fn permanent_code(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<SecretString, StoreError> {
    let row = secret_row(conn, suite_id, corp_id, false).await?;
    let Some((status, sealed)) = row else {
        return Err(not_found(suite_id, corp_id));
    };
    let Some(sealed) = sealed else {
        return Err(StoreError::InvalidTransition {
            suite_id: suite_id.to_string(),
            corp_id: corp_id.to_string(),
            status: status.to_string(),
            action: "reading the permanent code (none stored)",
        });
    };
    open_code(secrets, suite_id, corp_id, &sealed)
}

/// The status and sealed code of a tenant; `lock` takes the row lock that serializes corp token
/// refreshes (and orders them with secret rotation and revocation).
pub(crate) async fn secret_row(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    lock: bool,
) -> Result<Option<(TenantStatus, Option<Sealed>)>, StoreError> {
    type Row = (String, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);
    let sql = if lock {
        "select status, permanent_code_ciphertext, permanent_code_nonce, permanent_code_key_id
         from tenants where suite_id = $1 and corp_id = $2 for no key update"
    } else {
        "select status, permanent_code_ciphertext, permanent_code_nonce, permanent_code_key_id
         from tenants where suite_id = $1 and corp_id = $2"
    };
    let row: Option<Row> = sqlx::query_as(sql)
        .bind(suite_id)
        .bind(corp_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|(status, ciphertext, nonce, key_id)| {
        Ok((
            TenantStatus::parse(&status)?,
            from_columns(ciphertext, nonce, key_id),
        ))
    })
    .transpose()
}

pub(crate) fn open_code(
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    sealed: &Sealed,
) -> Result<SecretString, StoreError> {
    let context = SecretContext::permanent_code(suite_id.as_str(), corp_id.as_str());
    Ok(secrets.open(&context, sealed)?)
}

fn seal_code(
    secrets: &SecretBox,
    suite_id: &SuiteId,
    corp_id: &CorpId,
    code: &SecretString,
) -> Result<Sealed, StoreError> {
    use secrecy::ExposeSecret as _;
    let context = SecretContext::permanent_code(suite_id.as_str(), corp_id.as_str());
    Ok(secrets.seal(&context, code.expose_secret())?)
}

fn applied(row: TenantRow) -> Result<Transition, StoreError> {
    Ok(Transition {
        tenant: Tenant::try_from(row)?,
        outcome: Outcome::Applied,
    })
}

async fn require(
    conn: &mut PgConnection,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<Tenant, StoreError> {
    tenant(conn, suite_id, corp_id)
        .await?
        .ok_or_else(|| not_found(suite_id, corp_id))
}

fn not_found(suite_id: &SuiteId, corp_id: &CorpId) -> StoreError {
    StoreError::TenantNotFound {
        suite_id: suite_id.to_string(),
        corp_id: corp_id.to_string(),
    }
}

fn invalid_transition(tenant: &Tenant, action: &'static str) -> StoreError {
    StoreError::InvalidTransition {
        suite_id: tenant.suite_id.to_string(),
        corp_id: tenant.corp_id.to_string(),
        status: tenant.status.to_string(),
        action,
    }
}

/// Keys that name a secret in WeCom answers. The auth info column must never hold one, even if a
/// caller passes a whole `get_permanent_code` answer by mistake.
const SECRET_KEYS: &[&str] = &[
    "permanent_code",
    "access_token",
    "suite_access_token",
    "provider_access_token",
    "auth_code",
    "suite_ticket",
    "suite_secret",
    "corpsecret",
];

fn sanitized_auth_info(value: &Value) -> Value {
    let mut value = value.clone();
    let removed = strip_secret_keys(&mut value);
    if removed > 0 {
        tracing::warn!(
            removed,
            "auth info contained secret-named keys; they were removed before storing"
        );
    }
    value
}

fn strip_secret_keys(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|key, _| !SECRET_KEYS.contains(&key.as_str()));
            let removed = before - map.len();
            removed + map.values_mut().map(strip_secret_keys).sum::<usize>()
        }
        Value::Array(items) => items.iter_mut().map(strip_secret_keys).sum(),
        _ => 0,
    }
}

/// The tenant with this surrogate id.
pub async fn tenant_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<Tenant>, StoreError> {
    let row: Option<TenantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from tenants where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Tenant::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_stripped_at_any_depth() {
        let mut value = serde_json::json!({
            "permanent_code": "p",
            "auth_corp_info": {"corpid": "ww1", "access_token": "t"},
            "auth_info": {"agent": [{"agentid": 1, "auth_code": "c"}]}
        });
        assert_eq!(strip_secret_keys(&mut value), 3);
        assert_eq!(
            value,
            serde_json::json!({
                "auth_corp_info": {"corpid": "ww1"},
                "auth_info": {"agent": [{"agentid": 1}]}
            })
        );
    }

    #[test]
    fn status_round_trips() {
        for status in [
            TenantStatus::Pending,
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Revoked,
        ] {
            assert_eq!(TenantStatus::parse(status.as_str()).unwrap(), status);
        }
        assert!(TenantStatus::parse("gone").is_err());
    }
}
