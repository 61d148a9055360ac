//! The dashboard's pages. Every page needs a session (or redirects to the
//! login page); every form is a POST carrying the session's CSRF token; GET
//! never changes anything (the filter form is a GET and carries no token).
//! Actions go through a confirmation page, then POST, then redirect.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use chrono::{DateTime, Utc};

use super::auth::{self, SupportSession, LOGIN_COOKIE, SESSION_COOKIE};
use super::queue::{
    initiator_label, load_page, resolve_search, state_label, QueueParams, RowView, CSV_HEADER,
};
use super::{action_from_path, action_path, perform, Command, ItemResult, MAX_BULK};
use crate::domain::deadline::{self, max_extended_due_at};
use crate::domain::secret::Secret;
use crate::domain::support::{ExtendBy, LOGIN_FORM_PREFIX, MAX_EXTENSION_MONTHS};
use crate::domain::values::{Initiator, InvalidValue, Reason};
use crate::domain::{RequestId, RequestState};
use crate::email::views::{date, date_time};
use crate::http::openapi::{ActionForm, BulkForm, CsrfForm, LoginForm, PageErrors};
use crate::http::pages::page;
use crate::http::state::AppState;
use crate::store::support::accounts;
use crate::store::support::actions::{Action, Refused};
use crate::store::support::queue::{self, cursor_after, Detail, QueueFilter, QueueItem};
use crate::store::StoreError;

/// The signed-in user, for the header of every page.
pub struct Nav {
    pub user: String,
    pub csrf: String,
}

fn nav(s: &SupportSession) -> Option<Nav> {
    Some(Nav {
        user: s.user.name.clone(),
        csrf: s.csrf.clone(),
    })
}

/// What can go wrong on a page, rendered as a page (never JSON).
#[derive(Debug)]
pub enum PageError {
    /// No session: go to the login page, then back to `next`.
    LoginRequired(Option<String>),
    /// A form without this session's CSRF token.
    Csrf,
    NotFound(&'static str),
    BadRequest(String),
    Unavailable,
    Internal,
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::LoginRequired(_) => f.write_str("login required"),
            PageError::Csrf => f.write_str("missing or wrong CSRF token"),
            PageError::NotFound(what) => write!(f, "no such {what}"),
            PageError::BadRequest(m) => f.write_str(m),
            PageError::Unavailable => f.write_str("database unavailable"),
            PageError::Internal => f.write_str("internal error"),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => PageError::NotFound("request"),
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                PageError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "support page failed");
                PageError::Internal
            }
        }
    }
}

#[derive(Template)]
#[template(path = "support/message.html")]
struct MessagePage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    title: &'a str,
    message: &'a str,
    class: &'a str,
    back: Option<&'a str>,
}

fn render(status: StatusCode, html: Result<String, askama::Error>) -> HttpResponse {
    match html {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "support page failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    class: &str,
    back: Option<&str>,
) -> HttpResponse {
    render(
        status,
        MessagePage {
            nav: None,
            active: "",
            title,
            message: text,
            class,
            back,
        }
        .render(),
    )
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::LoginRequired(_) => StatusCode::SEE_OTHER,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            PageError::LoginRequired(next) => {
                let location = match next {
                    Some(n) => format!(
                        "/support/login?{}",
                        serde_urlencoded::to_string([("next", n)]).unwrap_or_default()
                    ),
                    None => "/support/login".to_owned(),
                };
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish()
            }
            PageError::Csrf => message(
                status,
                "Form refused",
                "This form did not carry a valid security token, so nothing was changed. Go back, reload the page and try again.",
                "errors",
                Some("/support"),
            ),
            PageError::NotFound(what) => message(
                status,
                "Not found",
                &format!("There is no such {what}."),
                "errors",
                Some("/support/requests"),
            ),
            PageError::BadRequest(m) => message(status, "Cannot do that", m, "errors", None),
            PageError::Unavailable => message(
                status,
                "Briefly unavailable",
                "The database is unavailable; please try again in a moment.",
                "errors",
                None,
            ),
            PageError::Internal => message(
                status,
                "Something went wrong",
                "Something went wrong on our side; it has been logged.",
                "errors",
                None,
            ),
        }
    }
}

pub async fn not_found(s: SupportSession) -> Result<HttpResponse, PageError> {
    let _ = s;
    Err(PageError::NotFound("page"))
}

fn read_form(body: &[u8]) -> Result<Vec<(String, String)>, PageError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::BadRequest("The form could not be read.".into()))
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "support/login.html")]
struct LoginPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    csrf: &'a str,
    email: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    next: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> HttpResponse {
    let secret = Secret::generate(LOGIN_FORM_PREFIX);
    let html = LoginPage {
        nav: None,
        active: "",
        csrf: secret.expose(),
        email,
        next,
        error,
        notice,
    }
    .render();
    let mut resp = render(status, html);
    if let Ok(v) = header::HeaderValue::from_str(&auth::set_cookie(
        &state.support,
        LOGIN_COOKIE,
        secret.expose(),
        "/support/login",
        3600,
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    next: Option<String>,
    bye: Option<String>,
}

#[utoipa::path(
    get, path = "/support/login",
    params(LoginQuery),
    responses((status = 200, description = "The login form", content_type = "text/html", body = String)),
)]
pub async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = q.next.as_deref().and_then(auth::safe_next).unwrap_or("");
    // Already signed in: straight on.
    if let Some(secret) = auth::cookie(&req, SESSION_COOKIE) {
        let digest = Secret::from_presented(&secret).digest();
        if let Ok(Some(_)) = state
            .store
            .read(move |conn| accounts::find_session(conn, &digest, deadline::now()))
            .await
        {
            return redirect(if next.is_empty() { "/support" } else { next });
        }
    }
    let notice = q.bye.as_ref().map(|_| "You are logged out.");
    login_page(&state, StatusCode::OK, "", next, None, notice)
}

