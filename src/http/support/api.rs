//! The dashboard as JSON under `/v1/support`, for support API tokens: the
//! overview, the queue (same filters as the page), one request with its
//! timeline, the actions, bulk actions and the CSV export.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::SupportToken;
use super::pages::{command, csv_response, export_filter};
use super::queue::{load_page, QueueParams, RowJson};
use super::{action_from_path, perform, ItemResult, MAX_BULK};
use crate::domain::deadline::{self, max_extended_due_at};
use crate::domain::support::{DaysLeft, Urgency};
use crate::domain::values::InvalidValue;
use crate::domain::{RequestId, RequestState};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{optional_json, parse_id};
use crate::http::openapi::ErrorBody;
use crate::http::state::AppState;
use crate::store::support::actions::{Action, Extended, Refused};
use crate::store::support::queue::{self, QueueItem};
use crate::store::StoreError;

pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    ))
}

fn invalid_query(e: InvalidValue) -> ApiError {
    ApiError::bad_request("invalid_query", format!("{}: {}", e.field, e.message))
}

fn request_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("erasure request"),
        other => other.into(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct TenantJson {
    tenant_id: String,
    tenant_name: String,
    #[schema(value_type = HashMap<String, i64>)]
    open_by_state: serde_json::Map<String, serde_json::Value>,
    open: i64,
    overdue: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OverviewJson {
    as_of: DateTime<Utc>,
    /// Open requests by state.
    #[schema(value_type = HashMap<String, i64>)]
    open_by_state: serde_json::Map<String, serde_json::Value>,
    /// Requests closed in the last 30 days, by state.
    #[schema(value_type = HashMap<String, i64>)]
    closed_last_30_days: serde_json::Map<String, serde_json::Value>,
    open: i64,
    overdue: i64,
    due_within_7_days: i64,
    by_tenant: Vec<TenantJson>,
    awaiting_longest: Vec<RowJson>,
    failed: Vec<RowJson>,
}

#[utoipa::path(
    get, path = "/v1/support/overview",
    description = "Counts by state and tenant, the longest-waiting and the failed requests.",
    responses((status = 200, description = "The overview", body = OverviewJson)),
)]
pub async fn overview(
    _t: SupportToken,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = deadline::now();
    let o = state
        .store
        .read(move |conn| queue::overview(conn, now, 10))
        .await?;
    let counts = |v: &[(RequestState, i64)]| {
        v.iter()
            .map(|(s, n)| (s.as_str().to_owned(), (*n).into()))
            .collect()
    };
    let by_tenant = o
        .by_tenant
        .iter()
        .map(|t| TenantJson {
            tenant_id: t.tenant_id.clone(),
            tenant_name: t.tenant_name.clone(),
            open_by_state: RequestState::OPEN
                .iter()
                .zip(t.open_by_state)
                .map(|(s, n)| (s.as_str().to_owned(), n.into()))
                .collect(),
            open: t.open,
            overdue: t.overdue,
        })
        .collect();
    Ok(HttpResponse::Ok().json(OverviewJson {
        as_of: now,
        open_by_state: counts(&o.open_by_state),
        closed_last_30_days: counts(&o.closed_recently),
        open: o.open,
        overdue: o.overdue,
        due_within_7_days: o.due_within_7_days,
        by_tenant,
        awaiting_longest: o
            .awaiting_longest
            .iter()
            .map(|r| RowJson::new(r, now))
            .collect(),
        failed: o.failed.iter().map(|r| RowJson::new(r, now)).collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SupportPage {
    data: Vec<RowJson>,
    next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/support/requests",
    description = "The support queue across tenants, filtered, a page at a time.",
    params(QueueParams),
    responses(
        (status = 200, description = "A page", body = SupportPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ),
)]
pub async fn list(
    _t: SupportToken,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueueParams::parse(req.query_string()).map_err(invalid_query)?;
    let (filter, search) = params.filter(50).map_err(invalid_query)?;
    let key = state.subject_key.clone();
    let now = deadline::now();
    let (rows, next) = state
        .store
        .read(move |conn| load_page(conn, &key, filter, search, now))
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::bad_request("invalid_query", m),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(SupportPage {
        data: rows.iter().map(|r| RowJson::new(r, now)).collect(),
        next_cursor: next,
    }))
}

#[utoipa::path(
    get, path = "/v1/support/requests/export.csv",
    description = "The filtered queue as CSV (no personal data).",
    params(QueueParams),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ),
)]
pub async fn export(
    t: SupportToken,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let filter = export_filter(&state, req.query_string())
        .await?
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    tracing::info!(user = %t.user.id, "support CSV export");
    Ok(csv_response(&state, filter, deadline::now()))
}

