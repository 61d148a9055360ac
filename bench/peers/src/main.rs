//! The whole-pipeline benchmark's peers, which `bench/pipeline` starts next
//! to lethe: an SMTP sink that catches lethe's mail and hands every approval
//! link on to the driver, an erasure target that checks lethe's signature
//! and confirms, and the driver that submits and approves.
//!
//! In a deployment they run on other machines; in the benchmark they share
//! the two cores with lethe and the database, so they are written to cost as
//! little as they can: one thread each, one task per connection. A crate of
//! its own in lethe's workspace: `cargo build --release -p bench-peers`.
//!
//!   bench-peers smtp-sink --port P --links FILE --stats FILE [--max-seconds S]
//!   bench-peers target --port P --secret S --stats FILE [--max-seconds S]
//!   bench-peers drive --port P --key K --run R --n N --links FILE --stats FILE ...
//!
//! The sink and the target listen on 127.0.0.1 only; all three write their
//! counters as JSON to --stats every second and on exit, and stop on
//! SIGTERM, SIGINT or after --max-seconds (the driver also when its work is
//! done). The driver (`drive.rs`) submits the requests and approves each as
//! its link arrives.

use std::collections::{BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use clap::{Parser, Subcommand};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

mod drive;

const LOOPBACK: &str = "127.0.0.1";
/// The largest message the sink takes (the size its EHLO announces).
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// The largest request head and body a target takes.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// How far a signature's timestamp may be from the target's clock.
const SIGNATURE_TOLERANCE_S: u64 = 300;

#[derive(Parser)]
#[command(about = "The whole-pipeline benchmark's SMTP sink, erasure target and driver")]
struct Cli {
    #[command(subcommand)]
    peer: Peer,
}

#[derive(Subcommand)]
enum Peer {
    /// A real SMTP server (EHLO/HELO, MAIL, RCPT, DATA with dot
    /// transparency, RSET, NOOP, QUIT) that keeps nothing but counts; every
    /// approval link it finds goes to --links, one path a line, at once.
    SmtpSink {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        links: PathBuf,
        #[arg(long)]
        stats: PathBuf,
        #[arg(long, default_value_t = 7200.0)]
        max_seconds: f64,
    },
    /// An erasure target as lethe's protocol expects one: it checks the
    /// `Lethe-Signature` (HMAC-SHA256 of "t.body" with the target's secret,
    /// timestamp within 300 s) and the `Idempotency-Key`, erases (here:
    /// notes the request id) and answers 200; a bad signature gets 401.
    Target {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        secret: String,
        #[arg(long)]
        stats: PathBuf,
        #[arg(long, default_value_t = 7200.0)]
        max_seconds: f64,
    },
    /// The platform and the privacy contact: submit --n requests (subject
    /// `pipe-RUN-i`, Idempotency-Key the same) on --submit-concurrency
    /// keep-alive connections and POST the approval form (`approve_all`)
    /// for each link the sink appends to --links after --links-offset, on
    /// --approve-concurrency connections, until --n links were used.
    Drive(drive::DriveArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.peer {
            Peer::SmtpSink {
                port,
                links,
                stats,
                max_seconds,
            } => {
                let links = OpenOptions::new().create(true).append(true).open(links)?;
                let sink = Arc::new(Sink {
                    links: Mutex::new(links),
                    counts: SinkCounts::default(),
                });
                let listener = TcpListener::bind((LOOPBACK, port)).await?;
                let s = sink.clone();
                serve(listener, max_seconds, &stats, move || s.counts.to_json(), {
                    move |stream| {
                        let sink = sink.clone();
                        async move {
                            let _ = sink.session(stream).await;
                        }
                    }
                })
                .await
            }
            Peer::Target {
                port,
                secret,
                stats,
                max_seconds,
            } => {
                let target = Arc::new(Target {
                    secret: secret.into_bytes(),
                    seen: Mutex::new(HashSet::new()),
                    counts: TargetCounts::default(),
                });
                let listener = TcpListener::bind((LOOPBACK, port)).await?;
                let t = target.clone();
                serve(listener, max_seconds, &stats, move || t.counts.to_json(), {
                    move |stream| {
                        let target = target.clone();
                        async move {
                            let _ = target.session(stream).await;
                        }
                    }
                })
                .await
            }
            Peer::Drive(args) => drive::drive(args).await,
        }
    })
}

