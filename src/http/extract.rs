//! Input handling shared by the handlers: JSON bodies, query strings and path
//! ids, each turned into a clear 4xx.

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest JSON body of a single-object endpoint.
pub const MAX_JSON: usize = 64 * 1024;
/// Largest batch body (1,000 requests).
pub const MAX_BATCH_JSON: usize = 4 * 1024 * 1024;
/// Largest raw body (forms, signed callbacks, bodies read as bytes) of every
/// other endpoint.
pub const MAX_BODY: usize = 64 * 1024;

/// Raw-body limit (`web::Bytes`, forms).
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

/// actix answers an over-long raw body with a plain-text 413; make it the
/// API's JSON error like every other 4xx.
pub fn json_payload_errors<B: actix_web::body::MessageBody + 'static>(
) -> actix_web::middleware::ErrorHandlers<B> {
    use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
    use actix_web::ResponseError;
    ErrorHandlers::new().handler(StatusCode::PAYLOAD_TOO_LARGE, |res| {
        let is_json = res
            .response()
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let body = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body may be at most {MAX_BODY} bytes"),
        )
        .error_response();
        let (req, _) = res.into_parts();
        Ok(ErrorHandlerResponse::Response(
            actix_web::dev::ServiceResponse::new(req, body).map_into_right_body(),
        ))
    })
}

pub fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body may be at most {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(e) => deserialize_error(e),
        _ => ApiError::bad_request("malformed_json", "the body could not be read"),
    }
}

fn deserialize_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the body does not match the expected shape: {e}"),
        ),
        _ => ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")),
    }
}

/// JSON extractor configuration for a body limit.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(&err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::bad_request("invalid_query", message).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::bad_request("invalid_path", err.to_string()).into())
}

/// Parse an optional JSON body (empty means none).
pub fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.starts_with("application/json") || v.contains("+json"))
        .unwrap_or(false);
    if !is_json {
        return Err(json_error(&JsonPayloadError::ContentType));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| deserialize_error(&e))
}

/// Parse a path segment as a typed id; garbage is a 404 (no such thing).
pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}: ids are UUIDs"),
        )
    })
}
