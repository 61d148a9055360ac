//! The real `lethe serve` binary as a child process, for tests that kill it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Lethe {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Lethe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lethe {
    /// Start `lethe serve` on `port` (0: a free one) with `env`, logging to
    /// `log`, and wait until it answers `/healthz`.
    pub async fn start(env: &[(&str, String)], port: u16, log: &Path) -> Lethe {
        let port = if port == 0 {
            crate::mail::free_port()
        } else {
            port
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lethe"))
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LETHE_BIND", format!("127.0.0.1:{port}"))
            .env("LETHE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = reqwest::Client::new();
        while client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "lethe did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Lethe {
            child,
            base,
            port,
            log: log.to_owned(),
        }
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill9(mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Run the `lethe` CLI with `env`; its trimmed stdout.
pub fn cli(env: &[(&str, String)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Migrate the database, create a tenant (`tenant create` with
/// `tenant_args`) and an API key for it: the tenant's id and the key.
pub fn tenant_with_key(env: &[(&str, String)], tenant_args: &[&str]) -> (String, String) {
    cli(env, &["migrate"]);
    let tenant = cli(env, &[&["tenant", "create"], tenant_args].concat());
    let key = cli(env, &["api-key", "create", "--tenant", &tenant]);
    (tenant, key)
}