/// Accept connections, each handled on its own task, until a signal or
/// `max_seconds`; write the counters every second and once more at the end.
async fn serve<C, H, F>(
    listener: TcpListener,
    max_seconds: f64,
    stats: &Path,
    counts: C,
    handle: H,
) -> anyhow::Result<()>
where
    C: Fn() -> Value,
    H: Fn(TcpStream) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(max_seconds.max(0.0));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(handle(stream));
                }
            }
            _ = tick.tick() => write_json(stats, &counts())?,
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    write_json(stats, &counts())?;
    Ok(())
}

/// Replace `path` with `value` at once (a reader never sees half a file).
fn write_json(path: &Path, value: &Value) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, serde_json::to_vec(value)?)?;
    std::fs::rename(&tmp, path)
}

// ---------------------------------------------------------------- SMTP sink

#[derive(Default)]
struct SinkCounts {
    connections: AtomicU64,
    messages: AtomicU64,
    approval_links: AtomicU64,
    bytes: AtomicU64,
    other: AtomicU64,
}

impl SinkCounts {
    fn to_json(&self) -> Value {
        json!({
            "connections": self.connections.load(Relaxed),
            "messages": self.messages.load(Relaxed),
            "approval_links": self.approval_links.load(Relaxed),
            "bytes": self.bytes.load(Relaxed),
            "other": self.other.load(Relaxed),
        })
    }
}

struct Sink {
    links: Mutex<File>,
    counts: SinkCounts,
}

