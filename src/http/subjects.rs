//! `GET /v1/subjects/{subject_id}`: must the platform keep this account
//! active, and which request decides it?

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::auth::TenantKey;
use super::error::ApiError;
use super::openapi::ErrorBody;
use super::requests::RequestView;
use super::state::AppState;
use crate::domain::deadline;
use crate::domain::values::SubjectId;
use crate::domain::RequestState;
use crate::store::requests;

#[derive(Serialize, utoipa::ToSchema)]
struct SubjectStatus {
    subject_id: String,
    /// `false` only while an erasure is under way: the platform may then
    /// deactivate and erase the account.
    keep_account_active: bool,
    /// Why, as a stable code.
    reason: &'static str,
    /// The open request, or else the most recent one.
    request: Option<RequestView>,
}

#[utoipa::path(
    get, path = "/v1/subjects/{subject_id}",
    description = "May the platform deactivate and erase this subject's account? `keep_account_active` is false only while an erasure is under way.",
    params(("subject_id" = String, Path, description = "The platform's id of the subject")),
    responses(
        (status = 200, description = "The subject's status", body = SubjectStatus),
        (status = 400, description = "Invalid subject id", body = ErrorBody),
        (status = 422, description = "The subject id is not a valid one (too long, control characters)", body = ErrorBody),
    ),
)]
pub async fn status(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subject = SubjectId::parse(&path)?;
    let hash = state.subject_key.hash(key.tenant, &subject);
    let tenant = key.tenant;
    let found = state
        .store
        .read(move |conn| requests::for_subject(conn, tenant, &hash))
        .await?;
    let (keep, reason) = match found.as_ref().map(|r| r.state) {
        None => (true, "no_erasure_requested"),
        Some(RequestState::Pending) => (true, "erasure_pending"),
        Some(RequestState::AwaitingApproval) => (true, "awaiting_approval"),
        Some(RequestState::Erasing) => (false, "erasure_in_progress"),
        Some(RequestState::Failed) => (false, "erasure_failed_support_notified"),
        Some(RequestState::Erased) => (true, "previously_erased"),
        Some(RequestState::Rejected) => (true, "erasure_rejected"),
        Some(RequestState::Cancelled) => (true, "erasure_cancelled"),
    };
    let now = deadline::now();
    Ok(HttpResponse::Ok().json(SubjectStatus {
        subject_id: subject.as_str().to_owned(),
        keep_account_active: keep,
        reason,
        request: found.as_ref().map(|r| RequestView::new(r, now)),
    }))
}