#[derive(Serialize, utoipa::ToSchema)]
struct DeadlineJson {
    received_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    /// One month after receipt.
    original_due_at: DateTime<Utc>,
    /// The latest deadline an extension may set.
    max_extended_due_at: DateTime<Utc>,
    days_left: i64,
    urgency: Urgency,
    overdue: bool,
    extended_at: Option<DateTime<Utc>>,
    extended_by: Option<String>,
    extension_reason: Option<String>,
    can_extend: bool,
    /// Why not, when `can_extend` is false.
    cannot_extend: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct EventJson {
    seq: i64,
    at: DateTime<Utc>,
    event: String,
    from_state: Option<String>,
    to_state: String,
    actor_kind: String,
    actor_id: String,
    detail: Option<serde_json::Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct JobJson {
    id: String,
    kind: String,
    run_at: DateTime<Utc>,
    attempts: i32,
    max_attempts: i32,
    finished_at: Option<DateTime<Utc>>,
    dead: bool,
    last_error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DetailJson {
    request: RowJson,
    subject_email_given: bool,
    reason: Option<String>,
    rejection_code: Option<String>,
    cancel_reason: Option<String>,
    deadline: DeadlineJson,
    /// Audit events, oldest first.
    timeline: Vec<EventJson>,
    /// The timeline's email events (approval emails, reminders, failures,
    /// notices to the subject).
    emails: Vec<EventJson>,
    jobs: Vec<JobJson>,
    /// Erasure targets and their status.
    targets: Option<Vec<serde_json::Value>>,
}

const EMAIL_EVENTS: [&str; 4] = [
    "approval_email_sent",
    "approval_reminder_sent",
    "approval_email_failed",
    "subject_notified",
];

#[utoipa::path(
    get, path = "/v1/support/requests/{id}",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 200, description = "The request with its deadline, timeline, emails, jobs and targets", body = DetailJson),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
    ),
)]
pub async fn get(
    _t: SupportToken,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let d = state
        .store
        .read(move |conn| queue::detail(conn, id))
        .await
        .map_err(request_not_found)?;
    let now = deadline::now();
    let facts = d.item.extension_facts();
    let days = DaysLeft::of(d.item.state, d.item.due_at, now);
    let timeline: Vec<EventJson> = d
        .timeline
        .iter()
        .map(|e| EventJson {
            seq: e.seq,
            at: e.at(),
            event: e.event.clone(),
            from_state: e.from_state.clone(),
            to_state: e.to_state.clone(),
            actor_kind: e.actor_kind.clone(),
            actor_id: e.actor_id.clone(),
            detail: e
                .detail
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        })
        .collect();
    let emails = timeline
        .iter()
        .filter(|e| EMAIL_EVENTS.contains(&e.event.as_str()))
        .map(|e| EventJson {
            seq: e.seq,
            at: e.at,
            event: e.event.clone(),
            from_state: e.from_state.clone(),
            to_state: e.to_state.clone(),
            actor_kind: e.actor_kind.clone(),
            actor_id: e.actor_id.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    let cannot = facts.can_extend(now).err();
    let body = DetailJson {
        request: RowJson::new(&d.item, now),
        subject_email_given: d.subject_email_given,
        reason: d.reason,
        rejection_code: d.decision_code,
        cancel_reason: d.cancel_reason,
        deadline: DeadlineJson {
            received_at: d.item.received_at,
            due_at: d.item.due_at,
            original_due_at: facts.original_due(),
            max_extended_due_at: max_extended_due_at(d.item.received_at),
            days_left: days.days,
            urgency: days.urgency,
            overdue: d.item.is_overdue(now),
            extended_at: d.item.extended_at,
            extended_by: d.extended_by,
            extension_reason: d.extension_reason,
            can_extend: cannot.is_none(),
            cannot_extend: cannot.map(|e| e.to_string()),
        },
        timeline,
        emails,
        jobs: d
            .jobs
            .iter()
            .map(|j| JobJson {
                id: j.id.clone(),
                kind: j.kind.clone(),
                run_at: j.run_at.and_utc(),
                attempts: j.attempts,
                max_attempts: j.max_attempts,
                finished_at: j.finished_at.map(|t| t.and_utc()),
                dead: j.dead,
                last_error: j.last_error.clone(),
            })
            .collect(),
        targets: Some(
            d.targets
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "target_id": c.target_id,
                        "target": c.target_name,
                        "status": c.status(),
                        "attempts": c.attempts,
                        "last_status_code": c.last_status_code,
                        "last_error": c.last_error,
                        "confirmed_at": c.confirmed_at(),
                    })
                })
                .collect(),
        ),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub reason: Option<String>,
    /// Extend by 1 or 2 months (the deadline becomes receipt + 1 + months).
    pub months: Option<u32>,
    /// Or extend to the end of this day (YYYY-MM-DD, UTC).
    pub due_date: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ExtensionJson {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    subject_told: bool,
}

