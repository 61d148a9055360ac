//! Outages of what lethe depends on, under load: the database (its
//! connections cut and refused by a TCP proxy inside the test, never by
//! stopping the shared server).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::crash::test_db;
use crate::helpers::Db;
use crate::process::{tenant_with_key, Lethe};

const KEY: &str = "b3V0YWdlLXRlc3Qtc2VjcmV0LWtleS0wMTIzNDU2Nzg5YWI=";

/// A TCP proxy on loopback that can be severed (open connections cut, new
/// ones closed at once) and restored.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (up, conns) = (up.clone(), conns.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                            let _ = copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(task);
                }
            })
        };
        Proxy {
            port,
            up,
            conns,
            accept,
        }
    }

    /// Cut every open connection and refuse new ones.
    pub fn sever(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    status: u16,
    code: String,
    retry_after: bool,
    id: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_json_503_and_resumes_without_restart() {
    let tdb = test_db(Db::Postgres);
    let pg: url::Url = tdb.url.parse().unwrap();
    let proxy = Proxy::start(pg.port().unwrap_or(5432)).await;
    let mut via_proxy = pg.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let direct: Vec<(&str, String)> = vec![
        ("LETHE_DATABASE_URL", tdb.url.clone()),
        ("LETHE_SECRET_KEY", KEY.to_owned()),
    ];
    let (_, key) = tenant_with_key(&direct, &["--name", "Outage", "--approval-policy", "none"]);
    let env: Vec<(&str, String)> = vec![
        ("LETHE_DATABASE_URL", via_proxy.to_string()),
        ("LETHE_SECRET_KEY", KEY.to_owned()),
        (
            "LETHE_OUTBOX_DIR",
            tdb.dir.path().join("outbox").display().to_string(),
        ),
        ("LETHE_JOB_WORKERS", "2".to_owned()),
        ("LETHE_JOB_POLL_MS", "100".to_owned()),
        ("LETHE_DB_POOL_SIZE", "4".to_owned()),
        ("LETHE_HTTP_WORKERS", "2".to_owned()),
        ("LETHE_LOG", "warn".to_owned()),
    ];
    let log = tdb.dir.path().join("lethe.log");
    let lethe = Lethe::start(&env, 0, &log).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..4 {
        let (client, base, key, answers, stop) = (
            client.clone(),
            lethe.base.clone(),
            key.clone(),
            answers.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let r = client
                    .post(format!("{base}/v1/erasure-requests"))
                    .bearer_auth(&key)
                    .json(&json!({ "subject_id": format!("outage-{c}-{n}") }))
                    .send()
                    .await
                    .expect("lethe answers during the outage");
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key("retry-after");
                let v: Value = r.json().await.expect("every answer is JSON");
                answers.lock().unwrap().push(Answer {
                    at: t0.elapsed(),
                    status,
                    code: v["error"]["code"].as_str().unwrap_or("").to_owned(),
                    retry_after,
                    id: v["id"].as_str().map(str::to_owned),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let ready = |client: reqwest::Client, base: String| async move {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ready(client.clone(), lethe.base.clone()).await, 200);
    let cut_at = t0.elapsed();
    proxy.sever();
    // Readiness turns false.
    let started = Instant::now();
    while ready(client.clone(), lethe.base.clone()).await != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "/readyz stays 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let not_ready_after_ms = started.elapsed().as_millis();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let restored = Instant::now();
    let restored_at = t0.elapsed();
    proxy.restore();
    while ready(client.clone(), lethe.base.clone()).await != 200 {
        assert!(
            restored.elapsed() < Duration::from_secs(20),
            "/readyz did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_again_ms = restored.elapsed().as_millis();
    // Keep the load on until submissions succeed again.
    loop {
        let ok_after = answers
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.at > restored_at && a.status == 201);
        if ok_after {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(20),
            "submissions did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_201_after_ms = answers
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.at > restored_at && a.status == 201)
        .map(|a| (a.at - restored_at).as_millis())
        .min()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    // During the outage: only 503 database_unavailable with Retry-After.
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 201).collect();
    assert!(!failed.is_empty(), "the outage was felt");
    for a in &failed {
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.code, "database_unavailable", "{a:?}");
        assert!(a.retry_after, "{a:?}");
    }
    // Every acknowledged submission is there, once.
    let acked: Vec<&String> = answers.iter().filter_map(|a| a.id.as_ref()).collect();
    for id in &acked {
        let r = client
            .get(format!("{}/v1/erasure-requests/{id}", lethe.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged request {id} lost");
    }
    // Nothing panicked, and it was the same process throughout.
    assert!(!lethe.logs().contains("panicked"), "{}", lethe.logs());
    let mut lethe = lethe;
    assert!(lethe.child.try_wait().unwrap().is_none(), "lethe exited");
    println!(
        "RELIABILITY db_outage backend=Postgres requests={} acknowledged={} answered_503={} other_errors=0 lost=0 outage_ms={} readyz_false_after_ms={not_ready_after_ms} readyz_true_after_restore_ms={ready_again_ms} first_201_after_restore_ms={first_201_after_ms} restarts=0",
        answers.len(),
        acked.len(),
        failed.len(),
        (restored_at - cut_at).as_millis(),
    );
}
