//! Facebook's data-deletion callback. Facebook sends no API key: the tenant
//! is named in the URL (`/v1/integrations/facebook/{tenant}/data-deletion`,
//! or `?tenant=` on `/v1/integrations/facebook/data-deletion`) and the
//! request is authenticated by its HMAC signature with the tenant's app
//! secret. The answer is a status URL and a confirmation code; the status
//! page shows the request's state and dates, never who it is about.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::Admin;
use super::error::ApiError;
use super::extract::parse_id;
use super::openapi::{ErrorBody, FacebookApp, FacebookDeletion, FacebookForm};
use super::pages::page;
use super::state::AppState;
use crate::domain::audit::Actor;
use crate::domain::facebook::{self, SignedRequestError};
use crate::domain::request::NewErasure;
use crate::domain::values::{Initiator, SubjectId};
use crate::domain::{deadline, RequestState, TenantId};
use crate::store::facebook as store;
use crate::store::requests::{self, Submission};
use crate::store::tenants;

const CODE_KEY: &[u8] = b"lethe/facebook-confirmation-codes/v1";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppBody {
    pub app_id: String,
    pub app_secret: String,
}

/// `PUT /v1/tenants/{id}/integrations/facebook` (admin).
#[utoipa::path(
    put, path = "/v1/tenants/{id}/integrations/facebook",
    description = "Set the tenant's Facebook app (its id and secret) for the data deletion callback.",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = AppBody,
    responses(
        (status = 200, description = "Configured", body = FacebookApp),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub async fn configure(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<AppBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_id(&path, "tenant")?;
    let app_id = body.app_id.trim().to_owned();
    if app_id.is_empty() || app_id.len() > 64 || !app_id.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(ApiError::invalid(vec![super::error::FieldError {
            index: None,
            field: "app_id".into(),
            message: "must be 1 to 64 letters or digits".into(),
        }]));
    }
    let secret = body.app_secret.trim();
    if secret.len() < 8 || secret.len() > 256 || !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(vec![super::error::FieldError {
            index: None,
            field: "app_secret".into(),
            message: "must be 8 to 256 printable characters".into(),
        }]));
    }
    let sealed = state.sealer.seal(secret.as_bytes());
    let id = app_id.clone();
    state
        .store
        .write(move |conn| {
            tenants::get(conn, tenant)?;
            store::set_app(conn, tenant, &id, &sealed, deadline::now())
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::not_found("tenant"),
            other => other.into(),
        })?;
    let url = state
        .public_url
        .join(&format!("v1/integrations/facebook/{tenant}/data-deletion"))
        .map(|u| u.to_string())
        .ok();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "tenant_id": tenant,
        "app_id": app_id,
        "app_secret_set": true,
        "data_deletion_callback_url": url,
    })))
}

#[derive(Debug, Deserialize)]
pub struct DeletionForm {
    signed_request: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    tenant: Option<String>,
}

/// `POST /v1/integrations/facebook/{tenant}/data-deletion`
#[utoipa::path(
    post, path = "/v1/integrations/facebook/{tenant}/data-deletion",
    description = "Facebook's data deletion request callback. Authenticated by the form's `signed_request`, signed with the tenant's app secret (no bearer token).",
    params(("tenant" = TenantId, Path, description = "The tenant whose app this is")),
    request_body(content = FacebookForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Request recorded; the person can follow it at `url`", body = FacebookDeletion),
        (status = 400, description = "Missing tenant, unreadable form, or a bad `signed_request` (wrong signature, algorithm or payload)", body = ErrorBody),
        (status = 404, description = "The tenant has no Facebook app configured", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
    ),
)]
pub async fn deletion_for(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    deletion(state, &path, &body).await
}

/// `POST /v1/integrations/facebook/data-deletion?tenant={tenant}`
#[utoipa::path(
    post, path = "/v1/integrations/facebook/data-deletion",
    description = "Facebook's data deletion request callback, with the tenant in the query string. Authenticated by the form's `signed_request`, signed with the tenant's app secret (no bearer token).",
    params(TenantQuery),
    request_body(content = FacebookForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Request recorded; the person can follow it at `url`", body = FacebookDeletion),
        (status = 400, description = "Missing tenant, unreadable form, or a bad `signed_request` (wrong signature, algorithm or payload)", body = ErrorBody),
        (status = 404, description = "The tenant has no Facebook app configured", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody),
    ),
)]
pub async fn deletion_query(
    state: web::Data<AppState>,
    query: web::Query<TenantQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant = query.tenant.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "missing_tenant",
            "name the tenant: ?tenant=<id>, or use /v1/integrations/facebook/<tenant>/data-deletion",
        )
    })?;
    deletion(state, tenant, &body).await
}

fn refused(e: SignedRequestError) -> ApiError {
    ApiError::bad_request(e.code(), e.to_string())
}

