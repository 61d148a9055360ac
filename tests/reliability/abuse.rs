//! Abuse: rate limits on every endpoint that needs no API key, a budget of
//! unknown tokens per client, body limits on every kind of body, and clients
//! that trickle their request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_code, spawn_app_with, Db};
use crate::process::{cli, tenant_with_key, Lethe};

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_endpoints_answer_429_past_the_rate() {
    let app = spawn_app_with(
        Db::Sqlite,
        &[
            ("LETHE_RATE_LIMIT_PER_MINUTE", "60".into()),
            ("LETHE_RATE_LIMIT_BURST", "5".into()),
        ],
    )
    .await;
    let tenant = app.create_tenant("eu").await;
    let key_url = app.url("/v1/receipts/public-key");
    for _ in 0..5 {
        assert_eq!(app.client.get(&key_url).send().await.unwrap().status(), 200);
    }
    // The sixth JSON call in the same second: 429, JSON, Retry-After.
    let r = app.client.get(&key_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=2).contains(&retry_after(&r)));
    assert_eq!(error_code(r).await, "rate_limited");
    // The budget is per address over all unauthenticated endpoints; pages get
    // a small HTML page.
    for path in [
        "/approvals/ap_unknown",
        "/status/unknown",
        "/opendsr/v1/discovery",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        retry_after(&r);
    }
    let r = app
        .client
        .post(app.url("/v1/integrations/facebook/data-deletion"))
        .form(&[("signed_request", "x.y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(r).await, "rate_limited");
    let r = app
        .client
        .get(app.url("/approvals/ap_unknown"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // Authenticated calls and health checks are not limited by it.
    let r = app.submit(&tenant, &json!({ "subject_id": "u-1" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The bucket refills at the rate (one per second here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.client.get(&key_url).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_logins_have_their_own_stricter_rate() {
    let app = spawn_app_with(
        Db::Sqlite,
        &[("LETHE_RATE_LIMIT_LOGIN_PER_MINUTE", "2".into())],
    )
    .await;
    let login = app.url("/support/login");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = app
            .client
            .post(&login)
            .form(&[("email", "nobody@example.org"), ("password", "wrong")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&r) >= 1);
        }
    }
    assert_ne!(statuses[0], StatusCode::TOO_MANY_REQUESTS);
    assert_ne!(statuses[1], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS);
    // The form itself (GET) is still served.
    let r = app.client.get(&login).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_are_counted_logged_without_the_token_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "LETHE_DATABASE_URL",
            format!("sqlite://{}/l.db", dir.path().display()),
        ),
        (
            "LETHE_OUTBOX_DIR",
            format!("{}/outbox", dir.path().display()),
        ),
        ("LETHE_LOG_FORMAT", "json".to_owned()),
        ("LETHE_RATE_LIMIT_UNKNOWN_TOKENS_PER_HOUR", "3".to_owned()),
    ];
    cli(&env, &["migrate"]);
    let lethe = Lethe::start(&env, 0, &dir.path().join("lethe.log")).await;
    let client = reqwest::Client::new();
    let guesses: Vec<String> = (0..3)
        .map(|i| format!("ap_guess{i}{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for g in &guesses {
        let r = client
            .get(format!("{}/approvals/{g}", lethe.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    // The budget is spent: further look-ups (links or status codes) get 429,
    // while other public endpoints still answer.
    for path in ["/approvals/ap_another", "/status/another"] {
        let r = client
            .get(format!("{}{path}", lethe.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(retry_after(&r) > 60, "the budget refills per hour");
    }
    let r = client
        .get(format!("{}/v1/receipts/public-key", lethe.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = client
        .get(format!("{}/metrics", lethe.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lethe_unknown_tokens_total{kind=\"approval_link\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("lethe_rate_limited_total{class=\"token_page\"} 2"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = lethe.logs();
    assert_eq!(logs.matches("unknown token presented").count(), 3, "{logs}");
    for g in &guesses {
        assert!(!logs.contains(g.as_str()), "a token reached the log");
    }
    assert!(!logs.contains("ap_another"));
}

/// Write a raw HTTP request; the status line of the answer, or "" when the
/// server closed without one.
fn raw(port: u16, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_body_is_limited_with_a_json_413() {
    let app = spawn_app_with(Db::Sqlite, &[]).await;
    let tenant = app.create_tenant("eu").await;
    let big = "a".repeat(100 * 1024);
    let id = uuid::Uuid::now_v7();
    let form = format!("signed_request={big}");
    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "json",
            "/v1/erasure-requests".into(),
            "application/json",
            format!("{{\"subject_id\":\"{big}\"}}"),
        ),
        (
            "json",
            format!("/v1/erasure-requests/{id}/cancel"),
            "application/json",
            format!("{{\"reason\":\"{big}\"}}"),
        ),
        (
            "form",
            "/approvals/ap_x".into(),
            "application/x-www-form-urlencoded",
            form.clone(),
        ),
        (
            "form",
            "/support/login".into(),
            "application/x-www-form-urlencoded",
            form.clone(),
        ),
        (
            "form",
            "/v1/integrations/facebook/data-deletion".into(),
            "application/x-www-form-urlencoded",
            form.clone(),
        ),
        (
            "signed",
            format!("/v1/erasure-requests/{id}/targets/{id}/confirm"),
            "application/json",
            format!("{{\"x\":\"{big}\"}}"),
        ),
        (
            "json",
            "/opendsr/v1/requests".into(),
            "application/json",
            format!("{{\"x\":\"{big}\"}}"),
        ),
        (
            "json",
            "/v1/tenants".into(),
            "application/json",
            format!("{{\"name\":\"{big}\"}}"),
        ),
    ];
    for (kind, path, ct, body) in &cases {
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth(if path.starts_with("/v1/tenants") {
                crate::helpers::ADMIN_TOKEN
            } else {
                &tenant.key
            })
            .header("content-type", *ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{kind} {path}");
        assert_eq!(error_code(r).await, "body_too_large", "{path}");
    }
    // Without a Content-Length (chunked), the limit holds while reading.
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(format!("{:x}\r\n", 32 * 1024).as_bytes());
        chunked.extend_from_slice(&[b'a'; 32 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let status = raw(
        port,
        "POST /v1/integrations/facebook/data-deletion HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        &chunked,
    );
    assert!(status.contains(" 413 "), "{status}");
    println!(
        "RELIABILITY body_limits routes_checked={} chunked=413",
        cases.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_clients_are_dropped_while_others_are_served() {
    let app = spawn_app_with(
        Db::Sqlite,
        &[
            ("LETHE_HTTP_CLIENT_REQUEST_TIMEOUT_MS", "500".into()),
            ("LETHE_HTTP_REQUEST_TIMEOUT_SECS", "2".into()),
        ],
    )
    .await;
    let tenant = app.create_tenant("eu").await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    // A trickler sends one byte every 100 ms and reports how long the server
    // kept it, and what it answered.
    fn trickle(port: u16, head: &'static str, body_len: usize) -> (Duration, String) {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let started = Instant::now();
        // With a body, the head goes at once and the body trickles.
        let bytes: Vec<u8> = if body_len > 0 {
            s.write_all(head.as_bytes()).unwrap();
            vec![b'a'; body_len]
        } else {
            head.bytes().collect()
        };
        let mut answer = Vec::new();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(20) {
            if i < bytes.len() && s.write_all(&bytes[i..i + 1]).is_err() {
                break;
            }
            i += 1;
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        (started.elapsed(), status)
    }
    let head_trickler = tokio::task::spawn_blocking(move || {
        trickle(
            port,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-loris-with-a-very-long-header-line\r\n\r\n",
            0,
        )
    });
    let body_trickler = tokio::task::spawn_blocking(move || {
        trickle(
            port,
            "POST /v1/integrations/facebook/data-deletion HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n",
            5000,
        )
    });
    // Meanwhile other clients are served, quickly.
    let mut served = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let t = Instant::now();
        let r = app
            .submit(&tenant, &json!({ "subject_id": format!("u-{served}") }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        slowest = slowest.max(t.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (head_kept, head_status) = head_trickler.await.unwrap();
    let (body_kept, body_status) = body_trickler.await.unwrap();
    assert!(
        head_kept < Duration::from_secs(3),
        "a trickled head is dropped after the client request timeout ({head_kept:?})"
    );
    assert!(
        body_kept < Duration::from_secs(5),
        "a trickled body is dropped after the request timeout ({body_kept:?}, {body_status:?})"
    );
    assert!(body_status.contains(" 408"), "{body_status:?}");
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    println!(
        "RELIABILITY slow_clients head_dropped_after_ms={} head_answer={head_status:?} body_dropped_after_ms={} body_answer={body_status:?} others_served={served} others_slowest_ms={}",
        head_kept.as_millis(),
        body_kept.as_millis(),
        slowest.as_millis()
    );
}

/// The value of one sample line of a Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{page}"))
}

/// `/metrics` needs no key, and its request counts scan the whole history:
/// a process reads them at most once per LETHE_METRICS_MAX_AGE_SECS, so a
/// storm of scrapes costs the database one read; with 0, every scrape reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_read_the_database_at_most_once_per_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        (
            "LETHE_DATABASE_URL",
            format!("sqlite://{}/l.db", dir.path().display()),
        ),
        (
            "LETHE_OUTBOX_DIR",
            format!("{}/outbox", dir.path().display()),
        ),
        ("LETHE_JOB_WORKERS", "0".to_owned()),
        ("LETHE_METRICS_MAX_AGE_SECS", "3600".to_owned()),
    ];
    let (_, key) = tenant_with_key(
        &env,
        &[
            "--name",
            "Metered EU",
            "--contact-email",
            "privacy@metered.example",
        ],
    );
    let client = reqwest::Client::new();
    let submit = |base: String, subject: &'static str| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            let r = client
                .post(format!("{base}/v1/erasure-requests"))
                .bearer_auth(&key)
                .json(&json!({ "subject_id": subject }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        }
    };
    let scrape = |base: String| {
        let client = client.clone();
        async move {
            let r = client.get(format!("{base}/metrics")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            sample(
                &r.text().await.unwrap(),
                "lethe_requests{state=\"awaiting_approval\"}",
            )
        }
    };
    let lethe = Lethe::start(&env, 0, &dir.path().join("cached.log")).await;
    submit(lethe.base.clone(), "metered-1").await;
    assert_eq!(scrape(lethe.base.clone()).await, 1.0);
    submit(lethe.base.clone(), "metered-2").await;
    // A storm of scrapes within the hour: all get the figures of the first.
    let storm: Vec<_> = (0..20)
        .map(|_| tokio::spawn(scrape(lethe.base.clone())))
        .collect();
    for s in storm {
        assert_eq!(s.await.unwrap(), 1.0, "the figures are reused");
    }
    drop(lethe);

    // With 0 every scrape reads the database.
    env.retain(|(k, _)| *k != "LETHE_METRICS_MAX_AGE_SECS");
    env.push(("LETHE_METRICS_MAX_AGE_SECS", "0".to_owned()));
    let lethe = Lethe::start(&env, 0, &dir.path().join("fresh.log")).await;
    assert_eq!(scrape(lethe.base.clone()).await, 2.0);
    submit(lethe.base.clone(), "metered-3").await;
    assert_eq!(scrape(lethe.base.clone()).await, 3.0);
}
