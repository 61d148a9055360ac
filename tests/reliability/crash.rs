//! Crash: `lethe serve` is killed with SIGKILL in the middle of a load of
//! submissions and approvals, then started again on the same database.
//! Every acknowledged submission and approval is still there (in that state
//! or later), every due job still runs, and no target hears of a request
//! that was never approved.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::Db;
use crate::mail::{approval_path, MailCatcher};
use crate::process::{cli, tenant_with_key, Lethe};
use crate::targets_server::{reply, FakeTarget};

const REQUESTS: usize = 120;
const CLIENTS: usize = 6;
const CONTACT: &str = "dpo@crash.example";
const KEY: &str = "Y3Jhc2gtdGVzdC1zZWNyZXQta2V5LTAxMjM0NTY3ODlhYg==";

/// A fresh database for the run: a SQLite file, or a new PostgreSQL database
/// (dropped by the returned guard).
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            use diesel::{Connection, PgConnection, RunQueryDsl};
            if let Ok(mut c) = PgConnection::establish(&crate::helpers::pg_admin_url()) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

pub fn test_db(db: Db) -> TestDb {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let dir = tempfile::tempdir().unwrap();
    match db {
        Db::Sqlite => TestDb {
            url: format!("sqlite://{}/lethe.db", dir.path().display()),
            dir,
            pg_name: None,
        },
        Db::Postgres => {
            let name = format!("lethe_test_{}", uuid::Uuid::new_v4().simple());
            let admin = crate::helpers::pg_admin_url();
            let mut c = PgConnection::establish(&admin).expect("PostgreSQL is required");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .unwrap();
            let mut u = url::Url::parse(&admin).unwrap();
            u.set_path(&name);
            TestDb {
                url: u.to_string(),
                dir,
                pg_name: Some(name),
            }
        }
    }
}

/// The approval emails to the contact (not the certificates of erasure).
pub async fn approval_emails(mail: &MailCatcher, to: &str) -> Vec<Value> {
    mail.to(to)
        .await
        .into_iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("/approvals/"))
        })
        .collect()
}

/// The subject index named in an approval email.
fn subject_index(m: &Value, prefix: &str) -> usize {
    let text = m["text"].as_str().unwrap();
    text.split(prefix)
        .nth(1)
        .unwrap_or_else(|| panic!("no {prefix} in {m}"))
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Default)]
struct Tally {
    /// Subject index -> (request id, state) of acknowledged submissions.
    submitted: Mutex<HashMap<usize, (String, String)>>,
    /// Subject indexes whose approval was acknowledged (200).
    approved: Mutex<HashSet<usize>>,
    /// Approvals whose answer was lost in the crash but that had committed
    /// (the retried link says "used").
    approved_unacknowledged: Mutex<HashSet<usize>>,
    /// Attempts that got no 2xx (connection refused or cut, 5xx).
    failed_submissions: AtomicUsize,
    failed_approvals: AtomicUsize,
}

