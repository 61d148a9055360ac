//! Erasure execution against real HTTP targets started by the tests.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Db, Tenant, TestApp};
use crate::mail::{approval_path, MailCatcher};
use crate::targets_server::{reply, FakeTarget, Reply};

struct Target {
    id: String,
    secret: String,
}

async fn add_target(app: &TestApp, t: &Tenant, name: &str, url: &str, timeout_ms: i32) -> Target {
    let r = app
        .admin_post(
            &format!("/v1/tenants/{}/targets", t.id),
            &json!({ "name": name, "url": url, "timeout_ms": timeout_ms }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    Target {
        id: v["id"].as_str().unwrap().to_owned(),
        secret: v["secret"].as_str().unwrap().to_owned(),
    }
}

async fn request(app: &TestApp, t: &Tenant, id: &str) -> Value {
    app.get(t, &format!("/v1/erasure-requests/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn submit(app: &TestApp, t: &Tenant, subject: &str) -> String {
    let r = app
        .submit(t, &json!({ "subject_id": subject, "subject_email": "jane@example.org", "reason": "gone" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn confirm(
    app: &TestApp,
    id: &str,
    target: &str,
    secret: &str,
    body: &[u8],
) -> reqwest::Response {
    let sig = lethe::domain::signature::sign(secret.as_bytes(), Utc::now().timestamp(), body);
    app.client
        .post(app.url(&format!(
            "/v1/erasure-requests/{id}/targets/{target}/confirm"
        )))
        .header("Lethe-Signature", sig)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// Approval through the real email link, a signed call to the target, the
/// receipt, scrubbing, and a later request for the same subject.
pub async fn approved_request_is_erased_at_the_target_with_proof(db: Db) {
    let mail = MailCatcher::start().await;
    let app = spawn_app_with(db, &[("LETHE_SMTP_URL", mail.smtp_url())]).await;
    let target = FakeTarget::start(&[reply(200)]).await;
    let t = app.create_eu_tenant("en", false).await;
    let tg = add_target(&app, &t, "profile-service", &target.url, 5000).await;
    let id = submit(&app, &t, "user-77").await;
    app.run_jobs().await;
    assert!(
        target.received().is_empty(),
        "nothing is erased before approval"
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

    let calls = target.received();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    let sig = call.header("lethe-signature").expect("signed");
    lethe::domain::signature::verify(
        sig,
        tg.secret.as_bytes(),
        &call.body,
        Utc::now().timestamp(),
    )
    .expect("the signature verifies with the target's secret");
    assert!(lethe::domain::signature::verify(
        sig,
        b"another secret",
        &call.body,
        Utc::now().timestamp()
    )
    .is_err());
    assert_eq!(
        call.header("idempotency-key").unwrap(),
        format!("{id}:{}", tg.id)
    );
    let body = call.json();
    assert_eq!(body["request_id"], id);
    assert_eq!(body["subject_id"], "user-77");
    assert_eq!(body["scope"]["per_tenant"], true);
    assert_eq!(body["tenant_id"], t.id);

    let v = request(&app, &t, &id).await;
    assert_eq!(v["state"], "erased");
    assert!(v["approved_at"].is_string() && v["erased_at"].is_string());
    // Scrubbed: the row keeps no subject id or email (checked in SQL).
    app.run_jobs().await;
    assert_eq!(
        app.count(&format!(
            "erasure_requests WHERE id = '{id}' AND subject_id IS NULL AND subject_email IS NULL AND reason IS NULL AND scrubbed_at IS NOT NULL"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(
            "erasure_requests WHERE subject_id = 'user-77' OR subject_email = 'jane@example.org'"
        )
        .await,
        0
    );
    // The subject can still be looked up through the keyed hash.
    let s: Value = app
        .get(&t, "/v1/subjects/user-77")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["reason"], "previously_erased");
    assert_eq!(s["request"]["id"], id);
    assert!(s["request"]["subject_id"].is_null());

    // The receipt verifies, and not after one byte changes.
    let r = app
        .get(&t, &format!("/v1/erasure-requests/{id}/receipt"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let receipt = r.text().await.unwrap();
    assert!(
        !receipt.contains("user-77") && !receipt.contains("jane@"),
        "no personal data in the receipt"
    );
    let rv: Value = serde_json::from_str(&receipt).unwrap();
    assert_eq!(rv["receipt"]["approver_role"], "privacy_contact");
    assert_eq!(rv["receipt"]["targets"][0]["target"], "profile-service");
    let key: Value = app
        .client
        .get(app.url("/v1/receipts/public-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["public_key"], rv["public_key"]);
    let file = app.dir.path().join("receipt.json");
    std::fs::write(&file, &receipt).unwrap();
    let pk = key["public_key"].as_str().unwrap();
    let ok = app.lethe_bin(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        pk,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let tampered = receipt.replacen("profile-service", "profile-servicf", 1);
    std::fs::write(&file, tampered).unwrap();
    let bad = app.lethe_bin(&["receipt", "verify", file.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    // The privacy contact got the receipt by email.
    let msgs = mail.wait_for("dpo@acme.example", 2).await;
    let certificate = msgs
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("certificate of erasure")
        })
        .expect("the certificate of erasure was emailed");
    // It states what the API's receipt states: the target that confirmed.
    let text = certificate["text"].as_str().unwrap();
    assert!(text.contains("profile-service"), "{text}");
    assert!(
        text.contains(&format!("\"request_id\": \"{id}\"")),
        "{text}"
    );
    // The person may come back: a new request for the same subject id is new.
    let again = app.submit(&t, &json!({ "subject_id": "user-77" })).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_ne!(again.json::<Value>().await.unwrap()["id"], id);
    assert!(app.lethe_bin(&["audit", "verify"]).status.success());
}

async fn app_with_target(
    db: Db,
    replies: &[Reply],
    timeout_ms: i32,
) -> (TestApp, FakeTarget, Tenant, Target) {
    let app = crate::helpers::spawn_app(db).await;
    let target = FakeTarget::start(replies).await;
    let t = app.create_tenant("none").await;
    let tg = add_target(&app, &t, "warehouse", &target.url, timeout_ms).await;
    (app, target, t, tg)
}

/// 500 then 200: retried with backoff, then erased.
pub async fn server_errors_are_retried(db: Db) {
    let (app, target, t, _) = app_with_target(db, &[reply(500), reply(200)], 5000).await;
    let id = submit(&app, &t, "u").await;
    let pass = app.run_jobs().await;
    assert_eq!(pass.retried, 1, "{pass:?}");
    assert_eq!(request(&app, &t, &id).await["state"], "erasing");
    app.run_jobs_at(Utc::now() + Duration::minutes(5)).await;
    assert_eq!(request(&app, &t, &id).await["state"], "erased");
    let calls = target.received();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].header("idempotency-key"),
        calls[1].header("idempotency-key")
    );
}

/// 202 then a signed confirmation; a bad signature changes nothing; a replay is harmless.
pub async fn accepted_then_confirmed(db: Db) {
    let (app, _target, t, tg) = app_with_target(db, &[reply(202)], 5000).await;
    let id = submit(&app, &t, "u").await;
    app.run_jobs().await;
    assert_eq!(request(&app, &t, &id).await["state"], "erasing");
    let calls: Value = app
        .get(&t, &format!("/v1/erasure-requests/{id}/targets"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(calls["data"][0]["status"], "accepted");
    let body = br#"{"status":"erased"}"#;
    let r = confirm(&app, &id, &tg.id, "wrong-secret", body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .post(app.url(&format!(
            "/v1/erasure-requests/{id}/targets/{}/confirm",
            tg.id
        )))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(request(&app, &t, &id).await["state"], "erasing");
    let r = confirm(&app, &id, "warehouse", &tg.secret, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(request(&app, &t, &id).await["state"], "erased");
    let events_before = app.count("audit_events").await;
    let r = confirm(&app, &id, &tg.id, &tg.secret, body).await;
    assert_eq!(r.status(), StatusCode::OK, "a replay is harmless");
    assert_eq!(app.count("audit_events").await, events_before);
    // Unknown request or target.
    let r = confirm(
        &app,
        "00000000-0000-7000-8000-000000000000",
        &tg.id,
        &tg.secret,
        body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// 400: failed, visible; support retries after the target is fixed.
pub async fn refused_then_retried_after_a_fix(db: Db) {
    let (app, target, t, _) = app_with_target(db, &[reply(400)], 5000).await;
    let id = submit(&app, &t, "u").await;
    app.run_jobs().await;
    assert_eq!(request(&app, &t, &id).await["state"], "failed");
    let s: Value = app.get(&t, "/v1/subjects/u").await.json().await.unwrap();
    assert_eq!(s["reason"], "erasure_failed_support_notified");
    assert_eq!(
        app.list(&t, "?status=failed").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    target.always(reply(204));
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/retry"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.run_jobs().await;
    assert_eq!(request(&app, &t, &id).await["state"], "erased");
    // Retry of an erased request is refused.
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/retry"))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

/// A target that hangs: the call times out and is retried.
pub async fn a_hanging_target_times_out_and_is_retried(db: Db) {
    let (app, target, t, _) = app_with_target(
        db,
        &[
            Reply {
                status: 200,
                delay_ms: 3000,
            },
            reply(200),
        ],
        300,
    )
    .await;
    let id = submit(&app, &t, "u").await;
    let started = std::time::Instant::now();
    let pass = app.run_jobs().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the timeout cut the call short"
    );
    assert_eq!(pass.retried, 1);
    app.run_jobs_at(Utc::now() + Duration::minutes(5)).await;
    assert_eq!(request(&app, &t, &id).await["state"], "erased");
    assert_eq!(target.received().len(), 2);
}

/// Two targets, one slow to confirm: erased only after both.
pub async fn erased_only_when_every_target_confirmed(db: Db) {
    let (app, _fast, t, _) = app_with_target(db, &[reply(200)], 5000).await;
    let slow = FakeTarget::start(&[reply(202)]).await;
    let tg = add_target(&app, &t, "mail-archive", &slow.url, 5000).await;
    let id = submit(&app, &t, "u").await;
    app.run_jobs().await;
    assert_eq!(request(&app, &t, &id).await["state"], "erasing");
    let r = app
        .get(&t, &format!("/v1/erasure-requests/{id}/receipt"))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = confirm(&app, &id, &tg.id, &tg.secret, b"{}").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = request(&app, &t, &id).await;
    assert_eq!(v["state"], "erased");
    let receipt: Value = app
        .get(&t, &format!("/v1/erasure-requests/{id}/receipt"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["receipt"]["targets"].as_array().unwrap().len(), 2);
    assert_eq!(receipt["receipt"]["approver_role"], "not_required");
}

/// A `none` tenant with two targets that answer only together (see
/// [`FakeTarget::start_gated`]), plus `more` targets of its own.
async fn gated_pair(db: Db, more: &[&FakeTarget]) -> (TestApp, Tenant, FakeTarget, FakeTarget) {
    let app = crate::helpers::spawn_app(db).await;
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let one = FakeTarget::start_gated(gate.clone()).await;
    let two = FakeTarget::start_gated(gate).await;
    let t = app.create_tenant("none").await;
    add_target(&app, &t, "warehouse", &one.url, 5000).await;
    add_target(&app, &t, "mail-archive", &two.url, 5000).await;
    for (n, target) in more.iter().enumerate() {
        add_target(&app, &t, &format!("system-{n}"), &target.url, 5000).await;
    }
    (app, t, one, two)
}

/// `n` requests submitted, then every job due run by two runners at once.
async fn submit_and_run_twice_at_once(
    app: &TestApp,
    t: &Tenant,
    n: usize,
) -> (Vec<String>, lethe::jobs::Pass, DateTime<Utc>) {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(submit(app, t, &format!("u{i}")).await);
    }
    let now = Utc::now() + Duration::seconds(1);
    let (a, b) = (app.runner.clone(), app.runner.clone());
    let (pa, pb) = tokio::join!(a.run_due(now), b.run_due(now));
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    let pass = lethe::jobs::Pass {
        done: pa.done + pb.done,
        retried: pa.retried + pb.retried,
        buried: pa.buried + pb.buried,
    };
    (ids, pass, now)
}

/// Every one of `ids` is `erased`, and every audit chain verifies.
async fn assert_erased_and_chained(app: &TestApp, t: &Tenant, ids: &[String]) {
    for id in ids {
        assert_eq!(request(app, t, id).await["state"], "erased", "request {id}");
    }
    assert!(app.lethe_bin(&["audit", "verify"]).status.success());
}

/// Two targets answering the same request at the same moment: each answer's
/// transaction must see the other's, or neither completes the request and it
/// stays `erasing` for good (found on PostgreSQL: write skew between two
/// confirmations). Two job runners call the targets at once; the targets
/// hold each call until the other target has one too.
pub async fn two_targets_answering_at_once_erase_the_request(db: Db) {
    let (app, t, one, two) = gated_pair(db, &[]).await;
    let (ids, pass, _) = submit_and_run_twice_at_once(&app, &t, 6).await;
    assert_eq!(pass.retried, 0, "{pass:?}");
    assert_eq!(one.received().len(), 6);
    assert_eq!(two.received().len(), 6);
    assert_erased_and_chained(&app, &t, &ids).await;
}

/// Two of three targets answering the same request at the same moment, the
/// third asking to be called again: the two answers are written one after
/// the other (the later on the request as the earlier left it), and neither
/// may count the third as confirmed; the request is erased only when the
/// third confirms too.
pub async fn two_of_three_targets_answering_at_once_wait_for_the_third(db: Db) {
    let three = FakeTarget::start(&[reply(503); 4]).await;
    let (app, t, one, two) = gated_pair(db, &[&three]).await;
    let (ids, pass, now) = submit_and_run_twice_at_once(&app, &t, 4).await;
    assert_eq!(pass.retried, 4, "{pass:?}");
    assert_eq!(one.received().len(), 4);
    assert_eq!(two.received().len(), 4);
    assert_eq!(three.received().len(), 4);
    for id in &ids {
        let v = request(&app, &t, id).await;
        assert_eq!(v["state"], "erasing", "request {id}: {v}");
    }
    app.runner.run_due(now + Duration::hours(1)).await.unwrap();
    assert_eq!(three.received().len(), 8);
    assert_erased_and_chained(&app, &t, &ids).await;
}

/// The job workers running as in production (not stepped by the test):
/// jobs claimed together start from the requests read in one go for the
/// batch, and their writes go in groups. Each request still gets its own
/// approval email, both targets called once, and a certificate naming both
/// targets and that request; the chains verify.
pub async fn job_workers_claiming_together_certify_each_request(db: Db) {
    let mail = MailCatcher::start().await;
    let app = spawn_app_with(
        db,
        &[
            ("LETHE_SMTP_URL", mail.smtp_url()),
            ("LETHE_JOB_WORKERS", "16".into()),
        ],
    )
    .await;
    let (one, two) = (FakeTarget::start(&[]).await, FakeTarget::start(&[]).await);
    let t = app.create_eu_tenant("en", false).await;
    add_target(&app, &t, "warehouse", &one.url, 5000).await;
    add_target(&app, &t, "mail-archive", &two.url, 5000).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(submit(&app, &t, &format!("batch-user-{i}")).await);
    }
    let emails = mail.wait_for("dpo@acme.example", ids.len()).await;
    assert_eq!(emails.len(), ids.len(), "one approval email per request");
    for email in &emails {
        let r = app
            .client
            .post(app.url(&approval_path(email)))
            .form(&[("action", "approve_all")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let started = std::time::Instant::now();
    for id in &ids {
        while request(&app, &t, id).await["state"] != "erased" {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "request {id}: {}",
                request(&app, &t, id).await
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert_eq!(one.received().len(), ids.len());
    assert_eq!(two.received().len(), ids.len());
    let all = mail.wait_for("dpo@acme.example", 2 * ids.len()).await;
    let certificates: Vec<&str> = all
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("certificate of erasure")
        })
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(certificates.len(), ids.len());
    for id in &ids {
        let text = certificates
            .iter()
            .find(|c| c.contains(&format!("\"request_id\": \"{id}\"")))
            .unwrap_or_else(|| panic!("no certificate for {id}"));
        assert!(
            text.contains("warehouse") && text.contains("mail-archive"),
            "{text}"
        );
    }
    assert!(app.lethe_bin(&["audit", "verify"]).status.success());
}

/// A tenant without targets confirms completion itself; platforms are called
/// back, signed, on every state change.
pub async fn platform_completion_and_signed_callbacks(db: Db) {
    let app = crate::helpers::spawn_app(db).await;
    let hook = FakeTarget::start(&[]).await;
    let r = app
        .admin_post(
            "/v1/tenants",
            &json!({ "name": "Solo", "approval_policy": "none" }),
        )
        .await;
    let tv: Value = r.json().await.unwrap();
    let callback_secret = tv["callback_secret"]
        .as_str()
        .expect("shown once")
        .to_owned();
    let tenant_id = tv["id"].as_str().unwrap().to_owned();
    let k: Value = app
        .admin_post(&format!("/v1/tenants/{tenant_id}/api-keys"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let t = Tenant {
        id: tenant_id,
        key: k["key"].as_str().unwrap().to_owned(),
    };
    let got: Value = app
        .client
        .get(app.url(&format!("/v1/tenants/{}", t.id)))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        got.get("callback_secret").is_none(),
        "the secret is shown only once"
    );
    let r = app
        .submit(
            &t,
            &json!({ "subject_id": "cb-user", "callback_url": hook.url }),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/complete"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "erased");
    app.run_jobs().await;
    let calls = hook.received();
    let states: Vec<String> = calls
        .iter()
        .map(|c| c.json()["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        states.contains(&"erasing".to_owned()) && states.contains(&"erased".to_owned()),
        "{states:?}"
    );
    for c in &calls {
        lethe::domain::signature::verify(
            c.header("lethe-signature").unwrap(),
            callback_secret.as_bytes(),
            &c.body,
            Utc::now().timestamp(),
        )
        .expect("callbacks are signed with the tenant's callback secret");
    }
    // Completing twice is refused.
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/complete"))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

/// Callback URLs come from API callers: by default they may not point into
/// lethe's own network (cloud metadata, loopback, private ranges).
pub async fn callbacks_to_inside_addresses_are_refused(db: Db) {
    let app = spawn_app_with(db, &[("LETHE_CALLBACKS_ALLOW_PRIVATE", "false".into())]).await;
    let t = app.create_tenant("none").await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/v1/tenants",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://metadata.google.internal/",
    ] {
        let r = app
            .submit(&t, &json!({ "subject_id": "u-1", "callback_url": url }))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["details"][0]["field"], "callback_url", "{v}");
    }
    let r = app
        .client
        .post(app.url("/v1/erasure-requests/batch"))
        .bearer_auth(&t.key)
        .json(&json!({ "requests": [
            { "subject_id": "u-2", "callback_url": "https://hooks.example.com/lethe" },
            { "subject_id": "u-3", "callback_url": "http://192.168.0.1/" },
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.count("erasure_requests").await,
        0,
        "nothing was created"
    );
    let r = app
        .submit(
            &t,
            &json!({ "subject_id": "u-4", "callback_url": "https://hooks.example.com/lethe" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "public URLs are fine");
}
