//! The OpenAPI 3.1 description of the HTTP surface, generated from the
//! handlers' `#[utoipa::path]` annotations and the body types' `ToSchema`.
//!
//! What the annotations leave out is filled in from the route table
//! ([`super::routes::inventory`]) so it is said once: each operation's
//! security scheme and `401`, its tag and a unique `operationId`, and the
//! OpenGDPR copies of the OpenDSR paths (the same handlers under a second
//! prefix).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Spec, RefOr, ResponseBuilder, Schema, ServerBuilder,
};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::routes::{inventory, path_shape, Access, Kind};
use super::support::auth::SESSION_COOKIE;
use super::{
    approvals, docs, erasure, facebook, health, opendsr, owners, pages, requests, subjects,
    support, targets, tenants,
};
use crate::domain::state::RequestState;
use crate::domain::support::Urgency;
use crate::domain::target::CallStatus;
use crate::domain::tenant::{ApprovalPolicy, Locale};
use crate::domain::values::Initiator;
use crate::domain::{ApiKeyId, BatchId, RequestId, TenantId};

/// The document, built once.
pub fn spec() -> &'static Spec {
    static SPEC: std::sync::OnceLock<Spec> = std::sync::OnceLock::new();
    SPEC.get_or_init(ApiDoc::openapi)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lethe",
        description = "GDPR erasure workflow service: platforms submit erasure requests, \
            the tenant's privacy contact approves them, erasure targets are told and confirm, \
            and a signed receipt proves the erasure.\n\n\
            Errors of the platform, admin and support APIs are `{\"error\": {\"code\", \"message\", \
            \"details\"?}}` (`ErrorBody`); the OpenDSR/OpenGDPR endpoints answer with the \
            protocol's error body (`OpenDsrErrorBody`).\n\n\
            Endpoints without a bearer scheme authenticate otherwise, as each one says: the \
            approval token in the URL, a Facebook `signed_request`, a target's `Lethe-Signature`, \
            or a confirmation code. Server-rendered pages answer `text/html`."
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        docs::openapi_json,
        docs::redirect,
        docs::asset,
        pages::stylesheet,
        support::pages::overview,
        support::pages::login_form,
        support::pages::login,
        support::pages::logout,
        support::pages::queue,
        support::pages::export,
        support::pages::detail,
        support::pages::confirm,
        support::pages::act,
        support::pages::bulk_confirm,
        support::pages::bulk,
        support::api::overview,
        support::api::list,
        support::api::export,
        support::api::get,
        support::api::act,
        support::api::bulk,
        approvals::show,
        approvals::decide,
        owners::show,
        owners::report,
        facebook::status_page,
        opendsr::discovery,
        opendsr::certificate,
        opendsr::submit,
        opendsr::status,
        opendsr::cancel,
        requests::submit_batch,
        requests::submit,
        requests::list,
        requests::get,
        requests::cancel,
        requests::resend_approval,
        erasure::retry,
        erasure::complete,
        erasure::receipt,
        erasure::calls,
        erasure::confirm,
        erasure::public_key,
        subjects::status,
        facebook::deletion_query,
        facebook::deletion_for,
        facebook::configure,
        tenants::create,
        tenants::list,
        tenants::get,
        tenants::patch,
        tenants::create_key,
        tenants::list_keys,
        tenants::revoke_key,
        targets::create,
        targets::list,
        targets::patch,
    ),
    components(schemas(ErrorBody, OpenDsrErrorBody)),
    modifiers(&FromRouteTable),
)]
struct ApiDoc;

/// The security scheme names.
const TENANT_KEY: &str = "tenant_key";
const ADMIN_TOKEN: &str = "admin_token";
const SUPPORT_TOKEN: &str = "support_token";
const SUPPORT_SESSION: &str = "support_session";

const OPENDSR: &str = "/opendsr/v1/";
const OPENGDPR: &str = "/opengdpr/v1/";

/// Completes the document from the route table (see the module doc).
struct FromRouteTable;

