//! The platform API: submit, read, list and cancel erasure requests.

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{unknown_api_key, PresentedKey, TenantKey};
use super::error::{ApiError, FieldError};
use super::extract::{optional_json, parse_id};
use super::openapi::ErrorBody;
use super::state::AppState;
use crate::domain::audit::{Actor, ActorKind};
use crate::domain::deadline;
use crate::domain::outbox::WorkflowPolicy;
use crate::domain::request::{ErasureRequest, NewErasure};
use crate::domain::subject_key::SubjectKey;
use crate::domain::values::{
    CallbackUrl, EmailAddress, Initiator, InvalidValue, Reason, SubjectId,
};
use crate::domain::{BatchId, Event, RequestId, RequestState, TenantId};
use crate::store::api_keys::SubmitKey;
use crate::store::jobs::{self, JobRow};
use crate::store::requests::{self, Change, Guarded, KeyGuard, ListFilter, Submission, Submitted};
use crate::store::submit_group::Grouped;
use crate::store::{api_keys, tenants, StoreError};

pub const MAX_BATCH: usize = 1000;
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    pub subject_id: String,
    pub subject_email: Option<String>,
    pub initiator: Option<String>,
    pub reason: Option<String>,
    pub callback_url: Option<String>,
}

impl NewRequestBody {
    /// Validate every field, collecting all problems.
    fn validate(
        &self,
        index: Option<usize>,
        allow_private: bool,
    ) -> Result<NewErasure, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut note = |r: Result<(), InvalidValue>| {
            if let Err(e) = r {
                errors.push(FieldError {
                    index,
                    field: e.field.to_owned(),
                    message: e.message,
                })
            }
        };
        let subject_id = SubjectId::parse(&self.subject_id);
        note(subject_id.as_ref().map(|_| ()).map_err(Clone::clone));
        let subject_email = self
            .subject_email
            .as_deref()
            .map(|e| EmailAddress::parse("subject_email", e))
            .transpose();
        note(subject_email.as_ref().map(|_| ()).map_err(Clone::clone));
        let initiator = match self.initiator.as_deref() {
            None => Ok(Initiator::Subject),
            Some(s) => Initiator::parse(s).ok_or_else(|| {
                InvalidValue::new("initiator", "must be subject, support or retention_policy")
            }),
        };
        note(initiator.as_ref().map(|_| ()).map_err(Clone::clone));
        let reason = self
            .reason
            .as_deref()
            .map(|r| Reason::parse("reason", r))
            .transpose();
        note(reason.as_ref().map(|_| ()).map_err(Clone::clone));
        let callback_url = self
            .callback_url
            .as_deref()
            .map(|u| CallbackUrl::parse("callback_url", u))
            .transpose()
            .and_then(|u| match u {
                Some(u) if !allow_private && u.names_inside() => Err(InvalidValue::new(
                    "callback_url",
                    "must be a public address (private, loopback and link-local addresses are refused)",
                )),
                other => Ok(other),
            });
        note(callback_url.as_ref().map(|_| ()).map_err(Clone::clone));
        match (subject_id, subject_email, initiator, reason, callback_url) {
            (Ok(subject_id), Ok(subject_email), Ok(initiator), Ok(reason), Ok(callback_url)) => {
                Ok(NewErasure {
                    subject_id,
                    subject_email,
                    initiator,
                    reason,
                    callback_url,
                })
            }
            _ => Err(errors),
        }
    }
}

/// An erasure request as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: RequestId,
    pub tenant_id: TenantId,
    /// `null` once the request is closed and scrubbed.
    pub subject_id: Option<String>,
    pub subject_email: Option<String>,
    pub initiator: Initiator,
    pub reason: Option<String>,
    pub callback_url: Option<String>,
    pub state: RequestState,
    /// Must the platform keep the subject's account active?
    pub keep_account_active: bool,
    pub batch_id: Option<BatchId>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub overdue: bool,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Flagged for support: the deadline nears without a decision.
    pub escalated_at: Option<DateTime<Utc>>,
    /// The approval email could not be delivered (support must act).
    pub approval_delivery_failed_at: Option<DateTime<Utc>>,
    /// The privacy contact's reason, when rejected.
    pub rejection: Option<Rejection>,
    pub approved_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    /// When the personal fields were removed (the request itself stays).
    pub scrubbed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    pub code: String,
    pub explanation: Option<String>,
}

