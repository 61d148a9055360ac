//! Prometheus metrics at `/metrics`: counters and histograms recorded where
//! things happen, and gauges (requests by state, overdue, job queue depth and
//! oldest job age) read from the database when scraped, so every replica
//! reports the same truth. The endpoint needs no key and counting every
//! request is a scan of the whole history, so those figures are read at most
//! once per `LETHE_METRICS_MAX_AGE_SECS` per process ([`Gauges`]).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::{stats, Store, StoreError};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed once).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .expect("buckets are valid");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding
        // application); ours still renders what it is given.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("lethe_http_requests_total", &labels).increment(1);
    metrics::histogram!("lethe_http_request_duration_seconds", &labels).record(seconds);
}

pub fn transition(from: &str, to: &str) {
    metrics::counter!("lethe_transitions_total", "from" => from.to_owned(), "to" => to.to_owned())
        .increment(1);
}

/// A group of submissions written as one statement (PostgreSQL): how many
/// it carried, how many it wrote (the rest went alone: replays, conflicts).
pub fn submission_group(size: usize, written: usize) {
    metrics::counter!("lethe_submission_groups_total").increment(1);
    metrics::counter!("lethe_submissions_grouped_total", "outcome" => "written")
        .increment(written as u64);
    metrics::counter!("lethe_submissions_grouped_total", "outcome" => "alone")
        .increment((size - written) as u64);
}

/// A group of jobs' writes (notes, target answers) written as one statement
/// (PostgreSQL): how many it carried, how many it wrote (the rest found
/// their request moved and went on alone).
pub fn job_write_group(size: usize, written: usize) {
    metrics::counter!("lethe_job_write_groups_total").increment(1);
    metrics::counter!("lethe_job_writes_grouped_total", "outcome" => "written")
        .increment(written as u64);
    metrics::counter!("lethe_job_writes_grouped_total", "outcome" => "moved")
        .increment((size - written) as u64);
}

pub fn email(kind: &str, outcome: &str) {
    metrics::counter!("lethe_emails_total", "kind" => kind.to_owned(), "outcome" => outcome.to_owned()).increment(1);
}

pub fn target_call(outcome: &str, seconds: f64) {
    metrics::counter!("lethe_target_calls_total", "outcome" => outcome.to_owned()).increment(1);
    metrics::histogram!("lethe_target_call_duration_seconds", "outcome" => outcome.to_owned())
        .record(seconds);
}

pub fn job(kind: &str, outcome: &str) {
    metrics::counter!("lethe_jobs_total", "kind" => kind.to_owned(), "outcome" => outcome.to_owned()).increment(1);
}

/// The database figures of the last scrape, reused while younger than
/// `max_age`: however often `/metrics` is asked for, a process reads them at
/// most once per `max_age`, and scrapes that arrive while they are being read
/// wait for that read instead of starting their own.
pub struct Gauges {
    max_age: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<stats::Snapshot>)>>,
}

impl Gauges {
    pub fn new(max_age: Duration) -> Self {
        Gauges {
            max_age,
            last: tokio::sync::Mutex::new(None),
        }
    }

    async fn snapshot(&self, store: &Store) -> Result<Arc<stats::Snapshot>, StoreError> {
        let mut last = self.last.lock().await;
        if let Some((read_at, s)) = last.as_ref() {
            if read_at.elapsed() < self.max_age {
                return Ok(s.clone());
            }
        }
        let now = crate::domain::deadline::now();
        let s = Arc::new(store.read(move |conn| stats::snapshot(conn, now)).await?);
        *last = Some((Instant::now(), s.clone()));
        Ok(s)
    }
}

/// Read the database gauges (or reuse them, see [`Gauges`]) and render
/// everything in the text format.
pub async fn render(store: &Store, gauges: &Gauges) -> Result<String, StoreError> {
    let s = gauges.snapshot(store).await?;
    for state in crate::domain::RequestState::ALL {
        let n = s
            .by_state
            .iter()
            .find(|(k, _)| k == state.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0);
        metrics::gauge!("lethe_requests", "state" => state.as_str()).set(n as f64);
    }
    metrics::gauge!("lethe_requests_overdue").set(s.overdue as f64);
    for kind in crate::domain::outbox::JobKind::ALL {
        let (depth, oldest) = s
            .jobs
            .iter()
            .find(|j| j.0 == kind.as_str())
            .map(|j| (j.1, j.2))
            .unwrap_or((0, 0.0));
        metrics::gauge!("lethe_job_queue_depth", "kind" => kind.as_str()).set(depth as f64);
        metrics::gauge!("lethe_job_oldest_due_age_seconds", "kind" => kind.as_str()).set(oldest);
    }
    metrics::gauge!("lethe_jobs_dead").set(s.dead_jobs as f64);
    Ok(handle().render())
}

pub fn rate_limited(class: &str) {
    metrics::counter!("lethe_rate_limited_total", "class" => class.to_owned()).increment(1);
}

/// A presented approval link or status code that matched nothing (the token
/// itself is never recorded).
pub fn unknown_token(kind: &str) {
    metrics::counter!("lethe_unknown_tokens_total", "kind" => kind.to_owned()).increment(1);
}

/// A request that did not arrive and finish within LETHE_HTTP_REQUEST_TIMEOUT_SECS.
pub fn request_timeout() {
    metrics::counter!("lethe_http_request_timeouts_total").increment(1);
}