#[utoipa::path(
    post, path = "/support/login",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: session cookie set, redirect to `next`", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 401, description = "Wrong email or password: the form again", content_type = "text/html", body = String),
        (status = 403, description = "Missing or wrong CSRF token", content_type = "text/html", body = String),
        (status = 422, description = "Email or password missing: the form again", content_type = "text/html", body = String),
    ),
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&body)?;
    let email = field(&form, "email").unwrap_or("").trim().to_owned();
    let password = field(&form, "password").unwrap_or("").to_owned();
    let next = field(&form, "next")
        .and_then(auth::safe_next)
        .unwrap_or("")
        .to_owned();
    let presented = field(&form, "csrf").unwrap_or("");
    let expected = auth::cookie(&req, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::equal(presented, &expected) {
        tracing::warn!("support login form without a valid CSRF token refused");
        return Ok(login_page(
            &state,
            StatusCode::FORBIDDEN,
            &email,
            &next,
            Some("The login form expired. Please try again."),
            None,
        ));
    }
    if email.is_empty() || password.is_empty() || email.len() > 254 || password.len() > 1024 {
        return Ok(login_page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            &email,
            &next,
            Some("Enter your email address and password."),
            None,
        ));
    }
    let outcome = crate::support::login(
        &state.store,
        &state.support.policy,
        &email,
        password,
        deadline::now(),
    )
    .await?;
    match outcome {
        crate::support::Login::Ok {
            secret, expires_at, ..
        } => {
            let max_age = (expires_at - deadline::now()).num_seconds().max(0);
            let session =
                auth::set_cookie(&state.support, SESSION_COOKIE, secret.expose(), "/support", max_age);
            let gone = auth::clear_cookie(&state.support, LOGIN_COOKIE, "/support/login");
            Ok(HttpResponse::SeeOther()
                .insert_header((
                    header::LOCATION,
                    if next.is_empty() { "/support".to_owned() } else { next },
                ))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .append_header((header::SET_COOKIE, session))
                .append_header((header::SET_COOKIE, gone))
                .finish())
        }
        crate::support::Login::Refused => Ok(login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &email,
            &next,
            Some("Wrong email address or password, or the account is locked for a while after repeated failed attempts."),
            None,
        )),
    }
}

#[utoipa::path(
    post, path = "/support/logout",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        PageErrors,
        (status = 303, description = "Logged out (or no session): redirect to the login page", headers(("Location" = String))),
    ),
)]
pub async fn logout(
    s: SupportSession,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    s.check_csrf(&read_form(&body)?)?;
    let id = s.session_id.clone();
    state
        .store
        .write(move |conn| accounts::end_session(conn, &id, deadline::now()))
        .await?;
    tracing::info!(user = %s.user.id, "support user logged out");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/support/login?bye=1"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .append_header((
            header::SET_COOKIE,
            auth::clear_cookie(&state.support, SESSION_COOKIE, "/support"),
        ))
        .finish())
}

// ---------------------------------------------------------------- overview

struct StateCount {
    state: &'static str,
    label: &'static str,
    count: i64,
    open: bool,
}

struct TenantRow {
    id: String,
    name: String,
    counts: [i64; 4],
    open: i64,
    overdue: i64,
}

#[derive(Template)]
#[template(path = "support/overview.html")]
struct OverviewPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    now: String,
    open: i64,
    overdue: i64,
    due_soon: i64,
    awaiting: i64,
    failed: i64,
    closed_days: i64,
    by_state: Vec<StateCount>,
    open_labels: Vec<&'static str>,
    tenants: Vec<TenantRow>,
    awaiting_longest: Vec<RowView>,
    failed_rows: Vec<RowView>,
}

/// Rows in each list of the overview.
const OVERVIEW_LIST: i64 = 10;