impl RequestView {
    pub fn new(r: &ErasureRequest, now: DateTime<Utc>) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            subject_id: r.subject_id.as_ref().map(|s| s.as_str().to_owned()),
            subject_email: r.subject_email.as_ref().map(|e| e.as_str().to_owned()),
            initiator: r.initiator,
            reason: r.reason.clone(),
            callback_url: r.callback_url.clone(),
            state: r.state,
            keep_account_active: r.state.keeps_account_active(),
            batch_id: r.batch_id,
            received_at: r.received_at,
            due_at: r.due_at,
            overdue: r.is_overdue(now),
            updated_at: r.updated_at,
            closed_at: r.closed_at,
            escalated_at: r.escalated_at,
            approval_delivery_failed_at: r.delivery_failed_at,
            rejection: r.decision_code.as_ref().map(|code| Rejection {
                code: code.clone(),
                explanation: r.decision_explanation.clone(),
            }),
            approved_at: r.approved_at,
            erased_at: r.erased_at,
            scrubbed_at: r.scrubbed_at,
        }
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match req.headers().get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|s| {
                    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 255 printable ASCII characters",
                    )
                })?;
            Ok(Some(s.to_owned()))
        }
    }
}

fn request_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("erasure request"),
        other => other.into(),
    }
}

fn respond(outcome: &Submitted, now: DateTime<Utc>) -> HttpResponse {
    let view = RequestView::new(outcome.request(), now);
    match outcome {
        Submitted::Created(_) => HttpResponse::Created().json(view),
        Submitted::Replayed(_) => HttpResponse::Created()
            .insert_header((REPLAYED, "true"))
            .json(view),
        Submitted::ExistingOpen(_) => HttpResponse::Ok().json(view),
    }
}

