//! Admin API: tenants, their privacy contacts and API keys.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::auth::Admin;
use super::error::ApiError;
use super::extract::parse_id;
use super::openapi::{DataList, ErrorBody};
use super::state::AppState;
use crate::admin;
use crate::domain::deadline;
use crate::domain::tenant::{ApprovalPolicy, Locale, PrivacyContact, Tenant, TenantSettings};
use crate::domain::values::{EmailAddress, InvalidValue, Name};
use crate::domain::{ApiKeyId, TenantId};
use crate::store::api_keys::{self, ApiKey};
use crate::store::{tenants, StoreError};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: Option<String>,
    pub email: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    pub name: String,
    pub approval_policy: String,
    #[serde(default)]
    pub privacy_contact: Option<ContactBody>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub notify_subject: Option<bool>,
}

/// `Some(None)` when the field is present and null, `None` when absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenantBody {
    pub name: Option<String>,
    pub approval_policy: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub privacy_contact: Option<Option<ContactBody>>,
    pub locale: Option<String>,
    pub notify_subject: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactView {
    pub name: Option<String>,
    pub email: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub approval_policy: ApprovalPolicy,
    pub privacy_contact: Option<ContactView>,
    pub locale: Locale,
    pub notify_subject: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        let s = &t.settings;
        Self {
            id: t.id,
            name: s.name.as_str().to_owned(),
            approval_policy: s.policy,
            privacy_contact: s.contact.as_ref().map(|c| ContactView {
                name: c.name.as_ref().map(|n| n.as_str().to_owned()),
                email: c.email.as_str().to_owned(),
            }),
            locale: s.locale,
            notify_subject: s.notify_subject,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

fn policy(s: &str) -> Result<ApprovalPolicy, InvalidValue> {
    ApprovalPolicy::parse(s)
        .ok_or_else(|| InvalidValue::new("approval_policy", "must be privacy_contact or none"))
}

fn locale(s: &str) -> Result<Locale, InvalidValue> {
    Locale::parse(s).ok_or_else(|| InvalidValue::new("locale", "must be en, de or fr"))
}

fn contact(c: &ContactBody) -> Result<PrivacyContact, InvalidValue> {
    Ok(PrivacyContact {
        name: c
            .name
            .as_deref()
            .map(|n| Name::parse("privacy_contact.name", n))
            .transpose()?,
        email: EmailAddress::parse("privacy_contact.email", &c.email)?,
    })
}

impl NewTenantBody {
    pub fn into_settings(self) -> Result<TenantSettings, InvalidValue> {
        let mut s = TenantSettings::new(
            Name::parse("name", &self.name)?,
            policy(&self.approval_policy)?,
            self.privacy_contact.as_ref().map(contact).transpose()?,
            self.locale
                .as_deref()
                .map(locale)
                .transpose()?
                .unwrap_or_default(),
        )?;
        s.notify_subject = self.notify_subject.unwrap_or(false);
        Ok(s)
    }
}

impl PatchTenantBody {
    fn apply(self, current: &TenantSettings) -> Result<TenantSettings, InvalidValue> {
        let mut s = TenantSettings::new(
            match &self.name {
                Some(n) => Name::parse("name", n)?,
                None => current.name.clone(),
            },
            match &self.approval_policy {
                Some(p) => policy(p)?,
                None => current.policy,
            },
            match &self.privacy_contact {
                Some(Some(c)) => Some(contact(c)?),
                Some(None) => None,
                None => current.contact.clone(),
            },
            match &self.locale {
                Some(l) => locale(l)?,
                None => current.locale,
            },
        )?;
        s.notify_subject = self.notify_subject.unwrap_or(current.notify_subject);
        Ok(s)
    }
}

fn tenant_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("tenant"),
        other => other.into(),
    }
}

