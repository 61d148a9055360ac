//! Several `lethe serve` processes on one PostgreSQL database: every email and
//! every target call happens once, and killing a replica mid-run loses nothing.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::mail::{approval_path, free_port, MailCatcher};
use crate::targets_server::{reply, FakeTarget};

const KEY: &str = "cmVwbGljYS10ZXN0LXNlY3JldC1rZXktMDEyMzQ1Njc4OQ==";
const REQUESTS: usize = 120;

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(db: &str, smtp: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LETHE_DATABASE_URL", db.to_owned()),
        ("LETHE_SECRET_KEY", KEY.to_owned()),
        ("LETHE_SMTP_URL", smtp.to_owned()),
        ("LETHE_JOB_WORKERS", "2".to_owned()),
        ("LETHE_JOB_POLL_MS", "50".to_owned()),
        ("LETHE_JOB_LEASE_SECS", "3".to_owned()),
        ("LETHE_SMTP_TIMEOUT_SECS", "2".to_owned()),
        ("LETHE_DB_POOL_SIZE", "4".to_owned()),
        ("LETHE_HTTP_WORKERS", "1".to_owned()),
        ("LETHE_LOG", "warn".to_owned()),
    ]
}

async fn start(db: &str, smtp: &str) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("serve")
        .envs(env(db, smtp))
        .env("LETHE_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "replica did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica { child, base }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgres_do_everything_once_and_survive_a_kill() {
    let name = format!("lethe_test_{}", uuid::Uuid::new_v4().simple());
    let admin_url = crate::helpers::pg_admin_url();
    let mut admin =
        PgConnection::establish(&admin_url).expect("PostgreSQL is required for this test");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap();
    let mut u = url::Url::parse(&admin_url).unwrap();
    u.set_path(&name);
    let db = u.to_string();

    let mail = MailCatcher::start().await;
    let target = FakeTarget::start(&[]).await;
    target.always(reply(200));
    // Three replicas start together: migrations run once, under the lock.
    let smtp = mail.smtp_url();
    let (a, b, c) = tokio::join!(start(&db, &smtp), start(&db, &smtp), start(&db, &smtp));
    let mut replicas = vec![a, b, c];
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lethe"))
            .args(args)
            .envs(env(&db, &mail.smtp_url()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let tenant = cli(&[
        "tenant",
        "create",
        "--name",
        "Acme",
        "--contact-email",
        "dpo@acme.example",
    ]);
    let key = cli(&["api-key", "create", "--tenant", &tenant]);
    cli(&[
        "target",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "warehouse",
        "--url",
        &target.url,
    ]);

    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..REQUESTS {
        let base = &replicas[i % 3].base;
        let r: Value = client
            .post(format!("{base}/v1/erasure-requests"))
            .bearer_auth(&key)
            .json(&json!({ "subject_id": format!("replica-user-{i}") }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let msgs = mail.wait_for("dpo@acme.example", REQUESTS).await;
    assert_eq!(msgs.len(), REQUESTS, "one approval email per request");
    let mut per_subject: HashMap<String, usize> = HashMap::new();
    for m in &msgs {
        let text = m["text"].as_str().unwrap();
        let subject = text
            .split("replica-user-")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        *per_subject.entry(subject).or_default() += 1;
    }
    assert!(
        per_subject.values().all(|n| *n == 1),
        "no approval email was sent twice"
    );

    // Approve through all replicas; kill one with SIGKILL halfway.
    for (n, m) in msgs.iter().enumerate() {
        if n == REQUESTS / 2 {
            let victim = replicas.remove(0);
            Command::new("kill")
                .args(["-KILL", &victim.child.id().to_string()])
                .status()
                .unwrap();
            drop(victim);
        }
        let base = &replicas[n % replicas.len()].base;
        let r = client
            .post(format!("{base}{}", approval_path(m)))
            .form(&[("action", "approve_all")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Everything is erased in the end, on the surviving replicas.
    let started = Instant::now();
    loop {
        let list: Value = client
            .get(format!(
                "{}/v1/erasure-requests?status=erased&limit=500",
                replicas[0].base
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list["data"].as_array().unwrap().len() == REQUESTS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not everything was erased: {} of {REQUESTS}",
            list["data"].as_array().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every request reached the target; a call repeated after the kill (a job
    // in flight on the dead replica) carries the same idempotency key.
    let mut calls: HashMap<String, usize> = HashMap::new();
    for r in target.received() {
        *calls
            .entry(r.header("idempotency-key").unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(calls.len(), REQUESTS, "each request's target was called");
    let repeated: usize = calls.values().map(|n| n - 1).sum();
    assert!(
        repeated <= 2,
        "at most the killed replica's in-flight calls repeat ({repeated})"
    );
    drop(replicas);
    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin);
}