#[utoipa::path(
    post, path = "/v1/erasure-requests",
    description = "Submit an erasure request for a subject. With `Idempotency-Key`, a retry returns the first answer. A subject with an open request gets that request back (200).",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters")),
    request_body = NewRequestBody,
    responses(
        (status = 201, description = "Created (or replayed: header `Idempotent-Replayed: true`)", body = RequestView),
        (status = 200, description = "The subject already has an open request: that one", body = RequestView),
        (status = 400, description = "Invalid body or Idempotency-Key (`invalid_request` with `details`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not `application/json`", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
    ),
)]
pub async fn submit(
    key: PresentedKey,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<web::Json<NewRequestBody>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    let PresentedKey(digest) = key;
    // A bad body is only reported to a caller whose key is valid: an
    // unknown key hears 401 whatever it sent, as on every other endpoint.
    let checked = body.map_err(Refused::Extractor).and_then(|body| {
        let erasure = body
            .validate(None, state.callbacks_allow_private)
            .map_err(|e| Refused::Api(ApiError::invalid(e)))?;
        let idem = idempotency_key(&req).map_err(Refused::Api)?;
        Ok((erasure, idem))
    });
    let (erasure, idem) = match checked {
        Ok(ok) => ok,
        Err(rejection) => {
            let d = digest.clone();
            let known = state
                .store
                .read(move |conn| api_keys::find_active_for_submit(conn, &d))
                .await
                .map_err(ApiError::from)?;
            if known.is_none() {
                return Err(unknown_api_key().into());
            }
            return Err(match rejection {
                Refused::Extractor(e) => e,
                Refused::Api(e) => e.into(),
            });
        }
    };
    let subject_key = state.subject_key.clone();
    let workflow = state.workflow.clone();
    let keys = state.submit_keys.clone();
    // A key seen recently: the submission is worked out here (hashes, rows),
    // and its own write checks the key (on PostgreSQL: one statement).
    let cached = match keys.get(&digest) {
        Some(k) => {
            let s = submission(&k, erasure.clone(), &workflow, &subject_key, idem.clone());
            let prepared = requests::prepare(s, deadline::now()).map_err(ApiError::from)?;
            let guard = KeyGuard {
                digest: digest.clone(),
                key_id: k.key.id.to_string(),
                policy: k.policy,
                notify_subject: k.notify_subject,
            };
            // On PostgreSQL, written with the others waiting (group commit);
            // one it did not write goes alone below.
            match state
                .store
                .submit_grouped(Guarded { prepared, guard })
                .await
                .map_err(ApiError::from)?
            {
                Grouped::Written(done) => return Ok(respond(&done, deadline::now())),
                Grouped::Alone(g) => Some(g),
            }
        }
        None => None,
    };
    // One checkout. A key not seen recently, or changed since, is read first.
    let outcome = state
        .store
        .write_self_contained(move |conn| {
            if let Some(g) = cached {
                if let Some(done) = requests::submit_prepared(conn, g.prepared, Some(&g.guard))? {
                    return Ok(Some(done));
                }
                keys.forget(&digest);
            }
            let now = deadline::now();
            let Some(k) = api_keys::find_active_for_submit(conn, &digest)? else {
                return Ok(None);
            };
            let s = submission(&k, erasure, &workflow, &subject_key, idem);
            let done = requests::submit(conn, s, now)?;
            keys.put(&digest, k);
            Ok(Some(done))
        })
        .await
        .map_err(ApiError::from)?
        .ok_or_else(unknown_api_key)?;
    Ok(respond(&outcome, deadline::now()))
}

/// A single submission by the holder of `k`.
fn submission<'a>(
    k: &SubmitKey,
    erasure: NewErasure,
    workflow: &'a WorkflowPolicy,
    subject_key: &SubjectKey,
    idempotency_key: Option<String>,
) -> Submission<'a> {
    Submission {
        tenant: k.key.tenant_id,
        policy: k.policy,
        notify_subject: k.notify_subject,
        workflow,
        actor: Actor::new(ActorKind::ApiKey, k.key.id.to_string()),
        subject_hash: subject_key.hash(k.key.tenant_id, &erasure.subject_id),
        erasure,
        idempotency_key,
        batch_id: None,
    }
}

