//! The privacy contact's pages: `GET /approvals/{token}` shows what is asked
//! and changes nothing (mail scanners open links); `POST` records the decision.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::openapi::ApprovalForm;
use super::pages::page;
use super::state::AppState;
use crate::domain::approval::{Decision, LinkStatus, RejectionCode};
use crate::domain::audit::{Actor, ActorKind};
use crate::domain::deadline;
use crate::domain::outbox::WorkflowPolicy;
use crate::domain::request::ErasureRequest;
use crate::domain::secret::SecretDigest;
use crate::domain::tenant::{Locale, Tenant};
use crate::domain::{RequestId, RequestState};
use crate::email::texts::{rejection_label, texts, Texts};
use crate::email::views::ItemView;
use crate::store::approvals::{self, Link, LinkTarget};
use crate::store::requests::{self, Change, Held};
use crate::store::{Backend, Conn, StoreError};

#[derive(Template)]
#[template(path = "pages/approval.html")]
struct ApprovalPage<'a> {
    t: &'a Texts,
    tenant: &'a str,
    items: &'a [ItemView],
    codes: Vec<(&'static str, &'static str)>,
    action: &'a str,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    t: &'a Texts,
    title: &'a str,
    message: &'a str,
    class: &'a str,
}

fn message(
    status: StatusCode,
    locale: Locale,
    title: &str,
    text: &str,
    class: &str,
) -> HttpResponse {
    let t = texts(locale);
    match (MessagePage {
        t,
        title,
        message: text,
        class,
    })
    .render()
    {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Why a link cannot be used, as a page.
fn unusable(status: LinkStatus, locale: Locale) -> HttpResponse {
    let t = texts(locale);
    let text = match status {
        LinkStatus::Used => t.link_used,
        LinkStatus::Voided => t.link_voided,
        LinkStatus::Expired => t.link_expired,
        LinkStatus::Usable => t.nothing_awaiting,
    };
    message(StatusCode::GONE, locale, t.page_title, text, "notice")
}

fn unknown() -> HttpResponse {
    let t = texts(Locale::En);
    message(
        StatusCode::NOT_FOUND,
        Locale::En,
        t.page_title,
        t.link_unknown,
        "errors",
    )
}

fn unavailable(e: StoreError) -> HttpResponse {
    super::pages::store_failure(e, "approval page")
}

/// The link, its tenant and the requests it still decides.
struct Loaded {
    link: Link,
    tenant: Tenant,
    items: Vec<ErasureRequest>,
}

fn load(conn: &mut Conn<'_>, digest: &SecretDigest) -> Result<Option<Loaded>, StoreError> {
    Ok(load_to_decide(conn, digest, false)?.map(|(l, _)| l))
}

/// [`load`]; with `hold`, in a write transaction, a link for one request
/// also holds that request (`requests::hold`) for the decision to apply to
/// without reading it again.
fn load_to_decide(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
    hold: bool,
) -> Result<Option<(Loaded, Option<Held>)>, StoreError> {
    let Some((link, tenant)) = approvals::find_with_tenant(conn, digest)? else {
        return Ok(None);
    };
    let (items, held) = match link.target {
        LinkTarget::Request(id) if hold => {
            // The link first, then the request (see `approvals::hold`).
            approvals::hold(conn, &link.id)?;
            let held = requests::hold(conn, link.tenant, id)?;
            let r = held.request()?;
            (vec![r], Some(held))
        }
        LinkTarget::Request(id) => (vec![requests::get_any(conn, id)?], None),
        LinkTarget::Batch(b) => (requests::batch_awaiting(conn, link.tenant, b)?, None),
    };
    let items = items
        .into_iter()
        .filter(|r| r.state == RequestState::AwaitingApproval)
        .collect();
    Ok(Some((
        Loaded {
            link,
            tenant,
            items,
        },
        held,
    )))
}

fn token_digest(token: &str) -> Option<SecretDigest> {
    SecretDigest::of_presented(token, crate::domain::approval::TOKEN_PREFIX)
}

fn render_form(l: &Loaded, token: &str, errors: Vec<String>, status: StatusCode) -> HttpResponse {
    let locale = l.tenant.settings.locale;
    let items: Vec<ItemView> = l.items.iter().map(|r| ItemView::new(r, locale)).collect();
    let codes = RejectionCode::ALL
        .iter()
        .map(|c| (c.as_str(), rejection_label(locale, *c)))
        .collect();
    let action = format!("/approvals/{token}");
    let html = ApprovalPage {
        t: texts(locale),
        tenant: l.tenant.settings.name.as_str(),
        items: &items,
        codes,
        action: &action,
        errors,
    }
    .render();
    match html {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "approval page failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[utoipa::path(
    get, path = "/approvals/{token}",
    description = "The privacy contact's approval page (the link in the approval email). The token in the URL is the credential.",
    params(("token" = String, Path, description = "The approval token")),
    responses(
        (status = 200, description = "Who and what, with the approve/reject form", content_type = "text/html", body = String),
        (status = 404, description = "Unknown token", content_type = "text/html", body = String),
        (status = 410, description = "The link expired, was used or was replaced", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String),
    ),
)]
pub async fn show(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let token = path.into_inner();
    let Some(digest) = token_digest(&token) else {
        tracing::warn!("malformed approval token presented");
        return unknown();
    };
    let loaded = match state.store.read(move |conn| load(conn, &digest)).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            tracing::warn!("unknown approval token presented");
            return unknown();
        }
        Err(e) => return unavailable(e),
    };
    let status = loaded.link.status(deadline::now());
    if status != LinkStatus::Usable || loaded.items.is_empty() {
        return unusable(status, loaded.tenant.settings.locale);
    }
    render_form(&loaded, &token, Vec::new(), StatusCode::OK)
}

