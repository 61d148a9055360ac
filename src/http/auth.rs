//! Authentication as extractors, so a handler's signature says who may call
//! it: [`TenantKey`] (a tenant's API key) or [`Admin`] (the admin token).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;
use crate::domain::audit::{Actor, ActorKind};
use crate::domain::secret::{Secret, SecretDigest};
use crate::domain::{ApiKeyId, TenantId};
use crate::store::api_keys;

fn bearer(req: &HttpRequest) -> Result<Secret, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing_credentials", "send Authorization: Bearer <key>")
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized(
            "invalid_credentials",
            "the Authorization header is not readable",
        )
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 512)
        .ok_or_else(|| {
            ApiError::unauthorized("invalid_credentials", "use Authorization: Bearer <key>")
        })?;
    Ok(Secret::from_presented(token))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("application state missing");
            ApiError::internal()
        })
}

/// A caller holding a live API key of one tenant.
#[derive(Debug, Clone)]
pub struct TenantKey {
    pub tenant: TenantId,
    pub key: ApiKeyId,
}

impl TenantKey {
    pub fn actor(&self) -> Actor {
        Actor::new(ActorKind::ApiKey, self.key.to_string())
    }
}

impl FromRequest for TenantKey {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = bearer(req).and_then(|secret| Ok((secret, state(req)?)));
        Box::pin(async move {
            let (secret, state) = found?;
            let digest = secret.digest();
            let key = state
                .store
                .read(move |conn| api_keys::find_active(conn, &digest))
                .await?
                .ok_or_else(unknown_api_key)?;
            Ok(TenantKey {
                tenant: key.tenant_id,
                key: key.id,
            })
        })
    }
}

/// A presented API key, not yet looked up: for a handler that checks it
/// inside its own write transaction (the submission), saving a separate
/// read. The handler must answer [`unknown_api_key`] if the lookup finds nothing.
pub struct PresentedKey(pub SecretDigest);

impl FromRequest for PresentedKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(bearer(req).map(|s| PresentedKey(s.digest())))
    }
}

/// The answer to an API key that is unknown or revoked.
pub fn unknown_api_key() -> ApiError {
    ApiError::unauthorized("invalid_api_key", "the API key is unknown or revoked")
}

/// The operator, holding `LETHE_ADMIN_TOKEN`.
#[derive(Debug, Clone)]
pub struct Admin;

impl Admin {
    pub fn actor(&self) -> Actor {
        Actor::new(ActorKind::Admin, "admin-token")
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready((|| {
            let state = state(req)?;
            let expected = state.admin_token.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "admin_api_disabled",
                    "the admin API is disabled: set LETHE_ADMIN_TOKEN, or use the lethe CLI",
                )
            })?;
            let presented = bearer(req)?.digest();
            if bool::from(
                presented
                    .as_str()
                    .as_bytes()
                    .ct_eq(expected.as_str().as_bytes()),
            ) {
                Ok(Admin)
            } else {
                Err(ApiError::unauthorized(
                    "invalid_admin_token",
                    "the admin token is wrong",
                ))
            }
        })())
    }
}
