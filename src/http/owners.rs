//! The page where the owner of a manual erasure target (a system with no
//! API) confirms an erasure by hand, or reports it impossible:
//! `GET /erasure-confirmations/{token}` shows the task and changes nothing
//! (mail scanners open links); `POST` records the owner's report.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::openapi::OwnerForm;
use super::pages::page;
use super::state::AppState;
use crate::domain::audit::{Actor, ActorKind};
use crate::domain::deadline;
use crate::domain::request::ErasureRequest;
use crate::domain::secret::SecretDigest;
use crate::domain::target::{CallStatus, OwnerReport, LINK_PREFIX};
use crate::domain::tenant::{Locale, Tenant};
use crate::domain::RequestState;
use crate::email::owner_texts::{owner_texts, OwnerTexts};
use crate::email::views::{date, date_time};
use crate::jobs::erasure::{complete_if_done, fail};
use crate::store::requests::{self, Note};
use crate::store::target_links::{self, OwnerLink};
use crate::store::targets::{self, CallRow, TargetRow};
use crate::store::{tenants, Conn, StoreError};

#[derive(Template)]
#[template(path = "pages/owner_task.html")]
struct TaskPage<'a> {
    t: &'a OwnerTexts,
    tenant: &'a str,
    system: &'a str,
    request_id: String,
    subject_id: &'a str,
    subject_email: Option<&'a str>,
    approved: Option<String>,
    due: String,
    action: &'a str,
    reason: &'a str,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    t: &'a OwnerTexts,
    title: &'a str,
    message: &'a str,
    class: &'a str,
}

fn message(status: StatusCode, locale: Locale, pick: fn(&OwnerTexts) -> &str) -> HttpResponse {
    let t = owner_texts(locale);
    let (title, class) = if status.is_success() {
        (t.done_title, "done")
    } else {
        (t.page_title, "notice")
    };
    render(
        status,
        MessagePage {
            t,
            title,
            message: pick(t),
            class,
        },
    )
}

fn render(status: StatusCode, tpl: impl Template) -> HttpResponse {
    match tpl.render() {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "owner page failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn unknown() -> HttpResponse {
    message(StatusCode::NOT_FOUND, Locale::En, |t| t.link_unknown)
}

fn unavailable(e: StoreError) -> HttpResponse {
    super::pages::store_failure(e, "owner page")
}

/// The link and everything the page shows.
struct Loaded {
    link: OwnerLink,
    tenant: Tenant,
    request: ErasureRequest,
    target: TargetRow,
    call: CallRow,
}

/// Whether the link can still record a report, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Open,
    Settled,
    NotAsked,
    Expired,
}

impl Loaded {
    fn standing(&self, now: chrono::DateTime<chrono::Utc>) -> Standing {
        if self.link.used_at.is_some()
            || matches!(
                self.call.status(),
                CallStatus::Confirmed | CallStatus::Failed
            )
        {
            Standing::Settled
        } else if self.request.state != RequestState::Erasing
            || self.call.status() != CallStatus::Accepted
        {
            Standing::NotAsked
        } else if now >= self.link.expires_at {
            Standing::Expired
        } else {
            Standing::Open
        }
    }

    fn locale(&self) -> Locale {
        self.tenant.settings.locale
    }
}

fn load(conn: &mut Conn<'_>, digest: &SecretDigest) -> Result<Option<Loaded>, StoreError> {
    let Some(link) = target_links::find(conn, digest)? else {
        return Ok(None);
    };
    let tenant = tenants::get(conn, link.tenant)?;
    let request = requests::get(conn, link.tenant, link.request)?;
    let target = targets::find(conn, link.tenant, &link.target_id)?;
    let call = targets::call(conn, link.request, &link.target_id)?;
    Ok(Some(Loaded {
        link,
        tenant,
        request,
        target,
        call,
    }))
}

fn token_digest(token: &str) -> Option<SecretDigest> {
    SecretDigest::of_presented(token, LINK_PREFIX)
}

fn not_open(standing: Standing, locale: Locale) -> HttpResponse {
    message(
        StatusCode::GONE,
        locale,
        match standing {
            Standing::Expired => |t| t.link_expired,
            Standing::NotAsked => |t| t.not_erasing,
            Standing::Settled | Standing::Open => |t| t.settled,
        },
    )
}

fn task_page(l: &Loaded, token: &str, reason: &str, errors: Vec<String>) -> HttpResponse {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let action = format!("/erasure-confirmations/{token}");
    let r = &l.request;
    render(
        status,
        TaskPage {
            t: owner_texts(l.locale()),
            tenant: l.tenant.settings.name.as_str(),
            system: &l.target.name,
            request_id: r.id.to_string(),
            subject_id: r.subject_id.as_ref().map(|s| s.as_str()).unwrap_or("—"),
            subject_email: r.subject_email.as_ref().map(|e| e.as_str()),
            approved: r.approved_at.map(date_time),
            due: date(r.due_at),
            action: &action,
            reason,
            errors,
        },
    )
}