#[utoipa::path(
    get, path = "/support",
    description = "The dashboard's overview page (also at `/support/`).",
    responses((status = 200, description = "The overview", content_type = "text/html", body = String), PageErrors),
)]
pub async fn overview(
    s: SupportSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let now = deadline::now();
    let o = state
        .store
        .read(move |conn| queue::overview(conn, now, OVERVIEW_LIST))
        .await?;
    let count = |st: RequestState| {
        o.open_by_state
            .iter()
            .find(|(s, _)| *s == st)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let html = OverviewPage {
        nav: nav(&s),
        active: "overview",
        now: date_time(now),
        open: o.open,
        overdue: o.overdue,
        due_soon: o.due_within_7_days,
        awaiting: count(RequestState::AwaitingApproval),
        failed: count(RequestState::Failed),
        closed_days: queue::CLOSED_WINDOW_DAYS,
        by_state: o
            .open_by_state
            .iter()
            .chain(o.closed_recently.iter())
            .map(|(st, n)| StateCount {
                state: st.as_str(),
                label: state_label(*st),
                count: *n,
                open: st.is_open(),
            })
            .collect(),
        open_labels: RequestState::OPEN.iter().map(|s| state_label(*s)).collect(),
        tenants: o
            .by_tenant
            .iter()
            .map(|t| TenantRow {
                id: t.tenant_id.clone(),
                name: t.tenant_name.clone(),
                counts: t.open_by_state,
                open: t.open,
                overdue: t.overdue,
            })
            .collect(),
        awaiting_longest: o
            .awaiting_longest
            .iter()
            .map(|r| RowView::new(r, now))
            .collect(),
        failed_rows: o.failed.iter().map(|r| RowView::new(r, now)).collect(),
    }
    .render();
    Ok(render(StatusCode::OK, html))
}

// ---------------------------------------------------------------- queue

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "support/queue.html")]
struct QueuePage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    csrf: &'a str,
    rows: Vec<RowView>,
    error: Option<String>,
    states: Vec<Choice>,
    tenants: Vec<Choice>,
    initiators: Vec<Choice>,
    actions: Vec<Choice>,
    overdue: bool,
    due_within: &'a str,
    from: &'a str,
    to: &'a str,
    q: &'a str,
    newest: bool,
    filtered: bool,
    next: Option<String>,
    export: String,
    first_page: bool,
}

fn choices(values: &[(&str, &str)], current: &str) -> Vec<Choice> {
    values
        .iter()
        .map(|(v, l)| Choice {
            value: (*v).to_owned(),
            label: (*l).to_owned(),
            selected: *v == current,
        })
        .collect()
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::ResendApproval => "Resend approval email",
        Action::Retry => "Retry erasure",
        Action::Cancel => "Cancel",
        Action::Extend => "Extend deadline",
    }
}

#[utoipa::path(
    get, path = "/support/requests",
    params(QueueParams),
    responses((status = 200, description = "The queue, filtered", content_type = "text/html", body = String), PageErrors),
)]
pub async fn queue(
    s: SupportSession,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let now = deadline::now();
    let params = QueueParams::parse(req.query_string()).unwrap_or_default();
    let parsed = params.filter(50);
    let key = state.subject_key.clone();
    let (rows, next, tenants, error) = match parsed {
        Ok((filter, search)) => {
            let loaded = state
                .store
                .read(move |conn| {
                    let page = match load_page(conn, &key, filter, search, now) {
                        Ok(p) => Ok(p),
                        Err(StoreError::Conflict(m)) => Err(m),
                        Err(e) => return Err(e),
                    };
                    Ok((page, queue::tenant_choices(conn)?))
                })
                .await?;
            match loaded {
                (Ok((rows, next)), tenants) => (rows, next, tenants, None),
                (Err(m), tenants) => (Vec::new(), None, tenants, Some(m.to_owned())),
            }
        }
        Err(e) => {
            let tenants = state.store.read(queue::tenant_choices).await?;
            (
                Vec::new(),
                None,
                tenants,
                Some(format!("{}: {}", e.field, e.message)),
            )
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut state_values: Vec<(&str, &str)> = vec![("", "any"), ("open", "open (not closed)")];
    state_values.extend(
        RequestState::ALL
            .iter()
            .map(|s| (s.as_str(), state_label(*s))),
    );
    let tenant_current = QueueParams::value(&params.tenant);
    let mut tenant_choices = vec![Choice {
        value: String::new(),
        label: "any".into(),
        selected: tenant_current.is_empty(),
    }];
    tenant_choices.extend(tenants.into_iter().map(|(id, name)| Choice {
        selected: id == tenant_current,
        label: name,
        value: id,
    }));
    let initiators: Vec<(&str, &str)> = [("", "any")]
        .into_iter()
        .chain(
            [
                Initiator::Subject,
                Initiator::Support,
                Initiator::RetentionPolicy,
            ]
            .iter()
            .map(|i| (i.as_str(), initiator_label(*i))),
        )
        .collect();
    let actions: Vec<(&str, &str)> = Action::ALL
        .iter()
        .map(|a| (a.as_str(), action_label(*a)))
        .collect();
    let html = QueuePage {
        nav: nav(&s),
        active: "queue",
        csrf: &s.csrf,
        rows: rows.iter().map(|r| RowView::new(r, now)).collect(),
        error,
        states: choices(&state_values, QueueParams::value(&params.state)),
        tenants: tenant_choices,
        initiators: choices(&initiators, QueueParams::value(&params.initiator)),
        actions: choices(&actions, ""),
        overdue: QueueParams::value(&params.overdue) == "true",
        due_within: QueueParams::value(&params.due_within),
        from: QueueParams::value(&params.from),
        to: QueueParams::value(&params.to),
        q: QueueParams::value(&params.q),
        newest: QueueParams::value(&params.sort) == "newest",
        filtered: params.is_filtered(),
        next: next.map(|c| params.with_cursor(&c)),
        export: params.without_cursor(),
        first_page: QueueParams::value(&params.cursor).is_empty(),
    }
    .render();
    Ok(render(status, html))
}

/// Rows per query while exporting (the largest page the queue serves).
const EXPORT_PAGE: i64 = queue::MAX_PAGE;

/// Stream the CSV of a filter, page by page (each query bounded), so a large
/// export never sits in memory.
pub fn csv_response(state: &AppState, filter: QueueFilter, now: DateTime<Utc>) -> HttpResponse {
    let store = state.store.clone();
    let start = Some((filter, true));
    let body = futures_util::stream::unfold(start, move |st| {
        let store = store.clone();
        async move {
            let (mut f, first) = st?;
            f.limit = EXPORT_PAGE + 1;
            let q = f.clone();
            match store.read(move |conn| queue::list(conn, &q, now)).await {
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed");
                    Some((Err(std::io::Error::other("the export failed")), None))
                }
                Ok(mut rows) => {
                    let more = rows.len() as i64 > EXPORT_PAGE;
                    rows.truncate(EXPORT_PAGE as usize);
                    let mut buf = String::with_capacity(rows.len() * 200 + CSV_HEADER.len());
                    if first {
                        buf.push_str(CSV_HEADER);
                    }
                    for r in &rows {
                        buf.push_str(&super::queue::csv_line(r, now));
                    }
                    let next = match (more, rows.last()) {
                        (true, Some(last)) => {
                            f.after = Some(cursor_after(last, f.sort));
                            Some((f, false))
                        }
                        _ => None,
                    };
                    Some((Ok(web::Bytes::from(buf)), next))
                }
            }
        }
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"lethe-requests-{}.csv\"",
                now.format("%Y%m%d-%H%M")
            ),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}

/// Check a filter and resolve its search, for an export.
pub async fn export_filter(
    state: &AppState,
    query: &str,
) -> Result<Result<QueueFilter, String>, StoreError> {
    let params = match QueueParams::parse(query) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("{}: {}", e.field, e.message))),
    };
    let (mut filter, search) = match params.filter(EXPORT_PAGE) {
        Ok(f) => f,
        Err(e) => return Ok(Err(format!("{}: {}", e.field, e.message))),
    };
    // The export always starts at the first row of the filter.
    filter.after = None;
    if let Some(text) = search {
        let key = state.subject_key.clone();
        let tenant = filter.tenant;
        match state
            .store
            .read(move |conn| resolve_search(conn, &key, &text, tenant))
            .await
        {
            Ok(s) => filter.search = Some(s),
            Err(StoreError::Conflict(m)) => return Ok(Err(m.to_owned())),
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(filter))
}

