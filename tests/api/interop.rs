//! OpenDSR 2.0 processor endpoints with RSA-signed responses and callbacks,
//! and the Facebook data-deletion callback, against real HTTP peers.

use std::sync::OnceLock;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Db, Tenant, TestApp};
use crate::mail::{approval_path, MailCatcher};
use crate::targets_server::FakeTarget;

/// A test CA and lethe's processor key and certificate, issued by it.
pub struct Pki {
    pub ca_pem: String,
    pub key_pem: String,
    pub cert_pem: String,
}

/// RSA key generation is slow in debug builds: one PKI per test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let rsa_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key");
        let key_pem = rsa_key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8")
            .to_string();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "lethe test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::from_pem(&key_pem).expect("rcgen reads the RSA key");
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        leaf.distinguished_name
            .push(DnType::CommonName, "lethe OpenDSR processor");
        let cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
        Pki {
            ca_pem: ca_cert.pem(),
            key_pem,
            cert_pem: cert.pem(),
        }
    })
}

/// Settings that give lethe the test processor key.
pub fn opendsr_settings(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let p = pki();
    let key = dir.join("opendsr-key.pem");
    let cert = dir.join("opendsr-cert.pem");
    std::fs::write(&key, &p.key_pem).unwrap();
    std::fs::write(&cert, &p.cert_pem).unwrap();
    vec![
        ("LETHE_OPENDSR_KEY_FILE", key.display().to_string()),
        ("LETHE_OPENDSR_CERT_FILE", cert.display().to_string()),
    ]
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Read a signed response: its body, checked against the signature header.
async fn signed_body(r: reqwest::Response, key: &rsa::RsaPublicKey, prefix: &str) -> Value {
    assert_eq!(
        header(&r, &format!("x-{prefix}-processor-domain")),
        "127.0.0.1"
    );
    let sig = header(&r, &format!("x-{prefix}-signature"));
    let bytes = r.bytes().await.unwrap();
    assert!(
        lethe::domain::opendsr::verify(key, &bytes, &sig),
        "the response signature verifies"
    );
    serde_json::from_slice(&bytes).unwrap()
}

fn dsr_body(id: &str, kind: &str, identities: Value, callback: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "regulation": "gdpr",
        "subject_request_id": id,
        "subject_request_type": kind,
        "submitted_time": "2026-11-24T10:00:00Z",
        "subject_identities": identities,
        "api_version": "2.0",
        "status_callback_urls": [callback],
        "extensions": { "example.com": { "foo-field": "foo-value" } }
    }))
    .unwrap()
}

