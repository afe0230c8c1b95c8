//! The OpenAPI document (`GET /openapi.json`): generated from the handlers' `#[utoipa::path]`
//! annotations as [`crate::routes::configure`] mounts them, so it lists exactly the routes the
//! server serves.

use actix_web::App;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt as _;

use crate::error::ProblemBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "daikai provider API",
        description = "What a WeCom 代开发 provider's own apps need for each client enterprise: \
                       tenants, corp access tokens from one shared cache, JS-SDK signatures, \
                       member logins and the mirrored directory. Authenticate with \
                       `Authorization: Bearer dk_…` (`daikai api-keys create`). Errors are \
                       `application/problem+json` (RFC 9457). See docs/api.md.",
    ),
    components(schemas(ProblemBody)),
    modifiers(&ApiKeyAuth),
    tags(
        (name = "tenants", description = "The client enterprises that authorized a suite"),
        (name = "credentials", description = "Access tokens, JS-SDK signatures, member logins"),
        (name = "directory", description = "The mirrored directory of a tenant"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// The `api_key` bearer scheme every `/v1` route names.
struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dk_<id>_<secret>")
                    .description(Some("A key from `daikai api-keys create`"))
                    .build(),
            ),
        );
    }
}

/// The document, built from a registration of every route.
pub fn document() -> Document {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    document
}