#[utoipa::path(
    get, path = "/support/requests/export.csv",
    params(QueueParams),
    responses((status = 200, description = "The filtered queue as CSV", content_type = "text/csv", body = String), PageErrors),
)]
pub async fn export(
    s: SupportSession,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let filter = export_filter(&state, req.query_string())
        .await?
        .map_err(PageError::BadRequest)?;
    tracing::info!(user = %s.user.id, "support CSV export");
    Ok(csv_response(&state, filter, deadline::now()))
}

// ---------------------------------------------------------------- detail

struct EventView {
    seq: i64,
    at: String,
    event: String,
    transition: String,
    actor: String,
    detail: String,
}

struct EmailView {
    at: String,
    what: String,
    failed: bool,
}

struct JobView {
    kind: String,
    run_at: String,
    attempts: String,
    status: &'static str,
    last_error: String,
}

struct ActionLink {
    path: String,
    label: &'static str,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "support/detail.html")]
struct DetailPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    r: RowView,
    flash: Option<String>,
    subject_email_given: bool,
    reason: Option<String>,
    decision_code: Option<String>,
    received: String,
    due: String,
    original_due: String,
    latest_due: String,
    extended: Option<String>,
    extension_reason: Option<String>,
    cancel_reason: Option<String>,
    escalated: Option<String>,
    undeliverable: Option<String>,
    closed: Option<String>,
    batch: Option<String>,
    actions: Vec<ActionLink>,
    extend_note: Option<String>,
    emails: Vec<EmailView>,
    timeline: Vec<EventView>,
    jobs: Vec<JobView>,
    targets: Vec<TargetView>,
}

/// One erasure target's status on the detail page.
struct TargetView {
    name: String,
    status: String,
    attempts: i32,
    last: String,
    confirmed: String,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    done: Option<String>,
}

fn flash(done: &str) -> Option<&'static str> {
    Some(match done {
        "resend-approval" => "A new approval email is queued; the old link no longer works.",
        "retry" => "The erasure is retried: the request is erasing again.",
        "cancel" => "The request is cancelled.",
        "extend" => "The deadline is extended. The subject is being told, with the reason.",
        "extend-untold" => "The deadline is extended. The subject gave no email address: the tenant must tell them, with the reason, within the first month.",
        _ => return None,
    })
}

fn email_view(e: &crate::store::audit::AuditRow) -> Option<EmailView> {
    let detail: serde_json::Value = e
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let what = match e.event.as_str() {
        "approval_email_sent" => "Approval email sent to the privacy contact".to_owned(),
        "approval_reminder_sent" => "Reminder sent to the privacy contact".to_owned(),
        "approval_email_failed" => format!(
            "Approval email could not be delivered ({})",
            detail["failure"]
                .as_str()
                .unwrap_or("failed")
                .replace('_', " ")
        ),
        "subject_notified" => format!(
            "Subject told: {}",
            detail["notice"].as_str().unwrap_or("notice")
        ),
        _ => return None,
    };
    Some(EmailView {
        at: date_time(e.at()),
        failed: e.event == "approval_email_failed",
        what,
    })
}

