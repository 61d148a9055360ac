//! The HTTP surface. Handlers parse and authenticate, call the store, and map
//! results to JSON; they never run background work themselves (jobs are
//! written through the store).

pub mod approvals;
pub mod auth;
pub mod erasure;
pub mod error;
pub mod extract;
pub mod facebook;
pub mod health;
pub mod limit;
pub mod opendsr;
pub mod pages;
pub mod requests;
pub mod state;
pub mod subjects;
pub mod support;
pub mod targets;
pub mod tenants;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

pub use state::AppState;

use error::ApiError;
use extract::{json_config, payload_config, MAX_BATCH_JSON, MAX_BODY, MAX_JSON};

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    ))
}

/// Register every route. The list is the source for the route inventory
/// tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config(MAX_JSON))
        .app_data(payload_config(MAX_BODY))
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/assets/lethe.css", web::get().to(pages::stylesheet))
        .configure(support::routes)
        .service(
            web::resource("/approvals/{token}")
                .route(web::get().to(approvals::show))
                .route(web::post().to(approvals::decide)),
        )
        .route("/status/{code}", web::get().to(facebook::status_page))
        .configure(opendsr::routes)
        .service(
            web::scope("/v1")
                .service(
                    web::resource("/erasure-requests/batch")
                        .app_data(json_config(MAX_BATCH_JSON))
                        .route(web::post().to(requests::submit_batch)),
                )
                .service(
                    web::resource("/erasure-requests")
                        .route(web::post().to(requests::submit))
                        .route(web::get().to(requests::list)),
                )
                .route("/erasure-requests/{id}", web::get().to(requests::get))
                .route(
                    "/erasure-requests/{id}/cancel",
                    web::post().to(requests::cancel),
                )
                .route(
                    "/erasure-requests/{id}/resend-approval",
                    web::post().to(requests::resend_approval),
                )
                .route(
                    "/erasure-requests/{id}/retry",
                    web::post().to(erasure::retry),
                )
                .route(
                    "/erasure-requests/{id}/complete",
                    web::post().to(erasure::complete),
                )
                .route(
                    "/erasure-requests/{id}/receipt",
                    web::get().to(erasure::receipt),
                )
                .route(
                    "/erasure-requests/{id}/targets",
                    web::get().to(erasure::calls),
                )
                .route(
                    "/erasure-requests/{id}/targets/{target}/confirm",
                    web::post().to(erasure::confirm),
                )
                .route("/receipts/public-key", web::get().to(erasure::public_key))
                .service(
                    web::resource("/tenants/{id}/targets")
                        .route(web::post().to(targets::create))
                        .route(web::get().to(targets::list)),
                )
                .route(
                    "/tenants/{id}/targets/{target}",
                    web::patch().to(targets::patch),
                )
                .route("/subjects/{subject_id}", web::get().to(subjects::status))
                .route(
                    "/integrations/facebook/data-deletion",
                    web::post().to(facebook::deletion_query),
                )
                .route(
                    "/integrations/facebook/{tenant}/data-deletion",
                    web::post().to(facebook::deletion_for),
                )
                .route(
                    "/tenants/{id}/integrations/facebook",
                    web::put().to(facebook::configure),
                )
                .service(
                    web::resource("/tenants")
                        .route(web::post().to(tenants::create))
                        .route(web::get().to(tenants::list)),
                )
                .service(
                    web::resource("/tenants/{id}")
                        .route(web::get().to(tenants::get))
                        .route(web::patch().to(tenants::patch)),
                )
                .service(
                    web::resource("/tenants/{id}/api-keys")
                        .route(web::post().to(tenants::create_key))
                        .route(web::get().to(tenants::list_keys)),
                )
                .route(
                    "/tenants/{id}/api-keys/{key_id}",
                    web::delete().to(tenants::revoke_key),
                ),
        )
        .default_service(web::to(not_found));
}