impl From<Extended> for ExtensionJson {
    fn from(e: Extended) -> Self {
        Self {
            from: e.from,
            to: e.to,
            subject_told: e.subject_told,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct ActedJson {
    request: RowJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    extension: Option<ExtensionJson>,
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Transition(t) => t.into(),
        Refused::Extension(e) => {
            let status = if e.is_conflict() {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            ApiError::new(status, e.code(), e.to_string())
        }
    }
}

fn command_for(a: Action, body: &ActionBody) -> Result<super::Command, ApiError> {
    command(
        a,
        body.reason.as_deref(),
        body.months,
        body.due_date.as_deref(),
    )
    .map_err(ApiError::from)
}

async fn fresh(state: &AppState, id: RequestId) -> Result<Option<QueueItem>, ApiError> {
    Ok(state
        .store
        .read(move |conn| queue::by_ids(conn, &[id]))
        .await?
        .pop())
}

/// `POST /v1/support/requests/{id}/{resend-approval|retry|cancel|extend}`
#[utoipa::path(
    post, path = "/v1/support/requests/{id}/{action}",
    description = "Act on one request: `resend-approval`, `retry`, `cancel` (with `reason`) or `extend` (with `reason` and `months` or `due_date`). The body is optional.",
    params(("id" = RequestId, Path, description = "The erasure request"), ("action" = String, Path, description = "`resend-approval`, `retry`, `cancel` or `extend`")),
    request_body(content = Option<ActionBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Done", body = ActedJson),
        (status = 202, description = "Approval email queued (`resend-approval`)", body = ActedJson),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such request or action", body = ErrorBody),
        (status = 409, description = "Refused in the request's state, or the request changed meanwhile", body = ErrorBody),
        (status = 422, description = "The extension is not allowed (too long, already extended, no reason)", body = ErrorBody),
    ),
)]
pub async fn act(
    t: SupportToken,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, raw_action) = path.into_inner();
    let a = action_from_path(&raw_action)
        .filter(|_| raw_action.contains('-') || !raw_action.contains('_'))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint"))?;
    let id: RequestId = parse_id(&raw_id, "erasure request")?;
    let body: ActionBody = optional_json(&req, &body)?.unwrap_or_default();
    let cmd = command_for(a, &body)?;
    let mut results = perform(&state, t.user.id, &[id], &cmd).await?;
    let (_, result) = results.pop().ok_or_else(ApiError::internal)?;
    let extension = match result {
        ItemResult::Done(e) => e.map(ExtensionJson::from),
        ItemResult::Refused(r) => return Err(refused(r)),
        ItemResult::NotFound => return Err(ApiError::not_found("erasure request")),
        ItemResult::Conflict(m) => return Err(ApiError::new(StatusCode::CONFLICT, "conflict", m)),
    };
    let now = deadline::now();
    let request = fresh(&state, id)
        .await?
        .ok_or_else(|| ApiError::not_found("erasure request"))?;
    let status = if a == Action::ResendApproval {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(ActedJson {
        request: RowJson::new(&request, now),
        extension,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    pub action: String,
    pub ids: Vec<String>,
    pub reason: Option<String>,
    pub months: Option<u32>,
    pub due_date: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BulkItemJson {
    id: RequestId,
    /// `done`, `refused`, `not_found` or `conflict`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extension: Option<ExtensionJson>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BulkJson {
    action: &'static str,
    done: usize,
    refused: usize,
    results: Vec<BulkItemJson>,
}

/// `POST /v1/support/bulk`: one action on up to 100 requests; each is done
/// or refused on its own.
#[utoipa::path(
    post, path = "/v1/support/bulk",
    description = "One action on up to 100 requests; each is done or refused on its own.",
    request_body = BulkBody,
    responses(
        (status = 200, description = "Each request's outcome", body = BulkJson),
        (status = 400, description = "Invalid body", body = ErrorBody),
    ),
)]
pub async fn bulk(
    t: SupportToken,
    state: web::Data<AppState>,
    body: Result<web::Json<BulkBody>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    // The body is read beside the token lookup; its error is only reported
    // once the token is known good (an unknown token hears 401).
    let body = body?;
    Ok(bulk_checked(t, state, body).await?)
}

async fn bulk_checked(
    t: SupportToken,
    state: web::Data<AppState>,
    body: web::Json<BulkBody>,
) -> Result<HttpResponse, ApiError> {
    let a = Action::parse(&body.action).ok_or_else(|| {
        ApiError::invalid(vec![FieldError {
            index: None,
            field: "action".into(),
            message: "must be resend_approval, retry, cancel or extend".into(),
        }])
    })?;
    if body.ids.is_empty() || body.ids.len() > MAX_BULK {
        return Err(ApiError::invalid(vec![FieldError {
            index: None,
            field: "ids".into(),
            message: format!("must hold 1 to {MAX_BULK} request ids"),
        }]));
    }
    let mut ids: Vec<RequestId> = Vec::with_capacity(body.ids.len());
    let mut errors = Vec::new();
    for (i, raw) in body.ids.iter().enumerate() {
        match raw.parse::<RequestId>() {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(_) => errors.push(FieldError {
                index: Some(i),
                field: "ids".into(),
                message: "must be a request id (a UUID)".into(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let cmd = command_for(
        a,
        &ActionBody {
            reason: body.reason.clone(),
            months: body.months,
            due_date: body.due_date.clone(),
        },
    )?;
    let results = perform(&state, t.user.id, &ids, &cmd).await?;
    let results: Vec<BulkItemJson> = results
        .into_iter()
        .map(|(id, r)| match r {
            ItemResult::Done(e) => BulkItemJson {
                id,
                outcome: "done",
                code: None,
                message: None,
                extension: e.map(ExtensionJson::from),
            },
            ItemResult::Refused(r) => {
                let e = refused(r);
                BulkItemJson {
                    id,
                    outcome: "refused",
                    code: Some(e.code),
                    message: Some(e.message),
                    extension: None,
                }
            }
            ItemResult::NotFound => BulkItemJson {
                id,
                outcome: "not_found",
                code: Some("not_found"),
                message: Some("no such erasure request".into()),
                extension: None,
            },
            ItemResult::Conflict(m) => BulkItemJson {
                id,
                outcome: "conflict",
                code: Some("conflict"),
                message: Some(m.into()),
                extension: None,
            },
        })
        .collect();
    let done = results.iter().filter(|r| r.outcome == "done").count();
    Ok(HttpResponse::Ok().json(BulkJson {
        action: a.as_str(),
        done,
        refused: results.len() - done,
        results,
    }))
}