fn actor_label(kind: &str, id: &str, users: &[(String, String, String)]) -> String {
    match kind {
        "support" => match users.iter().find(|(uid, _, _)| uid == id) {
            Some((_, name, _)) => format!("support: {name}"),
            None => format!("support: {id}"),
        },
        "privacy_contact" => "privacy contact".to_owned(),
        other => format!("{}: {id}", other.replace('_', " ")),
    }
}

fn job_status(j: &crate::store::jobs::JobRow) -> &'static str {
    match (j.finished_at.is_some(), j.dead, j.attempts) {
        (true, true, _) => "failed for good",
        (true, false, _) if j.last_error.is_some() && j.attempts == 0 => "superseded",
        (true, false, _) => "done",
        (false, _, 0) => "queued",
        (false, _, _) => "retrying",
    }
}

async fn load_detail(
    state: &AppState,
    id: RequestId,
) -> Result<(Detail, Vec<(String, String, String)>), PageError> {
    state
        .store
        .read(move |conn| {
            let d = queue::detail(conn, id)?;
            let mut ids: Vec<String> = d
                .timeline
                .iter()
                .filter(|e| e.actor_kind == "support")
                .map(|e| e.actor_id.clone())
                .chain(d.extended_by.clone())
                .collect();
            ids.sort();
            ids.dedup();
            let users = accounts::names(conn, &ids)?;
            Ok((d, users))
        })
        .await
        .map_err(PageError::from)
}

fn parse_request_id(raw: &str) -> Result<RequestId, PageError> {
    raw.parse().map_err(|_| PageError::NotFound("request"))
}

