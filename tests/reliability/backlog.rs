//! SMTP and target outages under load: submissions and approvals pile up
//! while the SMTP server and the erasure target are down; once they return
//! the backlog drains, nothing is lost, each approval email goes out once per
//! request and each target applies each erasure once (its Idempotency-Key).
//! Background work is driven step by step with the job runner, moving the
//! clock past the retry backoff instead of sleeping through it.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Db};
use crate::mail::{approval_path, free_port, MailCatcher};
use crate::targets_server::{reply, FakeTarget};

const REQUESTS: usize = 40;
const CONTACT: &str = "dpo@acme.example";

async fn run(db: Db) {
    let smtp_port = free_port();
    let app = spawn_app_with(
        db,
        &[
            ("LETHE_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
            ("LETHE_SMTP_TIMEOUT_SECS", "2".into()),
            ("LETHE_RATE_LIMIT_PER_MINUTE", "0".into()),
        ],
    )
    .await;
    let target = FakeTarget::start(&[]).await;
    target.always(reply(503));
    let tenant = app.create_eu_tenant("en", false).await;
    let r = app
        .admin_post(
            &format!("/v1/tenants/{}/targets", tenant.id),
            &json!({ "name": "warehouse", "url": target.url, "timeout_ms": 2000 }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // SMTP is down: every submission is acknowledged, every email waits.
    let submits = (0..REQUESTS).map(|i| {
        let (app, tenant) = (&app, &tenant);
        async move {
            let r = app
                .submit(tenant, &json!({ "subject_id": format!("backlog-{i}") }))
                .await;
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    let ids: Vec<String> = futures::future::join_all(submits).await;
    let mut clock = Utc::now();
    let mut smtp_failures = 0;
    for _ in 0..2 {
        let pass = app.run_jobs_at(clock).await;
        smtp_failures += pass.retried;
        assert_eq!(pass.done, 0, "{pass:?}");
        clock += Duration::minutes(5);
    }
    assert!(smtp_failures >= REQUESTS, "{smtp_failures}");

    // SMTP returns: the backlog drains, one email per request.
    let mail = MailCatcher::start_on(smtp_port).await;
    let mut passes = 0;
    while mail.to(CONTACT).await.len() < REQUESTS {
        app.run_jobs_at(clock).await;
        clock += Duration::minutes(10);
        passes += 1;
        assert!(passes < 10, "the email backlog did not drain");
    }
    app.run_jobs_at(clock + Duration::minutes(30)).await;
    let msgs = mail.wait_for(CONTACT, REQUESTS).await;
    assert_eq!(msgs.len(), REQUESTS, "each approval email exactly once");
    let mut per_subject: HashMap<String, usize> = HashMap::new();
    for m in &msgs {
        let s = m["text"]
            .as_str()
            .unwrap()
            .split("backlog-")
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .to_owned();
        *per_subject.entry(s).or_default() += 1;
    }
    assert_eq!(per_subject.len(), REQUESTS);

    // The contact approves everything while the target is down.
    for m in &msgs {
        let r = app
            .client
            .post(app.url(&approval_path(m)))
            .form(&[("action", "approve_all")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut target_failures = 0;
    for _ in 0..2 {
        let pass = app.run_jobs_at(clock).await;
        target_failures += pass.retried;
        clock += Duration::minutes(30);
    }
    let refused_calls = target.received().len();
    assert!(refused_calls >= REQUESTS, "{refused_calls}");

    // The target returns: everything is erased, each (request, target)
    // applied once.
    target.always(reply(200));
    let mut passes = 0;
    loop {
        app.run_jobs_at(clock).await;
        clock += Duration::hours(1);
        let erased = app.list(&tenant, "?status=erased&limit=500").await["data"]
            .as_array()
            .unwrap()
            .len();
        if erased == REQUESTS {
            break;
        }
        passes += 1;
        assert!(passes < 10, "the erasure backlog did not drain ({erased})");
    }
    let received = target.received();
    let mut applied: HashMap<String, usize> = HashMap::new();
    for r in &received[refused_calls..] {
        *applied
            .entry(r.header("idempotency-key").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(applied.len(), REQUESTS);
    let duplicate_effects: usize = applied.values().map(|n| n - 1).sum();
    assert_eq!(duplicate_effects, 0);
    // Every request's key was the same on every attempt.
    for id in &ids {
        let keys: Vec<&str> = received
            .iter()
            .filter_map(|r| r.header("idempotency-key"))
            .filter(|k| k.starts_with(id.as_str()))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    }
    println!(
        "RELIABILITY smtp_target_outage backend={db:?} requests={REQUESTS} smtp_failed_attempts={smtp_failures} emails={} duplicate_emails=0 \
         target_failed_attempts={target_failures} target_calls_after_recovery={} duplicate_effects={duplicate_effects} lost=0",
        msgs.len(),
        received.len() - refused_calls,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_drains_smtp_and_target_backlogs_once() {
    run(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_drains_smtp_and_target_backlogs_once() {
    run(Db::Postgres).await
}
