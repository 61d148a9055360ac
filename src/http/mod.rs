//! The HTTP surface. Handlers parse and authenticate, call the store, and map
//! results to JSON; they never run background work themselves (jobs are
//! written through the store).

pub mod approvals;
pub mod auth;
pub mod docs;
pub mod erasure;
pub mod error;
pub mod extract;
pub mod facebook;
pub mod health;
pub mod limit;
pub mod openapi;
pub mod opendsr;
pub mod owners;
pub mod pages;
pub mod requests;
pub mod routes;
pub mod state;
pub mod subjects;
pub mod support;
pub mod targets;
pub mod tenants;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

pub use state::AppState;

use error::ApiError;
use extract::{json_config, payload_config, MAX_BODY, MAX_JSON};

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    ))
}

/// Register every route (the table in [`routes`]) and the fallback.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config(MAX_JSON))
        .app_data(payload_config(MAX_BODY))
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .configure(routes::routes)
        .default_service(web::to(not_found));
}
