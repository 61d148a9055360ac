//! Real peers for the approval workflow: a maildev mail catcher (a real SMTP
//! server with an API to read what it caught) and headless Chromium.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn maildev_bin() -> String {
    if let Ok(p) = std::env::var("LETHE_TEST_MAILDEV") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cached = format!("{home}/.cache/lethe-tools/node_modules/.bin/maildev");
    if std::path::Path::new(&cached).exists() {
        return cached;
    }
    "maildev".into()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A maildev process on loopback, killed when dropped.
pub struct MailCatcher {
    child: Child,
    pub smtp_port: u16,
    web_port: u16,
    client: reqwest::Client,
}

impl Drop for MailCatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MailCatcher {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub async fn start_on(smtp_port: u16) -> Self {
        Self::start_with(Some(smtp_port)).await
    }

    /// A free port can be taken by another test between our probe and
    /// maildev's bind; maildev then exits. Try again on fresh ports (the
    /// caller's SMTP port, if it gave one, stays).
    async fn start_with(smtp_port: Option<u16>) -> Self {
        for _ in 0..3 {
            let smtp = smtp_port.unwrap_or_else(free_port);
            if let Some(catcher) = Self::try_start(smtp, free_port()).await {
                return catcher;
            }
        }
        panic!("maildev exited three times before it listened (ports taken?)");
    }

    async fn try_start(smtp_port: u16, web_port: u16) -> Option<Self> {
        let child = Command::new(maildev_bin())
            .args([
                "--smtp",
                &smtp_port.to_string(),
                "--web",
                &web_port.to_string(),
                "--ip",
                "127.0.0.1",
                "--web-ip",
                "127.0.0.1",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "maildev (the mail catcher these tests use) did not start: {e}. \
                     Install it with scripts/test, or set LETHE_TEST_MAILDEV."
                )
            });
        let mut catcher = Self {
            child,
            smtp_port,
            web_port,
            client: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let web = catcher.client.get(catcher.api("/email")).send().await;
            let smtp = std::net::TcpStream::connect(("127.0.0.1", smtp_port));
            if web.is_ok() && smtp.is_ok() {
                return Some(catcher);
            }
            if catcher.child.try_wait().ok().flatten().is_some() {
                return None; // exited: a port was taken
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "maildev did not come up in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }

    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    pub async fn messages(&self) -> Vec<Value> {
        self.client
            .get(self.api("/email"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Messages to one recipient.
    pub async fn to(&self, address: &str) -> Vec<Value> {
        self.messages()
            .await
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .map(|to| to.iter().any(|t| t["address"] == address))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Messages to one recipient, once at least `n` have arrived (maildev
    /// stores a message a moment after the SMTP conversation ends).
    pub async fn wait_for(&self, address: &str, n: usize) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.to(address).await;
            if got.len() >= n || started.elapsed() > Duration::from_secs(15) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The raw message as received over SMTP.
    pub async fn source(&self, id: &str) -> String {
        self.client
            .get(self.api(&format!("/email/{id}/source")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The approval path (`/approvals/<token>`) in an email's text part.
pub fn approval_path(message: &Value) -> String {
    let text = message["text"].as_str().expect("a text part");
    let start = text.find("/approvals/").expect("a link in the text");
    let end = text[start..]
        .find(|c: char| c.is_whitespace())
        .map(|e| start + e)
        .unwrap_or(text.len());
    text[start..end].to_owned()
}

/// Drive headless Chromium (Debian's package) through `steps`.
pub fn with_browser<T>(steps: impl FnOnce(&headless_chrome::Browser) -> T) -> T {
    use headless_chrome::{Browser, LaunchOptions};
    let path = std::env::var("LETHE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let args: Vec<&std::ffi::OsStr> = [
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(path.clone().into()))
            .headless(true)
            .sandbox(false)
            .window_size(Some((1000, 1300)))
            .args(args)
            .idle_browser_timeout(Duration::from_secs(120))
            .build()
            .expect("launch options"),
    )
    .unwrap_or_else(|e| {
        panic!("headless Chromium at {path} did not start: {e}. Install Debian's chromium.")
    });
    steps(&browser)
}

/// Save a screenshot of the tab when LETHE_SCREENSHOTS names a folder.
pub fn screenshot(tab: &headless_chrome::Tab, name: &str) {
    if let Ok(dir) = std::env::var("LETHE_SCREENSHOTS") {
        use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("screenshot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
    }
}
