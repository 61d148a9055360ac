//! The privacy contact's approval, end to end: real SMTP to maildev, the
//! link opened in headless Chromium, decisions posted from the page.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Db, TestApp};
use crate::mail::{approval_path, screenshot, with_browser, MailCatcher};

const CONTACT: &str = "dpo@acme.example";

async fn app_with_mail(db: Db) -> (TestApp, MailCatcher) {
    let mail = MailCatcher::start().await;
    let app = spawn_app_with(db, &[("LETHE_SMTP_URL", mail.smtp_url())]).await;
    (app, mail)
}

/// An app whose SMTP server is not there yet (it can be started on the
/// returned port later).
async fn app_with_mail_down(db: Db) -> (TestApp, u16) {
    let port = crate::mail::free_port();
    let app = spawn_app_with(
        db,
        &[
            ("LETHE_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
            ("LETHE_SMTP_TIMEOUT_SECS", "2".into()),
        ],
    )
    .await;
    (app, port)
}

/// The request as the platform reads it.
async fn request(app: &TestApp, t: &crate::helpers::Tenant, id: &str) -> Value {
    app.get(t, &format!("/v1/erasure-requests/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn state_of(app: &TestApp, t: &crate::helpers::Tenant, id: &str) -> String {
    request(app, t, id).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The request's audit trail, oldest first.
async fn events_of(
    app: &TestApp,
    t: &crate::helpers::Tenant,
    id: &str,
) -> Vec<lethe::store::audit::AuditRow> {
    let rid: lethe::domain::RequestId = id.parse().unwrap();
    let tid: lethe::domain::TenantId = t.id.parse().unwrap();
    app.store
        .read(move |conn| lethe::store::audit::for_request(conn, tid, rid))
        .await
        .unwrap()
}

async fn submit(app: &TestApp, t: &crate::helpers::Tenant, subject: &str) -> String {
    let r = app
        .submit(
            t,
            &json!({ "subject_id": subject, "subject_email": "jane@example.org", "initiator": "subject", "reason": "I am leaving the platform" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The acceptance path: mail over SMTP with both parts and the link, the
/// page in Chromium shows the details, a click approves.
pub async fn approval_mail_and_browser_click_start_the_erasure(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let id = submit(&app, &t, "user-4711").await;
    let pass = app.run_jobs().await;
    assert_eq!(pass.done, 1, "{pass:?}");
    let msgs = mail.wait_for(CONTACT, 1).await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m["subject"].as_str().unwrap().contains("Acme EU"));
    let text = m["text"].as_str().unwrap();
    let html = m["html"].as_str().unwrap();
    for part in [text, html] {
        assert!(part.contains("user-4711"), "subject id in every part");
        assert!(part.contains("Acme EU"));
        assert!(part.contains("I am leaving the platform"));
        assert!(part.contains("/approvals/ap_"));
    }
    assert!(
        !html.contains("<img") && !html.contains("src=\"http"),
        "no remote images"
    );
    let source = mail.source(m["id"].as_str().unwrap()).await;
    assert!(source.contains("multipart/alternative"));
    assert!(source.contains("text/plain") && source.contains("text/html"));
    // Only the hash of the token is stored.
    let path = approval_path(m);
    let token = path.trim_start_matches("/approvals/").to_owned();
    assert!(token.len() >= 3 + 43, "at least 256 bits of randomness");
    let digest = lethe::domain::secret::SecretDigest::of(&token);
    assert_eq!(
        app.count(&format!(
            "approval_links WHERE token_hash = '{}'",
            digest.as_str()
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "approval_links WHERE token_hash = '{token}' OR id = '{token}'"
        ))
        .await,
        0,
        "the token itself is never stored"
    );

    let url = app.url(&path);
    let email_file = app.dir.path().join("approval-email.html");
    std::fs::write(&email_file, html).unwrap();
    let email_url = format!("file://{}", email_file.display());
    let (page_text, done_text) = tokio::task::spawn_blocking(move || {
        with_browser(|browser| {
            let tab = browser.new_tab().unwrap();
            tab.navigate_to(&email_url)
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            screenshot(&tab, "approval-email");
            tab.navigate_to(&url)
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            let body = tab
                .wait_for_element("main")
                .unwrap()
                .get_inner_text()
                .unwrap();
            screenshot(&tab, "approval-page");
            tab.wait_for_element("#approve").unwrap().click().unwrap();
            tab.wait_for_element("#message").unwrap();
            let done = tab
                .wait_for_element("main")
                .unwrap()
                .get_inner_text()
                .unwrap();
            screenshot(&tab, "approval-done");
            (body, done)
        })
    })
    .await
    .unwrap();
    for shown in [
        "Acme EU",
        "user-4711",
        "The data subject",
        "I am leaving the platform",
        "Legal deadline",
    ] {
        assert!(
            page_text.contains(shown),
            "page shows {shown:?}: {page_text}"
        );
    }
    assert!(done_text.contains("Erasure approved"), "{done_text}");
    assert_eq!(state_of(&app, &t, &id).await, "erasing");
    // The audit trail names the role, not the person.
    let rows: Vec<(String, String)> = events_of(&app, &t, &id)
        .await
        .into_iter()
        .map(|e| (e.event, e.actor_kind))
        .collect();
    assert!(
        rows.contains(&("approve".into(), "privacy_contact".into())),
        "{rows:?}"
    );
    assert!(rows.contains(&("approval_email_sent".into(), "system".into())));
    let audit = app.lethe_bin(&["audit", "verify"]);
    assert!(audit.status.success());
}

/// Mail scanners open links: GET shows the page and changes nothing.
pub async fn opening_the_link_changes_nothing(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let id = submit(&app, &t, "u1").await;
    app.run_jobs().await;
    let path = approval_path(&mail.wait_for(CONTACT, 1).await[0]);
    for _ in 0..3 {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
        assert!(r.text().await.unwrap().contains("u1"));
    }
    assert_eq!(state_of(&app, &t, &id).await, "awaiting_approval");
    // An unknown or malformed token: 404 page, nothing changes.
    for bad in [
        "/approvals/ap_doesnotexist",
        "/approvals/x",
        "/approvals/ap_%00%01",
    ] {
        let r = app.client.get(app.url(bad)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
        let r = post_form(&app, bad, &[("action", "approve_all")]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    assert_eq!(state_of(&app, &t, &id).await, "awaiting_approval");
}

/// A used, expired or voided link gets a clear page and changes nothing.
pub async fn used_expired_and_voided_links_change_nothing(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let a = submit(&app, &t, "a").await;
    app.run_jobs().await;
    let path = approval_path(&mail.wait_for(CONTACT, 1).await[0]);
    let r = post_form(&app, &path, &[("action", "approve_all")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(state_of(&app, &t, &a).await, "erasing");
    // Used: again, and as a rejection.
    let r = post_form(&app, &path, &[("action", "approve_all")]).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("already made"));
    assert_eq!(
        app.client
            .get(app.url(&path))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::GONE
    );

    // Expired.
    let b = submit(&app, &t, "b").await;
    app.run_jobs().await;
    let path_b = approval_path(
        &mail
            .wait_for(CONTACT, 2)
            .await
            .iter()
            .find(|m| m["text"].as_str().unwrap().contains(": b\n"))
            .unwrap()
            .clone(),
    );
    app.sql("UPDATE approval_links SET expires_at = '2020-01-01 00:00:00' WHERE used_at IS NULL")
        .await;
    let r = app.client.get(app.url(&path_b)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(
        post_form(&app, &path_b, &[("action", "approve_all")])
            .await
            .status(),
        StatusCode::GONE
    );
    assert_eq!(state_of(&app, &t, &b).await, "awaiting_approval");

    // Voided: a resend issues a new link and the old one stops working.
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{b}/resend-approval"))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.run_jobs().await;
    let latest = mail.wait_for(CONTACT, 3).await;
    assert_eq!(latest.len(), 3);
    let newest = approval_path(
        &latest
            .iter()
            .max_by_key(|m| m["time"].as_str().unwrap().to_owned())
            .unwrap()
            .clone(),
    );
    assert_ne!(newest, path_b);
    assert_eq!(
        app.client
            .get(app.url(&newest))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Resend of a decided request is a 409.
    let r = app
        .post_empty(&t, &format!("/v1/erasure-requests/{a}/resend-approval"))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // A cancelled request's link shows nothing to decide.
    app.post_empty(&t, &format!("/v1/erasure-requests/{b}/cancel"))
        .await;
    assert_eq!(
        app.client
            .get(app.url(&newest))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::GONE
    );
    assert_eq!(
        post_form(&app, &newest, &[("action", "approve_all")])
            .await
            .status(),
        StatusCode::GONE
    );
    assert_eq!(state_of(&app, &t, &b).await, "cancelled");
}

/// A rejection needs a reason code and an explanation; the subject is told.
pub async fn rejection_needs_a_reason_and_the_subject_is_told(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", true).await;
    let id = submit(&app, &t, "rejected-user").await;
    app.run_jobs().await;
    let receipts = mail.wait_for("jane@example.org", 1).await;
    assert_eq!(receipts.len(), 1, "the subject gets a receipt");
    assert!(receipts[0]["subject"]
        .as_str()
        .unwrap()
        .contains("received"));
    let path = approval_path(&mail.wait_for(CONTACT, 1).await[0]);
    let field = |name: &str| format!("{name}_{id}");
    let (d, c, e) = (
        field("decision"),
        field("reason_code"),
        field("explanation"),
    );
    for form in [
        vec![("action", "decide"), (d.as_str(), "reject")],
        vec![
            ("action", "decide"),
            (d.as_str(), "reject"),
            (c.as_str(), "art17_3_e"),
        ],
        vec![
            ("action", "decide"),
            (d.as_str(), "reject"),
            (e.as_str(), "litigation hold"),
        ],
        vec![
            ("action", "decide"),
            (d.as_str(), "reject"),
            (c.as_str(), "bogus"),
            (e.as_str(), "x"),
        ],
        vec![("action", "explode")],
    ] {
        let r = post_form(&app, &path, &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert_eq!(state_of(&app, &t, &id).await, "awaiting_approval");
    }
    let r = post_form(
        &app,
        &path,
        &[
            ("action", "decide"),
            (d.as_str(), "reject"),
            (c.as_str(), "art17_3_e"),
            (
                e.as_str(),
                "The data is under a litigation hold until 2027.",
            ),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Erasure rejected"));
    assert_eq!(state_of(&app, &t, &id).await, "rejected");
    app.run_jobs().await;
    let told = mail.wait_for("jane@example.org", 2).await;
    let refusal = told
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("refused"))
        .expect("the subject is told of the refusal");
    let text = refusal["text"].as_str().unwrap();
    assert!(
        text.contains("legal claims") && text.contains("litigation hold"),
        "{text}"
    );
}

/// The SMTP server is down at first: nothing is lost, the mail goes out once
/// it is back.
pub async fn mail_waits_for_the_smtp_server(db: Db) {
    let (app, port) = app_with_mail_down(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let id = submit(&app, &t, "patient-user").await;
    let pass = app.run_jobs().await;
    assert_eq!(pass.retried, 1, "{pass:?}");
    assert_eq!(state_of(&app, &t, &id).await, "awaiting_approval");
    let mail = MailCatcher::start_on(port).await;
    // Not due yet: backoff.
    assert_eq!(app.run_jobs().await.done, 0);
    let pass = app
        .run_jobs_at(chrono::Utc::now() + Duration::minutes(5))
        .await;
    assert_eq!(pass.done, 1, "{pass:?}");
    assert_eq!(mail.wait_for(CONTACT, 1).await.len(), 1);
    // Nothing more to send.
    app.run_jobs_at(chrono::Utc::now() + Duration::minutes(10))
        .await;
    assert_eq!(mail.to(CONTACT).await.len(), 1);
}

/// Emails and pages in the privacy contact's language.
pub async fn german_and_french_contacts_get_their_language(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    for (locale, greeting, page_word, contact) in [
        (
            "de",
            "Guten Tag",
            "Löschung freigeben",
            "dpo-de@acme.example",
        ),
        (
            "fr",
            "Bonjour",
            "Examiner et décider",
            "dpo-fr@acme.example",
        ),
    ] {
        let t = app
            .create_tenant_from(json!({
                "name": format!("Acme {locale}"),
                "approval_policy": "privacy_contact",
                "privacy_contact": { "email": contact },
                "locale": locale
            }))
            .await;
        submit(&app, &t, &format!("user-{locale}")).await;
        app.run_jobs().await;
        let m = &mail.wait_for(contact, 1).await[0];
        assert!(m["text"].as_str().unwrap().contains(greeting), "{locale}");
        assert!(m["html"].as_str().unwrap().contains(greeting), "{locale}");
        assert!(
            m["text"].as_str().unwrap().contains(page_word) || page_word.starts_with("Lösch"),
            "{locale}"
        );
        let page = app
            .client
            .get(app.url(&approval_path(m)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let page_word = if locale == "fr" {
            "Refuser l"
        } else {
            page_word
        };
        assert!(page.contains(page_word), "{locale}: {page}");
        assert!(page.contains(&format!("lang=\"{locale}\"")));
    }
}

/// 50 requests in one batch: one email, one page, approve all at once.
pub async fn a_batch_gets_one_email_and_one_page(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let items: Vec<Value> = (0..50)
        .map(|i| json!({ "subject_id": format!("batch-user-{i}") }))
        .collect();
    let r = app
        .client
        .post(app.url("/v1/erasure-requests/batch"))
        .bearer_auth(&t.key)
        .json(&json!({ "requests": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    app.run_jobs().await;
    let msgs = mail.wait_for(CONTACT, 1).await;
    assert_eq!(msgs.len(), 1, "one email for the batch");
    assert!(msgs[0]["subject"].as_str().unwrap().contains("50"));
    let path = approval_path(&msgs[0]);
    let page = app
        .client
        .get(app.url(&path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in 0..50 {
        assert!(
            page.contains(&format!("batch-user-{i}<")),
            "page lists batch-user-{i}"
        );
    }
    // Decide item by item: reject one, approve the rest.
    let list = app.list(&t, "?limit=100").await;
    let ids: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 50);
    let mut form: Vec<(String, String)> = vec![("action".into(), "decide".into())];
    for (n, id) in ids.iter().enumerate() {
        if n == 0 {
            form.push((format!("decision_{id}"), "reject".into()));
            form.push((
                format!("reason_code_{id}"),
                "not_a_subject_of_tenant".into(),
            ));
            form.push((format!("explanation_{id}"), "No such user here.".into()));
        } else {
            form.push((format!("decision_{id}"), "approve".into()));
        }
    }
    let r = app
        .client
        .post(app.url(&path))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let erasing = app.list(&t, "?status=erasing&limit=100").await;
    assert_eq!(erasing["data"].as_array().unwrap().len(), 49);
    let rejected = app.list(&t, "?status=rejected").await;
    assert_eq!(rejected["data"].as_array().unwrap().len(), 1);
    assert_eq!(rejected["data"][0]["id"], ids[0]);
}

/// Reminders after the configured days send a new link and void the old one;
/// undecided requests near their deadline are escalated.
pub async fn reminders_renew_the_link_and_deadlines_escalate(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let id = submit(&app, &t, "slow-contact").await;
    app.run_jobs().await;
    let first = approval_path(&mail.wait_for(CONTACT, 1).await[0]);
    // Nothing happens before day 3.
    app.run_jobs_at(chrono::Utc::now() + Duration::days(2))
        .await;
    assert_eq!(mail.to(CONTACT).await.len(), 1);
    app.run_jobs_at(chrono::Utc::now() + Duration::days(3) + Duration::minutes(1))
        .await;
    let msgs = mail.wait_for(CONTACT, 2).await;
    assert_eq!(msgs.len(), 2);
    let reminder = msgs
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("Reminder"))
        .expect("a reminder");
    let second = approval_path(reminder);
    assert_ne!(first, second);
    assert_eq!(
        app.client
            .get(app.url(&first))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::GONE
    );
    assert_eq!(
        app.client
            .get(app.url(&second))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // The deadline nears: flagged for support, once.
    let v = request(&app, &t, &id).await;
    assert!(v["escalated_at"].is_null());
    app.run_jobs_at(chrono::Utc::now() + Duration::days(26))
        .await;
    let v = request(&app, &t, &id).await;
    assert!(v["escalated_at"].is_string(), "{v}");
    // Both reminders went out (the second in the same pass: the follow-up
    // moved on to each step as it came due), and the follow-up is over.
    assert_eq!(mail.wait_for(CONTACT, 3).await.len(), 3);
    let rid: lethe::domain::RequestId = id.parse().unwrap();
    let jobs = app
        .store
        .read(move |conn| lethe::store::jobs::for_request(conn, rid))
        .await
        .unwrap();
    assert!(
        jobs.iter().all(|j| j.finished_at.is_some() && !j.dead),
        "{jobs:?}"
    );
    // Decided requests get no more reminders.
    post_form(&app, &second, &[("action", "approve_all")]).await;
    let before = mail.to(CONTACT).await.len();
    app.run_jobs_at(chrono::Utc::now() + Duration::days(8))
        .await;
    assert_eq!(mail.to(CONTACT).await.len(), before);
}

/// The mail server refuses every reminder: each is retried, then given up
/// (and the failure shown), and the request is still escalated to support
/// before its deadline.
pub async fn an_undeliverable_reminder_does_not_stop_the_escalation(db: Db) {
    let (app, _port) = app_with_mail_down(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let id = submit(&app, &t, "unreachable-contact").await;
    let start = chrono::Utc::now();
    // Day 3 onwards: the first email and the first reminder fail until
    // their tries run out (a pass tries each once; backoff is at most an hour).
    let mut buried = 0;
    for hour in 0..30 {
        let pass = app
            .run_jobs_at(start + Duration::days(3) + Duration::hours(2 * hour))
            .await;
        buried += pass.buried;
    }
    assert_eq!(buried, 2, "the approval email and the first reminder");
    let rid: lethe::domain::RequestId = id.parse().unwrap();
    let jobs = || async {
        app.store
            .read(move |conn| lethe::store::jobs::for_request(conn, rid))
            .await
            .unwrap()
    };
    let kinds: Vec<(String, bool, bool)> = jobs()
        .await
        .into_iter()
        .map(|j| (j.kind, j.dead, j.finished_at.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("send_approval_email".into(), true, true),
            ("approval_follow_up".into(), true, true),
            // The steps after the one given up: reminder 2, then escalation.
            ("approval_follow_up".into(), false, false),
        ]
    );
    let v = request(&app, &t, &id).await;
    assert!(v["escalated_at"].is_null());
    // Near the deadline the second reminder is still refused, and support
    // is told all the same.
    app.run_jobs_at(start + Duration::days(26)).await;
    let v = request(&app, &t, &id).await;
    assert!(v["escalated_at"].is_string(), "{v}");
    assert_eq!(state_of(&app, &t, &id).await, "awaiting_approval");
}

/// Double click, two tabs: one decision, one transition.
pub async fn racing_approvals_make_one_transition(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    let id = submit(&app, &t, "racer").await;
    app.run_jobs().await;
    let path = approval_path(&mail.wait_for(CONTACT, 1).await[0]);
    let send = || post_form(&app, &path, &[("action", "approve_all")]);
    let results = futures::future::join_all((0..4).map(|_| send())).await;
    let mut codes: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    codes.sort();
    assert_eq!(codes, vec![200, 410, 410, 410]);
    assert_eq!(state_of(&app, &t, &id).await, "erasing");
    let rid: lethe::domain::RequestId = id.parse().unwrap();
    let jobs = app
        .store
        .read(move |conn| lethe::store::jobs::for_request(conn, rid))
        .await
        .unwrap();
    assert!(jobs.iter().all(|j| j.kind != "start_erasure"));
    let events = events_of(&app, &t, &id).await;
    assert_eq!(
        events.iter().filter(|e| e.event == "approve").count(),
        1,
        "one transition"
    );
}

/// An erased request is scrubbed at once, unless an email to the subject is
/// still to go out: that needs their address, so the scrub waits for it
/// (here, for the mail server to come back).
pub async fn the_scrub_waits_for_the_subjects_email(db: Db) {
    let (app, port) = app_with_mail_down(db).await;
    let t = app
        .create_tenant_from(json!({
            "name": "Acme US",
            "approval_policy": "none",
            "notify_subject": true
        }))
        .await;
    let r = app
        .submit(
            &t,
            &json!({ "subject_id": "told-1", "subject_email": "jane@example.org" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .post_empty(&t, &format!("/v1/erasure-requests/{id}/complete"))
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    let kept = format!("erasure_requests WHERE id = '{id}' AND subject_email IS NOT NULL");
    let scrubbed = format!(
        "erasure_requests WHERE id = '{id}' AND subject_email IS NULL AND subject_id IS NULL AND scrubbed_at IS NOT NULL"
    );
    // The mail server is down: the subject's emails wait, and the scrub too.
    let pass = app.run_jobs().await;
    assert!(pass.retried >= 2, "{pass:?}");
    assert_eq!(
        app.count(&kept).await,
        1,
        "scrubbed before the subject was told"
    );
    let mail = MailCatcher::start_on(port).await;
    app.run_jobs_at(chrono::Utc::now() + Duration::hours(2))
        .await;
    // Told of the receipt and of the erasure, then scrubbed.
    assert_eq!(mail.wait_for("jane@example.org", 2).await.len(), 2);
    assert_eq!(app.count(&scrubbed).await, 1);
}

/// Many privacy contacts deciding at once (on PostgreSQL the decisions are
/// written in groups): each link takes effect once, on its own request, and
/// each approval makes one call row and one call job per target.
pub async fn decisions_at_once_each_take_effect_once(db: Db) {
    let (app, mail) = app_with_mail(db).await;
    let t = app.create_eu_tenant("en", false).await;
    for name in ["crm", "billing"] {
        let r = app
            .admin_post(
                &format!("/v1/tenants/{}/targets", t.id),
                &json!({ "name": name, "url": "http://127.0.0.1:9/erase", "timeout_ms": 1000 }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(submit(&app, &t, &format!("crowd-{i}")).await);
    }
    app.run_jobs().await;
    let mails = mail.wait_for(CONTACT, 8).await;
    let paths: Vec<String> = mails.iter().map(approval_path).collect();
    assert_eq!(paths.len(), 8);
    // Every link posted three times at once: approvals for six, rejections
    // (with a reason, from the page's form) for two.
    let mut forms = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let form: Vec<(String, String)> = if i < 6 {
            vec![("action".into(), "approve_all".into())]
        } else {
            let page = app.client.get(app.url(path)).send().await.unwrap();
            let html = page.text().await.unwrap();
            let at = html.find("name=\"decision_").expect("the page's form") + 15;
            let id = &html[at..at + html[at..].find('"').unwrap()];
            vec![
                ("action".into(), "decide".into()),
                (format!("decision_{id}"), "reject".into()),
                (format!("reason_code_{id}"), "art17_3_e".into()),
                (format!("explanation_{id}"), "Kept for a court case.".into()),
            ]
        };
        forms.push((path.clone(), form));
    }
    let posts = forms
        .iter()
        .flat_map(|(path, form)| (0..3).map(move |_| (path.clone(), form.clone())));
    let sent = futures::future::join_all(
        posts
            .map(|(path, form)| {
                let app = &app;
                async move {
                    let form: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    post_form(app, &path, &form).await.status().as_u16()
                }
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let mut codes = sent.clone();
    codes.sort();
    let mut want = vec![200; 8];
    want.extend([410; 16]);
    assert_eq!(codes, want, "one decision per link: {sent:?}");

    let mut states: Vec<String> = Vec::new();
    for id in &ids {
        states.push(state_of(&app, &t, id).await);
    }
    states.sort();
    assert_eq!(
        states,
        [vec!["erasing"; 6], vec!["rejected"; 2]].concat(),
        "each link decided its own request"
    );
    for id in &ids {
        let events = events_of(&app, &t, id).await;
        let decided = events
            .iter()
            .filter(|e| e.event == "approve" || e.event == "reject")
            .count();
        assert_eq!(decided, 1, "one transition for {id}");
        let approved = events.iter().any(|e| e.event == "approve");
        let calls = app
            .count(&format!("target_calls WHERE request_id = '{id}'"))
            .await;
        let call_jobs = app
            .count(&format!(
                "jobs WHERE request_id = '{id}' AND kind = 'call_target'"
            ))
            .await;
        let want = if approved { 2 } else { 0 };
        assert_eq!((calls, call_jobs), (want, want), "calls of {id}");
    }
    assert_eq!(app.count("approval_links WHERE used_at IS NULL").await, 0);
    let out = app.lethe_bin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
