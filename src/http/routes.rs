//! The route table: one list that registers every endpoint with actix and is
//! also the route inventory ([`inventory`]) that the OpenAPI document and
//! the route tests are checked against.
//!
//! Each row is a full path with its methods; a row becomes one actix
//! resource, so a path's methods share it (an unknown method answers 405).
//! Rows are matched in order: a literal segment (`/batch`, `/export.csv`)
//! comes before the `{param}` that would also match it.

use actix_web::http::Method;
use actix_web::web;

use super::extract::{json_config, MAX_BATCH_JSON};
use super::opendsr::Flavor;
use super::{
    approvals, docs, erasure, facebook, health, opendsr, owners, pages, requests, subjects,
    support, targets, tenants,
};

/// Who may call an endpoint: the credential its handler checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone: no credential.
    Public,
    /// A tenant's API key (`Authorization: Bearer <key>`); the handler only
    /// sees that tenant's data.
    TenantKey,
    /// The operator's admin token (`Authorization: Bearer <token>`).
    Admin,
    /// A support user's API token (`Authorization: Bearer <token>`), across
    /// tenants.
    SupportToken,
    /// A support user's session cookie (dashboard pages; forms carry a CSRF
    /// token).
    SupportSession,
    /// The secret approval token in the URL (the privacy contact's link).
    ApprovalToken,
    /// The secret token in the URL of a manual target's owner (the link in
    /// the email asking them to erase by hand).
    OwnerToken,
    /// A body signed with the erasure target's secret (`Lethe-Signature`).
    TargetSignature,
    /// A Facebook `signed_request` (HMAC with the tenant's app secret).
    FacebookSigned,
    /// The confirmation code in the URL (given to the person by Facebook).
    StatusCode,
}

/// Is the endpoint a JSON (or CSV/text) API or a server-rendered page?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Api,
    Page,
}

/// One routed (method, path): what the inventory lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// The actix path, with `{param}` segments.
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
    /// The handler, as written in the table (`requests::submit`).
    pub handler: &'static str,
}

impl RouteInfo {
    /// The path with every `{param}` written `{}`, to compare paths whose
    /// parameters are named differently.
    pub fn shape(&self) -> String {
        path_shape(self.path)
    }
}

/// `"/a/{id}/b/{x}"` → `"/a/{}/b/{}"`.
pub fn path_shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

/// `route_table! { [Kind] "/path" [app data, ...] => { METHOD handler: Access, ... }, ... }`
/// defines `register` (the actix resources, in order) and `inventory`.
macro_rules! route_table {
    ($(
        [$kind:ident] $path:literal $([$($data:expr),* $(,)?])? => {
            $($method:ident $handler:path : $access:ident),+ $(,)?
        }
    ),* $(,)?) => {
        fn register(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $($(.app_data($data))*)?
                        $(.route(web::method(Method::$method).to($handler)))+
                );
            )*
        }

        /// Every routed (method, path), in registration order.
        pub fn inventory() -> Vec<RouteInfo> {
            vec![$($(
                RouteInfo {
                    method: Method::$method,
                    path: $path,
                    access: Access::$access,
                    kind: Kind::$kind,
                    handler: stringify!($handler),
                },
            )+)*]
        }
    };
}

const OPENDSR_BODY: usize = 64 * 1024;