impl Sink {
    async fn session(&self, stream: TcpStream) -> io::Result<()> {
        self.counts.connections.fetch_add(1, Relaxed);
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::with_capacity(64 * 1024, r);
        w.write_all(b"220 127.0.0.1 ESMTP bench sink\r\n").await?;
        let mut line = Vec::with_capacity(1024);
        let mut message = Vec::with_capacity(16 * 1024);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            let verb = line.get(..4).map(|v| v.to_ascii_uppercase());
            let reply: &[u8] = match verb.as_deref() {
                Some(b"EHLO") => {
                    b"250-127.0.0.1\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
                }
                Some(b"HELO") => b"250 127.0.0.1\r\n",
                Some(b"MAIL" | b"RCPT" | b"RSET" | b"NOOP") => b"250 OK\r\n",
                Some(b"QUIT") => {
                    w.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                Some(b"DATA") => {
                    w.write_all(b"354 go ahead\r\n").await?;
                    message.clear();
                    let mut too_big = false;
                    loop {
                        line.clear();
                        if r.read_until(b'\n', &mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == b".\r\n" {
                            break;
                        }
                        // Dot transparency (RFC 5321 4.5.2).
                        let l = if line.starts_with(b"..") {
                            &line[1..]
                        } else {
                            &line[..]
                        };
                        if message.len() + l.len() > MAX_MESSAGE {
                            too_big = true;
                        } else {
                            message.extend_from_slice(l);
                        }
                    }
                    if too_big {
                        b"552 message too big\r\n"
                    } else {
                        self.take(&message)?;
                        b"250 OK queued\r\n"
                    }
                }
                _ => b"502 not implemented\r\n",
            };
            w.write_all(reply).await?;
        }
    }

    /// Count one message and hand its approval links on.
    fn take(&self, message: &[u8]) -> io::Result<()> {
        self.counts.messages.fetch_add(1, Relaxed);
        self.counts.bytes.fetch_add(message.len() as u64, Relaxed);
        let links = approval_links(message);
        if links.is_empty() {
            self.counts.other.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.counts
            .approval_links
            .fetch_add(links.len() as u64, Relaxed);
        let mut out = Vec::with_capacity(links.len() * 64);
        for token in &links {
            out.extend_from_slice(b"/approvals/");
            out.extend_from_slice(token.as_bytes());
            out.push(b'\n');
        }
        // One write per message: the driver reads lines as they land.
        let mut f = self.links.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&out)
    }
}

const LINK_PREFIX: &[u8] = b"/approvals/";
const TOKEN_PREFIX: &[u8] = b"ap_";
/// An approval token is `ap_` and at least this many URL-safe characters.
const MIN_TOKEN_TAIL: usize = 20;

/// The approval tokens (`ap_...`) in one message, each once, in order: read
/// from the raw text with quoted-printable soft line breaks undone, else
/// from its base64 parts decoded.
fn approval_links(raw: &[u8]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    tokens_in(&undo_soft_breaks(raw), &mut found);
    if found.is_empty() && find(raw, LINK_PREFIX).is_none() {
        for part in base64_parts(raw) {
            tokens_in(&part, &mut found);
        }
    }
    found
}

/// `text` without quoted-printable soft line breaks (`=` at a line's end).
fn undo_soft_breaks(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'=' {
            if text[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if text[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

fn tokens_in(text: &[u8], found: &mut BTreeSet<String>) {
    let mut at = 0;
    while let Some(i) = find(&text[at..], LINK_PREFIX) {
        let start = at + i + LINK_PREFIX.len();
        let len = text[start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
            .count();
        let token = &text[start..start + len];
        if token.starts_with(TOKEN_PREFIX) && token.len() >= TOKEN_PREFIX.len() + MIN_TOKEN_TAIL {
            // ASCII by construction.
            found.insert(String::from_utf8_lossy(token).into_owned());
        }
        at = start + len;
    }
}

/// The decoded bodies of the message's base64 parts.
fn base64_parts(raw: &[u8]) -> Vec<Vec<u8>> {
    let lower = raw.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&lower[at..], b"content-transfer-encoding: base64") {
        let head_end = at + i;
        let Some(blank) = find(&raw[head_end..], b"\r\n\r\n") else {
            break;
        };
        let body_start = head_end + blank + 4;
        let body_end = find(&raw[body_start..], b"\r\n--").map_or(raw.len(), |e| body_start + e);
        let compact: Vec<u8> = raw[body_start..body_end]
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(compact) {
            parts.push(decoded);
        }
        at = body_end;
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------- erasure target

#[derive(Default)]
struct TargetCounts {
    calls: AtomicU64,
    confirmed: AtomicU64,
    bad_signature: AtomicU64,
    distinct_requests: AtomicU64,
    repeats: AtomicU64,
}

impl TargetCounts {
    fn to_json(&self) -> Value {
        json!({
            "calls": self.calls.load(Relaxed),
            "confirmed": self.confirmed.load(Relaxed),
            "bad_signature": self.bad_signature.load(Relaxed),
            "distinct_requests": self.distinct_requests.load(Relaxed),
            "repeats": self.repeats.load(Relaxed),
        })
    }
}

struct Target {
    secret: Vec<u8>,
    seen: Mutex<HashSet<String>>,
    counts: TargetCounts,
}

/// One request as the target needs it.
struct Call {
    signature: Option<String>,
    idempotency_key: bool,
    close: bool,
    body: Vec<u8>,
}

impl Target {
    /// Keep-alive HTTP/1.1: one request after another on the connection.
    async fn session(&self, mut stream: TcpStream) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
        loop {
            let Some(call) = read_call(&mut stream, &mut buf).await? else {
                return Ok(());
            };
            let (status, body): (&str, &[u8]) = if self.answer(&call) {
                ("200 OK", br#"{"erased":true}"#)
            } else {
                ("401 Unauthorized", br#"{"error":"bad signature"}"#)
            };
            let mut out = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(body);
            stream.write_all(&out).await?;
            if call.close {
                return Ok(());
            }
        }
    }

    /// Count the call; whether it is confirmed.
    fn answer(&self, call: &Call) -> bool {
        self.counts.calls.fetch_add(1, Relaxed);
        let request_id = serde_json::from_slice::<Value>(&call.body)
            .ok()
            .and_then(|v| v.get("request_id")?.as_str().map(str::to_owned));
        let good = call.idempotency_key
            && call
                .signature
                .as_deref()
                .is_some_and(|s| verify(&self.secret, s, &call.body));
        match (good, request_id) {
            (true, Some(id)) => {
                let new = self
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id);
                let counter = if new {
                    &self.counts.distinct_requests
                } else {
                    &self.counts.repeats
                };
                counter.fetch_add(1, Relaxed);
                self.counts.confirmed.fetch_add(1, Relaxed);
                true
            }
            _ => {
                self.counts.bad_signature.fetch_add(1, Relaxed);
                false
            }
        }
    }
}

/// The next request on the connection (None at its end). `buf` carries what
/// was read past one request over to the next.
async fn read_call(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Call>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let mut call = Call {
                    signature: None,
                    idempotency_key: false,
                    close: false,
                    body: Vec::new(),
                };
                let mut body_len = 0usize;
                for h in req.headers.iter() {
                    let value = std::str::from_utf8(h.value).unwrap_or("").trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = value.parse().map_err(|_| bad("bad Content-Length"))?;
                    } else if h.name.eq_ignore_ascii_case("lethe-signature") {
                        call.signature = Some(value.to_owned());
                    } else if h.name.eq_ignore_ascii_case("idempotency-key") {
                        call.idempotency_key = !value.is_empty();
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        call.close = value.eq_ignore_ascii_case("close");
                    }
                }
                if body_len > MAX_BODY {
                    return Err(bad("body too large"));
                }
                while buf.len() < head_len + body_len {
                    if read_more(stream, buf).await? == 0 {
                        return Ok(None);
                    }
                }
                call.body = buf[head_len..head_len + body_len].to_vec();
                buf.drain(..head_len + body_len);
                return Ok(Some(call));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                if read_more(stream, buf).await? == 0 {
                    return Ok(None);
                }
            }
            _ => return Err(bad("bad request head")),
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// `Lethe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
/// with the target's secret, `t` within `SIGNATURE_TOLERANCE_S` of now.
fn verify(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(t) > SIGNATURE_TOLERANCE_S {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ap_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_";

    #[test]
    fn links_are_found_across_soft_line_breaks_and_once_each() {
        let (a, b) = TOKEN.split_at(17);
        let raw = format!(
            "Subject: x\r\n\r\nhttp://h/approvals/{a}=\r\n{b} and http://h/approvals/{TOKEN}\r\n"
        );
        let found = approval_links(raw.as_bytes());
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn links_in_base64_parts_are_found() {
        let body = base64::engine::general_purpose::STANDARD.encode(format!(
            "Bitte hier entscheiden: http://h/approvals/{TOKEN}\n"
        ));
        let raw = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n{}\r\n--b--\r\n",
            &body[..40],
            &body[40..]
        );
        assert!(approval_links(raw.as_bytes()).contains(TOKEN));
    }

    #[test]
    fn short_or_foreign_paths_are_not_links() {
        let raw = b"http://h/approvals/ap_short and http://h/approvals/xx_AbCdEfGhIjKlMnOpQrStUvWx";
        assert!(approval_links(raw).is_empty());
    }

    #[test]
    fn signatures_are_checked() {
        let secret = b"s3cret";
        let body = br#"{"request_id":"r"}"#;
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sign = |t: u64, key: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(format!("{t}.").as_bytes());
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        };
        assert!(verify(
            secret,
            &format!("t={t},v1={}", sign(t, secret)),
            body
        ));
        assert!(!verify(
            secret,
            &format!("t={t},v1={}", sign(t, b"other")),
            body
        ));
        let old = t - 301;
        assert!(!verify(
            secret,
            &format!("t={old},v1={}", sign(old, secret)),
            body
        ));
        assert!(!verify(secret, "v1=00", body));
    }
}
