//! The API's description: `GET /openapi.json` (OpenAPI 3.1, generated from
//! the code) and the rendered docs at `/docs` (Swagger UI, its files built
//! into the binary).

use std::sync::{Arc, OnceLock};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::Config;

use super::error::ApiError;
use super::openapi;
use super::pages::secure_headers;

/// The docs page runs Swagger UI's own scripts and inline styles; nothing
/// else loads from anywhere but here. Other pages keep the strict policy.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// This document: the API as OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        serde_json::to_string_pretty(openapi::spec()).expect("the document serializes")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body.as_str())
}

/// The rendered docs: redirect to `/docs/` (where the page's relative links work).
#[utoipa::path(
    get,
    path = "/docs",
    responses((status = 308, description = "Redirect to `/docs/`", headers(("Location" = String)))),
)]
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "docs/"))
        .finish()
}

/// The rendered docs (Swagger UI): `/docs/` is the page, the rest its files.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    params(("file" = String, Path, description = "A file of the docs page; empty for the page itself")),
    responses(
        (status = 200, description = "The docs page or one of its scripts, styles or images", content_type = "text/html", body = String),
        (status = 404, description = "No such file", body = openapi::ErrorBody),
    ),
)]
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| Arc::new(Config::new(["../openapi.json"])));
    match utoipa_swagger_ui::serve(&file, config.clone()) {
        Ok(Some(f)) => {
            let mut resp = HttpResponse::Ok();
            secure_headers(&mut resp, DOCS_CSP);
            resp.insert_header((header::CACHE_CONTROL, "public, max-age=3600"));
            Ok(resp.content_type(f.content_type).body(f.bytes.into_owned()))
        }
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such file",
        )),
        Err(e) => {
            tracing::error!(error = %e, "docs: Swagger UI file");
            Err(ApiError::internal())
        }
    }
}