impl Modify for FromRouteTable {
    fn modify(&self, doc: &mut Spec) {
        doc.servers = Some(vec![ServerBuilder::new().url("/").build()]);
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(TENANT_KEY, bearer("A tenant's API key (`lethe_...`), made by an admin; it sees only its tenant's requests."));
        components.add_security_scheme(
            ADMIN_TOKEN,
            bearer("The operator's admin token (setting `admin_token`)."),
        );
        components.add_security_scheme(
            SUPPORT_TOKEN,
            bearer("A support user's API token, made with `lethe support token`."),
        );
        components.add_security_scheme(
            SUPPORT_SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The support dashboard's session cookie, set by `POST /support/login`; forms also carry a CSRF token.",
            ))),
        );

        // The OpenGDPR paths are the OpenDSR ones under another prefix.
        let copies: Vec<(String, PathItem)> = doc
            .paths
            .paths
            .iter()
            .filter_map(|(p, item)| {
                p.strip_prefix(OPENDSR)
                    .map(|rest| (format!("{OPENGDPR}{rest}"), item.clone()))
            })
            .collect();
        doc.paths.paths.extend(copies);
        // `/support/` is `/support`.
        if let Some(item) = doc.paths.paths.get("/support").cloned() {
            doc.paths.paths.insert("/support/".into(), item);
        }

        let table: BTreeMap<(String, String), _> = inventory()
            .into_iter()
            .map(|r| ((r.method.as_str().to_owned(), r.shape()), r))
            .collect();
        let mut ids = HashSet::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let Some(route) = table.get(&(method.to_owned(), path_shape(path))) else {
                    continue; // the route test reports it
                };
                let module = route.handler.rsplit_once("::").map_or("", |(m, _)| m);
                let name = route.handler.rsplit("::").next().unwrap_or_default();
                let base = if path.starts_with(OPENGDPR) {
                    format!("opengdpr.{name}")
                } else if path.len() > 1 && path.ends_with('/') {
                    format!("{}_slash", route.handler.replace("::", "."))
                } else {
                    route.handler.replace("::", ".")
                };
                let mut id = base.clone();
                let mut n = 1;
                while !ids.insert(id.clone()) {
                    n += 1;
                    id = format!("{base}_{n}");
                }
                op.operation_id = Some(id);
                op.tags = Some(vec![tag(module, path, route.kind)]);
                let scheme = match route.access {
                    Access::TenantKey => Some(TENANT_KEY),
                    Access::Admin => Some(ADMIN_TOKEN),
                    Access::SupportToken => Some(SUPPORT_TOKEN),
                    Access::SupportSession => Some(SUPPORT_SESSION),
                    _ => None,
                };
                if let Some(scheme) = scheme {
                    op.security =
                        Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
                }
                let bearer = matches!(
                    route.access,
                    Access::TenantKey | Access::Admin | Access::SupportToken
                );
                if bearer && !op.responses.responses.contains_key("401") {
                    let body = if is_opendsr(path) {
                        "OpenDsrErrorBody"
                    } else {
                        "ErrorBody"
                    };
                    op.responses.responses.insert(
                        "401".into(),
                        error_response("missing or unknown credentials", body).into(),
                    );
                }
                // Endpoints without an API key are rate limited per address.
                if super::limit::classify(&route.method, route.path) != super::limit::Class::Exempt
                {
                    let limited = "too many requests from this address: wait for Retry-After";
                    let response = match route.kind {
                        Kind::Api => error_response(limited, "ErrorBody"),
                        Kind::Page => ResponseBuilder::new()
                            .description(limited)
                            .content("text/html", ContentBuilder::new().build())
                            .build(),
                    };
                    op.responses
                        .responses
                        .entry("429".into())
                        .or_insert_with(|| response.into());
                }
                if route.kind == Kind::Api && scheme.is_some() && !is_opendsr(path) {
                    op.responses
                        .responses
                        .entry("500".into())
                        .or_insert_with(|| {
                            error_response("internal error (details only in the log)", "ErrorBody")
                                .into()
                        });
                }
            }
        }
    }
}

fn is_opendsr(path: &str) -> bool {
    path.starts_with(OPENDSR) || path.starts_with(OPENGDPR)
}

