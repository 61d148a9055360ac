//! The isolation matrix, generated from the route table: every endpoint ×
//! {no credential, an unknown key, a revoked key, another tenant's key, a
//! support token, the admin token} gets the answer its access class
//! promises, and none of the refused calls changes anything. A new route
//! is in the matrix the moment it is in the table; a new access class fails
//! here until the matrix says how it is checked.

use lethe::http::routes::{inventory, Access, Kind, RouteInfo};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Db, Tenant, TestApp, ADMIN_TOKEN};
use crate::support::support_user;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    UnknownKey,
    RevokedKey,
    OtherTenant,
    SupportToken,
    AdminToken,
}

const CALLERS: [Caller; 6] = [
    Caller::Nobody,
    Caller::UnknownKey,
    Caller::RevokedKey,
    Caller::OtherTenant,
    Caller::SupportToken,
    Caller::AdminToken,
];

/// Tenant A's objects, which every `{param}` names.
struct Fixture {
    a: Tenant,
    b: Tenant,
    revoked: String,
    support: String,
    request: String,
    key_id: String,
    target: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let a = app.create_tenant("privacy_contact").await;
    let b = app.create_tenant("privacy_contact").await;
    let r = app
        .submit(
            &a,
            &json!({ "subject_id": "subject-a", "subject_email": "a@example.org" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let request = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second key of A's, revoked.
    let r = app
        .admin_post(
            &format!("/v1/tenants/{}/api-keys", a.id),
            &json!({ "name": "old" }),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let (key_id, revoked) = (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    );
    let r = app
        .client
        .delete(app.url(&format!("/v1/tenants/{}/api-keys/{key_id}", a.id)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = app
        .admin_post(
            &format!("/v1/tenants/{}/targets", a.id),
            &json!({ "name": "warehouse", "url": "https://warehouse.example/erase" }),
        )
        .await;
    let target = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let support = support_user(app, "iso@support.example", "Iso").token;
    Fixture {
        a,
        b,
        revoked,
        support,
        request,
        key_id,
        target,
    }
}

/// The route's path with each `{param}` naming one of A's objects.
fn concrete(route: &RouteInfo, f: &Fixture) -> String {
    let mut out = String::new();
    let mut rest = route.path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = rest[start + 1..end].split(':').next().unwrap();
        let value = match (name, route.path) {
            ("id", p) if p.starts_with("/v1/tenants/") => f.a.id.clone(),
            ("id", _) => f.request.clone(),
            ("key_id", _) => f.key_id.clone(),
            ("target", _) => f.target.clone(),
            ("tenant", _) => f.a.id.clone(),
            ("subject_id", _) => "subject-a".to_owned(),
            ("subject_request_id", _) => uuid::Uuid::new_v4().to_string(),
            ("action", _) => "cancel".to_owned(),
            ("file", _) => "index.html".to_owned(),
            ("token" | "code", _) => "not-a-real-token".to_owned(),
            (other, p) => panic!("the matrix does not know the parameter {{{other}}} of {p}"),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn bearer(caller: Caller, f: &Fixture) -> Option<String> {
    match caller {
        Caller::Nobody => None,
        Caller::UnknownKey => Some("lethe_sk_never-issued-0123456789abcdefghijklmnopq".into()),
        Caller::RevokedKey => Some(f.revoked.clone()),
        Caller::OtherTenant => Some(f.b.key.clone()),
        Caller::SupportToken => Some(f.support.clone()),
        Caller::AdminToken => Some(ADMIN_TOKEN.to_owned()),
    }
}

/// What the route's access class promises this caller, as a check on the
/// status. `None`: this caller is let in (the endpoint's own tests cover
/// what it then does).
fn expected(route: &RouteInfo, caller: Caller, has_object: bool) -> Option<fn(u16) -> bool> {
    let refused: fn(u16) -> bool = |s| s == 401 || s == 403;
    match (route.access, caller) {
        // Another tenant's key on A's object: 404, or its own (empty) view
        // of the same name (a subject id is per tenant); the body is then
        // checked not to show A's objects.
        (Access::TenantKey, Caller::OtherTenant) if has_object => {
            Some(|s| s == 404 || (200..300).contains(&s))
        }
        (Access::TenantKey, Caller::OtherTenant) => None,
        (Access::TenantKey, _) => Some(refused),
        (Access::Admin, Caller::AdminToken) => None,
        (Access::Admin, _) => Some(refused),
        (Access::SupportToken, Caller::SupportToken) => None,
        (Access::SupportToken, _) => Some(refused),
        // Pages behind a session: a bearer credential is no session.
        (Access::SupportSession, _) => Some(|s| s == 401 || s == 303 || s == 302 || s == 403),
        // Credentials in the URL, the body's signature, or none: a bearer
        // header neither opens nor closes them.
        (
            Access::Public
            | Access::ApprovalToken
            | Access::OwnerToken
            | Access::StatusCode
            | Access::TargetSignature
            | Access::FacebookSigned,
            _,
        ) => None,
    }
}

pub async fn every_route_answers_every_caller_as_its_access_class_says(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(db, &crate::interop::opendsr_settings(dir.path())).await;
    let f = fixture(&app).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let before = (
        app.count("erasure_requests").await,
        app.count("audit_events").await,
        app.count("jobs").await,
    );
    let mut checked = 0;
    for route in inventory() {
        let path = concrete(&route, &f);
        let has_object = route.path.contains('{');
        for caller in CALLERS {
            let Some(ok) = expected(&route, caller, has_object) else {
                continue;
            };
            let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
            let mut req = client.request(method.clone(), app.url(&path));
            if let Some(b) = bearer(caller, &f) {
                req = req.bearer_auth(b);
            }
            if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
                req = req.json(&json!({}));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            if caller == Caller::OtherTenant && (200..300).contains(&status) {
                let body = r.text().await.unwrap();
                assert!(
                    !body.contains(&f.request) && !body.contains(&f.a.id),
                    "{method} {} as {caller:?} shows tenant A's objects: {body}",
                    route.path
                );
                checked += 1;
                continue;
            }
            assert!(
                ok(status),
                "{method} {} as {caller:?}: got {status}",
                route.path
            );
            if route.kind == Kind::Api && (400..500).contains(&status) {
                // Ours has a string code, OpenDSR's the HTTP status.
                let v: Value = r.json().await.unwrap_or_else(|e| {
                    panic!("{method} {} as {caller:?}: not JSON: {e}", route.path)
                });
                assert!(
                    v["error"]["message"].is_string()
                        && (v["error"]["code"].is_string() || v["error"]["code"].is_number()),
                    "{method} {} as {caller:?}: {v}",
                    route.path
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "the matrix ran {checked} checks");
    // Nothing a refused caller sent changed anything.
    let after = (
        app.count("erasure_requests").await,
        app.count("audit_events").await,
        app.count("jobs").await,
    );
    assert_eq!(before, after, "refused calls changed nothing");
    let v: Value = app
        .get(&f.a, &format!("/v1/erasure-requests/{}", f.request))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "awaiting_approval");
    // Collections show another tenant only its own objects.
    let list = app.list(&f.b, "").await;
    assert!(!list.to_string().contains(&f.request));
}
