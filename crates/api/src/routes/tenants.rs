//! `GET /v1/tenants` and `GET /v1/tenants/{suite_id}/{corp_id}` (scope `tenants:read`,
//! docs/api.md §4).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use store::api_keys::Scope;
use store::tenants::{Tenant, TenantStatus};
use utoipa::{IntoParams, ToSchema};
use wecom::api::Privilege;

use super::{TenantPath, decode_cursor, encode_cursor, load_tenant, page_limit};
use crate::auth::Caller;
use crate::error::{Problem, ProblemBody};
use crate::state::AppState;

/// `GET /v1/tenants` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantsQuery {
    /// Only this suite.
    suite_id: Option<String>,
    /// Only this status: `pending`, `active`, `suspended` or `revoked`.
    status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// What the app sees of the corp (the visibility scope the admin chose).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VisibleScope {
    /// Visible departments (with their subtrees).
    departments: Vec<u64>,
    /// Visible members.
    users: Vec<String>,
    /// Visible tags.
    tags: Vec<u64>,
}

/// A tenant: one (suite, corp) authorization.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// The suite (代开发 template).
    suite_id: String,
    /// The corp.
    corp_id: String,
    /// `pending`, `active`, `suspended` or `revoked`.
    #[schema(example = "active")]
    status: String,
    /// The corp's short name.
    corp_name: Option<String>,
    /// The app's agentid in the corp.
    agent_id: Option<i64>,
    /// The app's visibility scope, from the last auth info.
    scope: Option<VisibleScope>,
    /// When the corp last authorized the app.
    authorized_at: Option<DateTime<Utc>>,
    /// WeCom time of the newest lifecycle event (create_auth, change_auth, cancel_auth).
    changed_at: Option<DateTime<Utc>>,
    /// When the corp removed the app, while revoked.
    revoked_at: Option<DateTime<Utc>>,
    /// When daikai first saw the tenant.
    created_at: DateTime<Utc>,
    /// When daikai last changed the row.
    updated_at: DateTime<Utc>,
}

impl TenantView {
    fn of(tenant: &Tenant) -> Self {
        Self {
            suite_id: tenant.suite_id.to_string(),
            corp_id: tenant.corp_id.to_string(),
            status: tenant.status.as_str().to_owned(),
            corp_name: tenant.corp_name.clone(),
            agent_id: tenant.agent_id,
            scope: scope_of(tenant),
            authorized_at: tenant.activated_at,
            changed_at: tenant.last_event_time,
            revoked_at: tenant.revoked_at,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
        }
    }
}

/// The scope of the first agent of the stored auth info.
fn scope_of(tenant: &Tenant) -> Option<VisibleScope> {
    let privilege = tenant
        .auth_info
        .as_ref()?
        .pointer("/auth_info/agent/0/privilege")?
        .clone();
    let privilege: Privilege = serde_json::from_value(privilege).ok()?;
    Some(VisibleScope {
        departments: privilege.allow_party,
        users: privilege.allow_user,
        tags: privilege.allow_tag,
    })
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    /// The tenants, in the order they were first seen.
    tenants: Vec<TenantView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    next_cursor: Option<String>,
}

/// The tenants the key may see.
#[utoipa::path(
    tag = "tenants",
    params(TenantsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, body = TenantPage),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<TenantsQuery>,
) -> Result<web::Json<TenantPage>, Problem> {
    caller.require(Scope::TenantsRead)?;
    let query = query.into_inner();
    let suites: Option<Vec<String>> = match query.suite_id.filter(|s| !s.is_empty()) {
        Some(suite) => {
            caller.require_for(Scope::TenantsRead, &suite)?;
            Some(vec![suite])
        }
        None => caller.suites().map(<[String]>::to_vec),
    };
    let status = query
        .status
        .filter(|s| !s.is_empty())
        .map(|s| {
            TenantStatus::parse(&s).map_err(|_| {
                Problem::bad_request("status must be pending, active, suspended or revoked")
            })
        })
        .transpose()?;
    let limit = page_limit(query.limit)?;
    let after = query
        .cursor
        .map(|c| {
            decode_cursor("t", &c)?
                .parse::<i64>()
                .map_err(|_| Problem::invalid_cursor())
        })
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    let tenants =
        store::tenants::tenants_page(&mut conn, suites.as_deref(), status, after, limit + 1)
            .await?;
    let more = tenants.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let page: Vec<&Tenant> = tenants
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    let next_cursor = more
        .then(|| page.last().map(|t| encode_cursor("t", &t.id.to_string())))
        .flatten();
    Ok(web::Json(TenantPage {
        tenants: page.into_iter().map(TenantView::of).collect(),
        next_cursor,
    }))
}

/// One tenant, with what the corp granted the app and the state of its mirrored directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDetail {
    /// The tenant.
    #[serde(flatten)]
    tenant: TenantView,
    /// The permissions the corp's admin granted the app (`contact:sensitive:user_name`, …), as
    /// WeCom answers `agent/get_permissions` now; absent unless the tenant is active and WeCom
    /// answered.
    field_grants: Option<Vec<String>>,
    /// The mirrored directory: its size and its last full sync.
    directory: super::directory::DirectoryStatus,
}

/// One tenant: status, corp, app, scope and grants, lifecycle times, the directory mirror.
#[utoipa::path(
    tag = "tenants",
    params(
        ("suite_id" = String, Path, description = "The suite"),
        ("corp_id" = String, Path, description = "The corp"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, body = TenantDetail),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/tenants/{suite_id}/{corp_id}")]
pub async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<web::Json<TenantDetail>, Problem> {
    caller.require_for(Scope::TenantsRead, path.suite_id())?;
    let (suite_id, corp_id) = path.ids()?;
    let tenant = load_tenant(&state, &suite_id, &corp_id).await?;
    let field_grants = if tenant.status == TenantStatus::Active {
        let client = state.tokens.client().clone();
        let answer = state
            .tokens
            .with_corp_token(&suite_id, &corp_id, |token| {
                let client = client.clone();
                async move { client.agent_get_permissions(token.expose()).await }
            })
            .await;
        match answer {
            Ok(permissions) => Some(permissions.app_permissions),
            Err(error) => {
                if let Some(api) = error.api_error() {
                    state.metrics.wecom_error("agent/get_permissions", api);
                }
                tracing::warn!(%suite_id, %corp_id, %error, "agent/get_permissions failed");
                None
            }
        }
    } else {
        None
    };
    let directory = super::directory::status(&state, tenant.id).await?;
    Ok(web::Json(TenantDetail {
        tenant: TenantView::of(&tenant),
        field_grants,
        directory,
    }))
}