async fn run(db: Db) {
    let tdb = test_db(db);
    let mail = Arc::new(MailCatcher::start().await);
    let target = FakeTarget::start(&[]).await;
    target.always(reply(200));
    let env: Vec<(&str, String)> = vec![
        ("LETHE_DATABASE_URL", tdb.url.clone()),
        ("LETHE_SECRET_KEY", KEY.to_owned()),
        ("LETHE_SMTP_URL", mail.smtp_url()),
        ("LETHE_JOB_WORKERS", "2".to_owned()),
        ("LETHE_JOB_POLL_MS", "50".to_owned()),
        ("LETHE_JOB_LEASE_SECS", "5".to_owned()),
        ("LETHE_SMTP_TIMEOUT_SECS", "5".to_owned()),
        ("LETHE_DB_POOL_SIZE", "4".to_owned()),
        ("LETHE_HTTP_WORKERS", "2".to_owned()),
        ("LETHE_LOG", "warn".to_owned()),
        // The approver is one client address making many page requests.
        ("LETHE_RATE_LIMIT_PER_MINUTE", "0".to_owned()),
    ];
    let (tenant, key) = tenant_with_key(&env, &["--name", "Crash EU", "--contact-email", CONTACT]);
    cli(
        &env,
        &[
            "target",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "warehouse",
            "--url",
            &target.url,
        ],
    );
    let log = tdb.dir.path().join("lethe.log");
    let lethe = Lethe::start(&env, 0, &log).await;
    let base = lethe.base.clone();
    let port = lethe.port;
    let tally = Arc::new(Tally::default());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Submitters: each retries its subject with the same Idempotency-Key
    // until it is acknowledged, as a platform would.
    let next = Arc::new(AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for _ in 0..CLIENTS {
        let (next, tally, client, base, key) = (
            next.clone(),
            tally.clone(),
            client.clone(),
            base.clone(),
            key.clone(),
        );
        submitters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= REQUESTS {
                    return;
                }
                let started = Instant::now();
                loop {
                    assert!(started.elapsed() < Duration::from_secs(60));
                    let r = client
                        .post(format!("{base}/v1/erasure-requests"))
                        .bearer_auth(&key)
                        .header("Idempotency-Key", format!("crash-{i}"))
                        .json(&json!({ "subject_id": format!("crash-user-{i}") }))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap();
                            tally.submitted.lock().unwrap().insert(
                                i,
                                (
                                    v["id"].as_str().unwrap().to_owned(),
                                    v["state"].as_str().unwrap_or("").to_owned(),
                                ),
                            );
                            break;
                        }
                        _ => {
                            tally.failed_submissions.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }

    // The privacy contact approves every even subject as its email arrives.
    let stop = Arc::new(AtomicBool::new(false));
    let approver = {
        let (tally, client, stop, mail) =
            (tally.clone(), client.clone(), stop.clone(), mail.clone());
        let base = base.clone();
        tokio::spawn(async move {
            let mut done: HashSet<String> = HashSet::new();
            let mut errored: HashSet<usize> = HashSet::new();
            while !stop.load(Ordering::SeqCst) {
                for m in approval_emails(&mail, CONTACT).await {
                    let id = m["id"].as_str().unwrap().to_owned();
                    if done.contains(&id) {
                        continue;
                    }
                    let i = subject_index(&m, "crash-user-");
                    if i % 2 == 1 {
                        done.insert(id);
                        continue;
                    }
                    let r = client
                        .post(format!("{base}{}", approval_path(&m)))
                        .form(&[("action", "approve_all")])
                        .send()
                        .await;
                    match r.map(|r| r.status().as_u16()) {
                        Ok(200) => {
                            tally.approved.lock().unwrap().insert(i);
                            done.insert(id);
                        }
                        Ok(410) if errored.contains(&i) => {
                            tally.approved_unacknowledged.lock().unwrap().insert(i);
                            done.insert(id);
                        }
                        Ok(410) => {
                            // A second email for the same request (a send
                            // repeated after the crash): its link was voided
                            // or already used.
                            done.insert(id);
                        }
                        _ => {
                            errored.insert(i);
                            tally.failed_approvals.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };

    // Kill mid-load: half the submissions acknowledged, approvals under way.
    let started = Instant::now();
    while tally.submitted.lock().unwrap().len() < REQUESTS / 3
        || tally.approved.lock().unwrap().len() < 3
    {
        assert!(started.elapsed() < Duration::from_secs(60), "load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_before = tally.submitted.lock().unwrap().len();
    let approved_before = tally.approved.lock().unwrap().len();
    let killed_at = Instant::now();
    lethe.kill9();
    let lethe = Lethe::start(&env, port, &log).await;
    let restarted_ms = killed_at.elapsed().as_millis();

    for s in submitters {
        s.await.unwrap();
    }
    let load_ms = started.elapsed().as_millis();
    // Wait until every even subject's approval is settled.
    let started = Instant::now();
    loop {
        let settled = tally.approved.lock().unwrap().len()
            + tally.approved_unacknowledged.lock().unwrap().len();
        if settled == REQUESTS / 2 {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let approved = tally.approved.lock().unwrap().clone();
            let unacked = tally.approved_unacknowledged.lock().unwrap().clone();
            let msgs = approval_emails(&mail, CONTACT).await;
            let submitted = tally.submitted.lock().unwrap().clone();
            for i in (0..REQUESTS).step_by(2) {
                if !approved.contains(&i) && !unacked.contains(&i) {
                    let n = msgs
                        .iter()
                        .filter(|m| subject_index(m, "crash-user-") == i)
                        .count();
                    let id = &submitted[&i].0;
                    let state: Value = client
                        .get(format!("{}/v1/erasure-requests/{id}", lethe.base))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    eprintln!("subject {i}: {n} emails, state {}", state["state"]);
                    if db == Db::Postgres {
                        let out = std::process::Command::new("psql")
                            .arg(&tdb.url)
                            .arg("-c")
                            .arg(format!("select kind, attempts, run_at, lease_until, finished_at, last_error from jobs where request_id='{id}' order by created_at"))
                            .arg("-c")
                            .arg(format!("select created_at, used_at, voided_at from approval_links where request_id='{id}' order by created_at"))
                            .output()
                            .unwrap();
                        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
                    }
                }
            }
            panic!("approvals stalled at {settled}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    approver.await.unwrap();

    // Every approved request is erased, by the restarted process.
    let get = |id: String| {
        let (client, base, key) = (client.clone(), lethe.base.clone(), key.clone());
        async move {
            let r = client
                .get(format!("{base}/v1/erasure-requests/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "acknowledged request {id} is lost");
            r.json::<Value>().await.unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let submitted = tally.submitted.lock().unwrap().clone();
    assert_eq!(submitted.len(), REQUESTS);
    let started = Instant::now();
    loop {
        let mut pending = 0;
        for (i, (id, _)) in &submitted {
            let state = get(id.clone()).await;
            if i % 2 == 0 {
                if state != "erased" {
                    pending += 1;
                }
            } else {
                assert_eq!(state, "awaiting_approval", "subject {i}");
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{pending} approved requests not erased"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each submission was acknowledged as awaiting approval (a retry
    // answered after the email went out may already show a later state).
    for (i, (_, state)) in &submitted {
        assert!(
            ["awaiting_approval", "erasing", "erased"].contains(&state.as_str()),
            "subject {i}: {state}"
        );
    }
    // One request per subject: retries after the crash were absorbed by the
    // Idempotency-Key.
    let list: Value = client
        .get(format!("{}/v1/erasure-requests?limit=500", lethe.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), REQUESTS);
    // Every approval email went out (at least once). Those of requests left
    // awaiting approval may still be on their way: a job the killed process
    // had claimed runs again once its lease runs out.
    let started = Instant::now();
    let emails = loop {
        let msgs = approval_emails(&mail, CONTACT).await;
        let mut emails: HashMap<usize, usize> = HashMap::new();
        for m in &msgs {
            *emails.entry(subject_index(m, "crash-user-")).or_default() += 1;
        }
        if emails.len() >= REQUESTS || started.elapsed() > Duration::from_secs(60) {
            break emails;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(emails.len(), REQUESTS, "every approval email was sent");
    let duplicate_emails: usize = emails.values().map(|n| n - 1).sum();
    // Targets heard only of approved requests, each at least once.
    let approved_ids: HashSet<String> = submitted
        .iter()
        .filter(|(i, _)| *i % 2 == 0)
        .map(|(_, (id, _))| id.clone())
        .collect();
    let mut calls: HashMap<String, usize> = HashMap::new();
    for r in target.received() {
        let key = r.header("idempotency-key").unwrap();
        let request = key.split(':').next().unwrap().to_owned();
        assert!(
            approved_ids.contains(&request),
            "a target was called for a request never approved"
        );
        *calls.entry(request).or_default() += 1;
    }
    assert_eq!(calls.len(), approved_ids.len());
    let duplicate_calls: usize = calls.values().map(|n| n - 1).sum();
    // Only jobs in flight on the killed process repeat (2 workers), or, on a
    // starved machine, a job that outlived its lease; a repeated call carries
    // the same Idempotency-Key (request:target), so the target applies it once.
    assert!(duplicate_emails <= 4, "{duplicate_emails} emails repeated");
    assert!(
        duplicate_calls <= 4,
        "{duplicate_calls} target calls repeated"
    );
    let failed_submissions = tally.failed_submissions.load(Ordering::SeqCst);
    let failed_approvals = tally.failed_approvals.load(Ordering::SeqCst);
    println!(
        "RELIABILITY crash backend={db:?} submissions={REQUESTS} acknowledged_before_kill={acked_before} approvals_acknowledged_before_kill={approved_before} \
         failed_attempts_during_crash={} approvals_acknowledged={} approvals_committed_unacknowledged={} lost=0 \
         duplicate_requests=0 duplicate_emails={duplicate_emails} duplicate_target_calls={duplicate_calls} restart_ms={restarted_ms} load_ms={load_ms}",
        failed_submissions + failed_approvals,
        tally.approved.lock().unwrap().len(),
        tally.approved_unacknowledged.lock().unwrap().len(),
    );
    drop(lethe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_under_load() {
    run(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill_under_load() {
    run(Db::Postgres).await
}