async fn post_dsr(app: &TestApp, t: &Tenant, prefix: &str, body: &[u8]) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/{prefix}/v1/requests")))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn dsr_status(app: &TestApp, t: &Tenant, key: &rsa::RsaPublicKey, id: &str) -> Value {
    let r = app.get(t, &format!("/opendsr/v1/requests/{id}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    signed_body(r, key, "opendsr").await
}

/// The spec error's `reason`, after checking its shape.
async fn spec_reason(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], status, "{v}");
    assert!(v["error"]["message"].is_string());
    assert_eq!(v["error"]["errors"][0]["domain"], "OpenDSR");
    v["error"]["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An OpenDSR erasure goes through the privacy contact's approval; its status
/// follows lethe's request, and every status change is called back, signed
/// with the key whose certificate discovery points to.
pub async fn opendsr_request_is_approved_completed_and_called_back(db: Db) {
    let mail = MailCatcher::start().await;
    let receiver = FakeTarget::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut extra = opendsr_settings(dir.path());
    extra.push(("LETHE_SMTP_URL", mail.smtp_url()));
    let app = spawn_app_with(db, &extra).await;
    let t = app.create_eu_tenant("en", false).await;

    // Discovery, and the certificate it points to, fetched over HTTP.
    let r = app
        .client
        .get(app.url("/opendsr/v1/discovery"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sig = header(&r, "x-opendsr-signature");
    let bytes = r.bytes().await.unwrap();
    let discovery: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(discovery["api_version"], "2.0");
    assert_eq!(
        discovery["supported_subject_request_types"],
        json!(["erasure"])
    );
    let ids = discovery["supported_identities"].as_array().unwrap();
    for t in ["email", "controller_customer_id"] {
        assert!(ids
            .iter()
            .any(|i| i["identity_type"] == t && i["identity_format"] == "raw"));
    }
    let cert_url = discovery["processor_certificate"].as_str().unwrap();
    assert!(cert_url.starts_with(&app.base), "{cert_url}");
    let cert_pem = app
        .client
        .get(cert_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cert_pem, pki().cert_pem);
    {
        use x509_cert::der::DecodePem;
        let cert = x509_cert::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
        assert!(cert
            .tbs_certificate
            .issuer
            .to_string()
            .contains("lethe test CA"));
        let ca = x509_cert::Certificate::from_pem(pki().ca_pem.as_bytes()).unwrap();
        assert_eq!(cert.tbs_certificate.issuer, ca.tbs_certificate.subject);
    }
    let key = lethe::domain::opendsr::certificate_public_key(&cert_pem).unwrap();
    assert!(lethe::domain::opendsr::verify(&key, &bytes, &sig));

    // Submit.
    let sri = uuid::Uuid::new_v4().to_string();
    let body = dsr_body(
        &sri,
        "erasure",
        json!([
            { "identity_type": "email", "identity_value": "jane@example.org", "identity_format": "raw" },
            { "identity_type": "controller_customer_id", "identity_value": "cus-42", "identity_format": "raw" }
        ]),
        &receiver.url,
    );
    let r = post_dsr(&app, &t, "opendsr", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = signed_body(r, &key, "opendsr").await;
    assert_eq!(created["controller_id"], t.id);
    assert_eq!(created["subject_request_id"], sri);
    assert!(created["expected_completion_time"].is_string());
    assert!(created["received_time"].is_string());
    let encoded = base64::engine::general_purpose::STANDARD
        .decode(created["encoded_request"].as_str().unwrap())
        .unwrap();
    assert_eq!(encoded, body);
    assert!(lethe::domain::opendsr::verify(
        &key,
        &encoded,
        created["processor_signature"].as_str().unwrap()
    ));
    assert_eq!(
        dsr_status(&app, &t, &key, &sri).await["request_status"],
        "pending"
    );

    // It is an ordinary lethe request for the customer id.
    let list = app.list(&t, "").await;
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(items[0]["subject_id"], "cus-42");
    assert_eq!(items[0]["state"], "awaiting_approval");
    assert!(items[0]["callback_url"].is_null());

    // A replay answers the same and creates nothing.
    let r = post_dsr(&app, &t, "opendsr", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let again = signed_body(r, &key, "opendsr").await;
    assert_eq!(again["received_time"], created["received_time"]);
    assert_eq!(app.count("erasure_requests").await, 1);
    assert_eq!(app.count("opendsr_requests").await, 1);

    // The privacy contact approves through the emailed link.
    app.run_jobs().await;
    assert!(
        receiver.received().is_empty(),
        "no callback before a change"
    );
    let path = approval_path(&mail.wait_for("dpo@acme.example", 1).await[0]);
    let r = app
        .client
        .post(app.url(&path))
        .form(&[("action", "approve_all")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(
        dsr_status(&app, &t, &key, &sri).await["request_status"],
        "in_progress"
    );
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/complete"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.run_jobs().await;
    let done = dsr_status(&app, &t, &key, &sri).await;
    assert_eq!(done["request_status"], "completed");
    assert_eq!(done["controller_id"], t.id);
    assert!(done["results_url"].is_null());

    // Every callback is signed with the certificate's key.
    let calls = receiver.received();
    let statuses: Vec<Value> = calls
        .iter()
        .map(|c| c.json()["request_status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("in_progress"), json!("completed")]);
    for c in &calls {
        assert_eq!(c.header("x-opendsr-processor-domain"), Some("127.0.0.1"));
        let sig = c.header("x-opendsr-signature").expect("signed");
        assert!(lethe::domain::opendsr::verify(&key, &c.body, sig));
        let mut tampered = c.body.clone();
        tampered[3] ^= 1;
        assert!(!lethe::domain::opendsr::verify(&key, &tampered, sig));
        let v = c.json();
        assert_eq!(v["subject_request_id"], sri);
        assert_eq!(v["controller_id"], t.id);
        assert_eq!(v["status_callback_url"], receiver.url);
        assert!(v["expected_completion_time"].is_string());
    }

    // A completed request cannot be cancelled.
    let r = app
        .client
        .delete(app.url(&format!("/opendsr/v1/requests/{sri}")))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(spec_reason(r, 409).await, "not_cancellable");
}

/// Errors follow the spec's shape and create nothing; a pending request can
/// be cancelled; old OpenGDPR clients get their own headers.
pub async fn opendsr_errors_cancel_and_opengdpr(db: Db) {
    let receiver = FakeTarget::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(db, &opendsr_settings(dir.path())).await;
    let t = app.create_eu_tenant("en", false).await;
    let key = lethe::domain::opendsr::certificate_public_key(&pki().cert_pem).unwrap();
    let email = json!([{ "identity_type": "email", "identity_value": "jane@example.org" }]);

    let sri = uuid::Uuid::new_v4().to_string();
    let r = post_dsr(
        &app,
        &t,
        "opendsr",
        &dsr_body(&sri, "access", email.clone(), &receiver.url),
    )
    .await;
    assert_eq!(spec_reason(r, 400).await, "unsupported_request_type");
    let bad = json!([{ "identity_type": "email", "identity_value": "not-an-email", "identity_format": "raw" }]);
    let r = post_dsr(
        &app,
        &t,
        "opendsr",
        &dsr_body(&sri, "erasure", bad, &receiver.url),
    )
    .await;
    assert_eq!(spec_reason(r, 400).await, "invalid_identity");
    let r = post_dsr(
        &app,
        &t,
        "opendsr",
        &dsr_body("not-a-uuid", "erasure", email.clone(), &receiver.url),
    )
    .await;
    assert_eq!(spec_reason(r, 400).await, "invalid_subject_request_id");
    let r = post_dsr(&app, &t, "opendsr", b"{not json").await;
    assert_eq!(spec_reason(r, 400).await, "invalid_json");
    let r = app
        .client
        .post(app.url("/opendsr/v1/requests"))
        .body(dsr_body(&sri, "erasure", email.clone(), &receiver.url))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_reason(r, 401).await, "missing_credentials");
    assert_eq!(app.count("erasure_requests").await, 0);
    assert_eq!(app.count("opendsr_requests").await, 0);
    let r = app.get(&t, &format!("/opendsr/v1/requests/{sri}")).await;
    assert_eq!(spec_reason(r, 404).await, "not_found");

    // Cancel while pending: 202, status cancelled, and a signed callback.
    let r = post_dsr(
        &app,
        &t,
        "opendsr",
        &dsr_body(&sri, "erasure", email.clone(), &receiver.url),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .client
        .delete(app.url(&format!("/opendsr/v1/requests/{sri}")))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut v = signed_body(r, &key, "opendsr").await;
    assert_eq!(v["request_status"], "cancelled");
    assert_eq!(v["subject_request_id"], sri);
    assert_eq!(v["controller_id"], t.id);
    assert!(v["received_time"].is_string());
    let sig = v
        .as_object_mut()
        .unwrap()
        .remove("processor_signature")
        .unwrap();
    assert!(lethe::domain::opendsr::verify(
        &key,
        &serde_json::to_vec(&v).unwrap(),
        sig.as_str().unwrap()
    ));
    let list = app.list(&t, "").await;
    assert!(list.to_string().contains("\"cancelled\""));
    app.run_jobs().await;
    let calls = receiver.received();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].json()["request_status"], "cancelled");
    assert!(lethe::domain::opendsr::verify(
        &key,
        &calls[0].body,
        calls[0].header("x-opendsr-signature").unwrap()
    ));
    // Another tenant cannot see it.
    let other = app.create_tenant("none").await;
    let r = app
        .get(&other, &format!("/opendsr/v1/requests/{sri}"))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // OpenGDPR: same handlers, X-OpenGDPR-* headers.
    let r = app
        .client
        .get(app.url("/opengdpr/v1/discovery"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-opendsr-signature").is_none());
    let v = signed_body(r, &key, "opengdpr").await;
    assert!(v["processor_certificate"]
        .as_str()
        .unwrap()
        .ends_with("/opengdpr/v1/certificate"));
    let sri2 = uuid::Uuid::new_v4().to_string();
    let r = post_dsr(
        &app,
        &other,
        "opengdpr",
        &dsr_body(
            &sri2,
            "erasure",
            json!([{ "identity_type": "controller_customer_id", "identity_value": "u-9" }]),
            &receiver.url,
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = signed_body(r, &key, "opengdpr").await;
    assert_eq!(v["subject_request_id"], sri2);
    assert_eq!(v["controller_id"], other.id);
    // Its status callbacks carry the OpenGDPR headers too.
    let list = app.list(&other, "").await;
    let rid = list["data"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post_empty(&other, &format!("/v1/erasure-requests/{rid}/complete"))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    app.run_jobs().await;
    let calls = receiver.received();
    let legacy: Vec<_> = calls
        .iter()
        .filter(|c| c.json()["subject_request_id"] == sri2)
        .collect();
    assert!(!legacy.is_empty(), "a callback for the OpenGDPR request");
    for c in legacy {
        assert!(c.header("x-opendsr-signature").is_none());
        assert!(c.header("x-opengdpr-processor-domain").is_some());
        assert!(lethe::domain::opendsr::verify(
            &key,
            &c.body,
            c.header("x-opengdpr-signature")
                .expect("signed the OpenGDPR way")
        ));
    }
}

const FB_SECRET: &str = "fb-app-secret-0123456789";

async fn fb_post(app: &TestApp, path: &str, signed_request: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(&[("signed_request", signed_request)])
        .send()
        .await
        .unwrap()
}

fn fb_payload(user: &str, issued: chrono::DateTime<chrono::Utc>) -> Value {
    json!({ "algorithm": "HMAC-SHA256", "expires": 0, "issued_at": issued.timestamp(), "user_id": user })
}

/// Facebook's signed deletion callback creates a request and answers with a
/// working status URL; bad signatures, tampering and stale requests create
/// nothing; a replay gets the same code; the page shows no subject id.
pub async fn facebook_deletion_creates_a_request_with_a_status_page(db: Db) {
    use lethe::domain::facebook::sign;
    let app = crate::helpers::spawn_app(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let r = app
        .client
        .put(app.url(&format!("/v1/tenants/{}/integrations/facebook", t.id)))
        .bearer_auth(&t.key)
        .json(&json!({ "app_id": "1234567890", "app_secret": FB_SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "admin only");
    let r = app
        .client
        .put(app.url(&format!("/v1/tenants/{}/integrations/facebook", t.id)))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&json!({ "app_id": "1234567890", "app_secret": FB_SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(
        !v.to_string().contains(FB_SECRET),
        "the secret is not echoed"
    );
    let path = format!("/v1/integrations/facebook/{}/data-deletion", t.id);
    assert!(v["data_deletion_callback_url"]
        .as_str()
        .unwrap()
        .ends_with(&path));
    assert_eq!(
        app.count(&format!(
            "facebook_apps WHERE secret_box LIKE '%{FB_SECRET}%'"
        ))
        .await,
        0,
        "the secret is stored sealed"
    );

    let now = chrono::Utc::now();
    let good = sign(&fb_payload("218471", now), FB_SECRET.as_bytes());

    // Refused: nothing created.
    let wrong_secret = sign(&fb_payload("218471", now), b"another-secret-123");
    let (sig, _) = good.split_once('.').unwrap();
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(fb_payload("999999", now).to_string());
    let tampered = format!("{sig}.{forged_payload}");
    let stale = sign(
        &fb_payload("218471", now - chrono::Duration::hours(2)),
        FB_SECRET.as_bytes(),
    );
    let mut sha1 = fb_payload("218471", now);
    sha1["algorithm"] = json!("HMAC-SHA1");
    let sha1 = sign(&sha1, FB_SECRET.as_bytes());
    for (sr, code) in [
        (wrong_secret.as_str(), "invalid_signature"),
        (tampered.as_str(), "invalid_signature"),
        (stale.as_str(), "expired_signed_request"),
        (sha1.as_str(), "unsupported_algorithm"),
        ("garbage", "malformed_signed_request"),
    ] {
        let r = fb_post(&app, &path, sr).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{code}");
        assert_eq!(crate::helpers::error_code(r).await, code);
    }
    assert_eq!(app.count("erasure_requests").await, 0);
    assert_eq!(app.count("facebook_deletions").await, 0);

    // Accepted.
    let r = fb_post(&app, &path, &good).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let code = v["confirmation_code"].as_str().unwrap().to_owned();
    assert!(code.len() >= 26, "at least 128 bits: {code}");
    assert_eq!(v["url"], format!("{}/status/{code}", app.base));
    assert_eq!(app.count("erasure_requests").await, 1);
    let list = app.list(&t, "").await;
    assert_eq!(list["data"][0]["subject_id"], "facebook:218471");
    assert_eq!(list["data"][0]["initiator"], "subject");
    assert_eq!(
        app.count(&format!(
            "facebook_deletions WHERE code_hash LIKE '%{code}%'"
        ))
        .await,
        0,
        "the code itself is not stored"
    );

    // A replay (on either URL form) gets the same code and creates nothing.
    let r = fb_post(&app, &path, &good).await;
    assert_eq!(r.json::<Value>().await.unwrap()["confirmation_code"], code);
    let r = fb_post(
        &app,
        &format!("/v1/integrations/facebook/data-deletion?tenant={}", t.id),
        &good,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["confirmation_code"], code);
    assert_eq!(app.count("erasure_requests").await, 1);
    assert_eq!(app.count("facebook_deletions").await, 1);

    // The status page works and shows no personal data.
    let r = app
        .client
        .get(v["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let html = r.text().await.unwrap();
    assert!(html.contains(&code) && html.contains("Received"), "{html}");
    assert!(!html.contains("218471") && !html.contains("facebook:"));
    let r = app
        .client
        .get(app.url(&format!("/status/{}", "a".repeat(32))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A tenant without a Facebook app, or no tenant at all.
    let other = app.create_tenant("none").await;
    let r = fb_post(
        &app,
        &format!("/v1/integrations/facebook/{}/data-deletion", other.id),
        &good,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = fb_post(&app, "/v1/integrations/facebook/data-deletion", &good).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.count("erasure_requests").await, 1);
}
