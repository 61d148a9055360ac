//! Server-rendered pages: security headers and the stylesheet.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};

const CSS: &str = include_str!("../../assets/lethe.css");

/// The policy of lethe's own pages: no scripts at all.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every page carries: no referrer (the URL holds a secret), a
/// strict CSP, no framing, no caching.
pub fn page(status: StatusCode, html: String) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    secure_headers(&mut resp, PAGE_CSP);
    resp.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// The security headers of a page, with its content security policy.
pub fn secure_headers(resp: &mut HttpResponseBuilder, csp: &str) {
    resp.insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"));
}

#[utoipa::path(
    get, path = "/assets/lethe.css",
    description = "The stylesheet of the server-rendered pages.",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)),
)]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(CSS)
}

/// A page's answer when the store failed: 503 with Retry-After while the
/// database is unreachable, otherwise 500 (the detail goes to the log only).
pub fn store_failure(e: crate::store::StoreError, what: &str) -> HttpResponse {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .body("The service is briefly unavailable; please try again in a moment.")
    } else {
        tracing::error!(error = %e, page = what, "page failed");
        HttpResponse::InternalServerError()
            .body("Something went wrong on our side; it has been logged.")
    }
}
