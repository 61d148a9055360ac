//! Liveness and readiness.

use actix_web::{web, HttpResponse};

use super::openapi::{Health, Ready};
use super::state::AppState;

#[utoipa::path(
    get, path = "/healthz",
    description = "Liveness: the process answers.",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(
    get, path = "/metrics",
    description = "Prometheus metrics (no personal data). The figures read from the database (requests by state, overdue, job queues) are at most LETHE_METRICS_MAX_AGE_SECS old.",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", content_type = "text/plain", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/plain", body = String),
    ),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match crate::metrics::render(&state.store, &state.gauges).await {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: database unavailable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("# database unavailable\n")
        }
    }
}

/// How long readiness waits for the database: a probe must hear "not ready"
/// quickly (within the probes' 2 s), not after the pool's acquire timeout.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

#[utoipa::path(
    get, path = "/readyz",
    description = "Readiness: the database answers.",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "The database is unreachable", body = Ready),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ping = tokio::time::timeout(READY_TIMEOUT, state.store.ping())
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::Unavailable(
                "no connection within the readiness timeout".into(),
            ))
        });
    match ping {
        Ok(()) => {
            HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "database": "ok" }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "status": "unavailable",
                "database": "unreachable",
            }))
        }
    }
}