#[utoipa::path(
    post, path = "/v1/tenants",
    request_body = NewTenantBody,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
    ),
)]
pub async fn create(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<NewTenantBody>,
) -> Result<HttpResponse, ApiError> {
    let settings = body.into_inner().into_settings()?;
    let (tenant, callback_secret) =
        admin::create_tenant(&state.store, &state.sealer, settings).await?;
    let mut view =
        serde_json::to_value(TenantView::from(&tenant)).map_err(|_| ApiError::internal())?;
    // Shown once: platform callbacks are signed with it.
    view["callback_secret"] = serde_json::Value::String(callback_secret.expose().to_owned());
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TenantPage {
    data: Vec<TenantView>,
    next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/tenants",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of tenants", body = TenantPage),
        (status = 400, description = "Invalid query or cursor", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
    ),
)]
pub async fn list(
    _: Admin,
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::requests::check_limit(q.limit)?;
    let after: Option<TenantId> = match &q.cursor {
        Some(c) => Some(c.parse().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "the cursor is not one we issued")
        })?),
        None => None,
    };
    let rows = state
        .store
        .read(move |conn| tenants::list(conn, after, limit + 1))
        .await?;
    let more = rows.len() as i64 > limit;
    let data: Vec<TenantView> = rows
        .iter()
        .take(limit as usize)
        .map(TenantView::from)
        .collect();
    let next_cursor = if more {
        data.last().map(|t| t.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(TenantPage { data, next_cursor }))
}

#[utoipa::path(
    get, path = "/v1/tenants/{id}",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub async fn get(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: TenantId = parse_id(&path, "tenant")?;
    let tenant = state
        .store
        .read(move |conn| tenants::get(conn, id))
        .await
        .map_err(tenant_not_found)?;
    Ok(HttpResponse::Ok().json(TenantView::from(&tenant)))
}

#[utoipa::path(
    patch, path = "/v1/tenants/{id}",
    description = "Change a tenant; `privacy_contact: null` removes the contact.",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = PatchTenantBody,
    responses(
        (status = 200, description = "Changed", body = TenantView),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub async fn patch(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<PatchTenantBody>,
) -> Result<HttpResponse, ApiError> {
    let id: TenantId = parse_id(&path, "tenant")?;
    let patch = body.into_inner();
    let tenant = state
        .store
        .write(move |conn| {
            let mut tenant = tenants::get(conn, id)?;
            tenant.settings = match patch.apply(&tenant.settings) {
                Ok(s) => s,
                Err(invalid) => return Ok(Err(invalid)),
            };
            tenant.updated_at = deadline::now();
            tenants::update(conn, &tenant)?;
            Ok(Ok(tenant))
        })
        .await
        .map_err(tenant_not_found)??;
    Ok(HttpResponse::Ok().json(TenantView::from(&tenant)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Only in the response that creates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyView {
    fn new(k: &ApiKey, secret: Option<String>) -> Self {
        Self {
            id: k.id,
            tenant_id: k.tenant_id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            key: secret,
        }
    }
}

#[utoipa::path(
    post, path = "/v1/tenants/{id}/api-keys",
    description = "Make an API key for the tenant. The key is in the response, once. The body is optional.",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body(content = Option<NewKeyBody>, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, with `key`", body = KeyView),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub async fn create_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: TenantId = parse_id(&path, "tenant")?;
    let body: Option<NewKeyBody> = super::extract::optional_json(&req, &body)?;
    let name = match body.and_then(|b| b.name) {
        Some(n) => Name::parse("name", &n)?.as_str().to_owned(),
        None => "default".to_owned(),
    };
    let (key, secret) = admin::create_api_key(&state.store, id, name)
        .await
        .map_err(tenant_not_found)?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(KeyView::new(&key, Some(secret.expose().to_owned()))))
}

#[utoipa::path(
    get, path = "/v1/tenants/{id}/api-keys",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant's keys (without the secrets)", body = DataList<KeyView>),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub async fn list_keys(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: TenantId = parse_id(&path, "tenant")?;
    let keys = state
        .store
        .read(move |conn| {
            tenants::get(conn, id)?;
            api_keys::list(conn, id)
        })
        .await
        .map_err(tenant_not_found)?;
    let data: Vec<KeyView> = keys.iter().map(|k| KeyView::new(k, None)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

#[utoipa::path(
    delete, path = "/v1/tenants/{id}/api-keys/{key_id}",
    params(("id" = TenantId, Path, description = "The tenant"), ("key_id" = ApiKeyId, Path, description = "The key")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
)]
pub async fn revoke_key(
    _: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_id(&path.0, "tenant")?;
    let key: ApiKeyId = parse_id(&path.1, "API key")?;
    state
        .store
        .write(move |conn| api_keys::revoke(conn, tenant, key, deadline::now()))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("API key"),
            other => other.into(),
        })?;
    Ok(HttpResponse::NoContent().finish())
}