/// Read the posted form into one decision per request still awaiting one.
fn decisions(
    form: &[(String, String)],
    l: &Loaded,
) -> Result<Vec<(RequestId, Decision)>, Vec<String>> {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let locale = l.tenant.settings.locale;
    match get("action") {
        Some("approve_all") => Ok(l.items.iter().map(|r| (r.id, Decision::Approve)).collect()),
        Some("decide") => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            for r in &l.items {
                let id = r.id;
                let who = ItemView::new(r, locale).subject_id;
                let choice = get(&format!("decision_{id}")).unwrap_or("");
                if choice.is_empty() {
                    errors.push(format!("{who}: {}", texts(locale).decision));
                    continue;
                }
                match Decision::parse(
                    choice,
                    get(&format!("reason_code_{id}")),
                    get(&format!("explanation_{id}")),
                ) {
                    Ok(d) => out.push((id, d)),
                    Err(e) => errors.push(format!(
                        "{who}: {} {}",
                        field_label(e.field, locale),
                        e.message
                    )),
                }
            }
            if errors.is_empty() {
                Ok(out)
            } else {
                Err(errors)
            }
        }
        _ => Err(vec!["unknown action".to_owned()]),
    }
}

fn field_label(field: &str, locale: Locale) -> &'static str {
    let t = texts(locale);
    match field {
        "reason_code" => t.reason_code,
        "explanation" => t.explanation,
        _ => t.decision,
    }
}

enum Decided {
    Unknown,
    Unusable(LinkStatus, Locale),
    Invalid(Box<Loaded>, Vec<String>),
    Done(Locale, usize, usize),
}

/// The change a decision makes to its request.
fn change_of<'a>(link: &str, decision: &'a Decision, actor: &'a Actor) -> Change<'a> {
    let (detail, reason) = match decision {
        Decision::Approve => (serde_json::json!({ "link_id": link }), None),
        Decision::Reject { code, explanation } => (
            serde_json::json!({ "link_id": link, "reason_code": code.as_str() }),
            Some((code.as_str(), explanation.as_str())),
        ),
    };
    Change {
        event: decision.event(),
        actor,
        detail: Some(detail.to_string()),
        decision: reason,
    }
}

fn actor_of(link: &Link) -> Actor {
    Actor::new(ActorKind::PrivacyContact, format!("link:{}", link.id))
}

/// The decisions the form makes on a loaded link, or the answer when it
/// makes none: the link cannot be used (or decides nothing any more), or
/// the form's errors.
fn choose(
    l: Loaded,
    form: &[(String, String)],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Loaded, Vec<(RequestId, Decision)>), Decided> {
    let status = l.link.status(now);
    if status != LinkStatus::Usable || l.items.is_empty() {
        return Err(Decided::Unusable(status, l.tenant.settings.locale));
    }
    match decisions(form, &l) {
        Ok(chosen) => Ok((l, chosen)),
        Err(errors) => Err(Decided::Invalid(Box::new(l), errors)),
    }
}

/// What a decision on the link and the request as read came to.
enum AsRead {
    Decided(Decided),
    /// The link or the request moved between the read and the write:
    /// nothing was written.
    Moved,
    /// A link for a batch, or a form deciding more than one request: decide
    /// holding the requests.
    NotOne,
}

impl AsRead {
    /// The decision made, or `held`'s.
    fn decided_or(
        self,
        held: impl FnOnce() -> Result<Decided, StoreError>,
    ) -> Result<Decided, StoreError> {
        match self {
            AsRead::Decided(decided) => Ok(decided),
            AsRead::Moved | AsRead::NotOne => held(),
        }
    }
}