#[utoipa::path(
    get, path = "/erasure-confirmations/{token}",
    description = "The page of a manual erasure target's owner (the link in the email asking them to erase by hand): whose data, in which system. Opening it changes nothing. The token in the URL is the credential.",
    params(("token" = String, Path, description = "The owner's link token")),
    responses(
        (status = 200, description = "The task, with the erased / impossible forms", content_type = "text/html", body = String),
        (status = 404, description = "Unknown token", content_type = "text/html", body = String),
        (status = 410, description = "Already confirmed or reported, no longer asked, or expired", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String),
    ),
)]
pub async fn show(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let token = path.into_inner();
    let Some(digest) = token_digest(&token) else {
        tracing::warn!("malformed target confirmation token presented");
        return unknown();
    };
    let loaded = match state.store.read(move |conn| load(conn, &digest)).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            tracing::warn!("unknown target confirmation token presented");
            return unknown();
        }
        Err(e) => return unavailable(e),
    };
    match loaded.standing(deadline::now()) {
        Standing::Open => task_page(&loaded, &token, "", Vec::new()),
        other => not_open(other, loaded.locale()),
    }
}

enum Reported {
    Unknown,
    NotOpen(Standing, Locale),
    Invalid(Box<Loaded>, String, String),
    Done(Locale, bool),
}

#[utoipa::path(
    post, path = "/erasure-confirmations/{token}",
    description = "The owner of a manual target confirms the erasure (`outcome=erased`) or reports it impossible (`outcome=impossible` with a `reason`; the request then fails for support). One report per call; the token in the URL is the credential.",
    params(("token" = String, Path, description = "The owner's link token")),
    request_body(content = OwnerForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Report recorded", content_type = "text/html", body = String),
        (status = 400, description = "The form could not be read", content_type = "text/plain", body = String),
        (status = 404, description = "Unknown token", content_type = "text/html", body = String),
        (status = 410, description = "Already confirmed or reported, no longer asked, or expired", content_type = "text/html", body = String),
        (status = 422, description = "The outcome or reason is missing: the form again, with the error", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String),
    ),
)]
pub async fn report(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let token = path.into_inner();
    let Some(digest) = token_digest(&token) else {
        tracing::warn!("malformed target confirmation token presented");
        return unknown();
    };
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return HttpResponse::BadRequest().body("The form could not be read."),
    };
    let get = move |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (outcome, reason) = (get("outcome").unwrap_or_default(), get("reason"));
    let workflow = state.workflow.clone();
    let result = state
        .store
        .write(move |conn| {
            let Some(l) = load(conn, &digest)? else {
                return Ok(Reported::Unknown);
            };
            let now = deadline::now();
            let standing = l.standing(now);
            if standing != Standing::Open {
                return Ok(Reported::NotOpen(standing, l.locale()));
            }
            let report = match OwnerReport::parse(&outcome, reason.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    let t = owner_texts(l.locale());
                    let label = if e.field == "reason" {
                        t.reason
                    } else {
                        t.page_title
                    };
                    let msg = format!("{label}: {}", e.message);
                    return Ok(Reported::Invalid(
                        Box::new(l),
                        reason.unwrap_or_default(),
                        msg,
                    ));
                }
            };
            // One report per call: of two racing submissions, one counts.
            if !target_links::mark_used(conn, &l.link.id, now)? {
                return Ok(Reported::NotOpen(Standing::Settled, l.locale()));
            }
            let owner = l.target.owner_email.clone().unwrap_or_default();
            let (status, note, what) = match &report {
                OwnerReport::Erased => (CallStatus::Confirmed, None, "target_confirmed"),
                OwnerReport::Impossible(r) => (
                    CallStatus::Failed,
                    Some(format!("reported impossible by the owner: {}", r.as_str())),
                    "target_reported_impossible",
                ),
            };
            let (tenant, id, target_id) = (l.link.tenant, l.request.id, l.target.id.clone());
            // Before the report: other targets' answers to this request wait.
            let mut held = requests::hold(conn, tenant, id)?;
            if !targets::owner_report(conn, id, &target_id, status, &owner, note.as_deref(), now)? {
                return Ok(Reported::NotOpen(Standing::Settled, l.locale()));
            }
            let actor = Actor::new(ActorKind::TargetOwner, format!("link:{}", l.link.id));
            let detail = serde_json::json!({ "target_id": target_id, "manual": true });
            let note = Note {
                what,
                actor: &actor,
                detail: Some(detail.to_string()),
                now,
                finish: None,
            };
            requests::note_held(conn, &mut held, note)?;
            match report {
                OwnerReport::Erased => {
                    complete_if_done(conn, &mut held, id, &workflow, now)?;
                }
                OwnerReport::Impossible(_) => fail(conn, &mut held, &target_id, &workflow, now)?,
            }
            Ok(Reported::Done(l.locale(), status == CallStatus::Confirmed))
        })
        .await;
    match result {
        Ok(Reported::Unknown) => {
            tracing::warn!("unknown target confirmation token presented");
            unknown()
        }
        Ok(Reported::NotOpen(standing, locale)) => not_open(standing, locale),
        Ok(Reported::Invalid(l, reason, error)) => task_page(&l, &token, &reason, vec![error]),
        Ok(Reported::Done(locale, true)) => message(StatusCode::OK, locale, |t| t.done_erased),
        Ok(Reported::Done(locale, false)) => message(StatusCode::OK, locale, |t| t.done_impossible),
        // A racing transition moved the request first.
        Err(StoreError::Transition(_)) => not_open(Standing::NotAsked, Locale::En),
        Err(e) => unavailable(e),
    }
}