#[utoipa::path(
    get, path = "/support/requests/{id}",
    params(("id" = RequestId, Path, description = "The erasure request"), DetailQuery),
    responses((status = 200, description = "The request's page", content_type = "text/html", body = String), PageErrors),
)]
pub async fn detail(
    s: SupportSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<DetailQuery>,
) -> Result<HttpResponse, PageError> {
    let id = parse_request_id(&path)?;
    let (d, users) = load_detail(&state, id).await?;
    let now = deadline::now();
    let item = &d.item;
    let facts = item.extension_facts();
    let mut actions = Vec::new();
    for a in Action::ALL {
        let allowed = match a {
            Action::Extend => facts.can_extend(now).is_ok(),
            other => other.applies_to(item.state),
        };
        if allowed {
            actions.push(ActionLink {
                path: format!("/support/requests/{id}/{}", action_path(a)),
                label: action_label(a),
                class: if a == Action::Cancel {
                    "danger"
                } else {
                    "primary"
                },
            });
        }
    }
    let extend_note = match facts.can_extend(now) {
        Err(e) if item.state.is_open() => Some(format!("The deadline cannot be extended: {e}.")),
        _ => None,
    };
    let extended = item.extended_at.map(|at| {
        let by = d
            .extended_by
            .as_deref()
            .map(|u| actor_label("support", u, &users))
            .unwrap_or_default();
        format!("{} by {by}", date_time(at))
    });
    let html = DetailPage {
        nav: nav(&s),
        active: "queue",
        r: RowView::new(item, now),
        flash: q.done.as_deref().and_then(flash).map(str::to_owned),
        subject_email_given: d.subject_email_given,
        reason: d.reason.clone(),
        decision_code: d.decision_code.clone(),
        received: date_time(item.received_at),
        due: date(item.due_at),
        original_due: date(facts.original_due()),
        latest_due: date(max_extended_due_at(item.received_at)),
        extended,
        extension_reason: d.extension_reason.clone(),
        cancel_reason: d.cancel_reason.clone(),
        escalated: item.escalated_at.map(date_time),
        undeliverable: item.delivery_failed_at.map(date_time),
        closed: item.closed_at.map(date_time),
        batch: item.batch_id.map(|b| b.to_string()),
        actions,
        extend_note,
        emails: d.timeline.iter().filter_map(email_view).collect(),
        targets: d
            .targets
            .iter()
            .map(|c| TargetView {
                name: c.target_name.clone(),
                status: c.status().to_string(),
                attempts: c.attempts,
                last: c
                    .last_status_code
                    .map(|s| format!("HTTP {s}"))
                    .or_else(|| c.last_error.clone())
                    .unwrap_or_default(),
                confirmed: c
                    .confirmed_at()
                    .map(|t| {
                        let at = t.format("%Y-%m-%d %H:%M UTC");
                        match &c.confirmed_by {
                            Some(owner) => format!("{at} by {owner}"),
                            None => at.to_string(),
                        }
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        timeline: d
            .timeline
            .iter()
            .map(|e| EventView {
                seq: e.seq,
                at: date_time(e.at()),
                event: e.event.replace('_', " "),
                transition: match &e.from_state {
                    Some(from) if *from != e.to_state => format!("{from} → {}", e.to_state),
                    None => format!("→ {}", e.to_state),
                    _ => String::new(),
                },
                actor: actor_label(&e.actor_kind, &e.actor_id, &users),
                detail: e.detail.clone().unwrap_or_default(),
            })
            .collect(),
        jobs: d
            .jobs
            .iter()
            .map(|j| JobView {
                kind: j.kind.replace('_', " "),
                run_at: date_time(j.run_at.and_utc()),
                attempts: format!("{}/{}", j.attempts, j.max_attempts),
                status: job_status(j),
                last_error: j.last_error.clone().unwrap_or_default(),
            })
            .collect(),
    }
    .render();
    Ok(render(StatusCode::OK, html))
}

// ---------------------------------------------------------------- actions

struct MonthChoice {
    months: u32,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "support/confirm.html")]
struct ConfirmPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    csrf: &'a str,
    r: RowView,
    action: String,
    title: &'static str,
    explain: String,
    needs_reason: bool,
    is_extend: bool,
    months: Vec<MonthChoice>,
    reason: &'a str,
    error: Option<String>,
    button: &'static str,
    danger: bool,
    /// The request no longer allows the action: no button.
    blocked: bool,
}

fn explain(a: Action, item: &QueueItem) -> String {
    match a {
        Action::ResendApproval => "The privacy contact gets a new approval email. The link in earlier emails stops working.".into(),
        Action::Retry => "The erasure starts again: the request goes from failed back to erasing and every target is called again.".into(),
        Action::Cancel => "The request is withdrawn and nothing is erased. This cannot be undone. Your reason is kept with the request.".into(),
        Action::Extend => format!(
            "GDPR Art. 12(3) allows one extension, by at most two further months, decided within the first month (until {}). The subject is told, with your reason.",
            date(item.extension_facts().original_due())
        ),
    }
}

fn month_choices(item: &QueueItem, selected: u32) -> Vec<MonthChoice> {
    (1..=MAX_EXTENSION_MONTHS)
        .map(|m| MonthChoice {
            months: m,
            label: format!(
                "{m} month{}: new deadline {}",
                if m == 1 { "" } else { "s" },
                date(ExtendBy::Months(m).new_due(item.received_at))
            ),
            selected: m == selected,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn confirm_page(
    s: &SupportSession,
    item: &QueueItem,
    a: Action,
    reason: &str,
    months: u32,
    error: Option<String>,
    status: StatusCode,
    now: DateTime<Utc>,
) -> HttpResponse {
    let (title, button) = match a {
        Action::ResendApproval => ("Resend the approval email?", "Resend approval email"),
        Action::Retry => ("Retry the erasure?", "Retry erasure"),
        Action::Cancel => ("Cancel this request?", "Cancel request"),
        Action::Extend => ("Extend the deadline?", "Extend deadline"),
    };
    let html = ConfirmPage {
        nav: nav(s),
        active: "queue",
        csrf: &s.csrf,
        r: RowView::new(item, now),
        action: format!("/support/requests/{}/{}", item.id, action_path(a)),
        title,
        explain: explain(a, item),
        needs_reason: a.needs_reason(),
        is_extend: a == Action::Extend,
        months: month_choices(item, months),
        reason,
        error,
        button,
        danger: a == Action::Cancel,
        blocked: !match a {
            Action::Extend => item.extension_facts().can_extend(now).is_ok(),
            other => other.applies_to(item.state),
        },
    }
    .render();
    render(status, html)
}

async fn load_item(state: &AppState, id: RequestId) -> Result<QueueItem, PageError> {
    state
        .store
        .read(move |conn| queue::by_ids(conn, &[id]))
        .await?
        .pop()
        .ok_or(PageError::NotFound("request"))
}

#[utoipa::path(
    get, path = "/support/requests/{id}/{action}",
    params(("id" = RequestId, Path, description = "The erasure request"), ("action" = String, Path, description = "`resend-approval`, `retry`, `cancel` or `extend`")),
    responses((status = 200, description = "The action's confirmation form", content_type = "text/html", body = String), PageErrors),
)]
pub async fn confirm(
    s: SupportSession,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (raw_id, raw_action) = path.into_inner();
    let a = action_from_path(&raw_action).ok_or(PageError::NotFound("action"))?;
    let id = parse_request_id(&raw_id)?;
    let item = load_item(&state, id).await?;
    let now = deadline::now();
    let refusal = match a {
        Action::Extend => item
            .extension_facts()
            .can_extend(now)
            .err()
            .map(|e| e.to_string()),
        other if !other.applies_to(item.state) => Some(format!(
            "This request is {}: it cannot be {}.",
            state_label(item.state),
            match other {
                Action::ResendApproval => "sent for approval again",
                Action::Retry => "retried",
                _ => "cancelled",
            }
        )),
        _ => None,
    };
    Ok(confirm_page(
        &s,
        &item,
        a,
        "",
        MAX_EXTENSION_MONTHS,
        refusal,
        StatusCode::OK,
        now,
    ))
}

/// The command a form asks for, checked.
pub fn command(
    a: Action,
    reason: Option<&str>,
    months: Option<u32>,
    due_date: Option<&str>,
) -> Result<Command, InvalidValue> {
    let reason = || -> Result<Reason, InvalidValue> {
        Reason::parse("reason", reason.unwrap_or("")).map_err(|e| {
            InvalidValue::new("reason", format!("{} (a reason is required)", e.message))
        })
    };
    Ok(match a {
        Action::ResendApproval => Command::ResendApproval,
        Action::Retry => Command::Retry,
        Action::Cancel => Command::Cancel(reason()?),
        Action::Extend => {
            let by = match (months, due_date) {
                (Some(m), None) => ExtendBy::months(m)?,
                (None, Some(d)) => {
                    ExtendBy::Until(chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(
                        |_| InvalidValue::new("due_date", "must be a date like 2026-03-31"),
                    )?)
                }
                _ => {
                    return Err(InvalidValue::new(
                        "months",
                        "give either months (1 or 2) or due_date",
                    ))
                }
            };
            Command::Extend(by, reason()?)
        }
    })
}

fn refusal_text(r: &Refused) -> (StatusCode, String) {
    match r {
        Refused::Transition(t) => (StatusCode::CONFLICT, format!("Refused: {t}.")),
        Refused::Extension(e) if e.is_conflict() => {
            (StatusCode::CONFLICT, format!("Refused: {e}."))
        }
        Refused::Extension(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("Refused: {e}.")),
    }
}

#[utoipa::path(
    post, path = "/support/requests/{id}/{action}",
    params(("id" = RequestId, Path, description = "The erasure request"), ("action" = String, Path, description = "`resend-approval`, `retry`, `cancel` or `extend`")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        PageErrors,
        (status = 303, description = "Done: redirect to the request's page (without a session: to the login page)", headers(("Location" = String))),
        (status = 409, description = "Refused in the request's state", content_type = "text/html", body = String),
        (status = 422, description = "Invalid reason or extension: the form again", content_type = "text/html", body = String),
    ),
)]
pub async fn act(
    s: SupportSession,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&body)?;
    s.check_csrf(&form)?;
    let (raw_id, raw_action) = path.into_inner();
    let a = action_from_path(&raw_action).ok_or(PageError::NotFound("action"))?;
    let id = parse_request_id(&raw_id)?;
    let reason = field(&form, "reason").unwrap_or("");
    let months = field(&form, "months").and_then(|m| m.parse::<u32>().ok());
    let now = deadline::now();
    let cmd = match command(a, Some(reason), months.or(Some(0)), None) {
        Ok(c) => c,
        Err(e) => {
            let item = load_item(&state, id).await?;
            return Ok(confirm_page(
                &s,
                &item,
                a,
                reason,
                months.unwrap_or(MAX_EXTENSION_MONTHS),
                Some(format!("{}: {}", e.field, e.message)),
                StatusCode::UNPROCESSABLE_ENTITY,
                now,
            ));
        }
    };
    let mut results = perform(&state, s.user.id, &[id], &cmd).await?;
    let (_, result) = results.pop().ok_or(PageError::Internal)?;
    let (status, text) = match result {
        ItemResult::Done(extended) => {
            let done = match (a, extended) {
                (Action::Extend, Some(e)) if !e.subject_told => "extend-untold".to_owned(),
                (a, _) => action_path(a),
            };
            return Ok(redirect(&format!("/support/requests/{id}?done={done}")));
        }
        ItemResult::NotFound => return Err(PageError::NotFound("request")),
        ItemResult::Refused(r) => refusal_text(&r),
        ItemResult::Conflict(m) => (StatusCode::CONFLICT, format!("{m}.")),
    };
    let item = load_item(&state, id).await?;
    Ok(confirm_page(
        &s,
        &item,
        a,
        reason,
        months.unwrap_or(MAX_EXTENSION_MONTHS),
        Some(text),
        status,
        now,
    ))
}