fn tag(module: &str, path: &str, kind: Kind) -> String {
    if path.starts_with(OPENGDPR) {
        return "opengdpr".into();
    }
    match (module, kind) {
        ("support::pages", _) => "support pages".into(),
        ("support::api", _) => "support".into(),
        ("health" | "docs" | "pages", _) => "service".into(),
        (m, _) => m.into(),
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("POST", item.post.as_mut()),
        ("PUT", item.put.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("HEAD", item.head.as_mut()),
        ("OPTIONS", item.options.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// The methods a path item has, as the route table spells them.
pub fn methods(item: &PathItem) -> Vec<&'static str> {
    let mut item = item.clone();
    operations(&mut item).into_iter().map(|(m, _)| m).collect()
}

fn error_response(description: &str, schema: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    schema,
                ))))
                .build(),
        )
        .build()
}

// --- Schemas of types defined elsewhere ------------------------------------

/// Ids are UUIDs on the wire.
macro_rules! uuid_schema {
    ($($t:ty),*) => {$(
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }
        impl ToSchema for $t {}
    )*};
}
uuid_schema!(RequestId, TenantId, BatchId, ApiKeyId);

/// Domain enums are snake_case strings; their values are taken from serde
/// so the document cannot drift from the wire.
macro_rules! enum_schema {
    ($($t:ty => [$($v:expr),+ $(,)?]),* $(,)?) => {$(
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([$(wire(&$v)),+]))
                    .into()
            }
        }
        impl ToSchema for $t {}
    )*};
}

fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("not a string enum: {other:?}"),
    }
}

use crate::domain::state::RequestState as S;
enum_schema! {
    RequestState => [
        S::Pending, S::AwaitingApproval, S::Erasing, S::Erased, S::Rejected, S::Cancelled,
        S::Failed,
    ],
    Initiator => [Initiator::Subject, Initiator::Support, Initiator::RetentionPolicy],
    ApprovalPolicy => [ApprovalPolicy::PrivacyContact, ApprovalPolicy::None],
    Locale => [Locale::En, Locale::De, Locale::Fr],
    CallStatus => [
        CallStatus::Pending, CallStatus::Accepted, CallStatus::Confirmed, CallStatus::Failed,
    ],
    Urgency => [
        Urgency::Green, Urgency::Amber, Urgency::Red, Urgency::Overdue, Urgency::Closed,
    ],
}

// --- Bodies written inline by the handlers ---------------------------------

/// The error body of the platform, admin and support APIs.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorInner,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorInner {
    /// A stable code (`invalid_request`, `not_found`, `invalid_transition`, ...).
    #[schema(example = "not_found")]
    code: String,
    message: String,
    /// Per-field problems, for `invalid_request`.
    details: Option<Vec<super::error::FieldError>>,
}

/// The OpenDSR/OpenGDPR error body (the protocol's shape).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenDsrErrorBody {
    error: OpenDsrError,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct OpenDsrError {
    /// The HTTP status.
    code: u16,
    message: String,
    errors: Vec<OpenDsrErrorItem>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct OpenDsrErrorItem {
    /// `OpenDSR` or `OpenGDPR`.
    domain: String,
    /// A stable code (`missing_field`, `not_found`, `processor_not_configured`, ...).
    reason: String,
    message: String,
}

/// `{"data": [...]}` lists.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DataList<T: ToSchema> {
    data: Vec<T>,
}

/// `/healthz`
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// `/readyz`
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Ready {
    /// `ready` or `unavailable`.
    status: String,
    /// `ok` or `unreachable`.
    database: String,
}

/// The public key erasure receipts are signed with.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PublicKey {
    #[schema(example = "ed25519")]
    algorithm: String,
    /// Base64.
    public_key: String,
}

/// One erasure target's call for a request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TargetCall {
    target_id: String,
    /// The target's name.
    target: String,
    status: CallStatus,
    attempts: i32,
    /// The HTTP status of the last call, if it answered.
    last_status_code: Option<i32>,
    confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// For a manual target: the owner address that confirmed by hand.
    confirmed_by: Option<String>,
    /// Why the last call did not settle it (a timeout, an HTTP status, or
    /// the reason a manual target's owner gave for why erasure is impossible).
    last_error: Option<String>,
}

/// A tenant's Facebook app, as configured.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FacebookApp {
    tenant_id: TenantId,
    app_id: String,
    app_secret_set: bool,
    /// The URL to enter as the app's data deletion callback.
    data_deletion_callback_url: Option<String>,
}