route_table! {
    [Api] "/healthz" => { GET health::healthz: Public },
    [Api] "/readyz" => { GET health::readyz: Public },
    [Api] "/metrics" => { GET health::metrics: Public },
    [Api] "/openapi.json" => { GET docs::openapi_json: Public },
    [Page] "/docs" => { GET docs::redirect: Public },
    [Page] "/docs/{file:.*}" => { GET docs::asset: Public },
    [Page] "/assets/lethe.css" => { GET pages::stylesheet: Public },

    // The support dashboard (pages) and its JSON API.
    [Page] "/support" => { GET support::pages::overview: SupportSession },
    [Page] "/support/" => { GET support::pages::overview: SupportSession },
    [Page] "/support/login" => {
        GET support::pages::login_form: Public,
        POST support::pages::login: Public,
    },
    [Page] "/support/logout" => { POST support::pages::logout: SupportSession },
    [Page] "/support/requests" => { GET support::pages::queue: SupportSession },
    [Page] "/support/requests/export.csv" => { GET support::pages::export: SupportSession },
    [Page] "/support/requests/{id}" => { GET support::pages::detail: SupportSession },
    [Page] "/support/requests/{id}/{action}" => {
        GET support::pages::confirm: SupportSession,
        POST support::pages::act: SupportSession,
    },
    [Page] "/support/bulk/confirm" => { POST support::pages::bulk_confirm: SupportSession },
    [Page] "/support/bulk" => { POST support::pages::bulk: SupportSession },
    [Api] "/v1/support/overview" => { GET support::api::overview: SupportToken },
    [Api] "/v1/support/requests" => { GET support::api::list: SupportToken },
    [Api] "/v1/support/requests/export.csv" => { GET support::api::export: SupportToken },
    [Api] "/v1/support/requests/{id}" => { GET support::api::get: SupportToken },
    [Api] "/v1/support/requests/{id}/{action}" => { POST support::api::act: SupportToken },
    [Api] "/v1/support/bulk" => { POST support::api::bulk: SupportToken },

    // The privacy contact's pages and Facebook's status page.
    [Page] "/approvals/{token}" => {
        GET approvals::show: ApprovalToken,
        POST approvals::decide: ApprovalToken,
    },
    [Page] "/erasure-confirmations/{token}" => {
        GET owners::show: OwnerToken,
        POST owners::report: OwnerToken,
    },
    [Page] "/status/{code}" => { GET facebook::status_page: StatusCode },

    // OpenDSR, under both protocol names.
    [Api] "/opendsr/v1/discovery" [Flavor::OPENDSR] => { GET opendsr::discovery: Public },
    [Api] "/opendsr/v1/certificate" [Flavor::OPENDSR] => { GET opendsr::certificate: Public },
    [Api] "/opendsr/v1/requests" [Flavor::OPENDSR, web::PayloadConfig::new(OPENDSR_BODY)] => {
        POST opendsr::submit: TenantKey,
    },
    [Api] "/opendsr/v1/requests/{subject_request_id}" [Flavor::OPENDSR] => {
        GET opendsr::status: TenantKey,
        DELETE opendsr::cancel: TenantKey,
    },
    [Api] "/opengdpr/v1/discovery" [Flavor::OPENGDPR] => { GET opendsr::discovery: Public },
    [Api] "/opengdpr/v1/certificate" [Flavor::OPENGDPR] => { GET opendsr::certificate: Public },
    [Api] "/opengdpr/v1/requests" [Flavor::OPENGDPR, web::PayloadConfig::new(OPENDSR_BODY)] => {
        POST opendsr::submit: TenantKey,
    },
    [Api] "/opengdpr/v1/requests/{subject_request_id}" [Flavor::OPENGDPR] => {
        GET opendsr::status: TenantKey,
        DELETE opendsr::cancel: TenantKey,
    },

    // The platform API.
    [Api] "/v1/erasure-requests/batch" [json_config(MAX_BATCH_JSON)] => {
        POST requests::submit_batch: TenantKey,
    },
    [Api] "/v1/erasure-requests" => {
        POST requests::submit: TenantKey,
        GET requests::list: TenantKey,
    },
    [Api] "/v1/erasure-requests/{id}" => { GET requests::get: TenantKey },
    [Api] "/v1/erasure-requests/{id}/cancel" => { POST requests::cancel: TenantKey },
    [Api] "/v1/erasure-requests/{id}/resend-approval" => {
        POST requests::resend_approval: TenantKey,
    },
    [Api] "/v1/erasure-requests/{id}/retry" => { POST erasure::retry: TenantKey },
    [Api] "/v1/erasure-requests/{id}/complete" => { POST erasure::complete: TenantKey },
    [Api] "/v1/erasure-requests/{id}/receipt" => { GET erasure::receipt: TenantKey },
    [Api] "/v1/erasure-requests/{id}/targets" => { GET erasure::calls: TenantKey },
    [Api] "/v1/erasure-requests/{id}/targets/{target}/confirm" => {
        POST erasure::confirm: TargetSignature,
    },
    [Api] "/v1/receipts/public-key" => { GET erasure::public_key: Public },
    [Api] "/v1/subjects/{subject_id}" => { GET subjects::status: TenantKey },
    [Api] "/v1/integrations/facebook/data-deletion" => {
        POST facebook::deletion_query: FacebookSigned,
    },
    [Api] "/v1/integrations/facebook/{tenant}/data-deletion" => {
        POST facebook::deletion_for: FacebookSigned,
    },
    [Api] "/v1/tenants" => {
        POST tenants::create: Admin,
        GET tenants::list: Admin,
    },
    [Api] "/v1/tenants/{id}" => {
        GET tenants::get: Admin,
        PATCH tenants::patch: Admin,
    },
    [Api] "/v1/tenants/{id}/api-keys" => {
        POST tenants::create_key: Admin,
        GET tenants::list_keys: Admin,
    },
    [Api] "/v1/tenants/{id}/api-keys/{key_id}" => { DELETE tenants::revoke_key: Admin },
    [Api] "/v1/tenants/{id}/targets" => {
        POST targets::create: Admin,
        GET targets::list: Admin,
    },
    [Api] "/v1/tenants/{id}/targets/{target}" => { PATCH targets::patch: Admin },
    [Api] "/v1/tenants/{id}/integrations/facebook" => { PUT facebook::configure: Admin },
}

/// Register every route, then the fallbacks: unknown paths under `/support`
/// get the dashboard's page, under `/v1/support` the support API's error.
pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
    cfg.service(web::scope("/support").default_service(web::to(support::pages::not_found)))
        .service(web::scope("/v1/support").default_service(web::to(support::api::not_found)));
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn shapes_ignore_parameter_names() {
        assert_eq!(path_shape("/a/{id}/b/{x}"), "/a/{}/b/{}");
        assert_eq!(path_shape("/docs/{file:.*}"), "/docs/{}");
        assert_eq!(path_shape("/healthz"), "/healthz");
    }

    #[test]
    fn every_method_and_path_is_listed_once() {
        let mut seen = HashSet::new();
        for r in inventory() {
            assert!(
                seen.insert((r.method.clone(), r.shape())),
                "{} {} listed twice",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn pages_are_classified() {
        let pages: Vec<_> = inventory()
            .into_iter()
            .filter(|r| r.kind == Kind::Page)
            .map(|r| r.path)
            .collect();
        assert!(pages.contains(&"/approvals/{token}"));
        assert!(pages.contains(&"/support/login"));
        assert!(!pages.iter().any(|p| p.starts_with("/v1/")));
    }
}