/// A decision on a link for one request, on the link and the request as
/// read (`requests::decide_if_unmoved`): one read and one statement, no
/// transaction.
fn decide_as_read(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
    form: &[(String, String)],
    workflow: &WorkflowPolicy,
) -> Result<AsRead, StoreError> {
    let Some((link, tenant, seen)) = requests::find_link_to_decide(conn, digest)? else {
        return Ok(AsRead::Decided(Decided::Unknown));
    };
    let Some(seen) = seen else {
        return Ok(AsRead::NotOne);
    };
    let now = deadline::now();
    let locale = tenant.settings.locale;
    let request = seen.request()?;
    let items = if request.state == RequestState::AwaitingApproval {
        vec![request]
    } else {
        Vec::new()
    };
    let loaded = Loaded {
        link,
        tenant,
        items,
    };
    let (l, chosen) = match choose(loaded, form, now) {
        Ok(c) => c,
        Err(answer) => return Ok(AsRead::Decided(answer)),
    };
    let [(_, decision)] = &chosen[..] else {
        return Ok(AsRead::NotOne);
    };
    let actor = actor_of(&l.link);
    let change = change_of(&l.link.id, decision, &actor);
    if !requests::decide_if_unmoved(conn, &seen, &l.tenant, &l.link.id, change, workflow, now)? {
        return Ok(AsRead::Moved);
    }
    let approved = usize::from(matches!(decision, Decision::Approve));
    Ok(AsRead::Decided(Decided::Done(
        locale,
        approved,
        1 - approved,
    )))
}

/// A decision in a write transaction that holds the request (a link for one
/// request) or reads the batch's requests in it.
fn decide_held(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
    form: &[(String, String)],
    workflow: &WorkflowPolicy,
) -> Result<Decided, StoreError> {
    let Some((loaded, mut held)) = load_to_decide(conn, digest, true)? else {
        return Ok(Decided::Unknown);
    };
    let now = deadline::now();
    let (l, chosen) = match choose(loaded, form, now) {
        Ok(c) => c,
        Err(answer) => return Ok(answer),
    };
    let locale = l.tenant.settings.locale;
    // One use: of two racing submissions, only one gets the link.
    if !approvals::mark_used(conn, &l.link.id, now)? {
        return Ok(Decided::Unusable(LinkStatus::Used, locale));
    }
    let actor = actor_of(&l.link);
    let (mut approved, mut rejected) = (0, 0);
    for (id, d) in &chosen {
        let change = change_of(&l.link.id, d, &actor);
        match held.as_mut() {
            Some(h) => requests::apply_held(conn, h, change, workflow, now)?,
            None => requests::apply(conn, l.link.tenant, *id, change, workflow, now)?,
        };
        match d {
            Decision::Approve => approved += 1,
            Decision::Reject { .. } => rejected += 1,
        }
    }
    Ok(Decided::Done(locale, approved, rejected))
}

#[utoipa::path(
    post, path = "/approvals/{token}",
    description = "The privacy contact approves or rejects (the token in the URL is the credential; the link is used up).",
    params(("token" = String, Path, description = "The approval token")),
    request_body(content = ApprovalForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Decision recorded", content_type = "text/html", body = String),
        (status = 400, description = "The form could not be read", content_type = "text/plain", body = String),
        (status = 404, description = "Unknown token", content_type = "text/html", body = String),
        (status = 410, description = "The link expired, was used or was replaced", content_type = "text/html", body = String),
        (status = 422, description = "A decision or reason is missing: the form again, with the errors", content_type = "text/html", body = String),
        (status = 500, description = "Internal error", content_type = "text/html", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/html", body = String),
    ),
)]
pub async fn decide(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let token = path.into_inner();
    let Some(digest) = token_digest(&token) else {
        tracing::warn!("malformed approval token presented");
        return unknown();
    };
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return HttpResponse::BadRequest().body("The form could not be read."),
    };
    let workflow = state.workflow.clone();
    let outcome = state
        .store
        .write_self_contained(move |conn| match conn.backend() {
            // The link and its request as read, in one statement; read
            // again and tried once more when they moved between the read
            // and the write (the request's approval email noted on it, say);
            // in a transaction that holds the request when they moved again.
            Backend::Postgres => match decide_as_read(conn, &digest, &form, &workflow)? {
                AsRead::Moved => decide_as_read(conn, &digest, &form, &workflow)?,
                first => first,
            }
            .decided_or(|| conn.atomic(|conn| decide_held(conn, &digest, &form, &workflow))),
            // The one writer's transaction holds everything already.
            Backend::Sqlite => decide_held(conn, &digest, &form, &workflow),
        })
        .await;
    match outcome {
        Ok(Decided::Unknown) => {
            tracing::warn!("unknown approval token presented");
            unknown()
        }
        Ok(Decided::Unusable(status, locale)) => unusable(status, locale),
        Ok(Decided::Invalid(l, errors)) => {
            render_form(&l, &token, errors, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Ok(Decided::Done(locale, approved, rejected)) => {
            let t = texts(locale);
            let text = match (approved, rejected) {
                (_, 0) => t.done_approved,
                (0, _) => t.done_rejected,
                _ => t.done_mixed,
            };
            message(StatusCode::OK, locale, t.done_title, text, "done")
        }
        // A racing decision moved a request first: the link was not used.
        Err(StoreError::Transition(_)) => unusable(LinkStatus::Used, Locale::En),
        Err(e) => unavailable(e),
    }
}
