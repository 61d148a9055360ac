//! Scenarios, each run on SQLite and on PostgreSQL.

use lethe::domain::RequestId;
use lethe::store::jobs;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, TestApp, ADMIN_TOKEN};

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn job_kinds(app: &TestApp, id: &str) -> Vec<String> {
    let rid: RequestId = id.parse().unwrap();
    app.store
        .read(move |conn| jobs::for_request(conn, rid))
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.kind)
        .collect()
}

pub async fn eu_submission_awaits_approval_and_queues_the_email(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let r = app
        .submit(&t, &json!({ "subject_id": "user-1", "subject_email": "jane@example.org", "initiator": "subject", "reason": "closing my account" }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "awaiting_approval");
    assert_eq!(v["keep_account_active"], true);
    assert_eq!(v["subject_id"], "user-1");
    assert_eq!(v["initiator"], "subject");
    let received =
        chrono::DateTime::parse_from_rfc3339(v["received_at"].as_str().unwrap()).unwrap();
    let due = chrono::DateTime::parse_from_rfc3339(v["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        due.date_naive(),
        lethe::domain::deadline::add_months(received.date_naive(), 1),
        "due one calendar month after receipt"
    );
    assert_eq!(
        job_kinds(&app, &id_of(&v)).await,
        vec!["send_approval_email", "approval_follow_up"]
    );
    // Read back as stored.
    let got: Value = app
        .get(&t, &format!("/v1/erasure-requests/{}", id_of(&v)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, v);
}

pub async fn non_eu_submission_goes_straight_to_erasing(app: TestApp) {
    let t = app.create_tenant("none").await;
    let r = app.submit(&t, &json!({ "subject_id": "user-9" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "erasing");
    assert_eq!(v["keep_account_active"], false);
    // No targets: nothing to call, the platform completes it.
    assert!(job_kinds(&app, &id_of(&v)).await.is_empty());
    let done = app
        .post_empty(&t, &format!("/v1/erasure-requests/{}/complete", id_of(&v)))
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    // Kept no day (the default) and no email to the subject to send: the
    // completion scrubbed the request itself, no job is left to.
    assert_eq!(job_kinds(&app, &id_of(&v)).await, vec!["send_receipt"]);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["state"], "erased");
    assert!(done["subject_id"].is_null(), "{done}");
    assert_eq!(
        app.count(&format!(
            "erasure_requests WHERE id = '{}' AND subject_id IS NULL AND scrubbed_at IS NOT NULL",
            id_of(&v)
        ))
        .await,
        1
    );
}

pub async fn idempotent_replay_returns_the_same_request_and_one_row(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let body = json!({ "subject_id": "user-1" });
    let send = || {
        app.client
            .post(app.url("/v1/erasure-requests"))
            .bearer_auth(&t.key)
            .header("Idempotency-Key", "req-0001")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(id_of(&first), id_of(&second));
    assert_eq!(app.count("erasure_requests").await, 1);
    assert_eq!(app.count("jobs").await, 2);
}

pub async fn reused_idempotency_key_with_another_body_is_422(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let post = |subject: &'static str| {
        app.client
            .post(app.url("/v1/erasure-requests"))
            .bearer_auth(&t.key)
            .header("Idempotency-Key", "k-1")
            .json(&json!({ "subject_id": subject }))
            .send()
    };
    assert_eq!(post("user-1").await.unwrap().status(), StatusCode::CREATED);
    let r = post("user-2").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(r).await, "idempotency_key_reused");
    assert_eq!(app.count("erasure_requests").await, 1);
}

pub async fn second_open_request_for_a_subject_returns_the_first(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let a = app.submit(&t, &json!({ "subject_id": "user-1" })).await;
    assert_eq!(a.status(), StatusCode::CREATED);
    let a: Value = a.json().await.unwrap();
    let b = app
        .submit(
            &t,
            &json!({ "subject_id": "user-1", "initiator": "support" }),
        )
        .await;
    assert_eq!(b.status(), StatusCode::OK);
    assert_eq!(id_of(&b.json().await.unwrap()), id_of(&a));
    // Once closed, the subject may be asked for again (they may have
    // registered anew): a new request is created.
    let c = app
        .post_empty(&t, &format!("/v1/erasure-requests/{}/cancel", id_of(&a)))
        .await;
    assert_eq!(c.status(), StatusCode::OK);
    let d = app.submit(&t, &json!({ "subject_id": "user-1" })).await;
    assert_eq!(d.status(), StatusCode::CREATED);
    assert_ne!(id_of(&d.json().await.unwrap()), id_of(&a));
    // Concurrent duplicates still make one open request.
    let body = json!({ "subject_id": "user-2" });
    let results = futures::future::join_all((0..8).map(|_| app.submit(&t, &body))).await;
    let ids: std::collections::BTreeSet<String> = {
        let mut ids = std::collections::BTreeSet::new();
        for r in results {
            assert!(r.status().is_success());
            ids.insert(id_of(&r.json().await.unwrap()));
        }
        ids
    };
    assert_eq!(ids.len(), 1);
}

/// Many submissions at once, among them replays, a subject asked for twice
/// and a reused Idempotency-Key (on PostgreSQL they are written in groups,
/// one statement each): every one gets the answer it would get alone, and
/// exactly the requests answered 201 exist, each with its events and jobs.
pub async fn submissions_arriving_together_get_their_own_answers(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    // The key is seen once first: the rest are submissions by a known key,
    // the ones that are grouped.
    let warm = app.submit(&t, &json!({ "subject_id": "warm-up" })).await;
    assert_eq!(warm.status(), StatusCode::CREATED);
    let post = |subject: String, key: Option<String>| {
        let mut b = app
            .client
            .post(app.url("/v1/erasure-requests"))
            .bearer_auth(&t.key)
            .json(&json!({ "subject_id": subject }));
        if let Some(k) = key {
            b = b.header("Idempotency-Key", k);
        }
        b.send()
    };
    let mut sends = Vec::new();
    for n in 0..40 {
        sends.push(post(format!("distinct-{n}"), Some(format!("key-{n}"))));
    }
    for _ in 0..4 {
        sends.push(post("same-subject".into(), None));
    }
    for _ in 0..3 {
        sends.push(post("replayed".into(), Some("replay-key".into())));
    }
    sends.push(post("reuse-a".into(), Some("reused".into())));
    sends.push(post("reuse-b".into(), Some("reused".into())));
    let mut answers = Vec::new();
    for r in futures::future::join_all(sends).await {
        let r = r.unwrap();
        let status = r.status();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        let body: Value = r.json().await.unwrap();
        answers.push((status, replayed, body));
    }
    let ids = |range: std::ops::Range<usize>| -> std::collections::BTreeSet<String> {
        answers[range].iter().map(|(_, _, b)| id_of(b)).collect()
    };
    for (status, replayed, _) in &answers[..40] {
        assert_eq!((*status, *replayed), (StatusCode::CREATED, false));
    }
    assert_eq!(ids(0..40).len(), 40);
    let statuses = |range: std::ops::Range<usize>| -> Vec<StatusCode> {
        let mut s: Vec<StatusCode> = answers[range].iter().map(|a| a.0).collect();
        s.sort();
        s
    };
    // The subject asked for four times: one request, created once.
    assert_eq!(
        statuses(40..44),
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::CREATED
        ]
    );
    assert_eq!(ids(40..44).len(), 1);
    // One Idempotency-Key three times: one request, two replays.
    assert_eq!(statuses(44..47), [StatusCode::CREATED; 3]);
    assert_eq!(ids(44..47).len(), 1);
    assert_eq!(answers[44..47].iter().filter(|a| a.1).count(), 2);
    // One Idempotency-Key with two bodies: whichever came second is refused.
    assert_eq!(
        statuses(47..49),
        [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY]
    );
    let refused = answers[47..49]
        .iter()
        .find(|a| a.0 == StatusCode::UNPROCESSABLE_ENTITY)
        .unwrap();
    assert_eq!(refused.2["error"]["code"], "idempotency_key_reused");
    // The warm-up, 40 distinct, and one each for the other three.
    let made = 1 + 40 + 3;
    assert_eq!(app.count("erasure_requests").await, made);
    assert_eq!(app.count("audit_events").await, made * 2);
    assert_eq!(app.count("jobs").await, made * 2);
    let listed = app.list(&t, "?status=awaiting_approval&limit=100").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), made as usize);
    if app.db == crate::helpers::Db::Postgres {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("lethe_submission_groups_total"));
        assert!(text.contains("lethe_submissions_grouped_total{outcome=\"written\"}"));
    }
}

