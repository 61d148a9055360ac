//! The pipeline's driver: the platform and the privacy contact at once. It
//! submits N erasure requests over keep-alive HTTP/1.1 connections and, as
//! the SMTP sink writes each approval link to its file, POSTs the approval
//! form for it on connections of its own, until every link it waited for
//! was used. bench/pipeline.py starts it, watches the database for the
//! requests reaching `erased`, and counts its CPU as the driver's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::{write_json, LOOPBACK, MAX_HEAD};

/// What `bench-peers drive` is told.
#[derive(clap::Args)]
pub struct DriveArgs {
    /// lethe's port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// The tenant's API key.
    #[arg(long)]
    key: String,
    /// Makes the subjects and Idempotency-Keys of this run unique.
    #[arg(long)]
    run: String,
    #[arg(long)]
    n: u64,
    #[arg(long, default_value_t = 16)]
    submit_concurrency: usize,
    #[arg(long, default_value_t = 16)]
    approve_concurrency: usize,
    /// The sink's file of approval links, one path a line.
    #[arg(long)]
    links: PathBuf,
    /// Where in --links this run's links start.
    #[arg(long, default_value_t = 0)]
    links_offset: u64,
    #[arg(long)]
    stats: PathBuf,
    #[arg(long, default_value_t = 7200.0)]
    max_seconds: f64,
}

/// The driver's counters, written as JSON every second and at the end.
#[derive(Default)]
struct Counts {
    submitted: AtomicU64,
    approved: AtomicU64,
    links: AtomicU64,
    errors: AtomicU64,
    submit_statuses: Mutex<BTreeMap<u16, u64>>,
    approve_statuses: Mutex<BTreeMap<u16, u64>>,
    approve_seconds: Mutex<Vec<f64>>,
}

impl Counts {
    fn count(map: &Mutex<BTreeMap<u16, u64>>, status: u16) {
        *map.lock().unwrap().entry(status).or_default() += 1;
    }

    fn to_json(&self, done: bool) -> Value {
        let statuses = |m: &Mutex<BTreeMap<u16, u64>>| -> Value {
            m.lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let mut lat = self.approve_seconds.lock().unwrap().clone();
        lat.sort_by(f64::total_cmp);
        json!({
            "done": done,
            "submitted": self.submitted.load(Relaxed),
            "links": self.links.load(Relaxed),
            "approved": self.approved.load(Relaxed),
            "errors": self.errors.load(Relaxed),
            "submit_statuses": statuses(&self.submit_statuses),
            "approve_statuses": statuses(&self.approve_statuses),
            "approve_post_p50_ms": percentile(&lat, 50.0) * 1000.0,
            "approve_post_p99_ms": percentile(&lat, 99.0) * 1000.0,
        })
    }
}

/// The same nearest-rank percentile as bench/helper.py's.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q / 100.0 * sorted.len() as f64).round() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

pub async fn drive(args: DriveArgs) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + Duration::from_secs_f64(args.max_seconds.max(0.0));
    let port = args.port;

    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicU64::new(0));
    for _ in 0..args.submit_concurrency.max(1) {
        let (counts, next) = (counts.clone(), next.clone());
        let (key, run, n) = (args.key.clone(), args.run.clone(), args.n);
        tasks.spawn(async move {
            let mut client = Client::new(port);
            let headers = format!(
                "Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            );
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Relaxed);
                if i >= n {
                    break;
                }
                let body = format!(
                    r#"{{"subject_id": "pipe-{run}-{i}", "initiator": "subject", "reason": "benchmark"}}"#
                );
                let hdr = format!("{headers}Idempotency-Key: pipe-{run}-{i}\r\n");
                match client
                    .request("POST", "/v1/erasure-requests", &hdr, body.as_bytes())
                    .await
                {
                    Ok(status) => Counts::count(&counts.submit_statuses, status),
                    Err(_) => {
                        counts.errors.fetch_add(1, Relaxed);
                    }
                }
                counts.submitted.fetch_add(1, Relaxed);
            }
        });
    }

    let (tx, rx) = mpsc::unbounded_channel::<String>();
    {
        let (counts, links, offset, n) = (
            counts.clone(),
            args.links.clone(),
            args.links_offset,
            args.n,
        );
        tasks.spawn(async move {
            if let Err(e) = tail_links(&links, offset, n, deadline, &counts, tx).await {
                eprintln!("drive: reading {}: {e}", links.display());
                counts.errors.fetch_add(1, Relaxed);
            }
        });
    }
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..args.approve_concurrency.max(1) {
        let (counts, rx) = (counts.clone(), rx.clone());
        tasks.spawn(async move {
            let mut client = Client::new(port);
            let hdr = "Content-Type: application/x-www-form-urlencoded\r\n";
            loop {
                let path = rx.lock().await.recv().await;
                let Some(path) = path else { break };
                let t0 = Instant::now();
                match client
                    .request("POST", &path, hdr, b"action=approve_all")
                    .await
                {
                    Ok(status) => {
                        counts
                            .approve_seconds
                            .lock()
                            .unwrap()
                            .push(t0.elapsed().as_secs_f64());
                        Counts::count(&counts.approve_statuses, status);
                    }
                    Err(_) => {
                        counts.errors.fetch_add(1, Relaxed);
                    }
                }
                counts.approved.fetch_add(1, Relaxed);
            }
        });
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let done = loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break true },
            _ = tick.tick() => write_json(&args.stats, &counts.to_json(false))?,
            _ = term.recv() => break false,
            _ = int.recv() => break false,
        }
    };
    tasks.abort_all();
    write_json(&args.stats, &counts.to_json(done))?;
    Ok(())
}

