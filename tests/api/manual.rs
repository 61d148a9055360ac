//! Manual erasure targets: systems with no API, whose owner is emailed a link
//! and confirms the erasure by hand (or reports it impossible).

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, Db, Tenant, TestApp};
use crate::mail::{screenshot, with_browser, MailCatcher};
use crate::targets_server::{reply, FakeTarget};

const OWNER: &str = "archive-owner@acme.example";

async fn app_with_mail(db: Db) -> (TestApp, MailCatcher) {
    let mail = MailCatcher::start().await;
    let app = spawn_app_with(db, &[("LETHE_SMTP_URL", mail.smtp_url())]).await;
    (app, mail)
}

async fn add_manual(app: &TestApp, t: &Tenant) -> Value {
    let r = app
        .admin_post(
            &format!("/v1/tenants/{}/targets", t.id),
            &json!({ "name": "mail-archive", "kind": "manual", "owner_email": OWNER }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn submit(app: &TestApp, t: &Tenant, subject: &str) -> String {
    let r = app
        .submit(
            t,
            &json!({ "subject_id": subject, "subject_email": "jane@example.org" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn state_of(app: &TestApp, t: &Tenant, id: &str) -> String {
    let v: Value = app
        .get(t, &format!("/v1/erasure-requests/{id}"))
        .await
        .json()
        .await
        .unwrap();
    v["state"].as_str().unwrap().to_owned()
}

async fn call_of(app: &TestApp, t: &Tenant, id: &str, target: &str) -> Value {
    let v: Value = app
        .get(t, &format!("/v1/erasure-requests/{id}/targets"))
        .await
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == target)
        .cloned()
        .unwrap_or_else(|| panic!("no call to {target}: {v}"))
}

/// The confirmation path (`/erasure-confirmations/<token>`) in an email.
fn task_path(message: &Value) -> String {
    let text = message["text"].as_str().expect("a text part");
    let start = text
        .find("/erasure-confirmations/")
        .expect("a link in the text");
    let end = text[start..]
        .find(|c: char| c.is_whitespace())
        .map(|e| start + e)
        .unwrap_or(text.len());
    text[start..end].to_owned()
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let r = app
        .client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn get_page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// A webhook target and a manual one: the request is erased only when the
/// owner confirms in the browser; reminders go out until then and stop
/// after; the confirmation names the owner and reaches the receipt.
pub async fn owner_confirms_a_manual_target_by_hand(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let hook = FakeTarget::start(&[reply(200)]).await;
    let t = app.create_tenant("none").await;
    let r = app
        .admin_post(
            &format!("/v1/tenants/{}/targets", t.id),
            &json!({ "name": "profile-service", "url": hook.url }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let manual = add_manual(&app, &t).await;
    assert_eq!(manual["kind"], "manual");
    assert_eq!(manual["owner_email"], OWNER);
    assert!(manual["url"].is_null());
    assert!(manual.get("secret").is_none(), "nothing to sign: {manual}");

    let id = submit(&app, &t, "user-5150").await;
    app.run_jobs().await;
    assert_eq!(hook.received().len(), 1);
    assert_eq!(
        state_of(&app, &t, &id).await,
        "erasing",
        "the webhook alone does not finish it"
    );
    let call = call_of(&app, &t, &id, "mail-archive").await;
    assert_eq!(call["status"], "accepted", "{call}");

    let first = mail.wait_for(OWNER, 1).await;
    assert_eq!(first.len(), 1);
    let subject = first[0]["subject"].as_str().unwrap();
    assert!(subject.contains("mail-archive"), "{subject}");
    let text = first[0]["text"].as_str().unwrap();
    assert!(
        !text.contains("user-5150") && !text.contains("jane@example.org"),
        "the email names the task, not the person: {text}"
    );
    let path = task_path(&first[0]);

    // Opening the link shows whose data to erase and changes nothing.
    let (status, page) = get_page(&app, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("user-5150") && page.contains("jane@example.org"));
    assert_eq!(
        call_of(&app, &t, &id, "mail-archive").await["status"],
        "accepted"
    );

    // A reminder after the configured days; the first link still works.
    app.run_jobs_at(Utc::now() + Duration::days(3) + Duration::minutes(1))
        .await;
    let both = mail.wait_for(OWNER, 2).await;
    assert_eq!(both.len(), 2);
    assert!(both
        .iter()
        .any(|m| m["subject"].as_str().unwrap().contains("Reminder")));
    let second = task_path(
        both.iter()
            .find(|m| m["subject"].as_str().unwrap().contains("Reminder"))
            .unwrap(),
    );
    assert_ne!(second, path);
    assert_eq!(get_page(&app, &path).await.0, StatusCode::OK);

    // "Impossible" without a reason is refused and changes nothing.
    let (status, page) =
        post_form(&app, &path, &[("outcome", "impossible"), ("reason", " ")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("errors"), "{page}");
    assert_eq!(state_of(&app, &t, &id).await, "erasing");

    // The owner confirms in a real browser.
    let url = app.url(&path);
    let (task_text, done_text) = tokio::task::spawn_blocking(move || {
        with_browser(|browser| {
            let tab = browser.new_tab().unwrap();
            tab.navigate_to(&url)
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            let task = tab
                .wait_for_element("main")
                .unwrap()
                .get_inner_text()
                .unwrap();
            screenshot(&tab, "manual-target-task");
            tab.wait_for_element("#erased").unwrap().click().unwrap();
            tab.wait_for_element("#message").unwrap();
            let done = tab
                .wait_for_element("main")
                .unwrap()
                .get_inner_text()
                .unwrap();
            screenshot(&tab, "manual-target-done");
            (task, done)
        })
    })
    .await
    .unwrap();
    assert!(
        task_text.contains("mail-archive") && task_text.contains("user-5150"),
        "{task_text}"
    );
    assert!(done_text.contains("confirmed and recorded"), "{done_text}");
    assert_eq!(state_of(&app, &t, &id).await, "erased");
    let call = call_of(&app, &t, &id, "mail-archive").await;
    assert_eq!(call["status"], "confirmed");
    assert_eq!(call["confirmed_by"], OWNER, "the owner who confirmed");
    assert!(call["confirmed_at"].is_string());

    // Replays and the other link are inert.
    assert_eq!(
        post_form(&app, &path, &[("outcome", "erased")]).await.0,
        StatusCode::GONE
    );
    assert_eq!(get_page(&app, &second).await.0, StatusCode::GONE);
    assert_eq!(
        get_page(&app, "/erasure-confirmations/lethe_tc_not-a-real-token")
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // The receipt says a person confirmed by hand, without naming them.
    let r = app
        .get(&t, &format!("/v1/erasure-requests/{id}/receipt"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let receipt = r.text().await.unwrap();
    assert!(!receipt.contains(OWNER) && !receipt.contains("user-5150"));
    let rv: Value = serde_json::from_str(&receipt).unwrap();
    let manual_line = rv["receipt"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "mail-archive")
        .cloned()
        .expect("the manual target is in the receipt");
    assert_eq!(manual_line["confirmed_by"], "target_owner");
    let file = app.dir.path().join("receipt.json");
    std::fs::write(&file, &receipt).unwrap();
    assert!(app
        .lethe_bin(&["receipt", "verify", file.to_str().unwrap()])
        .status
        .success());

    // Reminders stop once confirmed.
    app.run_jobs_at(Utc::now() + Duration::days(10)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mail.to(OWNER).await.len(), 2);
    assert!(app.lethe_bin(&["audit", "verify"]).status.success());
}

/// The owner reports the erasure impossible: the request fails with the
/// reason for support; after a support retry the owner is asked again.
pub async fn owner_reports_erasure_impossible(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_tenant("none").await;
    add_manual(&app, &t).await;
    let id = submit(&app, &t, "user-77").await;
    app.run_jobs().await;
    let path = task_path(&mail.wait_for(OWNER, 1).await[0]);
    let (status, page) = post_form(
        &app,
        &path,
        &[
            ("outcome", "impossible"),
            ("reason", "tape backup, rotated out in 90 days"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(state_of(&app, &t, &id).await, "failed");
    let call = call_of(&app, &t, &id, "mail-archive").await;
    assert_eq!(call["status"], "failed");
    assert!(
        call["last_error"]
            .as_str()
            .unwrap()
            .contains("tape backup, rotated out in 90 days"),
        "{call}"
    );
    assert_eq!(get_page(&app, &path).await.0, StatusCode::GONE);

    // Support resumes it: the owner gets a new link and confirms.
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/retry"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.run_jobs().await;
    let again = mail.wait_for(OWNER, 2).await;
    assert_eq!(again.len(), 2);
    let fresh = again
        .iter()
        .map(task_path)
        .find(|p| *p != path)
        .expect("a new link");
    let (status, _) = post_form(&app, &fresh, &[("outcome", "erased")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state_of(&app, &t, &id).await, "erased");
}

/// Creating and changing manual targets: bad combinations are JSON 4xx and
/// create nothing.
pub async fn manual_targets_are_validated(db: Db) {
    let app = crate::helpers::spawn_app(db).await;
    let t = app.create_tenant("none").await;
    let path = format!("/v1/tenants/{}/targets", t.id);
    for body in [
        json!({ "name": "a", "kind": "manual" }),
        json!({ "name": "a", "kind": "manual", "owner_email": "not-an-address" }),
        json!({ "name": "a", "kind": "manual", "owner_email": OWNER, "url": "https://x.example/erase" }),
        json!({ "name": "a", "kind": "carrier-pigeon", "owner_email": OWNER }),
        json!({ "name": "a", "url": "https://x.example/erase", "owner_email": OWNER }),
        json!({ "name": "a" }),
    ] {
        let r = app.admin_post(&path, &body).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(r).await, "invalid_field", "{body}");
    }
    assert_eq!(app.count("erasure_targets").await, 0);
    let manual = add_manual(&app, &t).await;
    let id = manual["id"].as_str().unwrap();
    let patch = |body: Value| {
        let url = app.url(&format!("{path}/{id}"));
        let client = app.client.clone();
        async move {
            client
                .patch(url)
                .bearer_auth(crate::helpers::ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = patch(json!({ "url": "https://x.example/erase" })).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = patch(json!({ "owner_email": "new-owner@acme.example" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["owner_email"], "new-owner@acme.example");
    assert_eq!(v["kind"], "manual");
}
