//! The routes (docs/api.md): [`configure`] mounts every documented one, so the OpenAPI document
//! and the server are built from the same registration and cannot disagree.
//!
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json` (no key);
//! - [`tenants`]: the tenant list and one tenant;
//! - [`credentials`]: the corp access token, its invalidation, JS-SDK signatures, member logins;
//! - [`directory`]: the mirrored directory.

pub mod credentials;
pub mod directory;
pub mod ops;
pub mod tenants;

use actix_web::web;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use store::tenants::{Tenant, TenantStatus};
use utoipa_actix_web::service_config::ServiceConfig;
use wecom::ids::{CorpId, SuiteId};

use crate::error::Problem;
use crate::state::AppState;

/// Mounts every route (each also lands in the OpenAPI document).
pub fn configure(cfg: &mut ServiceConfig<'_>) {
    cfg.service(ops::healthz)
        .service(ops::readyz)
        .service(ops::metrics)
        .service(ops::openapi)
        .service(tenants::list)
        .service(tenants::show)
        .service(credentials::access_token)
        .service(credentials::invalidate)
        .service(credentials::jssdk_config)
        .service(credentials::oauth_userinfo)
        .service(directory::departments)
        .service(directory::department_members)
        .service(directory::members)
        .service(directory::member)
        .service(directory::tags);
}

/// `{suite_id}/{corp_id}` of a tenant route.
#[derive(Debug, Deserialize)]
pub struct TenantPath {
    suite_id: String,
    corp_id: String,
}

impl TenantPath {
    /// A tenant path from its parts.
    pub fn new(suite_id: String, corp_id: String) -> Self {
        Self { suite_id, corp_id }
    }

    /// The ids, parsed (400 when malformed).
    pub fn ids(&self) -> Result<(SuiteId, CorpId), Problem> {
        let suite_id = SuiteId::parse(self.suite_id.as_str())
            .map_err(|e| Problem::bad_request(format!("suite_id: {e}")))?;
        let corp_id = CorpId::parse(self.corp_id.as_str())
            .map_err(|e| Problem::bad_request(format!("corp_id: {e}")))?;
        Ok((suite_id, corp_id))
    }

    /// The suite id as given (for the key's suite check, before anything is parsed).
    pub fn suite_id(&self) -> &str {
        &self.suite_id
    }
}

/// The tenant, or 404.
pub async fn load_tenant(
    state: &AppState,
    suite_id: &SuiteId,
    corp_id: &CorpId,
) -> Result<Tenant, Problem> {
    let mut conn = state.pool.acquire().await?;
    store::tenants::tenant(&mut conn, suite_id, corp_id)
        .await?
        .ok_or_else(|| Problem::tenant_not_found(suite_id.as_str(), corp_id.as_str()))
}

/// 409 unless the tenant's directory may be read: the mirror of a revoked (or pending) tenant is
/// gone (or was never made).
pub fn require_readable(tenant: &Tenant) -> Result<(), Problem> {
    match tenant.status {
        TenantStatus::Active | TenantStatus::Suspended => Ok(()),
        status => Err(Problem::tenant_not_active(
            tenant.suite_id.as_str(),
            tenant.corp_id.as_str(),
            status,
        )),
    }
}

/// Page sizes: `limit` defaults to 100 and may not exceed 1000.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit`.
pub const MAX_LIMIT: i64 = 1000;

/// A `limit` query value, checked.
pub fn page_limit(limit: Option<i64>) -> Result<i64, Problem> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// An opaque cursor: `kind` and the last key of the page, base64url.
pub fn encode_cursor(kind: &str, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{last}"))
}

/// The last key a cursor of `kind` carries (400 when it is not one this API handed out).
pub fn decode_cursor(kind: &str, cursor: &str) -> Result<String, Problem> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| Problem::invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| Problem::invalid_cursor())?;
    let last = text
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(Problem::invalid_cursor)?;
    if last.is_empty() {
        return Err(Problem::invalid_cursor());
    }
    Ok(last.to_owned())
}

/// The JSON config of request bodies: 16 KiB, and malformed JSON as a problem.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(16 * 1024)
        .error_handler(|err, _| Problem::bad_request(format!("invalid JSON body: {err}")).into())
}

/// The query config: a malformed query string as a problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| Problem::bad_request(format!("invalid query: {err}")).into())
}

/// The path config: a malformed path as a problem.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| Problem::bad_request(format!("invalid path: {err}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let cursor = encode_cursor("m", "zhang_san");
        assert_eq!(decode_cursor("m", &cursor).unwrap(), "zhang_san");
        assert!(decode_cursor("t", &cursor).is_err());
        assert!(decode_cursor("m", "not base64!").is_err());
        assert!(decode_cursor("m", &encode_cursor("m", "")).is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(page_limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
    }
}