pub async fn concurrent_cancels_give_one_200_and_one_409(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    for round in 0..5 {
        let r: Value = app
            .submit(&t, &json!({ "subject_id": format!("racer-{round}") }))
            .await
            .json()
            .await
            .unwrap();
        let path = format!("/v1/erasure-requests/{}/cancel", id_of(&r));
        let results =
            futures::future::join_all(vec![app.post_empty(&t, &path), app.post_empty(&t, &path)])
                .await;
        let mut codes: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
        codes.sort();
        assert_eq!(codes, vec![200, 409], "round {round}");
        let got: Value = app
            .get(&t, &format!("/v1/erasure-requests/{}", id_of(&r)))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["state"], "cancelled");
    }
    let out = app.lethe_bin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

pub async fn cancel_rules_follow_the_state_machine(app: TestApp) {
    let t = app.create_tenant("none").await;
    let r: Value = app
        .submit(&t, &json!({ "subject_id": "u" }))
        .await
        .json()
        .await
        .unwrap();
    // Erasure has started: too late to cancel.
    let c = app
        .post_empty(&t, &format!("/v1/erasure-requests/{}/cancel", id_of(&r)))
        .await;
    assert_eq!(c.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(c).await, "invalid_state");
    // A reason may be given, and must be text.
    let t2 = app.create_tenant("privacy_contact").await;
    let r: Value = app
        .submit(&t2, &json!({ "subject_id": "u" }))
        .await
        .json()
        .await
        .unwrap();
    let path = app.url(&format!("/v1/erasure-requests/{}/cancel", id_of(&r)));
    let bad = app
        .client
        .post(&path)
        .bearer_auth(&t2.key)
        .json(&json!({ "reason": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .client
        .post(&path)
        .bearer_auth(&t2.key)
        .json(&json!({ "reason": "submitted by mistake" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["state"], "cancelled");
    assert!(v["closed_at"].is_string());
}

pub async fn other_tenants_see_404(app: TestApp) {
    let a = app.create_tenant("privacy_contact").await;
    let b = app.create_tenant("privacy_contact").await;
    let r: Value = app
        .submit(&a, &json!({ "subject_id": "shared-user" }))
        .await
        .json()
        .await
        .unwrap();
    let id = id_of(&r);
    let g = app.get(&b, &format!("/v1/erasure-requests/{id}")).await;
    assert_eq!(g.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(g).await, "not_found");
    let c = app
        .post_empty(&b, &format!("/v1/erasure-requests/{id}/cancel"))
        .await;
    assert_eq!(c.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.list(&b, "").await["data"].as_array().unwrap().len(), 0);
    let s: Value = app
        .get(&b, "/v1/subjects/shared-user")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["reason"], "no_erasure_requested");
    assert!(s["request"].is_null());
    // B may erase the same subject in its own tenant: a separate request.
    let rb = app
        .submit(&b, &json!({ "subject_id": "shared-user" }))
        .await;
    assert_eq!(rb.status(), StatusCode::CREATED);
    assert_ne!(id_of(&rb.json().await.unwrap()), id);
    // A's request is untouched.
    let ga: Value = app
        .get(&a, &format!("/v1/erasure-requests/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ga["state"], "awaiting_approval");
    // No key, a wrong key, the admin token: 401.
    for auth in [None, Some("lethe_sk_wrong"), Some(ADMIN_TOKEN)] {
        let mut req = app
            .client
            .get(app.url(&format!("/v1/erasure-requests/{id}")));
        if let Some(k) = auth {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        error_code(r).await;
    }
    // A tenant key cannot use the admin API.
    let r = app
        .client
        .get(app.url("/v1/tenants"))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

pub async fn garbage_bodies_get_json_4xx_and_change_nothing(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"{".to_vec(), 400),
        ("application/json", b"not json".to_vec(), 400),
        ("application/json", b"[]".to_vec(), 422),
        ("application/json", b"{}".to_vec(), 422),
        ("application/json", br#"{"subject_id": 42}"#.to_vec(), 422),
        (
            "application/json",
            br#"{"subject_id": "u", "extra": 1}"#.to_vec(),
            422,
        ),
        ("application/json", br#"{"subject_id": ""}"#.to_vec(), 422),
        (
            "application/json",
            br#"{"subject_id": "u", "initiator": "robot"}"#.to_vec(),
            422,
        ),
        (
            "application/json",
            br#"{"subject_id": "u", "subject_email": "nope"}"#.to_vec(),
            422,
        ),
        (
            "application/json",
            br#"{"subject_id": "u", "callback_url": "javascript:alert(1)"}"#.to_vec(),
            422,
        ),
        (
            "application/json",
            format!(r#"{{"subject_id": "{}"}}"#, "x".repeat(300)).into_bytes(),
            422,
        ),
        ("application/json", vec![0xff, 0xfe, 0x00], 400),
        ("text/plain", br#"{"subject_id": "u"}"#.to_vec(), 415),
        (
            "application/json",
            format!(
                r#"{{"subject_id": "u", "reason": "{}"}}"#,
                "y".repeat(100_000)
            )
            .into_bytes(),
            413,
        ),
    ];
    for (ct, body, status) in cases {
        let r = app
            .client
            .post(app.url("/v1/erasure-requests"))
            .bearer_auth(&t.key)
            .header("content-type", ct)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        error_code(r).await;
    }
    // Bad ids, cursors and queries.
    for (path, status) in [
        ("/v1/erasure-requests/not-a-uuid", 404),
        (
            "/v1/erasure-requests/00000000-0000-0000-0000-000000000000",
            404,
        ),
        ("/v1/erasure-requests?cursor=garbage", 400),
        ("/v1/erasure-requests?status=deleted", 400),
        ("/v1/erasure-requests?limit=0", 400),
        ("/v1/erasure-requests?limit=abc", 400),
        ("/v1/erasure-requests?overdue=maybe", 400),
        ("/v1/erasure-requests?colour=red", 400),
    ] {
        let r = app.get(&t, path).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        error_code(r).await;
    }
    let bad_key = app
        .client
        .post(app.url("/v1/erasure-requests"))
        .bearer_auth(&t.key)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({ "subject_id": "u" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);
    // An unknown key hears 401 whatever body it sent.
    for body in [
        &b"{"[..],
        &br#"{"subject_id": ""}"#[..],
        &br#"{"subject_id": "u"}"#[..],
    ] {
        let r = app
            .client
            .post(app.url("/v1/erasure-requests"))
            .bearer_auth("lethe_sk_this-key-was-never-issued")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        error_code(r).await;
    }
    // A method a path does not take: 405, with a JSON body too.
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/erasure-requests"),
        (reqwest::Method::PUT, "/v1/erasure-requests/batch"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&t.key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(error_code(r).await, "method_not_allowed");
    }
    assert_eq!(app.count("erasure_requests").await, 0);
    assert_eq!(app.count("audit_events").await, 0);
    assert_eq!(app.count("jobs").await, 0);
}

pub async fn batch_is_all_or_nothing_with_per_item_results(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let batch = |items: Vec<Value>| {
        app.client
            .post(app.url("/v1/erasure-requests/batch"))
            .bearer_auth(&t.key)
            .json(&json!({ "requests": items }))
            .send()
    };
    // One bad item: nothing is written, and the error names the item.
    let r = batch(vec![
        json!({ "subject_id": "a" }),
        json!({ "subject_id": "" }),
        json!({ "subject_id": "c", "subject_email": "x" }),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    let details = v["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["index"], 1);
    assert_eq!(details[1]["index"], 2);
    assert_eq!(app.count("erasure_requests").await, 0);
    // Too many, or none.
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({ "subject_id": format!("s{i}") }))
        .collect();
    assert_eq!(
        batch(too_many).await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        batch(vec![]).await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // An existing open request is returned as such.
    let existing: Value = app
        .submit(&t, &json!({ "subject_id": "s3" }))
        .await
        .json()
        .await
        .unwrap();
    let items: Vec<Value> = (0..50)
        .map(|i| json!({ "subject_id": format!("s{i}") }))
        .collect();
    let r = batch(items).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 50);
    assert_eq!(v["created"], 49);
    assert_eq!(results[3]["status"], 200);
    assert_eq!(results[3]["outcome"], "existing_open_request");
    assert_eq!(id_of(&results[3]["request"]), id_of(&existing));
    let batch_id = v["batch_id"].as_str().unwrap();
    assert_eq!(results[0]["request"]["batch_id"], batch_id);
    assert_eq!(app.count("erasure_requests").await, 50);
    // The full 1,000 fit.
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({ "subject_id": format!("big-{i}"), "reason": "r".repeat(200) }))
        .collect();
    assert_eq!(batch(items).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(app.count("erasure_requests").await, 1050);
}

pub async fn list_filters_and_paginates_with_a_stable_cursor(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let v: Value = app
            .submit(&t, &json!({ "subject_id": format!("p{i}") }))
            .await
            .json()
            .await
            .unwrap();
        ids.push(id_of(&v));
    }
    app.post_empty(&t, &format!("/v1/erasure-requests/{}/cancel", ids[1]))
        .await;
    // Pages of 3, newest first, no duplicates or gaps, even as new requests arrive.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".to_owned(),
        };
        let page = app.list(&t, &q).await;
        if seen.is_empty() {
            app.submit(&t, &json!({ "subject_id": "late-arrival" }))
                .await;
        }
        for r in page["data"].as_array().unwrap() {
            seen.push(id_of(r));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    let cancelled = app.list(&t, "?status=cancelled").await;
    assert_eq!(cancelled["data"].as_array().unwrap().len(), 1);
    assert_eq!(id_of(&cancelled["data"][0]), ids[1]);
    let open = app.list(&t, "?status=awaiting_approval,pending").await;
    assert_eq!(open["data"].as_array().unwrap().len(), 7);
    // Overdue: push one request's deadline into the past.
    app.sql(&format!(
        "UPDATE erasure_requests SET due_at = '2020-01-01 00:00:00' WHERE id = '{}'",
        ids[4]
    ))
    .await;
    let overdue = app.list(&t, "?overdue=true").await;
    assert_eq!(overdue["data"].as_array().unwrap().len(), 1);
    assert_eq!(overdue["data"][0]["overdue"], true);
    assert_eq!(
        app.list(&t, "?overdue=false").await["data"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

pub async fn subject_status_says_whether_to_keep_the_account(app: TestApp) {
    let eu = app.create_tenant("privacy_contact").await;
    let s: Value = app
        .get(&eu, "/v1/subjects/user-7")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["keep_account_active"], true);
    assert_eq!(s["reason"], "no_erasure_requested");
    let r: Value = app
        .submit(&eu, &json!({ "subject_id": "user-7" }))
        .await
        .json()
        .await
        .unwrap();
    let s: Value = app
        .get(&eu, "/v1/subjects/user-7")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["keep_account_active"], true);
    assert_eq!(s["reason"], "awaiting_approval");
    assert_eq!(id_of(&s["request"]), id_of(&r));
    let us = app.create_tenant("none").await;
    app.submit(&us, &json!({ "subject_id": "user 7/ü" })).await;
    let s: Value = app
        .get(&us, "/v1/subjects/user%207%2F%C3%BC")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["keep_account_active"], false);
    assert_eq!(s["reason"], "erasure_in_progress");
    assert_eq!(s["subject_id"], "user 7/ü");
}

pub async fn admin_api_manages_tenants_and_keys(app: TestApp) {
    // Without the token: 401; with a wrong one: 401.
    let r = app.client.get(app.url("/v1/tenants")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(app.url("/v1/tenants"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A privacy_contact tenant needs a contact.
    let r = app
        .admin_post(
            "/v1/tenants",
            &json!({ "name": "X", "approval_policy": "privacy_contact" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_post(
            "/v1/tenants",
            &json!({ "name": "X", "approval_policy": "sometimes" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let t = app.create_tenant("none").await;
    let got: Value = app
        .client
        .get(app.url(&format!("/v1/tenants/{}", t.id)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["approval_policy"], "none");
    // Switch to approval by a privacy contact.
    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/v1/tenants/{}", t.id)))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let r = patch(json!({ "approval_policy": "privacy_contact" }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = patch(json!({ "approval_policy": "privacy_contact", "privacy_contact": { "email": "dpo@x.example" }, "locale": "fr" }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["privacy_contact"]["email"], "dpo@x.example");
    assert_eq!(v["locale"], "fr");
    let r: Value = app
        .submit(&t, &json!({ "subject_id": "after-switch" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "awaiting_approval");
    // Unknown tenants.
    let r = patch(json!({ "name": "y" })).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let missing = app
        .client
        .get(app.url("/v1/tenants/00000000-0000-7000-8000-000000000000"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let r = app
        .admin_post(
            "/v1/tenants/00000000-0000-7000-8000-000000000000/api-keys",
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Key listing never shows secrets.
    let keys: Value = app
        .client
        .get(app.url(&format!("/v1/tenants/{}/api-keys", t.id)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    assert!(keys["data"][0]["key"].is_null());
    assert!(!keys.to_string().contains(&t.key));
    // Paginated tenant list.
    let page: Value = app
        .client
        .get(app.url("/v1/tenants?limit=1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

pub async fn revoked_keys_stop_working_at_once(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    assert_eq!(
        app.get(&t, "/v1/erasure-requests").await.status(),
        StatusCode::OK
    );
    let key_id = app.first_key_id(&t).await;
    let other = app.create_tenant("privacy_contact").await;
    // Another tenant's path cannot revoke it.
    let r = app
        .admin_delete(&format!("/v1/tenants/{}/api-keys/{key_id}", other.id))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .admin_delete(&format!("/v1/tenants/{}/api-keys/{key_id}", t.id))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.get(&t, "/v1/erasure-requests").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_api_key");
    assert_eq!(
        app.get(&other, "/v1/erasure-requests").await.status(),
        StatusCode::OK
    );
}

/// A submission remembers the key it was made with; the next one with that
/// key must still see a revocation or a changed approval policy at once.
pub async fn submissions_see_key_and_policy_changes_at_once(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let r = app.submit(&t, &json!({ "subject_id": "k1" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "awaiting_approval");
    // The tenant stops asking for approval: the next submission is approved
    // on the spot.
    let r = app
        .admin_patch(
            &format!("/v1/tenants/{}", t.id),
            &json!({ "approval_policy": "none" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.submit(&t, &json!({ "subject_id": "k2" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["state"], "awaiting_approval", "{v}");
    assert_ne!(v["state"], "pending", "{v}");
    // And back: approval is asked for again.
    let r = app
        .admin_patch(
            &format!("/v1/tenants/{}", t.id),
            &json!({ "approval_policy": "privacy_contact" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.submit(&t, &json!({ "subject_id": "k3" })).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "awaiting_approval", "{v}");
    // Revoked: the very next submission is refused and writes nothing.
    let key_id = app.first_key_id(&t).await;
    let r = app
        .admin_delete(&format!("/v1/tenants/{}/api-keys/{key_id}", t.id))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let before = app.count("erasure_requests").await;
    let r = app.submit(&t, &json!({ "subject_id": "k4" })).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "invalid_api_key");
    assert_eq!(app.count("erasure_requests").await, before);
}

pub async fn audit_verify_passes_and_catches_a_hand_edit(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    let mut last = String::new();
    for i in 0..3 {
        let v: Value = app
            .submit(&t, &json!({ "subject_id": format!("a{i}") }))
            .await
            .json()
            .await
            .unwrap();
        last = id_of(&v);
    }
    app.post_empty(&t, &format!("/v1/erasure-requests/{last}/cancel"))
        .await;
    let ok = app.lethe_bin(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("3 requests, 7 events"), "{stdout}");
    // Someone rewrites history: the cancellation becomes an approval.
    app.sql(&format!(
        "UPDATE audit_events SET event = 'approve', to_state = 'erasing' WHERE request_id = '{last}' AND seq = 3"
    ))
    .await;
    let bad = app.lethe_bin(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&last) && stdout.contains("event 3"),
        "{stdout}"
    );
    // Deleting the last event is caught too.
    app.sql(&format!(
        "DELETE FROM audit_events WHERE request_id = '{last}' AND seq = 3"
    ))
    .await;
    let bad = app.lethe_bin(&["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
}

pub async fn health_and_readiness(app: TestApp) {
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["database"], "ok");
    let nf = app
        .client
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(nf.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(nf).await, "not_found");
    let _ = app.db;
}

pub async fn metrics_are_exposed_for_prometheus(app: TestApp) {
    let t = app.create_tenant("privacy_contact").await;
    app.submit(&t, &json!({ "subject_id": "metered" })).await;
    app.run_jobs().await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for name in [
        "lethe_http_requests_total{",
        "lethe_http_request_duration_seconds_bucket{",
        "lethe_requests{state=\"awaiting_approval\"}",
        "lethe_requests_overdue",
        "lethe_job_queue_depth{kind=\"approval_follow_up\"}",
        "lethe_job_oldest_due_age_seconds{",
        "lethe_transitions_total{",
        "lethe_emails_total{",
        "lethe_jobs_total{",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    assert!(
        text.contains("route=\"/v1/erasure-requests\""),
        "routes are labelled by pattern"
    );
    assert!(!text.contains("metered"), "no subject ids in metrics");
}

/// A job notes what it did on the request as it read it before acting (one
/// statement when nothing moved). If another write chained an event on the
/// request meanwhile, the note goes on the new head: both events are there,
/// in order, and the chain verifies.
pub async fn a_note_on_a_request_that_moved_meanwhile_goes_on_its_new_head(app: TestApp) {
    use lethe::domain::audit::Actor;
    use lethe::domain::TenantId;
    use lethe::store::{audit, requests};
    let t = app.create_tenant("privacy_contact").await;
    let r = app.submit(&t, &json!({ "subject_id": "moved-1" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let rid: RequestId = id_of(&r.json().await.unwrap()).parse().unwrap();
    let tid: TenantId = t.id.parse().unwrap();
    let now = lethe::domain::deadline::now();
    let seen = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            store
                .read(move |c| requests::get_seen_any(c, rid))
                .await
                .unwrap()
        }
    };
    let note_seen = |app: &TestApp, seen: requests::Seen, what: &'static str| {
        let store = app.store.clone();
        async move {
            store
                .write_self_contained(move |c| {
                    let actor = Actor::system("test");
                    requests::note_seen(c, &seen, note(what, &actor, now))
                })
                .await
                .unwrap()
        }
    };
    // Unmoved: chained on the head it was read at.
    let unmoved = seen(&app).await;
    note_seen(&app, unmoved, "first_seen").await;
    // Moved: another event lands between the read and the note.
    let stale = seen(&app).await;
    app.store
        .write(move |c| {
            requests::note(c, tid, rid, "in_between", &Actor::system("test"), None, now)
        })
        .await
        .unwrap();
    note_seen(&app, stale, "second_seen").await;
    let events = app
        .store
        .read(move |c| audit::for_request(c, tid, rid))
        .await
        .unwrap();
    let tail: Vec<(i64, &str)> = events
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|e| (e.seq, e.event.as_str()))
        .collect();
    let n = events.len() as i64;
    assert_eq!(
        tail,
        vec![
            (n - 2, "first_seen"),
            (n - 1, "in_between"),
            (n, "second_seen")
        ],
        "{events:?}"
    );
    let verify = app.lethe_bin(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// Jobs' notes written at once, two on each of a dozen requests as read at
/// the same moment: on PostgreSQL they go as groups in one statement each
/// (`store::job_writes`), and of each request's two exactly one is written on
/// the head it was read at; the other finds it moved, writes nothing, and
/// goes on after it. On SQLite every one is written alone. Either way each
/// request gets both events, one after the other, and the chains verify.
pub async fn notes_written_together_land_once_each_on_their_own_heads(app: TestApp) {
    use lethe::domain::audit::Actor;
    use lethe::domain::TenantId;
    use lethe::store::job_writes::JobWrite;
    use lethe::store::{audit, requests, Backend};
    let t = app.create_tenant("privacy_contact").await;
    let tid: TenantId = t.id.parse().unwrap();
    let mut ids: Vec<RequestId> = Vec::new();
    for i in 0..12 {
        let r = app
            .submit(&t, &json!({ "subject_id": format!("together-{i}") }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(id_of(&r.json().await.unwrap()).parse().unwrap());
    }
    let now = lethe::domain::deadline::now();
    let mut writes = Vec::new();
    for &rid in &ids {
        for what in ["together_a", "together_b"] {
            let seen = app
                .store
                .read(move |c| requests::get_seen_any(c, rid))
                .await
                .unwrap();
            let write =
                requests::plan_note(&seen, note(what, &Actor::system("test"), now)).unwrap();
            let store = app.store.clone();
            writes.push(async move { (rid, what, store.write_seen(write).await.unwrap()) });
        }
    }
    let outcomes = futures::future::join_all(writes).await;
    let mut written = std::collections::HashMap::<RequestId, usize>::new();
    for (rid, what, outcome) in outcomes {
        let moved = match outcome {
            JobWrite::Written(_) => {
                *written.entry(rid).or_default() += 1;
                continue;
            }
            JobWrite::Moved(_) => true,
            JobWrite::Alone(_) => false,
        };
        app.store
            .write_self_contained(move |c| {
                let actor = Actor::system("test");
                if moved {
                    requests::note_moved(c, rid, note(what, &actor, now))
                } else {
                    let seen = requests::get_seen_any(c, rid)?;
                    requests::note_seen(c, &seen, note(what, &actor, now))
                }
            })
            .await
            .unwrap();
    }
    match app.store.backend() {
        Backend::Postgres => {
            assert_eq!(written.len(), ids.len(), "{written:?}");
            assert!(written.values().all(|&n| n == 1), "{written:?}");
        }
        Backend::Sqlite => assert!(written.is_empty(), "{written:?}"),
    }
    for &rid in &ids {
        let events = app
            .store
            .read(move |c| audit::for_request(c, tid, rid))
            .await
            .unwrap();
        let mut tail: Vec<&str> = events
            .iter()
            .rev()
            .take(2)
            .map(|e| e.event.as_str())
            .collect();
        tail.sort_unstable();
        assert_eq!(tail, vec!["together_a", "together_b"], "{events:?}");
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    }
    let verify = app.lethe_bin(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// New approval links written at once, three for each of eight requests
/// and a job's note on each beside them: on PostgreSQL they go with the
/// jobs' writes as groups of one statement each (`store::job_writes`), never
/// two links for one request in one group; on SQLite every one is stored
/// alone. Either way each request is left with one usable link (each new
/// one voids those stored before it) and its others answer 410; the notes
/// land.
pub async fn links_written_together_leave_one_usable_link_per_request(app: TestApp) {
    use lethe::domain::approval::TOKEN_PREFIX;
    use lethe::domain::audit::Actor;
    use lethe::domain::secret::Secret;
    use lethe::domain::TenantId;
    use lethe::store::approvals::{self, LinkTarget};
    use lethe::store::job_writes::{JobWrite, LinkWrite};
    use lethe::store::{audit, requests, Backend};
    let t = app.create_tenant("privacy_contact").await;
    let tid: TenantId = t.id.parse().unwrap();
    let mut ids: Vec<RequestId> = Vec::new();
    for i in 0..8 {
        let r = app
            .submit(&t, &json!({ "subject_id": format!("links-{i}") }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(id_of(&r.json().await.unwrap()).parse().unwrap());
    }
    let now = lethe::domain::deadline::now();
    let expires = now + chrono::Duration::days(7);
    let (mut links, mut notes, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    for &rid in &ids {
        let seen = app
            .store
            .read(move |c| requests::get_seen_any(c, rid))
            .await
            .unwrap();
        let write = requests::plan_note(&seen, note("links_noted", &Actor::system("test"), now));
        let store = app.store.clone();
        notes.push(async move { store.write_seen(write.unwrap()).await.unwrap() });
        for _ in 0..3 {
            let secret = Secret::generate(TOKEN_PREFIX);
            let row = approvals::plan(
                tid,
                LinkTarget::Request(rid),
                &secret.digest(),
                now,
                expires,
            );
            tokens.push((rid, row.id.clone(), secret.expose().to_owned()));
            let store = app.store.clone();
            links.push(async move {
                match store.write_link(row).await.unwrap() {
                    LinkWrite::Written => true,
                    LinkWrite::Alone(row) => {
                        store
                            .write_self_contained(move |c| approvals::insert(c, &row))
                            .await
                            .unwrap();
                        false
                    }
                }
            });
        }
    }
    let (links, notes) = futures::join!(
        futures::future::join_all(links),
        futures::future::join_all(notes)
    );
    let grouped = links.iter().filter(|&&g| g).count();
    let notes_grouped = notes
        .iter()
        .filter(|n| matches!(n, JobWrite::Written(_)))
        .count();
    match app.store.backend() {
        Backend::Postgres => assert_eq!((grouped, notes_grouped), (24, 8)),
        Backend::Sqlite => assert_eq!((grouped, notes_grouped), (0, 0)),
    }
    for &rid in &ids {
        if app.store.backend() == Backend::Sqlite {
            let seen = app
                .store
                .read(move |c| requests::get_seen_any(c, rid))
                .await
                .unwrap();
            app.store
                .write_self_contained(move |c| {
                    let actor = Actor::system("test");
                    requests::note_seen(c, &seen, note("links_noted", &actor, now))
                })
                .await
                .unwrap();
        }
        let mut usable = Vec::new();
        for (_, link, token) in tokens.iter().filter(|(r, _, _)| *r == rid) {
            let r = app
                .client
                .get(app.url(&format!("/approvals/{token}")))
                .send()
                .await
                .unwrap();
            match r.status() {
                StatusCode::OK => usable.push(link.clone()),
                StatusCode::GONE => {}
                other => panic!("link {link}: {other}"),
            }
        }
        assert_eq!(usable.len(), 1, "request {rid}: usable {usable:?}");
        let events = app
            .store
            .read(move |c| audit::for_request(c, tid, rid))
            .await
            .unwrap();
        assert_eq!(
            events.iter().filter(|e| e.event == "links_noted").count(),
            1,
            "{events:?}"
        );
    }
}

/// A decision on a link for one request is written on the link and the
/// request as read, and only if neither moved since: an event on the
/// request, or a new link voiding the old one, in between, and it writes
/// nothing (the page then decides holding the request). Unmoved, it uses the
/// link up, starts the erasure and makes a call and a job per target, in one
/// write.
pub async fn a_decision_on_a_link_or_request_that_moved_meanwhile_writes_nothing(app: TestApp) {
    use lethe::domain::approval::TOKEN_PREFIX;
    use lethe::domain::audit::{Actor, ActorKind};
    use lethe::domain::outbox::WorkflowPolicy;
    use lethe::domain::secret::{Secret, SecretDigest};
    use lethe::domain::{Event, TenantId};
    use lethe::store::approvals::{self, LinkTarget};
    use lethe::store::requests;
    let t = app.create_tenant("privacy_contact").await;
    let mut targets = Vec::new();
    for name in ["crm", "billing"] {
        let r = app
            .admin_post(
                &format!("/v1/tenants/{}/targets", t.id),
                &json!({ "name": name, "url": "http://127.0.0.1:9/erase" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        targets.push(id_of(&r.json().await.unwrap()));
    }
    targets.sort();
    let r = app.submit(&t, &json!({ "subject_id": "decided-1" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "awaiting_approval");
    let id = id_of(&body);
    let rid: RequestId = id.parse().unwrap();
    let tid: TenantId = t.id.parse().unwrap();
    let now = lethe::domain::deadline::now();
    let new_link = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            let secret = Secret::generate(TOKEN_PREFIX);
            let digest = secret.digest();
            let expires = now + chrono::Duration::days(7);
            let row = approvals::plan(tid, LinkTarget::Request(rid), &digest, now, expires);
            let link = row.id.clone();
            store
                .write(move |c| approvals::insert(c, &row))
                .await
                .unwrap();
            (link, digest, secret)
        }
    };
    let read = |app: &TestApp, digest: SecretDigest| {
        let store = app.store.clone();
        async move {
            store
                .read(move |c| requests::find_link_to_decide(c, &digest))
                .await
                .unwrap()
                .expect("the link is found")
        }
    };
    let decide = |app: &TestApp, read: (approvals::Link, _, Option<requests::Seen>)| {
        let store = app.store.clone();
        async move {
            let (link, tenant, seen) = read;
            let seen = seen.expect("a link for one request comes with it");
            store
                .write_self_contained(move |c| {
                    let actor = Actor::new(ActorKind::PrivacyContact, format!("link:{}", link.id));
                    let change = requests::Change {
                        event: Event::Approve,
                        actor: &actor,
                        detail: None,
                        decision: None,
                    };
                    requests::decide_if_unmoved(
                        c,
                        &seen,
                        &tenant,
                        &link.id,
                        change,
                        &WorkflowPolicy::default(),
                        now,
                    )
                })
                .await
                .unwrap()
        }
    };
    let unused = |link: &str| format!("approval_links WHERE id = '{link}' AND used_at IS NULL");
    let calls = format!("target_calls WHERE request_id = '{id}'");

    // The request moved between the read and the decision.
    let (first, first_digest, _) = new_link(&app).await;
    let stale = read(&app, first_digest.clone()).await;
    app.store
        .write(move |c| {
            requests::note(c, tid, rid, "in_between", &Actor::system("test"), None, now)
        })
        .await
        .unwrap();
    assert!(
        !decide(&app, stale).await,
        "written on a request that moved"
    );
    assert_eq!(app.count(&unused(&first)).await, 1, "the link was used");
    assert_eq!(app.count(&calls).await, 0);

    // A new link voided the one read.
    let stale = read(&app, first_digest).await;
    let (second, second_digest, second_secret) = new_link(&app).await;
    assert!(!decide(&app, stale).await, "written with a voided link");
    assert_eq!(app.count(&calls).await, 0);
    let r = app.get(&t, &format!("/v1/erasure-requests/{id}")).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["state"],
        "awaiting_approval"
    );

    // Unmoved: one write uses the link and starts the erasure.
    let fresh = read(&app, second_digest.clone()).await;
    let again = read(&app, second_digest).await;
    assert!(decide(&app, fresh).await);
    assert_eq!(app.count(&unused(&second)).await, 0, "the link is used up");
    let r = app.get(&t, &format!("/v1/erasure-requests/{id}")).await;
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "erasing");
    assert_eq!(
        app.count(&format!("{calls} AND status = 'pending' AND attempts = 0"))
            .await,
        2
    );
    let mut called: Vec<String> = app
        .store
        .read(move |conn| jobs::for_request(conn, rid))
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "call_target")
        .map(|j| {
            let p: Value = serde_json::from_str(&j.payload).unwrap();
            p["target_id"].as_str().unwrap().to_owned()
        })
        .collect();
    called.sort();
    assert_eq!(called, targets, "one call job per target");
    assert!(!job_kinds(&app, &id)
        .await
        .contains(&"start_erasure".to_owned()));

    // The same decision again, as read before it: nothing.
    assert!(!decide(&app, again).await);
    assert_eq!(app.count(&calls).await, 2);
    // And the page says the link is used.
    let page = reqwest::Client::new()
        .post(app.url(&format!("/approvals/{}", second_secret.expose())))
        .form(&[("action", "approve_all")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    let verify = app.lethe_bin(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A test's note: no detail, no job to finish.
fn note<'a>(
    what: &'a str,
    actor: &'a lethe::domain::audit::Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> lethe::store::requests::Note<'a> {
    lethe::store::requests::Note {
        what,
        actor,
        detail: None,
        now,
        finish: None,
    }
}