/// Hand every approval link the sink appends to `path` (after `offset`) to
/// the approvers as it arrives, until `n` were handed on or the deadline.
async fn tail_links(
    path: &std::path::Path,
    offset: u64,
    n: u64,
    deadline: Instant,
    counts: &Counts,
    tx: mpsc::UnboundedSender<String>,
) -> io::Result<()> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut seen = 0;
    while seen < n && Instant::now() < deadline {
        // A regular file: a read never blocks for long.
        let got = f.read(&mut chunk)?;
        if got == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        buf.extend_from_slice(&chunk[..got]);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + end];
            start += end + 1;
            if line.is_empty() || seen >= n {
                continue;
            }
            seen += 1;
            counts.links.fetch_add(1, Relaxed);
            let _ = tx.send(String::from_utf8_lossy(line).into_owned());
        }
        buf.drain(..start);
    }
    Ok(())
}

/// One keep-alive HTTP/1.1 connection to lethe, opened again when the server
/// closed it.
struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
    body: Vec<u8>,
}

impl Client {
    fn new(port: u16) -> Self {
        Client {
            port,
            conn: None,
            request: Vec::with_capacity(1024),
            body: Vec::with_capacity(8 * 1024),
        }
    }

    /// Send one request and read its whole response; the status. `headers`
    /// are whole lines, each ending in CRLF.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> io::Result<u16> {
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{}\r\n{headers}Content-Length: {}\r\n\r\n",
            self.port,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        for attempt in 0..2 {
            if self.conn.is_none() {
                let stream = TcpStream::connect((LOOPBACK, self.port)).await?;
                stream.set_nodelay(true)?;
                self.conn = Some(BufReader::with_capacity(16 * 1024, stream));
            }
            let conn = self.conn.as_mut().expect("connected above");
            let sent = conn.get_mut().write_all(&self.request).await;
            let answer = match sent {
                Ok(()) => read_response(conn, &mut self.body).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok((status, keep_alive)) => {
                    if !keep_alive {
                        self.conn = None;
                    }
                    return Ok(status);
                }
                // The server closed an idle keep-alive connection: once
                // more on a new one (submissions carry an Idempotency-Key,
                // approval tokens are one-use).
                Err(e) if attempt == 0 && is_closed(&e) => self.conn = None,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        unreachable!("the second attempt returns")
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Read one response (head and body, by Content-Length or chunked); its
/// status and whether the connection stays open.
async fn read_response(
    r: &mut BufReader<TcpStream>,
    body: &mut Vec<u8>,
) -> io::Result<(u16, bool)> {
    let mut head = Vec::with_capacity(512);
    loop {
        if r.read_until(b'\n', &mut head).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return Err(bad("response head too large"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad("malformed response head")),
    }
    let status = resp.code.ok_or_else(|| bad("no status"))?;
    let mut length = 0usize;
    let mut chunked = false;
    let mut keep_alive = true;
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| bad("bad Content-Length"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    body.clear();
    if chunked {
        let mut line = Vec::with_capacity(32);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.trim().split(';').next())
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| bad("bad chunk size"))?;
            let at = body.len();
            body.resize(at + size + 2, 0);
            r.read_exact(&mut body[at..]).await?;
            body.truncate(at + size);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        r.read_exact(body).await?;
    }
    Ok((status, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_the_python_helper() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[tokio::test]
    async fn a_response_by_length_then_one_chunked_on_one_connection() {
        let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            for answer in [
                &b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"[..],
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
            ] {
                let got = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..got]).into_owned());
                s.write_all(answer).await.unwrap();
            }
            seen
        });
        let mut c = Client::new(port);
        let hdr = "Content-Type: application/json\r\n";
        assert_eq!(c.request("POST", "/a", hdr, b"{}").await.unwrap(), 201);
        assert_eq!(c.request("POST", "/b", hdr, b"x=1").await.unwrap(), 200);
        assert_eq!(c.body, b"abc");
        let seen = server.await.unwrap();
        assert!(seen[0].starts_with("POST /a HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(
            seen[0].contains("Content-Length: 2\r\n\r\n{}"),
            "{}",
            seen[0]
        );
        assert!(seen[1].ends_with("\r\n\r\nx=1"), "{}", seen[1]);
    }
}
