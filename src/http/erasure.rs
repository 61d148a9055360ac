//! The erasure's progress over HTTP: targets' late confirmations (signed),
//! the platform's own completion, retry after a failure, and the receipt.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::auth::TenantKey;
use super::error::ApiError;
use super::extract::parse_id;
use super::openapi::{DataList, ErrorBody, PublicKey, TargetCall};
use super::requests::RequestView;
use super::state::AppState;
use crate::domain::audit::Actor;
use crate::domain::target::CallStatus;
use crate::domain::{deadline, signature, Event, RequestId, RequestState};
use crate::jobs::erasure::complete_if_done;
use crate::store::requests::{self, Change, Note};
use crate::store::{receipts, targets, StoreError};

fn request_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("erasure request"),
        other => other.into(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Confirmed {
    request_id: RequestId,
    target: String,
    status: CallStatus,
    request_state: RequestState,
}

/// `POST /v1/erasure-requests/{id}/targets/{target}/confirm`, signed with the
/// target's secret (`Lethe-Signature`). Replays are harmless.
#[utoipa::path(
    post, path = "/v1/erasure-requests/{id}/targets/{target}/confirm",
    description = "An erasure target that answered 202 confirms here that it erased the subject. Authenticated by the header `Lethe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">` with the target's secret (no bearer token). Replays are harmless.",
    params(("id" = RequestId, Path, description = "The erasure request"), ("target" = String, Path, description = "The target's id"),
        ("Lethe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256>`")),
    request_body(content = Object, description = "Any JSON (signed as sent)", content_type = "application/json"),
    responses(
        (status = 200, description = "Confirmed", body = Confirmed),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
        (status = 404, description = "No such request or target", body = ErrorBody),
        (status = 409, description = "The target was not called for this request (`not_called`)", body = ErrorBody),
    ),
)]
pub async fn confirm(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path.0, "erasure request")?;
    let key = path.1.clone();
    let header = req
        .headers()
        .get(signature::HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_signature",
                "sign the body: Lethe-Signature: t=...,v1=...",
            )
        })?;
    let (request, target) = state
        .store
        .read(move |conn| {
            let r = requests::get_any(conn, id)?;
            let t = targets::find(conn, r.tenant_id, &key)?;
            Ok((r, t))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("erasure request or target"),
            other => other.into(),
        })?;
    let secret = state.sealer.open(&target.secret_box).map_err(|e| {
        tracing::error!(error = %e, "target secret unreadable");
        ApiError::internal()
    })?;
    if let Err(e) = signature::verify(&header, &secret, &body, chrono::Utc::now().timestamp()) {
        tracing::warn!(request = %id, target = %target.id, problem = %e, "target confirmation with a bad signature");
        return Err(ApiError::unauthorized("invalid_signature", e.to_string()));
    }
    let (tenant, target_id, workflow) =
        (request.tenant_id, target.id.clone(), state.workflow.clone());
    let (call, now_state) = state
        .store
        .write(move |conn| {
            let now = deadline::now();
            // Other targets' answers to this request wait for this one.
            let mut held = requests::hold(conn, tenant, id)?;
            let call = targets::call(conn, id, &target_id)?;
            if call.status() != CallStatus::Confirmed {
                targets::record(conn, id, &target_id, CallStatus::Confirmed, None, None, now)?;
                let detail = serde_json::json!({ "target_id": target_id, "late": true });
                let note = Note {
                    what: "target_confirmed",
                    actor: &Actor::system("target"),
                    detail: Some(detail.to_string()),
                    now,
                    finish: None,
                };
                requests::note_held(conn, &mut held, note)?;
                complete_if_done(conn, &mut held, id, &workflow, now)?;
            }
            let call = targets::call(conn, id, &target_id)?;
            Ok((call, held.state()?))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::new(
                StatusCode::CONFLICT,
                "not_called",
                "this target has not been asked to erase this request",
            ),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(Confirmed {
        request_id: id,
        target: target.name,
        status: call.status(),
        request_state: now_state,
    }))
}

