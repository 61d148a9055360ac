//! OpenDSR 2.0 processor endpoints (`/opendsr/v1/...`), and the same handlers
//! for old OpenGDPR clients (`/opengdpr/v1/...`, with `X-OpenGDPR-*` headers).
//! Every response is signed with the processor key (RSA PKCS#1 v1.5 SHA-256
//! over the raw body); errors use the spec's shape.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::{json, Value};

use super::auth::TenantKey;
use super::error::ApiError;
use super::openapi::{OpenDsrDiscovery, OpenDsrErrorBody, OpenDsrRequest, OpenDsrStatus};
use super::state::AppState;
use crate::domain::deadline;
use crate::domain::opendsr::{self, SpecError, Status, API_VERSION, IDENTITY_TYPES};
use crate::domain::request::NewErasure;
use crate::domain::values::Initiator;
use crate::domain::{Event, RequestState, TenantId};
use crate::store::opendsr::{self as mappings, Mapping, NewMapping};
use crate::store::requests::{self, Change, Submission};
use crate::store::{tenants, StoreError};

/// Which protocol name a scope speaks (header names and URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub opengdpr: bool,
}

impl Flavor {
    pub const OPENDSR: Flavor = Flavor { opengdpr: false };
    pub const OPENGDPR: Flavor = Flavor { opengdpr: true };

    fn of(req: &HttpRequest) -> Self {
        req.app_data::<Flavor>().copied().unwrap_or(Self::OPENDSR)
    }

    fn prefix(self) -> &'static str {
        if self.opengdpr {
            "opengdpr/v1"
        } else {
            "opendsr/v1"
        }
    }

    fn domain(self) -> &'static str {
        if self.opengdpr {
            "OpenGDPR"
        } else {
            "OpenDSR"
        }
    }
}

/// A JSON response signed with the processor key.
fn signed(state: &AppState, flavor: Flavor, status: StatusCode, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("JSON serializes");
    let (domain_header, signature_header) = crate::jobs::opendsr::headers(flavor.opengdpr);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            domain_header,
            state
                .public_url
                .host_str()
                .unwrap_or("localhost")
                .to_owned(),
        ));
    if let Some(key) = &state.opendsr {
        resp.insert_header((signature_header, key.sign(&bytes)));
    }
    resp.body(bytes)
}

fn error(state: &AppState, flavor: Flavor, e: SpecError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    signed(
        state,
        flavor,
        status,
        &json!({
            "error": {
                "code": e.status,
                "message": e.message,
                "errors": [{ "domain": flavor.domain(), "reason": e.reason, "message": e.message }],
            }
        }),
    )
}

fn from_api(e: ApiError) -> SpecError {
    SpecError {
        status: e.status.as_u16(),
        reason: e.code,
        message: e.message,
    }
}

fn from_store(e: StoreError) -> SpecError {
    match e {
        StoreError::NotFound => not_found(),
        other => from_api(other.into()),
    }
}

fn not_found() -> SpecError {
    SpecError {
        status: 404,
        reason: "not_found",
        message: "no request with this subject_request_id".into(),
    }
}

fn not_configured() -> SpecError {
    SpecError {
        status: 503,
        reason: "processor_not_configured",
        message: "OpenDSR is not configured on this processor (no signing key)".into(),
    }
}

/// The caller's tenant, and the processor key, or a spec error.
/// The caller's key first (an unknown caller hears 401 either way), then
/// whether this processor can sign.
fn ready(state: &AppState, key: Result<TenantKey, ApiError>) -> Result<TenantKey, SpecError> {
    let key = key.map_err(from_api)?;
    if state.opendsr.is_none() {
        return Err(not_configured());
    }
    Ok(key)
}

fn status_body(m: &Mapping, due: chrono::DateTime<chrono::Utc>, st: RequestState) -> Value {
    json!({
        "controller_id": m.tenant_id,
        "expected_completion_time": due,
        "subject_request_id": m.subject_request_id,
        "request_status": Status::of(st),
        "api_version": API_VERSION,
        "results_url": null,
    })
}

#[utoipa::path(
    get, path = "/opendsr/v1/discovery",
    description = "OpenDSR discovery (also under `/opengdpr/v1`).",
    responses(
        (status = 200, description = "What this processor supports", body = OpenDsrDiscovery, headers(("X-OpenDSR-Processor-Domain" = String, description = "The processor's host (`X-OpenGDPR-Processor-Domain` under /opengdpr)"), ("X-OpenDSR-Signature" = String, description = "Base64 signature of the body with the processor key (`X-OpenGDPR-Signature` under /opengdpr)"))),
        (status = 503, description = "OpenDSR is not configured (`processor_not_configured`)", body = OpenDsrErrorBody),
    ),
)]
pub async fn discovery(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let flavor = Flavor::of(&req);
    if state.opendsr.is_none() {
        return error(&state, flavor, not_configured());
    }
    let cert = state
        .public_url
        .join(&format!("{}/certificate", flavor.prefix()))
        .map(|u| u.to_string())
        .ok();
    let identities: Vec<Value> = IDENTITY_TYPES
        .iter()
        .map(|t| json!({ "identity_type": t, "identity_format": "raw" }))
        .collect();
    signed(
        &state,
        flavor,
        StatusCode::OK,
        &json!({
            "api_version": API_VERSION,
            "supported_identities": identities,
            "supported_subject_request_types": ["erasure"],
            "processor_certificate": cert,
        }),
    )
}