async fn deletion(
    state: web::Data<AppState>,
    tenant: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_id(tenant, "tenant")?;
    let form: DeletionForm = serde_urlencoded::from_bytes(body).map_err(|_| {
        ApiError::bad_request(
            "invalid_form",
            "send application/x-www-form-urlencoded with signed_request",
        )
    })?;
    let signed_request = form
        .signed_request
        .filter(|s| !s.is_empty() && s.len() <= 8192)
        .ok_or_else(|| refused(SignedRequestError::Malformed))?;
    let sealed = state
        .store
        .read(move |conn| store::app(conn, tenant))
        .await?
        .ok_or_else(|| ApiError::not_found("Facebook app for this tenant"))?;
    let secret = state.sealer.open(&sealed.1).map_err(|_| {
        tracing::error!("a Facebook app secret cannot be unsealed");
        ApiError::internal()
    })?;
    let deletion = facebook::verify(&signed_request, &secret, deadline::now()).map_err(refused)?;
    let code =
        facebook::confirmation_code(&state.subject_key.derive(CODE_KEY), tenant, &signed_request);
    let code_hash = facebook::code_hash(&code);
    let subject_id = SubjectId::parse(&format!("facebook:{}", deletion.user_id))?;
    let subject_hash = state.subject_key.hash(tenant, &subject_id);
    let workflow = state.workflow.clone();
    state
        .store
        .write(move |conn| {
            if store::find(conn, &code_hash)?.is_some() {
                return Ok(()); // a replay: same code, nothing new
            }
            let t = tenants::get(conn, tenant)?;
            let now = deadline::now();
            let outcome = requests::submit(
                conn,
                Submission {
                    tenant,
                    policy: t.settings.policy,
                    notify_subject: t.settings.notify_subject,
                    workflow: &workflow,
                    actor: Actor::system("facebook"),
                    erasure: NewErasure {
                        subject_id,
                        subject_email: None,
                        initiator: Initiator::Subject,
                        reason: None,
                        callback_url: None,
                    },
                    subject_hash,
                    idempotency_key: Some(format!("facebook:{code_hash}")),
                    batch_id: None,
                },
                now,
            )?;
            store::record(conn, &code_hash, tenant, outcome.request().id, now)
        })
        .await?;
    let url = state
        .public_url
        .join(&format!("status/{code}"))
        .map_err(|_| ApiError::internal())?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "url": url.to_string(),
        "confirmation_code": code,
    })))
}

#[derive(Template)]
#[template(path = "pages/deletion_status.html")]
struct StatusPage<'a> {
    t: &'a crate::email::texts::Texts,
    code: &'a str,
    state: &'a str,
    meaning: &'a str,
    received: String,
    due: String,
    closed: Option<String>,
}

fn describe(s: RequestState) -> (&'static str, &'static str) {
    match s {
        RequestState::Pending | RequestState::AwaitingApproval => (
            "Received",
            "Your request is waiting for the service's privacy contact to approve it.",
        ),
        RequestState::Erasing | RequestState::Failed => (
            "In progress",
            "Your data is being deleted from the service's systems.",
        ),
        RequestState::Erased => ("Completed", "Your data has been deleted."),
        RequestState::Rejected => (
            "Declined",
            "The service's privacy contact declined the request; the service will tell you why.",
        ),
        RequestState::Cancelled => ("Withdrawn", "The request was withdrawn."),
    }
}

fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `GET /status/{code}`: the state of a deletion request.
#[utoipa::path(
    get, path = "/status/{code}",
    description = "The page Facebook links the person to: the state of their deletion request. The confirmation code is the credential.",
    params(("code" = String, Path, description = "The confirmation code")),
    responses(
        (status = 200, description = "The status page", content_type = "text/html", body = String),
        (status = 404, description = "Unknown code", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String),
    ),
)]
pub async fn status_page(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let t = crate::email::texts::texts(crate::domain::tenant::Locale::En);
    let code = path.into_inner();
    let not_found = || {
        page(
            StatusCode::NOT_FOUND,
            "<!DOCTYPE html><title>Not found</title><p>No deletion request has this confirmation code.</p>".into(),
        )
    };
    if !facebook::looks_like_code(&code) {
        return not_found();
    }
    let hash = facebook::code_hash(&code);
    let found = state
        .store
        .read(move |conn| match store::find(conn, &hash)? {
            Some((tenant, id)) => Ok(Some(requests::get(conn, tenant, id)?)),
            None => Ok(None),
        })
        .await;
    let r = match found {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!(error = %e, "status page lookup failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "<!DOCTYPE html><title>Unavailable</title><p>Try again shortly.</p>".into(),
            );
        }
    };
    let (label, meaning) = describe(r.state);
    let html = StatusPage {
        t,
        code: &code,
        state: label,
        meaning,
        received: day(r.received_at),
        due: day(r.due_at),
        closed: r.closed_at.map(day),
    }
    .render();
    match html {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => {
            tracing::error!(error = %e, "status page did not render");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!DOCTYPE html><title>Error</title><p>Something went wrong.</p>".into(),
            )
        }
    }
}