/// `POST /v1/erasure-requests/{id}/complete`: a tenant without erasure
/// targets confirms it erased the data itself.
#[utoipa::path(
    post, path = "/v1/erasure-requests/{id}/complete",
    description = "The platform says it erased the subject (for tenants without erasure targets).",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 200, description = "Erased", body = RequestView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 409, description = "Not erasing, or targets still pending (`targets_pending`)", body = ErrorBody),
    ),
)]
pub async fn complete(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let (tenant, actor, workflow) = (key.tenant, key.actor(), state.workflow.clone());
    let r = state
        .store
        .write(move |conn| {
            let now = deadline::now();
            requests::get(conn, tenant, id)?;
            if !targets::calls(conn, id)?.is_empty() {
                return Ok(Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "targets_pending",
                    "this request's erasure targets confirm it themselves",
                )));
            }
            let r = requests::apply(
                conn,
                tenant,
                id,
                Change {
                    event: Event::Complete,
                    actor: &actor,
                    detail: None,
                    decision: None,
                },
                &workflow,
                now,
            )?;
            Ok(Ok(r))
        })
        .await
        .map_err(request_not_found)??;
    Ok(HttpResponse::Ok().json(RequestView::new(&r, deadline::now())))
}

/// `POST /v1/erasure-requests/{id}/retry`: resume a failed erasure (targets
/// that confirmed are not called again).
#[utoipa::path(
    post, path = "/v1/erasure-requests/{id}/retry",
    description = "Retry a failed erasure: the targets that did not confirm are called again.",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 202, description = "Erasing again", body = RequestView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 409, description = "The request has not failed (`invalid_transition`)", body = ErrorBody),
    ),
)]
pub async fn retry(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let (tenant, actor, workflow) = (key.tenant, key.actor(), state.workflow.clone());
    let r = state
        .store
        .write(move |conn| {
            requests::apply(
                conn,
                tenant,
                id,
                Change {
                    event: Event::Retry,
                    actor: &actor,
                    detail: None,
                    decision: None,
                },
                &workflow,
                deadline::now(),
            )
        })
        .await
        .map_err(request_not_found)?;
    Ok(HttpResponse::Accepted().json(RequestView::new(&r, deadline::now())))
}

/// `GET /v1/erasure-requests/{id}/receipt`: the signed certificate of erasure.
#[utoipa::path(
    get, path = "/v1/erasure-requests/{id}/receipt",
    description = "The signed certificate of erasure (Ed25519; verify with `/v1/receipts/public-key`).",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 200, description = "The receipt", body = crate::domain::receipt::Receipt),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 409, description = "Not erased yet (`not_erased`)", body = ErrorBody),
    ),
)]
pub async fn receipt(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let tenant = key.tenant;
    let body = state
        .store
        .read(move |conn| receipts::body(conn, tenant, id))
        .await
        .map_err(request_not_found)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_erased",
                "a receipt exists once the request is erased",
            )
        })?;
    Ok(HttpResponse::Ok().json(state.signer.sign(body)))
}

/// `GET /v1/receipts/public-key`: the key receipts are signed with.
#[utoipa::path(
    get, path = "/v1/receipts/public-key",
    description = "The public key erasure receipts are signed with.",
    responses((status = 200, description = "The key", body = PublicKey)),
)]
pub async fn public_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "algorithm": "ed25519",
        "public_key": state.signer.public_key(),
    }))
}

/// The state of each target for a request (shown with the request).
#[utoipa::path(
    get, path = "/v1/erasure-requests/{id}/targets",
    description = "Each erasure target's status for the request.",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 200, description = "The targets' calls", body = DataList<TargetCall>),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
    ),
)]
pub async fn calls(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let tenant = key.tenant;
    let calls = state
        .store
        .read(move |conn| {
            requests::get(conn, tenant, id)?;
            targets::calls(conn, id)
        })
        .await
        .map_err(request_not_found)?;
    let data: Vec<serde_json::Value> = calls
        .iter()
        .map(|c| {
            serde_json::json!({
                "target_id": c.target_id,
                "target": c.target_name,
                "status": c.status(),
                "attempts": c.attempts,
                "last_status_code": c.last_status_code,
                "confirmed_at": c.confirmed_at(),
                // The owner who confirmed a manual target by hand.
                "confirmed_by": c.confirmed_by,
                "last_error": c.last_error,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}