#[utoipa::path(
    get, path = "/opendsr/v1/certificate",
    description = "The processor's X.509 certificate, whose key signs every response.",
    responses(
        (status = 200, description = "PEM", content_type = "application/x-pem-file", body = String),
        (status = 503, description = "OpenDSR is not configured (`processor_not_configured`)", body = OpenDsrErrorBody),
    ),
)]
pub async fn certificate(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match &state.opendsr {
        Some(key) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/x-pem-file"))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(key.certificate_pem().to_owned()),
        None => error(&state, Flavor::of(&req), not_configured()),
    }
}

#[utoipa::path(
    post, path = "/opendsr/v1/requests",
    description = "Submit an OpenDSR erasure request (the controller is the tenant of the API key).",
    request_body = OpenDsrRequest,
    responses(
        (status = 201, description = "Accepted for processing", body = OpenDsrStatus, headers(("X-OpenDSR-Processor-Domain" = String, description = "The processor's host (`X-OpenGDPR-Processor-Domain` under /opengdpr)"), ("X-OpenDSR-Signature" = String, description = "Base64 signature of the body with the processor key (`X-OpenGDPR-Signature` under /opengdpr)"))),
        (status = 400, description = "Invalid request (`reason` names the problem)", body = OpenDsrErrorBody),
        (status = 409, description = "This subject_request_id was used with another request", body = OpenDsrErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = OpenDsrErrorBody),
        (status = 503, description = "OpenDSR is not configured, or the database is unavailable", body = OpenDsrErrorBody),
    ),
)]
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Result<TenantKey, ApiError>,
    body: web::Bytes,
) -> HttpResponse {
    let flavor = Flavor::of(&req);
    match submit_inner(&state, key, &body, flavor).await {
        Ok(v) => signed(&state, flavor, StatusCode::CREATED, &v),
        Err(e) => error(&state, flavor, e),
    }
}

async fn submit_inner(
    state: &web::Data<AppState>,
    key: Result<TenantKey, ApiError>,
    body: &[u8],
    flavor: Flavor,
) -> Result<Value, SpecError> {
    let key = ready(state, key)?;
    let dsr = opendsr::parse_request(body)?;
    if !state.callbacks_allow_private && dsr.status_callback_urls.iter().any(|u| u.names_inside()) {
        return Err(SpecError::bad(
            "invalid_status_callback_url",
            "status_callback_urls must be public addresses (private, loopback and link-local addresses are refused)",
        ));
    }
    let (tenant, actor) = (key.tenant, key.actor());
    let subject_hash = state.subject_key.hash(tenant, &dsr.subject_id);
    let workflow = state.workflow.clone();
    let sri = dsr.subject_request_id.to_string();
    let urls: Vec<String> = dsr
        .status_callback_urls
        .iter()
        .map(|u| u.as_str().to_owned())
        .collect();
    let (mapping, request) = state
        .store
        .write(move |conn| {
            let now = deadline::now();
            // A replay of a known subject_request_id answers as the first time.
            if let Some(m) = mappings::find(conn, tenant, &sri)? {
                let r = requests::get(conn, tenant, m.request_id)?;
                return Ok((m, r));
            }
            let t = tenants::get(conn, tenant)?;
            let outcome = requests::submit(
                conn,
                Submission {
                    tenant,
                    policy: t.settings.policy,
                    notify_subject: t.settings.notify_subject,
                    workflow: &workflow,
                    actor,
                    erasure: NewErasure {
                        subject_id: dsr.subject_id,
                        subject_email: dsr.subject_email,
                        initiator: Initiator::Subject,
                        reason: None,
                        callback_url: None,
                    },
                    subject_hash,
                    idempotency_key: Some(format!("opendsr:{sri}")),
                    batch_id: None,
                },
                now,
            )?;
            let r = outcome.request().clone();
            let m = mappings::insert(
                conn,
                NewMapping {
                    tenant,
                    subject_request_id: &sri,
                    request: r.id,
                    regulation: &dsr.regulation,
                    api_version: &dsr.api_version,
                    status_callback_urls: &urls,
                    submitted_at: dsr.submitted_time,
                    opengdpr: flavor.opengdpr,
                },
                now,
            )?;
            Ok((m, r))
        })
        .await
        .map_err(|e| match e {
            StoreError::IdempotencyKeyReused => SpecError {
                status: 409,
                reason: "duplicate_subject_request_id",
                message: "this subject_request_id was used before for another subject".into(),
            },
            other => from_store(other),
        })?;
    let key = state.opendsr.as_ref().ok_or_else(not_configured)?;
    Ok(json!({
        "controller_id": tenant,
        "expected_completion_time": request.due_at,
        "received_time": mapping.received_at,
        "encoded_request": base64::engine::general_purpose::STANDARD.encode(body),
        "processor_signature": key.sign(body),
        "subject_request_id": mapping.subject_request_id,
        "request_status": Status::of(request.state),
        "api_version": API_VERSION,
    }))
}

