//! The real binary, as an operator runs it: a full workflow leaves no
//! personal data or secret in its logs, and it stops cleanly on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The approval path in an .eml file (quoted-printable soft breaks undone).
fn approval_path_in(eml: &str) -> Option<String> {
    let joined = eml.replace("=\r\n", "").replace("=\n", "");
    let start = joined.find("/approvals/ap_")?;
    let token: String = joined[start + "/approvals/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    Some(format!("/approvals/{token}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_workflow_logs_no_personal_data_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_lethe");
    let env = [
        (
            "LETHE_DATABASE_URL",
            format!("sqlite://{}/l.db", dir.path().display()),
        ),
        (
            "LETHE_OUTBOX_DIR",
            format!("{}/outbox", dir.path().display()),
        ),
        ("LETHE_LOG", "debug".to_owned()),
        ("LETHE_LOG_FORMAT", "json".to_owned()),
        ("LETHE_JOB_POLL_MS", "50".to_owned()),
    ];
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .envs(env.clone())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (tenant, _) = run(&[
        "tenant",
        "create",
        "--name",
        "Acme",
        "--contact-email",
        "dpo-secret@acme.example",
        "--notify-subject",
    ]);
    let (key, _) = run(&["api-key", "create", "--tenant", tenant.trim()]);
    let port = crate::mail::free_port();
    let mut child = Command::new(bin)
        .arg("serve")
        .envs(env.clone())
        .env("LETHE_BIND", format!("127.0.0.1:{port}"))
        .env("LETHE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "lethe did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r: Value = client
        .post(format!("{base}/v1/erasure-requests"))
        .bearer_auth(key.trim())
        .json(&json!({ "subject_id": "jane-doe-4711", "subject_email": "jane.doe@example.org", "reason": "Jane Doe wants out" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["id"].as_str().unwrap().to_owned();
    client
        .get(format!("{base}/v1/subjects/jane-doe-4711"))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    // The workers send the approval email to the outbox folder.
    let path = loop {
        let found = std::fs::read_dir(dir.path().join("outbox"))
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find_map(|eml| approval_path_in(&eml));
        if let Some(p) = found {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no approval email in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = path.trim_start_matches("/approvals/").to_owned();
    assert_eq!(
        client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = client
        .post(format!("{base}{path}"))
        .form(&[("action", "approve_all")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Guessing tokens is logged (without the guess).
    client
        .get(format!("{base}/approvals/ap_guess-guess-guess"))
        .send()
        .await
        .unwrap();
    let r = client
        .post(format!("{base}/v1/erasure-requests/{id}/complete"))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // SIGTERM: a clean, prompt exit.
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "lethe did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();

    assert!(logs.contains("request"), "logs were captured: {logs}");
    assert!(
        logs.contains("unknown approval token"),
        "token guessing is logged"
    );
    for secret in [
        "jane-doe-4711",
        "jane.doe@example.org",
        "Jane Doe",
        "dpo-secret@acme.example",
        &token,
        key.trim(),
    ] {
        assert!(!logs.contains(secret), "the logs contain {secret:?}");
    }
    // Every line is JSON.
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).expect("JSON log lines");
    }
}
