//! Who may use the dashboard, as extractors: [`SupportSession`] (a browser
//! with a session cookie; anything else is sent to the login page) and
//! [`SupportToken`] (a support API token; anything else is a 401). A tenant's
//! API key or the admin token is neither.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use super::pages::PageError;
use super::SupportConfig;
use crate::domain::audit::Actor;
use crate::domain::deadline;
use crate::domain::secret::Secret;
use crate::domain::support::{csrf_token, SESSION_PREFIX};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::support::accounts::{self, SupportUser};

/// The session cookie: the session's secret. Only sent to `/support`.
pub const SESSION_COOKIE: &str = "lethe_support";
/// The login form's double-submit secret (CSRF before there is a session).
pub const LOGIN_COOKIE: &str = "lethe_support_login";

/// A cookie's value from the request's `Cookie` header.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure behind TLS.
pub fn set_cookie(
    cfg: &SupportConfig,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> String {
    let secure = if cfg.secure_cookie { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

pub fn clear_cookie(cfg: &SupportConfig, name: &str, path: &str) -> String {
    set_cookie(cfg, name, "", path, 0)
}

pub fn equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn app_state(req: &HttpRequest) -> Option<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>().cloned()
}

/// A support user signed in with a browser session.
#[derive(Debug, Clone)]
pub struct SupportSession {
    pub user: SupportUser,
    pub session_id: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl SupportSession {
    pub fn actor(&self) -> Actor {
        crate::domain::support::actor(self.user.id)
    }

    /// Refuse a form without this session's CSRF token (403, nothing done).
    pub fn check_csrf(&self, form: &[(String, String)]) -> Result<(), PageError> {
        let presented = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if equal(presented, &self.csrf) {
            Ok(())
        } else {
            tracing::warn!(user = %self.user.id, "support form without a valid CSRF token refused");
            Err(PageError::Csrf)
        }
    }
}

/// Where to come back to after logging in: only this dashboard's own pages.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = (next == "/support" || next.starts_with("/support/") || next.starts_with("/support?"))
        && !next.contains("//")
        && !next.contains('\\')
        && !next.starts_with("/support/login")
        && next.len() <= 2000
        && next.chars().all(|c| c.is_ascii_graphic());
    ok.then_some(next)
}

impl FromRequest for SupportSession {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let secret = cookie(req, SESSION_COOKIE).filter(|s| s.starts_with(SESSION_PREFIX));
        // Come back to the page asked for (GET only: a form is not replayed).
        let next = (req.method() == actix_web::http::Method::GET)
            .then(|| match req.query_string() {
                "" => req.path().to_owned(),
                q => format!("{}?{q}", req.path()),
            })
            .filter(|n| safe_next(n).is_some());
        Box::pin(async move {
            let state = state.ok_or(PageError::Internal)?;
            let Some(secret) = secret else {
                return Err(PageError::LoginRequired(next));
            };
            let digest = Secret::from_presented(&secret).digest();
            let found = state
                .store
                .read(move |conn| accounts::find_session(conn, &digest, deadline::now()))
                .await
                .map_err(PageError::from)?;
            match found {
                Some((user, session_id)) => Ok(SupportSession {
                    user,
                    session_id,
                    csrf: csrf_token(&secret),
                }),
                None => Err(PageError::LoginRequired(next)),
            }
        })
    }
}

/// A support user calling the JSON API with a support API token.
#[derive(Debug, Clone)]
pub struct SupportToken {
    pub user: SupportUser,
    pub token_id: String,
}

impl SupportToken {
    pub fn actor(&self) -> Actor {
        crate::domain::support::actor(self.user.id)
    }
}

fn bearer(req: &HttpRequest) -> Result<Secret, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_credentials",
                "send Authorization: Bearer <support token>",
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::unauthorized(
                "invalid_credentials",
                "the Authorization header is not readable",
            )
        })?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 512)
        .map(Secret::from_presented)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_credentials",
                "use Authorization: Bearer <support token>",
            )
        })
}

impl FromRequest for SupportToken {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = bearer(req).and_then(|s| {
            let state = app_state(req).ok_or_else(ApiError::internal)?;
            Ok((s, state))
        });
        Box::pin(async move {
            let (secret, state) = found?;
            let digest = secret.digest();
            let (user, token_id) = state
                .store
                .read(move |conn| accounts::find_token(conn, &digest))
                .await?
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "invalid_support_token",
                        "the support token is unknown or revoked",
                    )
                })?;
            Ok(SupportToken { user, token_id })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        for ok in [
            "/support",
            "/support/requests?overdue=true",
            "/support/requests/x",
        ] {
            assert_eq!(safe_next(ok), Some(ok));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/support//evil",
            "/supportx",
            "/support/login",
            "/v1/support/overview",
            "/support/\\evil",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }
}