fn lookup_id(raw: &str) -> Result<String, SpecError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| not_found())
}

#[utoipa::path(
    get, path = "/opendsr/v1/requests/{subject_request_id}",
    params(("subject_request_id" = uuid::Uuid, Path, description = "The controller's request id")),
    responses(
        (status = 200, description = "The request's status", body = OpenDsrStatus, headers(("X-OpenDSR-Processor-Domain" = String, description = "The processor's host (`X-OpenGDPR-Processor-Domain` under /opengdpr)"), ("X-OpenDSR-Signature" = String, description = "Base64 signature of the body with the processor key (`X-OpenGDPR-Signature` under /opengdpr)"))),
        (status = 404, description = "No such request for this controller", body = OpenDsrErrorBody),
        (status = 503, description = "OpenDSR is not configured, or the database is unavailable", body = OpenDsrErrorBody),
    ),
)]
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Result<TenantKey, ApiError>,
    path: web::Path<String>,
) -> HttpResponse {
    let flavor = Flavor::of(&req);
    let result = async {
        let tenant: TenantId = ready(&state, key)?.tenant;
        let sri = lookup_id(&path)?;
        state
            .store
            .read(move |conn| {
                let m = mappings::find(conn, tenant, &sri)?.ok_or(StoreError::NotFound)?;
                let r = requests::get(conn, tenant, m.request_id)?;
                Ok(status_body(&m, r.due_at, r.state))
            })
            .await
            .map_err(from_store)
    }
    .await;
    match result {
        Ok(v) => signed(&state, flavor, StatusCode::OK, &v),
        Err(e) => error(&state, flavor, e),
    }
}

#[utoipa::path(
    delete, path = "/opendsr/v1/requests/{subject_request_id}",
    params(("subject_request_id" = uuid::Uuid, Path, description = "The controller's request id")),
    responses(
        (status = 202, description = "Cancelled (signed by the processor)", body = OpenDsrStatus, headers(("X-OpenDSR-Processor-Domain" = String, description = "The processor's host (`X-OpenGDPR-Processor-Domain` under /opengdpr)"), ("X-OpenDSR-Signature" = String, description = "Base64 signature of the body with the processor key (`X-OpenGDPR-Signature` under /opengdpr)"))),
        (status = 404, description = "No such request for this controller", body = OpenDsrErrorBody),
        (status = 409, description = "No longer cancellable", body = OpenDsrErrorBody),
        (status = 503, description = "OpenDSR is not configured, or the database is unavailable", body = OpenDsrErrorBody),
    ),
)]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Result<TenantKey, ApiError>,
    path: web::Path<String>,
) -> HttpResponse {
    let flavor = Flavor::of(&req);
    let result = async {
        let key = ready(&state, key)?;
        let (tenant, actor) = (key.tenant, key.actor());
        let sri = lookup_id(&path)?;
        let workflow = state.workflow.clone();
        state
            .store
            .write(move |conn| {
                let m = mappings::find(conn, tenant, &sri)?.ok_or(StoreError::NotFound)?;
                let r = requests::get(conn, tenant, m.request_id)?;
                if Status::of(r.state) != Status::Pending {
                    return Ok(Err(SpecError {
                        status: 409,
                        reason: "not_cancellable",
                        message: format!(
                            "only a pending request can be cancelled; this one is {}",
                            Status::of(r.state).as_str()
                        ),
                    }));
                }
                let r = requests::apply(
                    conn,
                    tenant,
                    m.request_id,
                    Change {
                        event: Event::Cancel,
                        actor: &actor,
                        detail: Some(
                            json!({ "via": "opendsr", "subject_request_id": sri }).to_string(),
                        ),
                        decision: None,
                    },
                    &workflow,
                    deadline::now(),
                )?;
                Ok(Ok((m, r)))
            })
            .await
            .map_err(from_store)?
    }
    .await;
    match result {
        Ok((m, r)) => {
            // The spec's cancellation response; `processor_signature` signs
            // the same body without that field (the header signs it all).
            let mut v = json!({
                "controller_id": m.tenant_id,
                "subject_request_id": m.subject_request_id,
                "received_time": deadline::now(),
                "request_status": Status::of(r.state),
                "api_version": API_VERSION,
            });
            if let Some(key) = &state.opendsr {
                let unsigned = serde_json::to_vec(&v).expect("JSON serializes");
                v["processor_signature"] = json!(key.sign(&unsigned));
            }
            signed(&state, flavor, StatusCode::ACCEPTED, &v)
        }
        Err(e) => error(&state, flavor, e),
    }
}
