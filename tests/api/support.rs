//! The support dashboard: accounts and sessions, the pages and their forms,
//! the JSON API with support tokens, deadline extensions, bulk actions, the
//! CSV export, the daily digest, and the morning walk in headless Chromium.
//! Every scenario runs on SQLite and on PostgreSQL.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use lethe::domain::deadline;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, Db, Tenant, TestApp, ADMIN_TOKEN};
use crate::mail::{screenshot, with_browser};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Db::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(
    every_support_route_needs_a_session_or_a_token,
    login_sets_a_strict_cookie_locks_out_and_logs_out,
    forms_without_the_csrf_token_change_nothing,
    overview_counts_match_seeded_data,
    a_deadline_is_extended_once_and_the_subject_is_told,
    queue_filters_searches_and_pages,
    bulk_actions_and_csv_export,
    the_daily_digest_goes_out_once_a_day,
    support_cli_manages_users_and_tokens,
    support_dashboard_walk_in_chromium,
);

const PASSWORD: &str = "correct horse battery staple";

/// A support user made with the CLI (password on stdin), and an API token.
pub(crate) struct Support {
    pub id: String,
    pub email: String,
    pub token: String,
}

fn lethe(app: &TestApp, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args(args)
        .envs(app.bin_env())
        .current_dir(app.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lethe");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok_stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn support_user(app: &TestApp, email: &str, name: &str) -> Support {
    let out = lethe(
        app,
        &[
            "support-user",
            "create",
            "--email",
            email,
            "--name",
            name,
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let id = ok_stdout(&out).trim().to_owned();
    let out = lethe(app, &["support-token", "create", "--user", email], None);
    let token = ok_stdout(&out).trim().to_owned();
    assert!(token.starts_with("lethe_st_"), "{token}");
    Support {
        id,
        email: email.to_owned(),
        token,
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookie<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

/// The value of the first hidden field `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A browser stand-in: a session cookie and the page's CSRF token.
struct Session {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// POST a form with this session's CSRF token.
    async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let mut f: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        f.extend_from_slice(form);
        self.post(path, &f).await
    }
}

/// Fetch the login form (its double-submit cookie and token) and post it.
async fn try_login(app: &TestApp, email: &str, password: &str, next: &str) -> Response {
    let client = no_redirects();
    let r = client.get(app.url("/support/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let login = cookie_value(set_cookie(&r, "lethe_support_login").expect("login cookie"));
    let csrf = hidden(&r.text().await.unwrap(), "csrf");
    client
        .post(app.url("/support/login"))
        .header(COOKIE, format!("lethe_support_login={login}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, email: &str) -> Session {
    let r = try_login(app, email, PASSWORD, "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/support");
    let session = cookie_value(set_cookie(&r, "lethe_support").expect("session cookie"));
    let mut s = Session {
        client: no_redirects(),
        base: app.base.clone(),
        cookie: format!("lethe_support={session}"),
        csrf: String::new(),
    };
    let page = s.get("/support").await;
    assert_eq!(page.status(), StatusCode::OK);
    s.csrf = hidden(&page.text().await.unwrap(), "csrf");
    s
}

async fn submit(app: &TestApp, t: &Tenant, subject: &str, email: Option<&str>) -> String {
    let mut body = json!({ "subject_id": subject, "reason": "leaving" });
    if let Some(e) = email {
        body["subject_email"] = json!(e);
    }
    let r = app.submit(t, &body).await;
    assert!(r.status().is_success(), "{}", r.status());
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn api_get(app: &TestApp, s: &Support, path: &str) -> Value {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

async fn api_post(app: &TestApp, s: &Support, path: &str, body: Value) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&s.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn sql_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Pretend a request arrived `days` ago (with the deadline that gives).
async fn backdate(app: &TestApp, id: &str, days: i64) {
    let received = deadline::now() - Duration::days(days);
    app.sql(&format!(
        "UPDATE erasure_requests SET received_at = '{}', due_at = '{}' WHERE id = '{id}'",
        sql_ts(received),
        sql_ts(deadline::due_at(received))
    ))
    .await;
}

async fn set_state(app: &TestApp, id: &str, state: &str) {
    app.sql(&format!(
        "UPDATE erasure_requests SET state = '{state}' WHERE id = '{id}'"
    ))
    .await;
}

async fn request(app: &TestApp, s: &Support, id: &str) -> Value {
    api_get(app, s, &format!("/v1/support/requests/{id}")).await
}

async fn events(app: &TestApp, s: &Support, id: &str) -> Vec<(String, String, String)> {
    request(app, s, id).await["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["actor_kind"].as_str().unwrap().to_owned(),
                e["actor_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn jobs_of(app: &TestApp, id: &str) -> Vec<lethe::store::jobs::JobRow> {
    let rid: lethe::domain::RequestId = id.parse().unwrap();
    app.store
        .read(move |conn| lethe::store::jobs::for_request(conn, rid))
        .await
        .unwrap()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page answers a stranger with the login page, every JSON endpoint
/// with 401 — also for a tenant's API key, the admin token, or a session
/// cookie without a token.
pub async fn every_support_route_needs_a_session_or_a_token(db: Db) {
    let app = spawn_app(db).await;
    let t = app.create_tenant("privacy_contact").await;
    let id = submit(&app, &t, "u1", None).await;
    let s = support_user(&app, "sam@support.example", "Sam Support");
    let session = login(&app, &s.email).await;
    let client = no_redirects();
    let page_gets = [
        "/support".to_owned(),
        "/support/".to_owned(),
        "/support/requests".to_owned(),
        "/support/requests?overdue=true".to_owned(),
        "/support/requests/export.csv".to_owned(),
        format!("/support/requests/{id}"),
        format!("/support/requests/{id}/extend"),
        format!("/support/requests/{id}/resend-approval"),
        format!("/support/requests/{id}/retry"),
        format!("/support/requests/{id}/cancel"),
        "/support/no-such-page".to_owned(),
    ];
    let page_posts = [
        "/support/logout".to_owned(),
        format!("/support/requests/{id}/extend"),
        format!("/support/requests/{id}/cancel"),
        "/support/bulk/confirm".to_owned(),
        "/support/bulk".to_owned(),
    ];
    for cookie in [
        None,
        Some("lethe_support=ss_forged"),
        Some("lethe_support="),
    ] {
        for path in &page_gets {
            let mut req = client.get(app.url(path));
            if let Some(c) = cookie {
                req = req.header(COOKIE, c);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "GET {path}");
            let to = r.headers()[LOCATION].to_str().unwrap();
            assert!(to.starts_with("/support/login"), "GET {path} -> {to}");
        }
        for path in &page_posts {
            let mut req = client
                .post(app.url(path))
                .form(&[("csrf", session.csrf.as_str()), ("reason", "x")]);
            if let Some(c) = cookie {
                req = req.header(COOKIE, c);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "POST {path}");
            assert_eq!(r.headers()[LOCATION], "/support/login", "POST {path}");
        }
    }
    // The login page brings the user back where they were going.
    let r = client
        .get(app.url("/support/requests?overdue=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()[LOCATION],
        "/support/login?next=%2Fsupport%2Frequests%3Foverdue%3Dtrue"
    );

    let api_gets = [
        "/v1/support/overview".to_owned(),
        "/v1/support/requests".to_owned(),
        "/v1/support/requests?overdue=true".to_owned(),
        "/v1/support/requests/export.csv".to_owned(),
        format!("/v1/support/requests/{id}"),
    ];
    let api_posts = [
        format!("/v1/support/requests/{id}/resend-approval"),
        format!("/v1/support/requests/{id}/retry"),
        format!("/v1/support/requests/{id}/cancel"),
        format!("/v1/support/requests/{id}/extend"),
        "/v1/support/bulk".to_owned(),
    ];
    let strangers: [(&str, Option<String>); 5] = [
        ("nobody", None),
        ("a tenant API key", Some(format!("Bearer {}", t.key))),
        ("the admin token", Some(format!("Bearer {ADMIN_TOKEN}"))),
        ("a made-up token", Some("Bearer lethe_st_madeup".to_owned())),
        ("garbage", Some("Basic c2FtOnB3".to_owned())),
    ];
    for (who, auth) in &strangers {
        for (method, path) in api_gets
            .iter()
            .map(|p| ("GET", p))
            .chain(api_posts.iter().map(|p| ("POST", p)))
        {
            let mut req = match method {
                "GET" => client.get(app.url(path)),
                _ => client
                    .post(app.url(path))
                    .json(&json!({ "action": "retry", "ids": [id], "reason": "x", "months": 1 })),
            };
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            // A session cookie is for pages only.
            req = req.header(COOKIE, &session.cookie);
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{who}: {method} {path}"
            );
            error_code(r).await;
        }
    }
    assert_eq!(
        request(&app, &s, &id).await["request"]["state"],
        "awaiting_approval",
        "nothing changed"
    );
    // A support token is not a tenant key either.
    let r = app
        .client
        .get(app.url("/v1/erasure-requests"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A disabled user's token and session stop at once.
    ok_stdout(&lethe(
        &app,
        &["support-user", "disable", "--user", &s.email],
        None,
    ));
    let r = app
        .client
        .get(app.url("/v1/support/overview"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_support_token");
    assert_eq!(
        session.get("/support").await.status(),
        StatusCode::SEE_OTHER
    );
    let r = try_login(&app, &s.email, PASSWORD, "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Password login with an argon2id hash, a strict session cookie, lock-out
/// after repeated failures, and logout.
pub async fn login_sets_a_strict_cookie_locks_out_and_logs_out(db: Db) {
    let app = spawn_app(db).await;
    let s = support_user(&app, "Sam@Support.example", "Sam Support");
    let stored: Vec<String> = {
        #[derive(diesel::QueryableByName)]
        struct H {
            #[diesel(sql_type = diesel::sql_types::Text)]
            password_hash: String,
        }
        app.store
            .read(|conn| {
                Ok(lethe::with_conn!(conn, |c| {
                    use diesel::RunQueryDsl;
                    diesel::sql_query("SELECT password_hash FROM support_users").load::<H>(c)
                })?)
            })
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.password_hash)
            .collect()
    };
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("$argon2id$"), "{}", stored[0]);
    assert!(!stored[0].contains(PASSWORD));

    // The login page carries the page headers and a form token.
    let r = app
        .client
        .get(app.url("/support/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for h in [
        "content-security-policy",
        "x-frame-options",
        "referrer-policy",
        "cache-control",
    ] {
        assert!(r.headers().contains_key(h), "{h}");
    }
    let login_cookie = set_cookie(&r, "lethe_support_login").unwrap().to_owned();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    // Without the form token, no login even with the right password.
    let r = no_redirects()
        .post(app.url("/support/login"))
        .form(&[("email", s.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, "lethe_support").is_none());

    // Four wrong passwords, then the right one: in (the counter resets).
    for _ in 0..4 {
        let r = try_login(&app, &s.email, "wrong password!", "").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(&r, "lethe_support").is_none());
    }
    let r = try_login(&app, "sam@support.example", PASSWORD, "").await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "emails match in any case"
    );
    // Five wrong in a row lock the account: the right password is refused.
    for _ in 0..5 {
        let r = try_login(&app, &s.email, "wrong password!", "").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = try_login(&app, &s.email, PASSWORD, "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "locked");
    let body = r.text().await.unwrap();
    assert!(body.contains("locked"), "{body}");
    // Unknown accounts get the same answer.
    let r = try_login(&app, "nobody@support.example", PASSWORD, "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The lock ends.
    app.sql("UPDATE support_users SET locked_until = '2020-01-01 00:00:00'")
        .await;
    let r = try_login(&app, &s.email, PASSWORD, "/support/requests?state=failed").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/support/requests?state=failed");
    let cookie = set_cookie(&r, "lethe_support").unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/support"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    // `next` only leads back into the dashboard.
    let r = try_login(&app, &s.email, PASSWORD, "https://evil.example/").await;
    assert_eq!(r.headers()[LOCATION], "/support");

    let session = login(&app, &s.email).await;
    let page = session.get("/support").await.text().await.unwrap();
    assert!(page.contains("Sam Support"));
    // Logging out needs the token too.
    let r = session.post("/support/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(session.get("/support").await.status(), StatusCode::OK);
    let r = session.submit("/support/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/support/login?bye=1");
    let cleared = set_cookie(&r, "lethe_support").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let r = session.get("/support").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the old cookie is dead");

    // Behind TLS the cookies are Secure.
    let tls = spawn_app_with(
        db,
        &[("LETHE_PUBLIC_URL", "https://127.0.0.1:8443/".to_owned())],
    )
    .await;
    let s2 = support_user(&tls, "tls@support.example", "TLS");
    let r = try_login(&tls, &s2.email, PASSWORD, "").await;
    assert!(set_cookie(&r, "lethe_support")
        .unwrap()
        .contains("; Secure"));
}

/// A form POST without the session's CSRF token is a 403 and changes nothing.
pub async fn forms_without_the_csrf_token_change_nothing(db: Db) {
    let app = spawn_app(db).await;
    let t = app.create_tenant("privacy_contact").await;
    let a = submit(&app, &t, "u1", Some("u1@example.org")).await;
    let b = submit(&app, &t, "u2", None).await;
    let s = support_user(&app, "sam@support.example", "Sam");
    let session = login(&app, &s.email).await;
    let before_a = request(&app, &s, &a).await;
    let before_b = request(&app, &s, &b).await;
    let jobs_before = app.count("jobs").await;
    let events_before = app.count("audit_events").await;
    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/support/requests/{a}/extend"),
            vec![("months", "2"), ("reason", "busy")],
        ),
        (
            format!("/support/requests/{a}/cancel"),
            vec![("reason", "duplicate")],
        ),
        (format!("/support/requests/{a}/resend-approval"), vec![]),
        (
            "/support/bulk".to_owned(),
            vec![
                ("action", "cancel"),
                ("id", a.as_str()),
                ("id", b.as_str()),
                ("reason", "x"),
            ],
        ),
        (
            "/support/bulk/confirm".to_owned(),
            vec![("action", "cancel"), ("id", a.as_str())],
        ),
    ];
    for (path, form) in &attempts {
        for bad in [None, Some("0000"), Some("")] {
            let mut f = form.clone();
            if let Some(token) = bad {
                f.push(("csrf", token));
            }
            let r = session.post(path, &f).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} with {bad:?}");
            assert!(r.text().await.unwrap().contains("nothing was changed"));
        }
    }
    // Another session's token does not fit this one.
    let other = login(&app, &s.email).await;
    assert_ne!(other.csrf, session.csrf);
    let r = session
        .post(
            &format!("/support/requests/{a}/cancel"),
            &[("csrf", other.csrf.as_str()), ("reason", "x")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let after_a = request(&app, &s, &a).await;
    let after_b = request(&app, &s, &b).await;
    assert_eq!(after_a["request"], before_a["request"]);
    assert_eq!(after_b["request"], before_b["request"]);
    assert_eq!(app.count("jobs").await, jobs_before);
    assert_eq!(app.count("audit_events").await, events_before);
    // Every POST form the pages render carries the token.
    app.sql(&format!(
        "UPDATE erasure_requests SET state = 'failed' WHERE id = '{b}'"
    ))
    .await;
    for path in [
        "/support".to_owned(),
        "/support/requests".to_owned(),
        format!("/support/requests/{a}"),
        format!("/support/requests/{a}/extend"),
        format!("/support/requests/{a}/cancel"),
        format!("/support/requests/{b}/retry"),
    ] {
        let html = session.get(&path).await.text().await.unwrap();
        let forms: Vec<&str> = html.split("<form").skip(1).collect();
        assert!(!forms.is_empty(), "{path}");
        for f in forms {
            let f = &f[..f.find("</form>").unwrap()];
            if f.contains("method=\"post\"") {
                assert!(
                    f.contains(&format!("name=\"csrf\" value=\"{}\"", session.csrf)),
                    "{path}: {f}"
                );
            }
        }
    }
    let r = session
        .submit(
            &format!("/support/requests/{a}/cancel"),
            &[("reason", "duplicate")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "with the token it works");
    assert_eq!(request(&app, &s, &a).await["request"]["state"], "cancelled");
}

/// The overview's numbers for known data, as JSON and on the page.
pub async fn overview_counts_match_seeded_data(db: Db) {
    let app = spawn_app(db).await;
    let eu = app.create_tenant("privacy_contact").await;
    let us = app.create_tenant("none").await;
    let mut awaiting = Vec::new();
    for i in 0..5 {
        awaiting.push(submit(&app, &eu, &format!("eu-{i}"), None).await);
    }
    let mut erasing = Vec::new();
    for i in 0..4 {
        erasing.push(submit(&app, &us, &format!("us-{i}"), None).await);
    }
    // eu-0 overdue, eu-1 due in three days, eu-2 cancelled.
    backdate(&app, &awaiting[0], 40).await;
    app.sql(&format!(
        "UPDATE erasure_requests SET due_at = '{}' WHERE id = '{}'",
        sql_ts(deadline::now() + Duration::days(3)),
        awaiting[1]
    ))
    .await;
    app.post_empty(&eu, &format!("/v1/erasure-requests/{}/cancel", awaiting[2]))
        .await;
    // us-0 failed and overdue, us-1 erased.
    set_state(&app, &erasing[0], "failed").await;
    backdate(&app, &erasing[0], 35).await;
    set_state(&app, &erasing[1], "erased").await;
    app.sql(&format!(
        "UPDATE erasure_requests SET closed_at = '{}' WHERE id = '{}'",
        sql_ts(deadline::now()),
        erasing[1]
    ))
    .await;
    // Closed long ago: not in the morning's counts.
    let old = submit(&app, &us, "us-old", None).await;
    app.sql(&format!(
        "UPDATE erasure_requests SET state = 'erased', closed_at = '2020-01-01 00:00:00' WHERE id = '{old}'"
    ))
    .await;
    let s = support_user(&app, "sam@support.example", "Sam");
    let o = api_get(&app, &s, "/v1/support/overview").await;
    assert_eq!(
        o["open_by_state"],
        json!({ "pending": 0, "awaiting_approval": 4, "erasing": 2, "failed": 1 })
    );
    assert_eq!(
        o["closed_last_30_days"],
        json!({ "erased": 1, "rejected": 0, "cancelled": 1 })
    );
    assert_eq!(o["open"], 7);
    assert_eq!(o["overdue"], 2);
    assert_eq!(o["due_within_7_days"], 1);
    let tenants = o["by_tenant"].as_array().unwrap();
    assert_eq!(tenants.len(), 2);
    let eu_row = tenants
        .iter()
        .find(|t| t["tenant_id"] == eu.id.as_str())
        .unwrap();
    assert_eq!(eu_row["tenant_name"], "Acme EU");
    assert_eq!(eu_row["open"], 4);
    assert_eq!(eu_row["overdue"], 1);
    assert_eq!(eu_row["open_by_state"]["awaiting_approval"], 4);
    let us_row = tenants
        .iter()
        .find(|t| t["tenant_id"] == us.id.as_str())
        .unwrap();
    assert_eq!(us_row["open"], 3);
    assert_eq!(us_row["open_by_state"]["failed"], 1);
    assert_eq!(us_row["open_by_state"]["erasing"], 2);
    // Waiting longest: the oldest first.
    let longest = o["awaiting_longest"].as_array().unwrap();
    assert_eq!(longest.len(), 4);
    assert_eq!(longest[0]["id"], awaiting[0].as_str());
    assert_eq!(longest[0]["urgency"], "overdue");
    assert_eq!(o["failed"][0]["id"], erasing[0].as_str());

    let session = login(&app, &s.email).await;
    let html = session.get("/support").await.text().await.unwrap();
    for (id, n) in [
        ("count-open", 7),
        ("count-overdue", 2),
        ("count-due-soon", 1),
        ("count-awaiting", 4),
        ("count-failed", 1),
        ("state-erased", 1),
        ("state-cancelled", 1),
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\">{n}<")),
            "{id} = {n} in {html}"
        );
    }
    assert!(html.contains("days-overdue") && html.contains("days-red"));
}

/// GDPR Art. 12(3): one extension, by at most two months, within the first
/// month; the subject is told, with the reason; the audit trail names the
/// support user.
pub async fn a_deadline_is_extended_once_and_the_subject_is_told(db: Db) {
    let app = spawn_app(db).await;
    let t = app.create_eu_tenant("en", true).await;
    let told = submit(&app, &t, "told", Some("jane@example.org")).await;
    let untold = submit(&app, &t, "untold", None).await;
    let late = submit(&app, &t, "late", None).await;
    let s = support_user(&app, "sam@support.example", "Sam");
    app.run_jobs().await;
    let before = request(&app, &s, &told).await;
    let received: DateTime<Utc> = before["deadline"]["received_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(before["deadline"]["can_extend"], true);
    let extend = |id: &str, body: Value| {
        let path = format!("/v1/support/requests/{id}/extend");
        let (app, s) = (&app, &s);
        async move { api_post(app, s, &path, body).await }
    };
    // Wrong asks change nothing.
    for (body, code) in [
        (json!({ "months": 3, "reason": "busy" }), "invalid_field"),
        (json!({ "months": 0, "reason": "busy" }), "invalid_field"),
        (json!({ "months": 2 }), "invalid_field"),
        (json!({ "months": 2, "reason": "  " }), "invalid_field"),
        (json!({ "reason": "busy" }), "invalid_field"),
        (
            json!({ "due_date": (deadline::max_extended_due_at(received) + Duration::days(1)).format("%Y-%m-%d").to_string(), "reason": "busy" }),
            "extension_too_long",
        ),
        (
            json!({ "due_date": received.format("%Y-%m-%d").to_string(), "reason": "busy" }),
            "extension_not_later",
        ),
    ] {
        let r = extend(&told, body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(r).await, code, "{body}");
    }
    assert_eq!(
        request(&app, &s, &told).await["deadline"],
        before["deadline"]
    );

    let reason = "Many systems hold data on this account";
    let r = extend(&told, json!({ "months": 2, "reason": reason })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["extension"]["subject_told"], true);
    let new_due = deadline::max_extended_due_at(received);
    assert_eq!(v["extension"]["to"], json!(new_due));
    assert_eq!(v["request"]["due_at"], json!(new_due));
    let after = request(&app, &s, &told).await;
    assert_eq!(after["deadline"]["extension_reason"], reason);
    assert_eq!(after["deadline"]["extended_by"], s.id.as_str());
    assert_eq!(after["deadline"]["can_extend"], false);
    assert_eq!(after["request"]["urgency"], "green");
    // A second extension is refused, however small.
    for body in [
        json!({ "months": 1, "reason": "more" }),
        json!({ "months": 2, "reason": "more" }),
    ] {
        let r = extend(&told, body).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_eq!(error_code(r).await, "already_extended");
    }
    assert_eq!(
        request(&app, &s, &told).await["request"]["due_at"],
        json!(new_due)
    );
    // The audit trail names the support user (never an email address).
    let ev = events(&app, &s, &told).await;
    let ext: Vec<_> = ev.iter().filter(|e| e.0 == "deadline_extended").collect();
    assert_eq!(ext.len(), 1);
    assert_eq!(
        (ext[0].1.as_str(), ext[0].2.as_str()),
        ("support", s.id.as_str())
    );
    let detail = &request(&app, &s, &told).await["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "deadline_extended")
        .unwrap()["detail"]
        .clone();
    assert_eq!(detail["to"], json!(new_due));
    assert!(
        !detail.to_string().contains(reason),
        "the reason stays off the chain"
    );
    // The escalation follows the new deadline: the request's one follow-up
    // job is still queued (reminders first), no escalation of its own.
    let jobs = jobs_of(&app, &told).await;
    let follow_ups: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == "approval_follow_up")
        .collect();
    assert_eq!(follow_ups.len(), 1);
    assert!(follow_ups[0].finished_at.is_none());
    assert!(!jobs.iter().any(|j| j.kind == "escalate_deadline"));
    // The subject is told, in the tenant's language, with the reason.
    assert!(jobs
        .iter()
        .any(|j| j.kind == "notify_subject" && j.payload.contains("extended")));
    app.run_jobs().await;
    assert!(events(&app, &s, &told)
        .await
        .iter()
        .any(|e| e.0 == "subject_notified"));
    let mut mail = String::new();
    for f in std::fs::read_dir(app.dir.path().join("outbox")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        let text = text.replace("=\r\n", "").replace("\r\n ", " ");
        if text.contains("jane@example.org") && text.contains("was extended") {
            mail = text;
        }
    }
    assert!(
        mail.contains(reason),
        "the reason reaches the subject: {mail}"
    );
    assert!(mail.contains(&new_due.format("%Y-%m-%d").to_string()));

    // Escalated already (its follow-up, reminders then escalation, is
    // over); the told request's escalation moved with its deadline.
    app.run_jobs_at(received + Duration::days(26)).await;
    assert!(request(&app, &s, &untold).await["request"]["escalated_at"].is_string());
    assert!(request(&app, &s, &told).await["request"]["escalated_at"].is_null());
    assert!(jobs_of(&app, &untold)
        .await
        .iter()
        .all(|j| j.finished_at.is_some()));
    // No email address: extended all the same, and the answer says nobody was told.
    let r = extend(&untold, json!({ "months": 1, "reason": "busy" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["extension"]["subject_told"], false);
    // Flagged again before the new deadline, by a job of its own.
    let untold_due: DateTime<Utc> = v["request"]["due_at"].as_str().unwrap().parse().unwrap();
    assert!(request(&app, &s, &untold).await["request"]["escalated_at"].is_null());
    let escalation: Vec<_> = jobs_of(&app, &untold)
        .await
        .into_iter()
        .filter(|j| j.kind == "escalate_deadline" && j.finished_at.is_none())
        .collect();
    assert_eq!(escalation.len(), 1);
    assert_eq!(
        escalation[0].run_at.and_utc(),
        untold_due - Duration::days(7)
    );
    assert!(!jobs_of(&app, &untold)
        .await
        .iter()
        .any(|j| j.kind == "notify_subject"));
    // After the first month: too late.
    backdate(&app, &late, 32).await;
    let r = extend(&late, json!({ "months": 1, "reason": "busy" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "extension_window_closed");
    // A closed request has no deadline to extend.
    app.post_empty(&t, &format!("/v1/erasure-requests/{untold}/cancel"))
        .await;
    let closed = submit(&app, &t, "closed", None).await;
    app.post_empty(&t, &format!("/v1/erasure-requests/{closed}/cancel"))
        .await;
    let r = extend(&closed, json!({ "months": 1, "reason": "busy" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "request_closed");
    // The same rules on the page.
    let session = login(&app, &s.email).await;
    let r = session
        .submit(
            &format!("/support/requests/{told}/extend"),
            &[("months", "1"), ("reason", "again")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(body.contains("already extended once"));
    assert!(!body.contains("id=\"confirm\""), "no button to try again");
    let page = session
        .get(&format!("/support/requests/{told}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(reason) && page.contains("Sam"));
    assert!(page.contains("id=\"extend-note\""));
    assert!(!page.contains("/extend\""), "no extend button any more");

    // Nothing escalates at the old deadline's time; at the new one's it does.
    let old_due: DateTime<Utc> = before["request"]["due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let escalated = || async { request(&app, &s, &told).await["request"]["escalated_at"].clone() };
    app.run_jobs_at(old_due - Duration::days(7) + Duration::hours(1))
        .await;
    assert!(escalated().await.is_null());
    app.run_jobs_at(new_due - Duration::days(7) + Duration::hours(1))
        .await;
    assert!(escalated().await.is_string());
    let audit = app.lethe_bin(&["audit", "verify"]);
    assert!(audit.status.success(), "{:?}", audit);
}

/// Filters, search (also of scrubbed requests, through the keyed hash),
/// sort and cursor pages, as JSON and as the page.
pub async fn queue_filters_searches_and_pages(db: Db) {
    let app = spawn_app(db).await;
    let a = app.create_tenant("privacy_contact").await;
    let b = app.create_tenant("none").await;
    let mut ids = Vec::new();
    for (i, initiator) in [
        "subject",
        "support",
        "retention_policy",
        "subject",
        "support",
        "subject",
        "subject",
    ]
    .iter()
    .enumerate()
    {
        let r = app
            .submit(
                &a,
                &json!({ "subject_id": format!("a-{i}"), "initiator": initiator }),
            )
            .await;
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let shared_a = submit(&app, &a, "shared-user", None).await;
    let shared_b = submit(&app, &b, "shared-user", None).await;
    let b_other = submit(&app, &b, "b-1", None).await;
    // Spread the deadlines: request i is due in 20 - i days (a-6 first).
    for (i, id) in ids.iter().enumerate() {
        let received = deadline::now() - Duration::days(10 + i as i64);
        app.sql(&format!(
            "UPDATE erasure_requests SET received_at = '{}', due_at = '{}' WHERE id = '{id}'",
            sql_ts(received),
            sql_ts(deadline::due_at(received))
        ))
        .await;
    }
    backdate(&app, &ids[0], 45).await; // overdue, received 45 days ago
    let s = support_user(&app, "sam@support.example", "Sam");
    let all = api_get(&app, &s, "/v1/support/requests?limit=500").await;
    let all_ids = ids_of(&all);
    assert_eq!(all_ids.len(), 10);
    // Sorted by due date, earliest first.
    let dues: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["due_at"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = dues.clone();
    sorted.sort();
    assert_eq!(dues, sorted);
    assert_eq!(all_ids[0], ids[0], "the overdue one first");
    // Cursor pages of 3 visit every row once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/support/requests?limit=3&cursor={c}"),
            None => "/v1/support/requests?limit=3".to_owned(),
        };
        let page = api_get(&app, &s, &q).await;
        seen.extend(ids_of(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, all_ids);
    // Newest first, paged too.
    let newest = api_get(&app, &s, "/v1/support/requests?sort=newest&limit=4").await;
    assert_eq!(ids_of(&newest)[0], b_other);
    let c = newest["next_cursor"].as_str().unwrap();
    let rest = api_get(
        &app,
        &s,
        &format!("/v1/support/requests?sort=newest&limit=20&cursor={c}"),
    )
    .await;
    assert_eq!(ids_of(&newest).len() + ids_of(&rest).len(), 10);
    // A cursor of one order does not continue another.
    let r = app
        .client
        .get(app.url(&format!("/v1/support/requests?sort=due&cursor={c}")))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_query");

    let count = |q: &str| {
        let q = q.to_owned();
        let (app, s) = (&app, &s);
        async move { ids_of(&api_get(app, s, &format!("/v1/support/requests?{q}")).await) }
    };
    assert_eq!(count(&format!("tenant={}", b.id)).await.len(), 2);
    assert_eq!(count("state=erasing").await.len(), 2);
    assert_eq!(count("state=awaiting_approval,erasing").await.len(), 10);
    assert_eq!(count("state=open").await.len(), 10);
    assert_eq!(
        count("initiator=support").await,
        vec![ids[4].clone(), ids[1].clone()]
    );
    assert_eq!(
        count("initiator=retention_policy").await,
        vec![ids[2].clone()]
    );
    assert_eq!(count("overdue=true").await, vec![ids[0].clone()]);
    assert_eq!(count("overdue=false").await.len(), 9);
    assert_eq!(
        count(&format!("tenant={}&overdue=true", b.id)).await.len(),
        0
    );
    // Received in a date range (UTC days, both ends included).
    let day = |d: i64| {
        (deadline::now() - Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    assert_eq!(
        count(&format!("from={}&to={}", day(12), day(11))).await,
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        count(&format!("to={}", day(40))).await,
        vec![ids[0].clone()]
    );
    assert_eq!(count(&format!("from={}", day(0))).await.len(), 3);
    // Search by request id, and by subject id across tenants or in one.
    assert_eq!(count(&format!("q={}", ids[3])).await, vec![ids[3].clone()]);
    let mut both = count("q=shared-user").await;
    both.sort();
    let mut expected = vec![shared_a.clone(), shared_b.clone()];
    expected.sort();
    assert_eq!(both, expected);
    assert_eq!(
        count(&format!("q=shared-user&tenant={}", b.id)).await,
        vec![shared_b.clone()]
    );
    assert!(count("q=nobody-at-all").await.is_empty());
    // Scrubbed (the subject id is gone): still found through the keyed hash.
    app.sql(&format!(
        "UPDATE erasure_requests SET state = 'erased', subject_id = NULL, subject_email = NULL, reason = NULL WHERE id = '{shared_b}'"
    ))
    .await;
    let found = api_get(
        &app,
        &s,
        &format!("/v1/support/requests?q=shared-user&tenant={}", b.id),
    )
    .await;
    assert_eq!(ids_of(&found), vec![shared_b.clone()]);
    assert_eq!(found["data"][0]["subject_id"], Value::Null);
    assert_eq!(found["data"][0]["scrubbed"], true);
    assert_eq!(found["data"][0]["urgency"], "closed");
    // Bad filters are 400s that say which field.
    for bad in [
        "state=gone",
        "tenant=nope",
        "overdue=maybe",
        "initiator=robot",
        "from=yesterday",
        "limit=0",
        "sort=sideways",
        "cursor=zzz",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/v1/support/requests?{bad}")))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    // The page: the same filters, days left on every row, a next-page link.
    let session = login(&app, &s.email).await;
    let html = session
        .get("/support/requests?state=open&limit=3")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<tr data-id=").count(), 3);
    assert_eq!(html.matches("class=\"days days-").count(), 3);
    assert!(html.contains("overdue by"));
    assert!(html.contains("id=\"next-page\""));
    let html = session
        .get(&format!("/support/requests?q=shared-user&tenant={}", b.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&shared_b) && html.contains("scrubbed"));
    let r = session.get("/support/requests?state=gone").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("state: must be"));
}

/// Bulk actions through the JSON API (each request done or refused on its
/// own), and the CSV export of a filter without personal data of scrubbed
/// requests.
pub async fn bulk_actions_and_csv_export(db: Db) {
    let app = spawn_app(db).await;
    let eu = app.create_tenant("privacy_contact").await;
    let us = app.create_tenant("none").await;
    let mut awaiting = Vec::new();
    for i in 0..4 {
        awaiting.push(submit(&app, &eu, &format!("person-{i}"), Some("p@example.org")).await);
    }
    let erasing = submit(&app, &us, "us-1", None).await;
    let failed = submit(&app, &us, "us-2", None).await;
    set_state(&app, &failed, "failed").await;
    app.run_jobs().await;
    let s = support_user(&app, "sam@support.example", "Sam");
    let jobs_before = app.count("jobs WHERE kind = 'send_approval_email'").await;
    // Resend for three awaiting and one erasing: three done, one refused.
    let r = api_post(
        &app,
        &s,
        "/v1/support/bulk",
        json!({ "action": "resend_approval", "ids": [awaiting[0], awaiting[1], awaiting[2], erasing] }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["done"].as_u64(), v["refused"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(v["results"][3]["outcome"], "refused");
    assert_eq!(v["results"][3]["code"], "invalid_state");
    assert_eq!(
        app.count("jobs WHERE kind = 'send_approval_email'").await,
        jobs_before + 3
    );
    for id in &awaiting[..3] {
        assert!(events(&app, &s, id).await.contains(&(
            "approval_resend_requested".into(),
            "support".into(),
            s.id.clone()
        )));
    }
    app.run_jobs().await;
    // Retry a failed erasure: it is erasing again, with a new erasure job.
    let r = api_post(
        &app,
        &s,
        &format!("/v1/support/requests/{failed}/retry"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        request(&app, &s, &failed).await["request"]["state"],
        "erasing"
    );
    assert!(
        events(&app, &s, &failed)
            .await
            .iter()
            .any(|(event, _, _)| event == "retry"),
        "the retry is in the audit trail"
    );
    let r = api_post(
        &app,
        &s,
        &format!("/v1/support/requests/{failed}/retry"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Cancel needs a reason; each request is cancelled on its own.
    let r = api_post(
        &app,
        &s,
        "/v1/support/bulk",
        json!({ "action": "cancel", "ids": [awaiting[3], erasing] }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = api_post(
        &app,
        &s,
        "/v1/support/bulk",
        json!({ "action": "cancel", "ids": [awaiting[3], erasing], "reason": "duplicate of an earlier request" }),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["done"].as_u64(), v["refused"].as_u64()),
        (Some(1), Some(1))
    );
    let cancelled = request(&app, &s, &awaiting[3]).await;
    assert_eq!(cancelled["request"]["state"], "cancelled");
    assert_eq!(
        cancelled["cancel_reason"],
        "duplicate of an earlier request"
    );
    // Extend in bulk.
    let r = api_post(
        &app,
        &s,
        "/v1/support/bulk",
        json!({ "action": "extend", "ids": [awaiting[0], awaiting[1]], "months": 1, "reason": "backlog" }),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["done"], 2, "{v}");
    assert_eq!(v["results"][0]["extension"]["subject_told"], true);
    // Unknown ids, garbage and oversized selections.
    let r = api_post(
        &app,
        &s,
        "/v1/support/bulk",
        json!({ "action": "retry", "ids": [lethe::domain::RequestId::new()] }),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["outcome"], "not_found");
    for body in [
        json!({ "action": "explode", "ids": [erasing] }),
        json!({ "action": "retry", "ids": [] }),
        json!({ "action": "retry", "ids": ["x"] }),
        json!({ "action": "retry", "ids": vec![erasing.clone(); 101] }),
    ] {
        let r = api_post(&app, &s, "/v1/support/bulk", body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    // Scrub one closed request, then export.
    app.sql(&format!(
        "UPDATE erasure_requests SET subject_id = NULL, subject_email = NULL, reason = NULL WHERE id = '{}'",
        awaiting[3]
    ))
    .await;
    let r = app
        .client
        .get(app.url(&format!("/v1/support/requests/export.csv?tenant={}", eu.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "request_id,tenant_id,tenant_name,state,initiator,subject_id,received_at,due_at,days_left,urgency,extended_at,closed_at"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(!csv.contains('@'), "no email addresses in the export");
    let scrubbed = lines.iter().find(|l| l.starts_with(&awaiting[3])).unwrap();
    let fields: Vec<&str> = scrubbed.split(',').collect();
    assert_eq!(fields[3], "cancelled");
    assert_eq!(fields[5], "", "no subject id once scrubbed");
    assert!(!csv.contains("person-3"));
    let open = lines.iter().find(|l| l.starts_with(&awaiting[0])).unwrap();
    assert!(open.contains(",person-0,"), "{open}");
    assert!(!open.split(',').nth(10).unwrap().is_empty(), "extended_at");
    // The same export from the page, with the session.
    let session = login(&app, &s.email).await;
    let r = session
        .get(&format!(
            "/support/requests/export.csv?tenant={}&state=cancelled",
            eu.id
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 2);
    // A large export streams page by page and stays complete.
    let items: Vec<Value> = (0..1500)
        .map(|i| json!({ "subject_id": format!("bulk-{i}") }))
        .collect();
    let r = app
        .client
        .post(app.url("/v1/erasure-requests/batch"))
        .bearer_auth(&us.key)
        .json(&json!({ "requests": items[..1000] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .client
        .post(app.url("/v1/erasure-requests/batch"))
        .bearer_auth(&us.key)
        .json(&json!({ "requests": items[1000..] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .client
        .get(app.url(&format!("/v1/support/requests/export.csv?tenant={}", us.id)))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    let mut rows: Vec<&str> = csv.lines().skip(1).map(|l| &l[..36]).collect();
    assert_eq!(rows.len(), 1502);
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 1502, "no row twice");
}

/// With LETHE_SUPPORT_DIGEST_TO set, one digest a day: new, overdue, failed.
pub async fn the_daily_digest_goes_out_once_a_day(db: Db) {
    let app = spawn_app_with(
        db,
        &[
            (
                "LETHE_SUPPORT_DIGEST_TO",
                "support-team@lethe.example".to_owned(),
            ),
            ("LETHE_SUPPORT_DIGEST_HOUR", "7".to_owned()),
        ],
    )
    .await;
    assert_eq!(app.count("jobs WHERE kind = 'support_digest'").await, 1);
    let t = app.create_tenant("privacy_contact").await;
    let overdue = submit(&app, &t, "secret-subject-1", None).await;
    backdate(&app, &overdue, 40).await;
    let failed = submit(&app, &t, "secret-subject-2", None).await;
    set_state(&app, &failed, "failed").await;
    submit(&app, &t, "secret-subject-3", None).await;
    let slot = lethe::store::support::digest::next_slot(deadline::now(), 7);
    app.run_jobs_at(slot + Duration::minutes(1)).await;
    let digests: Vec<String> = std::fs::read_dir(app.dir.path().join("outbox"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .filter(|m| m.contains("support-team@lethe.example"))
        .collect();
    assert_eq!(digests.len(), 1);
    let d = digests[0].replace("=\r\n", "");
    assert!(d.contains("1 overdue") && d.contains("1 failed"), "{d}");
    assert!(d.contains(&overdue) && d.contains(&failed));
    assert!(d.contains("/support/requests/"));
    assert!(
        !d.contains("secret-subject"),
        "no subject ids in the digest"
    );
    // Tomorrow's is queued; running again today sends nothing more.
    assert_eq!(
        app.count("jobs WHERE kind = 'support_digest' AND finished_at IS NULL")
            .await,
        1
    );
    app.run_jobs_at(slot + Duration::minutes(2)).await;
    let count = std::fs::read_dir(app.dir.path().join("outbox"))
        .unwrap()
        .filter(|f| {
            std::fs::read_to_string(f.as_ref().unwrap().path())
                .unwrap()
                .contains("support-team@lethe.example")
        })
        .count();
    assert_eq!(count, 1);
    // Replicas starting (or a restart) do not queue the same day twice.
    let queued = app
        .store
        .write(|conn| lethe::store::support::digest::schedule(conn, 7, deadline::now()))
        .await
        .unwrap();
    assert!(!queued);
    assert_eq!(app.count("jobs WHERE kind = 'support_digest'").await, 2);
}

/// The CLI: create (password from stdin or generated), list, disable,
/// set a password; tokens are shown once and only their hash is kept.
pub async fn support_cli_manages_users_and_tokens(db: Db) {
    let app = spawn_app(db).await;
    let out = lethe(
        &app,
        &[
            "support-user",
            "create",
            "--email",
            "gen@support.example",
            "--name",
            "Gen",
        ],
        None,
    );
    let stdout = ok_stdout(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "id, then the generated password");
    let generated = lines[1].to_owned();
    assert!(generated.len() >= 20);
    let r = try_login(&app, "gen@support.example", &generated, "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Duplicates, short passwords and bad emails are refused and named.
    let out = lethe(
        &app,
        &[
            "support-user",
            "create",
            "--email",
            "gen@support.example",
            "--name",
            "Gen",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = lethe(
        &app,
        &[
            "support-user",
            "create",
            "--email",
            "b@support.example",
            "--name",
            "B",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));
    let out = lethe(
        &app,
        &[
            "support-user",
            "create",
            "--email",
            "not-an-email",
            "--name",
            "B",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email"));
    let s = support_user(&app, "sam@support.example", "Sam");
    let list = ok_stdout(&lethe(&app, &["support-user", "list"], None));
    assert!(list.contains("sam@support.example") && list.contains("gen@support.example"));
    // Tokens: listed without the secret, revocable.
    let tokens = ok_stdout(&lethe(
        &app,
        &["support-token", "list", "--user", &s.email],
        None,
    ));
    assert!(!tokens.contains(&s.token));
    let token_id = tokens.split('\t').next().unwrap().to_owned();
    assert_eq!(
        app.count(&format!(
            "support_tokens WHERE token_hash = '{}'",
            lethe::domain::secret::SecretDigest::of(&s.token).as_str()
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "support_tokens WHERE token_hash = '{}' OR token_prefix = '{}'",
            s.token, s.token
        ))
        .await,
        0
    );
    api_get(&app, &s, "/v1/support/overview").await;
    ok_stdout(&lethe(
        &app,
        &["support-token", "revoke", "--id", &token_id],
        None,
    ));
    let r = app
        .client
        .get(app.url("/v1/support/overview"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A new password works and lifts a lock.
    app.sql("UPDATE support_users SET locked_until = '2999-01-01 00:00:00'")
        .await;
    ok_stdout(&lethe(
        &app,
        &["support-user", "set-password", "--user", &s.email],
        Some("another long passphrase\n"),
    ));
    let r = try_login(&app, &s.email, "another long passphrase", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Disabled users cannot get new tokens.
    ok_stdout(&lethe(
        &app,
        &["support-user", "disable", "--user", &s.id],
        None,
    ));
    let out = lethe(&app, &["support-token", "create", "--user", &s.email], None);
    assert!(!out.status.success());
    for args in [
        vec!["support-user", "--help"],
        vec!["support-user", "create", "--help"],
        vec!["support-user", "disable", "--help"],
        vec!["support-token", "create", "--help"],
        vec!["support-token", "revoke", "--help"],
    ] {
        let out = lethe(&app, &args, None);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// The morning walk, in headless Chromium: log in, read the overview's counts,
/// filter to overdue, open a request, extend a deadline, resend approval
/// emails for three requests at once, export CSV, log out. With
/// LETHE_SCREENSHOTS set, each step is saved as a PNG.
pub async fn support_dashboard_walk_in_chromium(db: Db) {
    let app = spawn_app(db).await;
    let eu = app.create_eu_tenant("en", true).await;
    let us = app.create_tenant("none").await;
    let mut eu_ids = Vec::new();
    for i in 1..=5 {
        eu_ids.push(
            submit(
                &app,
                &eu,
                &format!("user-{i}"),
                Some(&format!("user{i}@example.org")),
            )
            .await,
        );
    }
    backdate(&app, &eu_ids[0], 40).await; // user-1 is overdue
    let us_ids = [
        submit(&app, &us, "us-user-1", None).await,
        submit(&app, &us, "us-user-2", None).await,
    ];
    set_state(&app, &us_ids[1], "failed").await;
    app.run_jobs().await;
    let s = support_user(&app, "sam@support.example", "Sam Support");
    let jobs_before = app.count("jobs WHERE kind = 'send_approval_email'").await;

    let base = app.base.clone();
    let (email, overdue_id, extend_id) = (s.email.clone(), eu_ids[0].clone(), eu_ids[1].clone());
    let bulk_ids: Vec<String> = eu_ids[2..5].to_vec();
    let (csv_tx, csv_rx) = tokio::sync::oneshot::channel::<(String, String)>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let walk = tokio::task::spawn_blocking(move || {
        with_browser(|browser| {
            let mut seen = std::collections::BTreeMap::new();
            let tab = browser.new_tab().unwrap();
            let text = |sel: &str| tab.wait_for_element(sel).unwrap().get_inner_text().unwrap();
            // Log in.
            tab.navigate_to(&format!("{base}/support"))
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            assert!(
                tab.get_url().contains("/support/login"),
                "{}",
                tab.get_url()
            );
            tab.wait_for_element("#email").unwrap().click().unwrap();
            tab.type_str(&email).unwrap();
            tab.wait_for_element("#password").unwrap().click().unwrap();
            tab.type_str(PASSWORD).unwrap();
            screenshot(&tab, "support-login");
            tab.wait_for_element("#login").unwrap().click().unwrap();
            tab.wait_for_element("#count-open").unwrap();
            // The overview.
            for id in [
                "#count-open",
                "#count-overdue",
                "#count-awaiting",
                "#count-failed",
                "#count-due-soon",
            ] {
                seen.insert(id.to_owned(), text(id));
            }
            seen.insert("overview".into(), text("main"));
            screenshot(&tab, "support-overview");
            // Filter to overdue.
            tab.wait_for_element("a.tile-overdue")
                .unwrap()
                .click()
                .unwrap();
            tab.wait_for_element("#queue").unwrap();
            seen.insert("overdue-url".into(), tab.get_url());
            seen.insert("overdue-queue".into(), text("#queue"));
            screenshot(&tab, "support-queue-overdue");
            // Open it.
            tab.wait_for_element(&format!("a[href=\"/support/requests/{overdue_id}\"]"))
                .unwrap()
                .click()
                .unwrap();
            tab.wait_for_element("#timeline").unwrap();
            seen.insert("overdue-detail".into(), text("main"));
            screenshot(&tab, "support-request-overdue");
            // Extend another request's deadline, from its page.
            tab.navigate_to(&format!("{base}/support/requests/{extend_id}"))
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            tab.wait_for_element(&format!("a[href=\"/support/requests/{extend_id}/extend\"]"))
                .unwrap()
                .click()
                .unwrap();
            tab.wait_for_element("#reason").unwrap().click().unwrap();
            tab.type_str("The tenant migrates its archive this month")
                .unwrap();
            screenshot(&tab, "support-extend-confirm");
            tab.wait_for_element("#confirm").unwrap().click().unwrap();
            tab.wait_for_element("#flash").unwrap();
            seen.insert("extended".into(), text("main"));
            screenshot(&tab, "support-extended");
            // Bulk: resend the approval email for three requests.
            tab.navigate_to(&format!("{base}/support/requests?state=awaiting_approval"))
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            for id in &bulk_ids {
                tab.wait_for_element(&format!("#select-{id}"))
                    .unwrap()
                    .click()
                    .unwrap();
            }
            screenshot(&tab, "support-queue-selected");
            tab.wait_for_element("#bulk-review")
                .unwrap()
                .click()
                .unwrap();
            tab.wait_for_element("#selection").unwrap();
            seen.insert("bulk-confirm".into(), text("main"));
            screenshot(&tab, "support-bulk-confirm");
            tab.wait_for_element("#confirm").unwrap().click().unwrap();
            tab.wait_for_element("#results").unwrap();
            seen.insert("bulk-done".into(), text("#summary"));
            screenshot(&tab, "support-bulk-done");
            // Export the current filter: the link, fetched with the session.
            tab.navigate_to(&format!("{base}/support/requests?state=awaiting_approval"))
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            let href = tab
                .wait_for_element("#export")
                .unwrap()
                .get_attribute_value("href")
                .unwrap()
                .unwrap();
            let cookie = tab
                .get_cookies()
                .unwrap()
                .into_iter()
                .find(|c| c.name == "lethe_support")
                .map(|c| format!("lethe_support={}", c.value))
                .unwrap();
            csv_tx.send((href, cookie)).unwrap();
            go_rx.blocking_recv().unwrap();
            // Log out.
            tab.wait_for_element("#logout").unwrap().click().unwrap();
            tab.wait_for_element("#notice").unwrap();
            seen.insert("logged-out".into(), text("main"));
            screenshot(&tab, "support-logged-out");
            tab.navigate_to(&format!("{base}/support"))
                .unwrap()
                .wait_until_navigated()
                .unwrap();
            tab.wait_for_element("#login").unwrap();
            seen.insert("after-logout-url".into(), tab.get_url());
            seen
        })
    });
    let (href, cookie) = match csv_rx.await {
        Ok(x) => x,
        Err(_) => {
            walk.await.unwrap();
            unreachable!("the walk ended before the export");
        }
    };
    let r = no_redirects()
        .get(app.url(&href))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{href}");
    let csv = r.text().await.unwrap();
    go_tx.send(()).unwrap();
    let seen = walk.await.unwrap();

    assert_eq!(seen["#count-open"], "7");
    assert_eq!(seen["#count-overdue"], "1");
    assert_eq!(seen["#count-awaiting"], "5");
    assert_eq!(seen["#count-failed"], "1");
    assert_eq!(seen["#count-due-soon"], "0");
    assert!(seen["overview"].contains("Acme EU") && seen["overview"].contains("Acme US"));
    assert!(seen["overdue-url"].contains("overdue=true"));
    assert!(seen["overdue-queue"].contains("user-1"));
    assert!(!seen["overdue-queue"].contains("user-2"));
    assert!(seen["overdue-queue"].contains("overdue by"));
    let detail = &seen["overdue-detail"];
    for shown in [
        "user-1",
        "Acme EU",
        "Timeline",
        "Emails sent",
        "Approval email sent",
        "Erasure targets",
        "cannot be extended",
    ] {
        assert!(detail.contains(shown), "{shown} in {detail}");
    }
    assert!(
        seen["extended"].contains("The deadline is extended"),
        "{}",
        seen["extended"]
    );
    assert!(seen["extended"].contains("The tenant migrates its archive this month"));
    assert!(
        seen["bulk-confirm"].contains("3 of 3"),
        "{}",
        seen["bulk-confirm"]
    );
    assert!(
        seen["bulk-done"].contains("3 done, 0 refused"),
        "{}",
        seen["bulk-done"]
    );
    assert!(seen["logged-out"].contains("logged out"));
    assert!(seen["after-logout-url"].contains("/support/login"));
    // The CSV is the filter shown: the five awaiting requests.
    assert!(href.contains("state=awaiting_approval"), "{href}");
    assert_eq!(csv.lines().count(), 6, "{csv}");
    for i in 1..=5 {
        assert!(csv.contains(&format!(",user-{i},")));
    }
    // What the clicks did, as stored.
    let extend_id = eu_ids[1].clone();
    let ext = request(&app, &s, &extend_id).await;
    let received: DateTime<Utc> = ext["deadline"]["received_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ext["request"]["due_at"],
        json!(deadline::max_extended_due_at(received)),
        "two months by default"
    );
    assert!(events(&app, &s, &extend_id).await.contains(&(
        "deadline_extended".into(),
        "support".into(),
        s.id.clone()
    )));
    assert!(jobs_of(&app, &extend_id)
        .await
        .iter()
        .any(|j| j.kind == "notify_subject" && j.payload.contains("extended")));
    assert_eq!(
        app.count("jobs WHERE kind = 'send_approval_email'").await,
        jobs_before + 3
    );
    for id in &eu_ids[2..5] {
        assert!(events(&app, &s, id).await.contains(&(
            "approval_resend_requested".into(),
            "support".into(),
            s.id.clone()
        )));
    }
    let audit = app.lethe_bin(&["audit", "verify"]);
    assert!(audit.status.success());
}
