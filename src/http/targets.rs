//! Admin API: a tenant's erasure targets.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::error::ApiError;
use super::extract::parse_id;
use super::openapi::{DataList, ErrorBody};
use super::state::AppState;
use crate::admin;
use crate::domain::deadline;
use crate::domain::target::{Destination, TargetKind};
use crate::domain::values::{CallbackUrl, EmailAddress, InvalidValue, Name};
use crate::domain::TenantId;
use crate::store::targets::{self, TargetRow};
use crate::store::{tenants, StoreError};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTargetBody {
    pub name: String,
    /// `webhook` (default): lethe POSTs signed calls to `url`. `manual`: a
    /// system with no API; `owner_email` gets a link to confirm by hand.
    pub kind: Option<String>,
    pub url: Option<String>,
    pub owner_email: Option<String>,
    pub timeout_ms: Option<i32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTargetBody {
    pub url: Option<String>,
    pub owner_email: Option<String>,
    pub timeout_ms: Option<i32>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TargetView {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// `webhook` or `manual`.
    #[schema(value_type = String, example = "webhook")]
    pub kind: TargetKind,
    /// Where calls go (webhook targets).
    pub url: Option<String>,
    /// Who confirms by hand (manual targets).
    pub owner_email: Option<String>,
    pub timeout_ms: i32,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the response that creates the target: the HMAC key its calls
    /// are signed with (and its confirmations must be signed with).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl TargetView {
    fn new(t: &TargetRow, secret: Option<String>) -> Self {
        Self {
            id: t.id.clone(),
            tenant_id: t.tenant_id.clone(),
            name: t.name.clone(),
            kind: t.kind(),
            url: t.url().map(str::to_owned),
            owner_email: t.owner_email.clone(),
            timeout_ms: t.timeout_ms,
            enabled: t.enabled,
            created_at: t.created_at(),
            updated_at: t.updated_at(),
            secret,
        }
    }
}

fn timeout(ms: Option<i32>) -> Result<i32, InvalidValue> {
    match ms {
        None => Ok(10_000),
        Some(ms) if (100..=120_000).contains(&ms) => Ok(ms),
        Some(_) => Err(InvalidValue::new(
            "timeout_ms",
            "must be from 100 to 120000",
        )),
    }
}

fn target_name(s: &str) -> Result<String, InvalidValue> {
    let n = Name::parse("name", s)?;
    if n.as_str().len() > 64
        || !n
            .as_str()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(InvalidValue::new(
            "name",
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(n.as_str().to_owned())
}

/// A webhook needs a URL and no owner; a manual target the reverse.
fn destination(body: &NewTargetBody) -> Result<Destination, ApiError> {
    let kind = match body.kind.as_deref() {
        None => TargetKind::Webhook,
        Some(k) => TargetKind::parse(k)
            .ok_or_else(|| InvalidValue::new("kind", "must be webhook or manual"))?,
    };
    Ok(match kind {
        TargetKind::Webhook => {
            if body.owner_email.is_some() {
                return Err(InvalidValue::new(
                    "owner_email",
                    "is for manual targets; a webhook target is called at its url",
                )
                .into());
            }
            let url = body
                .url
                .as_deref()
                .ok_or_else(|| InvalidValue::new("url", "is required for a webhook target"))?;
            Destination::Webhook(CallbackUrl::parse("url", url)?)
        }
        TargetKind::Manual => {
            if body.url.is_some() {
                return Err(InvalidValue::new(
                    "url",
                    "a manual target has no url; its owner_email confirms by hand",
                )
                .into());
            }
            let owner = body.owner_email.as_deref().ok_or_else(|| {
                InvalidValue::new("owner_email", "is required for a manual target")
            })?;
            Destination::Manual(EmailAddress::parse("owner_email", owner)?)
        }
    })
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

#[utoipa::path(
    post, path = "/v1/tenants/{id}/targets",
    description = "Register an erasure target. The response carries its signing secret, once.",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = NewTargetBody,
    responses(
        (status = 201, description = "Created, with `secret`", body = TargetView),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "A target of this name exists", body = ErrorBody),
    ),
)]
pub async fn create(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<NewTargetBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_id(&path, "tenant")?;
    let name = target_name(&body.name)?;
    let destination = destination(&body)?;
    let timeout_ms = timeout(body.timeout_ms)?;
    let manual = destination.kind() == TargetKind::Manual;
    let (row, secret) = admin::create_target(
        &state.store,
        &state.sealer,
        tenant,
        name,
        destination,
        timeout_ms,
    )
    .await
    .map_err(not_found("tenant"))?;
    // A manual target signs nothing, so it has no secret to show.
    let secret = (!manual).then(|| secret.expose().to_owned());
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(TargetView::new(&row, secret)))
}

#[utoipa::path(
    get, path = "/v1/tenants/{id}/targets",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant's targets", body = DataList<TargetView>),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub async fn list(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_id(&path, "tenant")?;
    let rows = state
        .store
        .read(move |conn| {
            tenants::get(conn, tenant)?;
            targets::list(conn, tenant)
        })
        .await
        .map_err(not_found("tenant"))?;
    let data: Vec<TargetView> = rows.iter().map(|t| TargetView::new(t, None)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

#[utoipa::path(
    patch, path = "/v1/tenants/{id}/targets/{target}",
    params(("id" = TenantId, Path, description = "The tenant"), ("target" = String, Path, description = "The target's id")),
    request_body = PatchTargetBody,
    responses(
        (status = 200, description = "Changed", body = TargetView),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such tenant or target", body = ErrorBody),
    ),
)]
pub async fn patch(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<PatchTargetBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_id(&path.0, "tenant")?;
    let key = path.1.clone();
    let url = body
        .url
        .as_deref()
        .map(|u| CallbackUrl::parse("url", u).map(|u| u.as_str().to_owned()))
        .transpose()?;
    let owner = body
        .owner_email
        .as_deref()
        .map(|o| EmailAddress::parse("owner_email", o).map(|o| o.as_str().to_owned()))
        .transpose()?;
    let timeout_ms = body.timeout_ms.map(|t| timeout(Some(t))).transpose()?;
    let enabled = body.enabled;
    let row = state
        .store
        .write(move |conn| {
            let mut t = targets::find(conn, tenant, &key)?;
            match (t.kind(), url, owner) {
                (TargetKind::Webhook, _, Some(_)) => {
                    return Ok(Err(InvalidValue::new(
                        "owner_email",
                        "is for manual targets; a webhook target is called at its url",
                    )))
                }
                (TargetKind::Manual, Some(_), _) => {
                    return Ok(Err(InvalidValue::new(
                        "url",
                        "a manual target has no url; its owner_email confirms by hand",
                    )))
                }
                (_, Some(u), _) => t.url = u,
                (_, _, Some(o)) => t.owner_email = Some(o),
                _ => {}
            }
            if let Some(ms) = timeout_ms {
                t.timeout_ms = ms;
            }
            if let Some(e) = enabled {
                t.enabled = e;
            }
            t.updated_at = deadline::now().naive_utc();
            targets::update(conn, &t)?;
            Ok(Ok(t))
        })
        .await
        .map_err(not_found("erasure target"))??;
    Ok(HttpResponse::Ok().json(TargetView::new(&row, None)))
}