/// What Facebook's data deletion callback expects back.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FacebookDeletion {
    /// Where the person can follow their request (`/status/{code}`).
    url: String,
    confirmation_code: String,
}

/// The form Facebook posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FacebookForm {
    /// `<signature>.<payload>`, HMAC-SHA256 with the tenant's app secret.
    signed_request: String,
}

/// The privacy contact's decision form. Either `action=approve_all`, or
/// `action=decide` with, for each request id on the page,
/// `decision_{id}` (`approve` or `reject`) and, on a rejection,
/// `reason_code_{id}` and `explanation_{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApprovalForm {
    /// `approve_all` or `decide`.
    action: String,
}

/// The form of a manual target's owner.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OwnerForm {
    /// `erased`, or `impossible` (then `reason` is required).
    outcome: String,
    /// Why the data cannot be erased there.
    reason: Option<String>,
}

/// The support login form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LoginForm {
    email: String,
    password: String,
    /// The login page's CSRF token.
    csrf: String,
    /// Where to go after logging in (a path under `/support`).
    next: Option<String>,
}

/// A dashboard form with only the session's CSRF token.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CsrfForm {
    csrf: String,
}

/// A dashboard action form (`reason` for cancel and extend, `months` for
/// extend).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActionForm {
    csrf: String,
    reason: Option<String>,
    /// 1 or 2.
    months: Option<u32>,
}

/// The dashboard's bulk form: `id` repeated once per selected request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkForm {
    csrf: String,
    /// `resend_approval`, `retry`, `cancel` or `extend`.
    action: String,
    id: Vec<RequestId>,
    reason: Option<String>,
    months: Option<u32>,
}

/// An OpenDSR erasure request, as the controller sends it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenDsrRequest {
    /// `gdpr` (or another regulation the processor accepts).
    regulation: String,
    subject_request_id: uuid::Uuid,
    /// Only `erasure` is supported.
    subject_request_type: String,
    subject_identities: Vec<OpenDsrIdentity>,
    submitted_time: chrono::DateTime<chrono::Utc>,
    #[schema(example = "2.0")]
    api_version: String,
    /// At most five URLs told of every status change.
    status_callback_urls: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    extensions: Option<serde_json::Value>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenDsrIdentity {
    /// `controller_customer_id`, `controller_user_id` or `email`.
    identity_type: String,
    identity_value: String,
    /// `raw`.
    identity_format: Option<String>,
}

/// A request's status (signed; the signature is in the response header
/// `X-OpenDSR-Signature` or `X-OpenGDPR-Signature`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenDsrStatus {
    controller_id: TenantId,
    subject_request_id: uuid::Uuid,
    /// `pending`, `in_progress`, `completed` or `cancelled`.
    request_status: String,
    expected_completion_time: Option<chrono::DateTime<chrono::Utc>>,
    received_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Base64 of the request as received (on submission).
    encoded_request: Option<String>,
    /// The processor's signature over the request (on submission and
    /// cancellation).
    processor_signature: Option<String>,
    api_version: String,
    results_url: Option<String>,
}

/// What the processor supports.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenDsrDiscovery {
    api_version: String,
    supported_identities: Vec<OpenDsrSupportedIdentity>,
    /// `["erasure"]`.
    supported_subject_request_types: Vec<String>,
    /// Where the processor's certificate is.
    processor_certificate: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenDsrSupportedIdentity {
    identity_type: String,
    identity_format: String,
}

/// How a dashboard page fails (pages answer HTML, never JSON).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum PageErrors {
    #[response(status = 303, description = "No session: redirect to `/support/login?next=...`", headers(("Location" = String)))]
    LoginRequired,
    #[response(
        status = 400,
        description = "The form or query is not valid",
        content_type = "text/html"
    )]
    BadRequest(String),
    #[response(
        status = 403,
        description = "Missing or wrong CSRF token",
        content_type = "text/html"
    )]
    Csrf(String),
    #[response(
        status = 404,
        description = "No such request or action",
        content_type = "text/html"
    )]
    NotFound(String),
    #[response(
        status = 500,
        description = "Internal error",
        content_type = "text/html"
    )]
    Internal(String),
    #[response(
        status = 503,
        description = "The database is unavailable",
        content_type = "text/html"
    )]
    Unavailable(String),
}
