//! Every refusal of the API as one [`Problem`], answered as `application/problem+json`
//! (RFC 9457) with a stable `type` per cause (docs/api.md §3).
//!
//! The `type` is `urn:daikai:problem:<code>` and `code` repeats the last part, so a client can
//! switch on either. `detail` says what happened in words and never carries a key, a token, a
//! ticket or a login code. Each answer also tells the metrics middleware its outcome.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use store::StoreError;
use store::tenants::TenantStatus;
use tokens::TokenError;
use utoipa::ToSchema;
use wecom::api::{ApiError, ErrorClass};

/// The prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:daikai:problem:";

/// The `application/problem+json` body (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:daikai:problem:<code>`: the cause, stable.
    #[schema(example = "urn:daikai:problem:tenant-revoked")]
    pub r#type: String,
    /// A short summary of the cause (the same for every occurrence).
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// The last part of `type`.
    #[schema(example = "tenant-revoked")]
    pub code: &'static str,
}

/// Why a request was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<Duration>,
    bearer_challenge: bool,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            code,
            title,
            detail,
            retry_after: None,
            bearer_challenge: false,
        }
    }

    /// 401: no key, or not one the API knows (unknown, revoked, malformed).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            bearer_challenge: true,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "A valid API key is required",
                detail.into(),
            )
        }
    }

    /// 403: the key lacks the scope the route needs.
    pub fn missing_scope(scope: store::api_keys::Scope) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "missing-scope",
            "The API key lacks the scope this route needs",
            format!("this route needs the `{scope}` scope"),
        )
    }

    /// 403: the key may not act for this suite.
    pub fn suite_not_allowed(suite_id: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "suite-not-allowed",
            "The API key may not act for this suite",
            format!("the key does not serve suite {suite_id}"),
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(key_id: &str, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests for this API key",
                format!("key {key_id} is over its rate limit: retry after the Retry-After delay"),
            )
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "The request is malformed",
            detail.into(),
        )
    }

    /// 400: a pagination cursor this API did not hand out.
    pub fn invalid_cursor() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-cursor",
            "The cursor is not one this API handed out",
            "pass the `next_cursor` of the previous page unchanged".to_owned(),
        )
    }

    /// 400: an OAuth2 login code WeCom refused (used, expired, another app's).
    pub fn invalid_oauth_code() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-oauth-code",
            "The OAuth2 code is invalid, used or expired",
            "WeCom refused the code (40029): a code works once and for five minutes; start the \
             login again"
                .to_owned(),
        )
    }

    /// 404: no such tenant.
    pub fn tenant_not_found(suite_id: &str, corp_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "tenant-not-found",
            "No such tenant",
            format!("no tenant {suite_id}/{corp_id}"),
        )
    }

    /// 404: no such member or department in the mirror.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no {what} in the tenant's directory"),
        )
    }

    /// 404: no such route (or not with this method).
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no-such-route",
            "No such route",
            format!("nothing is served at {path}: see /openapi.json"),
        )
    }

    /// 409: the tenant is not active, so nothing is fetched for it.
    pub fn tenant_not_active(suite_id: &str, corp_id: &str, status: TenantStatus) -> Self {
        let (code, title, why) = match status {
            TenantStatus::Revoked => (
                "tenant-revoked",
                "The tenant revoked the app",
                "the corp removed the app (cancel_auth): its secret and tokens are deleted",
            ),
            TenantStatus::Suspended => (
                "tenant-suspended",
                "The tenant disabled the app",
                "the corp's admin disabled the app (change_auth): no WeCom call is made until it \
                 is enabled again",
            ),
            TenantStatus::Pending | TenantStatus::Active => (
                "tenant-not-active",
                "The tenant is not active",
                "the tenant has no secret yet",
            ),
        };
        Self::new(
            StatusCode::CONFLICT,
            code,
            title,
            format!("tenant {suite_id}/{corp_id} is {status}: {why}"),
        )
    }

    /// 409: WeCom says the authorization is broken while daikai still has it active.
    fn tenant_unavailable(detail: String) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "tenant-unavailable",
            "WeCom refused the tenant's authorization",
            detail,
        )
    }

    /// 503: WeCom's frequency limit; the call may be made again after the delay.
    fn wecom_rate_limited(detail: String, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wecom-rate-limited",
                "WeCom's frequency limit is reached",
                detail,
            )
        }
    }

    /// 502: WeCom failed or refused the call.
    fn wecom(detail: String) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "wecom-error",
            "WeCom failed or refused the call",
            detail,
        )
    }

    /// 503: the database (or a secret) failed; retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The service cannot answer right now",
            detail.into(),
        )
    }

    /// 500: a fault of the service.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail.into(),
        )
    }

    /// The stable code (the last part of `type`), for metrics and tests.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The body.
    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            r#type: format!("{TYPE_PREFIX}{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
        }
    }

    /// A WeCom failure of a call made for `suite_id`/`corp_id`, by its class.
    pub fn from_wecom(doing: &str, err: &ApiError) -> Self {
        let detail = format!("{doing}: {err}");
        match err.class() {
            ErrorClass::RateLimited { retry_after } => {
                Self::wecom_rate_limited(detail, retry_after)
            }
            ErrorClass::TenantBroken => Self::tenant_unavailable(detail),
            ErrorClass::Retryable | ErrorClass::TokenExpired(_) | ErrorClass::Permanent => {
                Self::wecom(detail)
            }
        }
    }

    /// A token service failure.
    pub fn from_tokens(doing: &str, err: &TokenError) -> Self {
        match err {
            TokenError::UnknownTenant { suite_id, corp_id } => {
                Self::tenant_not_found(suite_id.as_str(), corp_id.as_str())
            }
            TokenError::TenantNotActive {
                suite_id,
                corp_id,
                status,
            } => Self::tenant_not_active(suite_id.as_str(), corp_id.as_str(), *status),
            TokenError::Fetch { source, .. } | TokenError::Call(source) => {
                Self::from_wecom(doing, source)
            }
            TokenError::NoSuiteTicket(_) => Self::unavailable(format!("{doing}: {err}")),
            TokenError::Store(store) => Self::from(store),
        }
    }
}

impl From<&StoreError> for Problem {
    fn from(err: &StoreError) -> Self {
        if err.is_transient() {
            tracing::warn!(error = %err, "database or secret failure");
            Self::unavailable("the database is unavailable: retry")
        } else {
            tracing::error!(error = %err, "store failure");
            Self::internal("a stored value could not be read")
        }
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        Self::from(&err)
    }
}

impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        Self::from(StoreError::Database(err))
    }
}

/// The outcome a response carries to the metrics middleware.
#[derive(Debug, Clone, Copy)]
pub struct Outcome(pub &'static str);

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.content_type("application/problem+json");
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
        }
        if self.bearer_challenge {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"daikai\""),
            ));
        }
        let mut response = response.json(self.body());
        response.extensions_mut().insert(Outcome(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let response = Problem::rate_limited("k", Duration::from_millis(1500)).error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
    }

    #[test]
    fn wecom_errors_map_by_class() {
        assert_eq!(
            Problem::from_wecom("x", &ApiError::wecom(45009, "freq")).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Problem::from_wecom("x", &ApiError::wecom(48004, "gone")).status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            Problem::from_wecom("x", &ApiError::wecom(-1, "busy")).status,
            StatusCode::BAD_GATEWAY
        );
    }
}