/// Why a submission was refused before its key was looked up.
enum Refused {
    Extractor(actix_web::Error),
    Api(ApiError),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub requests: Vec<NewRequestBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BatchItem {
    index: usize,
    status: u16,
    outcome: &'static str,
    request: RequestView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BatchView {
    batch_id: BatchId,
    created: usize,
    existing: usize,
    results: Vec<BatchItem>,
}

#[utoipa::path(
    post, path = "/v1/erasure-requests/batch",
    description = "Submit up to 1000 erasure requests at once; all are validated first (one invalid item rejects the batch), then each is created or matched to its subject's open request.",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters")),
    request_body = BatchBody,
    responses(
        (status = 201, description = "At least one request was created", body = BatchView),
        (status = 200, description = "Every subject already had an open request", body = BatchView),
        (status = 400, description = "Invalid items (`details` name them by `index`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not `application/json`", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
    ),
)]
pub async fn submit_batch(
    key: TenantKey,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<web::Json<BatchBody>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    // The body is read beside the key lookup; its error is only reported
    // once the key is known good (an unknown key hears 401).
    let body = body?;
    Ok(submit_batch_checked(key, state, req, body).await?)
}

async fn submit_batch_checked(
    key: TenantKey,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<BatchBody>,
) -> Result<HttpResponse, ApiError> {
    let items = &body.requests;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::invalid(vec![FieldError {
            index: None,
            field: "requests".into(),
            message: format!("must hold 1 to {MAX_BATCH} requests"),
        }]));
    }
    let mut valid = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.validate(Some(i), state.callbacks_allow_private) {
            Ok(e) => valid.push(e),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let idem = idempotency_key(&req)?;
    let batch_id = BatchId::new();
    let submissions: Vec<(String, NewErasure, Option<String>)> = valid
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let hash = state.subject_key.hash(key.tenant, &e.subject_id);
            (hash, e, idem.as_ref().map(|k| format!("{k}#{i}")))
        })
        .collect();
    let (tenant, actor) = (key.tenant, key.actor());
    let workflow = state.workflow.clone();
    let outcomes = state
        .store
        .write(move |conn| {
            let t = tenants::get(conn, tenant)?;
            let now = deadline::now();
            let outcomes = submissions
                .into_iter()
                .map(|(subject_hash, erasure, idempotency_key)| {
                    requests::submit(
                        conn,
                        Submission {
                            tenant,
                            policy: t.settings.policy,
                            notify_subject: t.settings.notify_subject,
                            workflow: &workflow,
                            actor: actor.clone(),
                            erasure,
                            subject_hash,
                            idempotency_key,
                            batch_id: Some(batch_id),
                        },
                        now,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The privacy contact gets one email (and one set of reminders)
            // for the whole batch.
            let asks = outcomes.iter().any(
                |o| matches!(o, Submitted::Created(r) if r.state == RequestState::AwaitingApproval),
            );
            if asks {
                let payload = serde_json::json!({ "batch_id": batch_id });
                let f = workflow.follow_up(now, crate::domain::deadline::due_at(now));
                let mut planned = vec![crate::domain::outbox::PlannedJob {
                    kind: crate::domain::outbox::JobKind::SendBatchApprovalEmail,
                    run_at: now,
                    payload: payload.clone(),
                }];
                planned.extend(crate::domain::outbox::reminders(&f, payload));
                let rows: Vec<JobRow> = planned
                    .iter()
                    .map(|p| JobRow::planned(p, Some(tenant), None, now))
                    .collect();
                jobs::enqueue(conn, &rows)?;
            }
            Ok(outcomes)
        })
        .await?;
    let now = deadline::now();
    let results: Vec<BatchItem> = outcomes
        .iter()
        .enumerate()
        .map(|(index, o)| {
            let (status, outcome) = match o {
                Submitted::Created(_) => (201, "created"),
                Submitted::Replayed(_) => (201, "replayed"),
                Submitted::ExistingOpen(_) => (200, "existing_open_request"),
            };
            BatchItem {
                index,
                status,
                outcome,
                request: RequestView::new(o.request(), now),
            }
        })
        .collect();
    let created = results.iter().filter(|r| r.status == 201).count();
    let view = BatchView {
        batch_id,
        created,
        existing: results.len() - created,
        results,
    };
    Ok(if created > 0 {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

#[utoipa::path(
    get, path = "/v1/erasure-requests/{id}",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 200, description = "The request", body = RequestView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
    ),
)]
pub async fn get(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let tenant = key.tenant;
    let r = state
        .store
        .read(move |conn| requests::get(conn, tenant, id))
        .await
        .map_err(request_not_found)?;
    Ok(HttpResponse::Ok().json(RequestView::new(&r, deadline::now())))
}

pub fn check_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            "limit must be from 1 to 500",
        )),
    }
}

const CURSOR_PREFIX: &str = "r1:";

