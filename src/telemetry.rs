//! Logging. Lines carry method, route pattern (never the raw path: it can hold
//! a subject id or a token), status and latency. Personal data never reaches
//! a log line.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Access log middleware.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let request_id = uuid::Uuid::now_v7();
    let span = tracing::info_span!("http", %request_id, %method, route = %route);
    let _guard = span.enter();
    drop(_guard);
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let secs = start.elapsed().as_secs_f64();
    crate::metrics::http_request(method.as_str(), &route, status, secs);
    let ms = secs * 1000.0;
    if status >= 500 {
        tracing::error!(parent: &span, status, latency_ms = ms, "request failed");
    } else {
        tracing::info!(parent: &span, status, latency_ms = ms, "request");
    }
    res
}