// ---------------------------------------------------------------- bulk

struct BulkItem {
    r: RowView,
    applies: bool,
}

#[derive(Template)]
#[template(path = "support/bulk_confirm.html")]
struct BulkConfirmPage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    csrf: &'a str,
    action: &'static str,
    label: &'static str,
    items: Vec<BulkItem>,
    applying: usize,
    needs_reason: bool,
    is_extend: bool,
    reason: &'a str,
    months: u32,
    error: Option<String>,
    danger: bool,
}

struct BulkResult {
    id: String,
    r: Option<RowView>,
    ok: bool,
    message: String,
}

#[derive(Template)]
#[template(path = "support/bulk_done.html")]
struct BulkDonePage<'a> {
    nav: Option<Nav>,
    active: &'a str,
    label: &'static str,
    done: usize,
    refused: usize,
    results: Vec<BulkResult>,
}

fn selection(form: &[(String, String)]) -> Result<(Action, Vec<RequestId>), PageError> {
    let a = field(form, "action")
        .and_then(Action::parse)
        .ok_or_else(|| {
            PageError::BadRequest("Choose an action for the selected requests.".into())
        })?;
    let mut ids: Vec<RequestId> = Vec::new();
    for (k, v) in form {
        if k == "id" {
            let id = v.parse().map_err(|_| {
                PageError::BadRequest("The selection names an unknown request.".into())
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        return Err(PageError::BadRequest(
            "Select at least one request (tick its box), then choose the action.".into(),
        ));
    }
    if ids.len() > MAX_BULK {
        return Err(PageError::BadRequest(format!(
            "Select at most {MAX_BULK} requests at a time."
        )));
    }
    Ok((a, ids))
}

#[allow(clippy::too_many_arguments)]
fn bulk_confirm_page(
    s: &SupportSession,
    a: Action,
    items: &[QueueItem],
    reason: &str,
    months: u32,
    error: Option<String>,
    status: StatusCode,
    now: DateTime<Utc>,
) -> HttpResponse {
    let items: Vec<BulkItem> = items
        .iter()
        .map(|i| BulkItem {
            applies: match a {
                Action::Extend => i.extension_facts().can_extend(now).is_ok(),
                other => other.applies_to(i.state),
            },
            r: RowView::new(i, now),
        })
        .collect();
    let html = BulkConfirmPage {
        nav: nav(s),
        active: "queue",
        csrf: &s.csrf,
        action: a.as_str(),
        label: action_label(a),
        applying: items.iter().filter(|i| i.applies).count(),
        items,
        needs_reason: a.needs_reason(),
        is_extend: a == Action::Extend,
        reason,
        months,
        error,
        danger: a == Action::Cancel,
    }
    .render();
    render(status, html)
}

#[utoipa::path(
    post, path = "/support/bulk/confirm",
    request_body(content = BulkForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The bulk action's confirmation form", content_type = "text/html", body = String), PageErrors),
)]
pub async fn bulk_confirm(
    s: SupportSession,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&body)?;
    s.check_csrf(&form)?;
    let (a, ids) = selection(&form)?;
    let items = state
        .store
        .read(move |conn| queue::by_ids(conn, &ids))
        .await?;
    Ok(bulk_confirm_page(
        &s,
        a,
        &items,
        "",
        MAX_EXTENSION_MONTHS,
        None,
        StatusCode::OK,
        deadline::now(),
    ))
}

#[utoipa::path(
    post, path = "/support/bulk",
    request_body(content = BulkForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Each request's outcome", content_type = "text/html", body = String),
        (status = 422, description = "Invalid reason or extension: the form again", content_type = "text/html", body = String),
        PageErrors,
    ),
)]
pub async fn bulk(
    s: SupportSession,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&body)?;
    s.check_csrf(&form)?;
    let (a, ids) = selection(&form)?;
    let reason = field(&form, "reason").unwrap_or("");
    let months = field(&form, "months").and_then(|m| m.parse::<u32>().ok());
    let now = deadline::now();
    let cmd = match command(a, Some(reason), months.or(Some(0)), None) {
        Ok(c) => c,
        Err(e) => {
            let items = state
                .store
                .read(move |conn| queue::by_ids(conn, &ids))
                .await?;
            return Ok(bulk_confirm_page(
                &s,
                a,
                &items,
                reason,
                months.unwrap_or(MAX_EXTENSION_MONTHS),
                Some(format!("{}: {}", e.field, e.message)),
                StatusCode::UNPROCESSABLE_ENTITY,
                now,
            ));
        }
    };
    let results = perform(&state, s.user.id, &ids, &cmd).await?;
    let after = state
        .store
        .read(move |conn| queue::by_ids(conn, &ids))
        .await?;
    let now = deadline::now();
    let results: Vec<BulkResult> = results
        .into_iter()
        .map(|(id, res)| {
            let (ok, message) = match res {
                ItemResult::Done(Some(e)) if !e.subject_told => (
                    true,
                    format!(
                        "done: due {}; the subject gave no email address, the tenant must tell them",
                        date(e.to)
                    ),
                ),
                ItemResult::Done(Some(e)) => {
                    (true, format!("done: due {}; the subject is told", date(e.to)))
                }
                ItemResult::Done(None) => (true, "done".to_owned()),
                ItemResult::Refused(r) => (false, refusal_text(&r).1),
                ItemResult::NotFound => (false, "no such request".to_owned()),
                ItemResult::Conflict(m) => (false, m.to_owned()),
            };
            BulkResult {
                id: id.to_string(),
                r: after.iter().find(|i| i.id == id).map(|i| RowView::new(i, now)),
                ok,
                message,
            }
        })
        .collect();
    let html = BulkDonePage {
        nav: nav(&s),
        active: "queue",
        label: action_label(a),
        done: results.iter().filter(|r| r.ok).count(),
        refused: results.iter().filter(|r| !r.ok).count(),
        results,
    }
    .render();
    Ok(render(StatusCode::OK, html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_need_what_their_action_needs() {
        assert!(matches!(
            command(Action::ResendApproval, None, None, None),
            Ok(Command::ResendApproval)
        ));
        assert!(command(Action::Cancel, None, None, None).is_err());
        assert!(command(Action::Cancel, Some("  "), None, None).is_err());
        assert!(matches!(
            command(Action::Cancel, Some("duplicate"), None, None),
            Ok(Command::Cancel(_))
        ));
        assert!(command(Action::Extend, Some("busy"), None, None).is_err());
        assert!(command(Action::Extend, Some("busy"), Some(3), None).is_err());
        assert!(command(Action::Extend, None, Some(2), None).is_err());
        assert!(command(Action::Extend, Some("busy"), Some(2), Some("2026-01-01")).is_err());
        assert!(matches!(
            command(Action::Extend, Some("busy"), None, Some("2026-01-01")),
            Ok(Command::Extend(ExtendBy::Until(_), _))
        ));
        assert!(matches!(
            command(Action::Extend, Some("busy"), Some(2), None),
            Ok(Command::Extend(ExtendBy::Months(2), _))
        ));
    }

    #[test]
    fn only_known_flashes_are_shown() {
        assert!(flash("extend").is_some());
        assert!(flash("<script>").is_none());
    }
}
