//! An idle server stays idle: its job workers wait for work (a write that may
//! have queued some, or the poll interval) instead of waking each other.
//! Until this test, each worker's empty claim (a write) woke every idle
//! worker to claim again, for ever: an idle `lethe serve` kept a core busy.

use std::path::Path;
use std::time::Duration;

use crate::crash::test_db;
use crate::helpers::Db;
use crate::process::{cli, Lethe};

const KEY: &str = "aWRsZS10ZXN0LXNlY3JldC1rZXktMDEyMzQ1Njc4OWFiY2Q=";

/// User + system CPU time of a process so far, from /proc (Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = &stat[stat.rfind(") ").unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

async fn idle_server_stays_idle(db: Db) {
    let tdb = test_db(db);
    let env: Vec<(&str, String)> = vec![
        ("LETHE_DATABASE_URL", tdb.url.clone()),
        ("LETHE_SECRET_KEY", KEY.to_owned()),
        ("LETHE_JOB_WORKERS", "128".to_owned()),
        ("LETHE_LOG", "warn".to_owned()),
    ];
    cli(&env, &["migrate"]);
    let log = tdb.dir.path().join("idle.log");
    let lethe = Lethe::start(&env, 0, Path::new(&log)).await;
    // Let start-up work (migrations check, first polls) pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = lethe.child.id();
    let before = cpu_time(pid);
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    let used = cpu_time(pid) - before;
    println!(
        "RELIABILITY idle {db:?}: {} ms of CPU in {} s",
        used.as_millis(),
        window.as_secs()
    );
    // A dispatcher polling once a second costs a few ms; spinning costs seconds.
    assert!(
        used < window / 10,
        "an idle lethe serve used {used:?} of CPU in {window:?}: its job workers keep each other busy"
    );
}

#[tokio::test]
async fn idle_server_stays_idle_sqlite() {
    idle_server_stays_idle(Db::Sqlite).await;
}

#[tokio::test]
async fn idle_server_stays_idle_postgres() {
    idle_server_stays_idle(Db::Postgres).await;
}
