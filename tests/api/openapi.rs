//! The OpenAPI document served at `/openapi.json`: it lists exactly the
//! routed endpoints, it is valid OpenAPI 3.1 (checked by a real validator),
//! and `/docs` renders it from files inside the binary.

use std::collections::BTreeSet;
use std::process::Command;

use lethe::http::routes::{inventory, path_shape, Kind};
use serde_json::Value;

use crate::helpers::{spawn_app, Db, TestApp};

async fn fetch_spec(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    resp.json().await.unwrap()
}

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// (METHOD, path shape) of every operation in the document.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path_shape(path)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_lists_exactly_the_routed_endpoints() {
    let app = spawn_app(Db::Sqlite).await;
    let spec = fetch_spec(&app).await;
    assert_eq!(spec["openapi"].as_str().unwrap_or("").get(..3), Some("3.1"));

    let routed: BTreeSet<(String, String)> = inventory()
        .iter()
        .map(|r| (r.method.to_string(), r.shape()))
        .collect();
    let documented = documented(&spec);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routed but missing from /openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "in /openapi.json but not routed: {unrouted:?}"
    );

    // Pages answer HTML (or redirect); the bearer-protected API says how.
    for r in inventory() {
        let op = &spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(p, _)| path_shape(p) == r.shape())
            .unwrap()
            .1[r.method.as_str().to_lowercase()];
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{} {} has no operationId", r.method, r.path);
        if r.kind == Kind::Page && !r.path.starts_with("/assets/") {
            let responses = op["responses"].as_object().unwrap();
            let html = responses
                .values()
                .any(|resp| resp["content"].get("text/html").is_some());
            let redirect = responses.keys().any(|s| s.starts_with('3'));
            assert!(
                html || redirect,
                "page {} {} has no HTML response",
                r.method,
                r.path
            );
        }
    }
    let ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| METHODS.iter().filter_map(|m| item.get(*m)))
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "operationIds repeat: {ids:?}");

    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    for s in [
        "tenant_key",
        "admin_token",
        "support_token",
        "support_session",
    ] {
        assert!(schemes.contains_key(s), "no security scheme {s}");
    }
    let submit = &spec["paths"]["/v1/erasure-requests"]["post"];
    assert_eq!(submit["security"][0]["tenant_key"], serde_json::json!([]));
    assert!(submit["responses"]["401"].is_object());
    let facebook = &spec["paths"]["/v1/integrations/facebook/{tenant}/data-deletion"]["post"];
    assert!(facebook["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert!(facebook.get("security").is_none());
    let opengdpr = &spec["paths"]["/opengdpr/v1/requests"]["post"];
    assert_eq!(
        opengdpr["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OpenDsrErrorBody"
    );
}

/// The validator `scripts/test` installs (pinned there); never skipped.
fn validator() -> String {
    if let Ok(p) = std::env::var("LETHE_TEST_OPENAPI_VALIDATOR") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    format!("{home}/.cache/lethe-tools/venv/bin/openapi-spec-validator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_is_valid_openapi_3_1() {
    let app = spawn_app(Db::Sqlite).await;
    let spec = fetch_spec(&app).await;
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let bin = validator();
    let out = Command::new(&bin)
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "openapi-spec-validator did not run ({bin}: {e}). \
                 Install it with scripts/test, or set LETHE_TEST_OPENAPI_VALIDATOR."
            )
        });
    assert!(
        out.status.success(),
        "/openapi.json is not valid OpenAPI 3.1:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_are_served_from_the_binary_with_their_own_csp() {
    let app = spawn_app(Db::Sqlite).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "docs/");

    let resp = app
        .client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("http"),
        "{csp}"
    );
    assert!(resp.text().await.unwrap().contains("swagger-ui-bundle.js"));

    for file in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let resp = app
            .client
            .get(format!("{}/docs/{file}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{file}");
        let body = resp.text().await.unwrap();
        assert!(!body.is_empty(), "{file}");
        if file == "swagger-initializer.js" {
            assert!(body.contains("../openapi.json"), "{body}");
        }
    }
    let resp = app
        .client
        .get(format!("{}/docs/nope.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Other pages keep the strict policy: no scripts at all.
    let resp = app
        .client
        .get(format!("{}/support/login", app.base))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("script-src"), "{csp}");
}

/// Swagger UI runs under the docs page's CSP and renders the operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_render_in_a_browser() {
    let app = spawn_app(Db::Sqlite).await;
    let base = app.base.clone();
    let paths = tokio::task::spawn_blocking(move || {
        crate::mail::with_browser(|browser| {
            let tab = browser.new_tab().unwrap();
            tab.navigate_to(&format!("{base}/docs"))
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            assert!(tab.get_url().ends_with("/docs/"), "{}", tab.get_url());
            tab.wait_for_element_with_custom_timeout(
                ".opblock-summary-path",
                std::time::Duration::from_secs(30),
            )
            .unwrap();
            crate::mail::screenshot(&tab, "docs");
            tab.find_elements(".opblock-summary-path")
                .unwrap()
                .iter()
                .map(|e| e.get_inner_text().unwrap())
                .collect::<Vec<_>>()
        })
    })
    .await
    .unwrap();
    assert!(
        paths.iter().any(|p| p.contains("/v1/erasure-requests")),
        "{paths:?}"
    );
}