pub fn encode_cursor(id: RequestId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

pub fn decode_cursor(s: &str) -> Result<RequestId, ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "the cursor is not one we issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(CURSOR_PREFIX)
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub status: Option<String>,
    pub overdue: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RequestPage {
    data: Vec<RequestView>,
    next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/erasure-requests",
    description = "The tenant's erasure requests, newest first, a page at a time.",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = RequestPage),
        (status = 400, description = "Invalid query or cursor", body = ErrorBody),
    ),
)]
pub async fn list(
    key: TenantKey,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = check_limit(q.limit)?;
    let states = match &q.status {
        None => Vec::new(),
        Some(s) => s
            .split(',')
            .map(|p| {
                p.trim().parse::<RequestState>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!(
                            "status must be one or more of {}, separated by commas",
                            RequestState::ALL.map(|s| s.as_str()).join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let overdue = match q.overdue.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "overdue must be true or false",
            ))
        }
    };
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = ListFilter {
        states,
        overdue,
        before,
        limit: limit + 1,
    };
    let tenant = key.tenant;
    let now = deadline::now();
    let rows = state
        .store
        .read(move |conn| requests::list(conn, tenant, &filter, now))
        .await?;
    let more = rows.len() as i64 > limit;
    let data: Vec<RequestView> = rows
        .iter()
        .take(limit as usize)
        .map(|r| RequestView::new(r, now))
        .collect();
    let next_cursor = if more {
        data.last().map(|r| encode_cursor(r.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(RequestPage { data, next_cursor }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub reason: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/erasure-requests/{id}/cancel",
    description = "Cancel an open request (before erasure starts). The body is optional.",
    params(("id" = RequestId, Path, description = "The erasure request")),
    request_body(content = Option<CancelBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Cancelled", body = RequestView),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 409, description = "Not cancellable in its state (`invalid_transition`)", body = ErrorBody),
        (status = 422, description = "The body is not a cancellation (`invalid_body`, `invalid_field`)", body = ErrorBody),
    ),
)]
pub async fn cancel(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let body: Option<CancelBody> = optional_json(&req, &body)?;
    // The reason is checked but not kept in the audit trail: it may hold
    // personal data. Its presence is recorded.
    let has_reason = match body.and_then(|b| b.reason) {
        Some(r) => {
            Reason::parse("reason", &r)?;
            true
        }
        None => false,
    };
    let (tenant, actor) = (key.tenant, key.actor());
    let workflow = state.workflow.clone();
    let r = state
        .store
        .write(move |conn| {
            requests::apply(
                conn,
                tenant,
                id,
                Change {
                    event: Event::Cancel,
                    actor: &actor,
                    detail: Some(serde_json::json!({ "reason_given": has_reason }).to_string()),
                    decision: None,
                },
                &workflow,
                deadline::now(),
            )
        })
        .await
        .map_err(request_not_found)?;
    Ok(HttpResponse::Ok().json(RequestView::new(&r, deadline::now())))
}

/// Send the privacy contact a fresh approval link (the old one is voided
/// when the new one is issued).
#[utoipa::path(
    post, path = "/v1/erasure-requests/{id}/resend-approval",
    description = "Send the approval email again (with a fresh link).",
    params(("id" = RequestId, Path, description = "The erasure request")),
    responses(
        (status = 202, description = "Queued", body = RequestView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such request for this tenant", body = ErrorBody),
        (status = 409, description = "The request is not awaiting approval", body = ErrorBody),
    ),
)]
pub async fn resend_approval(
    key: TenantKey,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = parse_id(&path, "erasure request")?;
    let (tenant, actor) = (key.tenant, key.actor());
    let r = state
        .store
        .write(move |conn| {
            let now = deadline::now();
            let r = requests::get(conn, tenant, id)?;
            if r.state != RequestState::AwaitingApproval {
                return Err(crate::domain::TransitionError::NotAllowed {
                    from: r.state,
                    event: Event::RequestApproval,
                }
                .into());
            }
            let r = requests::note(
                conn,
                tenant,
                id,
                "approval_resend_requested",
                &actor,
                None,
                now,
            )?;
            jobs::enqueue(conn, &[jobs::approval_resend(&r, now)])?;
            Ok(r)
        })
        .await
        .map_err(request_not_found)?;
    Ok(HttpResponse::Accepted().json(RequestView::new(&r, deadline::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = RequestId::new();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        for bad in [
            "",
            "!!!",
            "cjE6bm9wZQ",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
