//! Background work from the durable job table: claim a due job, run its
//! handler, then complete it, retry it later (exponential backoff with
//! jitter) or, after its last attempt or a permanent failure, bury it where
//! support sees it. Nothing is dropped silently.

mod answers;
mod approval;
mod digest;
pub mod erasure;
mod notices;
pub mod opendsr;
mod owners;
mod statistics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::domain::deadline;
use crate::domain::outbox::{backoff, JobKind, WorkflowPolicy};
use crate::domain::receipt::ReceiptSigner;
use crate::domain::sealed::Sealer;
use crate::domain::RequestId;
use crate::email::Mailer;
use crate::store::jobs::{self, JobRow};
use crate::store::requests::{self, Ahead};
use crate::store::{Store, StoreError};

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another try later.
    #[error("{0}")]
    Retry(String),
    /// Worth another try, not before the given time (e.g. Retry-After).
    #[error("{1}")]
    RetryAt(DateTime<Utc>, String),
    /// Will never succeed; give up now.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Retry(e.to_string())
    }
}

/// A handler's success, and who marks its job finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    /// The handler did, in the transaction of its last write (with
    /// [`Finish::record`]): one transaction fewer per job.
    Recorded,
    /// The runner does, in a transaction of its own.
    ToRecord,
}

/// What a handler needs to mark its job finished inside its last write.
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    job: String,
    now: DateTime<Utc>,
}

impl Finish {
    pub(crate) fn of(job: &JobRow, now: DateTime<Utc>) -> Self {
        Self {
            job: job.id.clone(),
            now,
        }
    }

    /// The job and when it finished, for a store write that marks it
    /// finished with what it writes (`requests::note_held`).
    pub(crate) fn end(&self) -> (&str, DateTime<Utc>) {
        (&self.job, self.now)
    }

    /// Mark the job finished; call it last in the handler's last write, so
    /// the job is finished exactly when what it did is committed.
    pub(crate) fn record(&self, conn: &mut crate::store::Conn<'_>) -> Result<(), StoreError> {
        jobs::complete(conn, &self.job, self.now)
    }
}

/// What handlers need.
pub struct JobContext {
    pub store: Store,
    pub mailer: Mailer,
    pub public_url: url::Url,
    pub subject_prefix: String,
    pub workflow: WorkflowPolicy,
    /// For erasure targets (registered by the operator).
    pub http: reqwest::Client,
    /// For caller-supplied callback URLs: refuses inside addresses unless
    /// `callbacks_allow_private`.
    pub callback_http: reqwest::Client,
    pub callbacks_allow_private: bool,
    pub sealer: Arc<Sealer>,
    pub signer: Arc<ReceiptSigner>,
    /// How long a claimed job is leased before another worker may take it
    /// (a replica that died mid-job loses its claims after this).
    pub lease: chrono::Duration,
    /// Signs OpenDSR status callbacks; `None` when OpenDSR is not configured.
    pub opendsr: Option<Arc<crate::domain::opendsr::ProcessorKey>>,
    /// The support team's daily digest, if configured.
    pub support_digest: Option<crate::domain::support::DigestPolicy>,
    /// Targets' answers to a request being written (see `answers`).
    pub(crate) answers: Arc<answers::Answers>,
}

/// The kinds this build can run. A kind without a handler stays queued.
pub const HANDLED: &[JobKind] = &[
    JobKind::SendApprovalEmail,
    JobKind::SendBatchApprovalEmail,
    JobKind::ApprovalReminder,
    JobKind::EscalateDeadline,
    JobKind::ApprovalFollowUp,
    JobKind::NotifySubject,
    JobKind::CallTarget,
    JobKind::Callback,
    JobKind::Scrub,
    JobKind::SendReceipt,
    JobKind::OpenDsrCallback,
    JobKind::SupportDigest,
    JobKind::TargetOwnerReminder,
];

#[derive(Clone)]
pub struct Runner {
    ctx: Arc<JobContext>,
    worker: String,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub done: usize,
    pub retried: usize,
    pub buried: usize,
}

impl Runner {
    pub fn new(ctx: JobContext) -> Self {
        Self {
            ctx: Arc::new(ctx),
            worker: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        }
    }

    /// Run every job due at `now`, one after another, until none is left.
    /// Tests drive the workflow with this (at a time of their choosing).
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<Pass, StoreError> {
        self.run_pass(|| now).await
    }

    /// Run due jobs until none is left, each claimed and run at the time
    /// `clock` gives when it is claimed. Workers read the real clock for each
    /// job: a pass can last as long as jobs keep coming, and what a job
    /// records (a target's confirmation, the erasure, their audit events)
    /// must carry the time it happened, not the time the pass began.
    async fn run_pass(&self, clock: impl Fn() -> DateTime<Utc>) -> Result<Pass, StoreError> {
        let mut pass = Pass::default();
        // A job retried for its run time is not run again in the same pass
        // (a follow-up moved on to its next step is, when that is due).
        let mut retried = std::collections::HashSet::new();
        loop {
            let now = clock();
            let Some(job) = self.claim(now).await? else {
                break;
            };
            if retried.contains(&job.id) {
                self.release().await?;
                break;
            }
            let id = job.id.clone();
            match self.run_one(job, now, None).await? {
                Outcome::Done => pass.done += 1,
                Outcome::Retried => {
                    retried.insert(id);
                    pass.retried += 1;
                }
                Outcome::Buried => pass.buried += 1,
            }
        }
        Ok(pass)
    }

    async fn claim(&self, now: DateTime<Utc>) -> Result<Option<JobRow>, StoreError> {
        let worker = self.worker.clone();
        let lease = self.ctx.lease;
        self.ctx
            .store
            // One statement: no transaction around it.
            .write_self_contained_quietly(move |conn| {
                jobs::claim(conn, &worker, HANDLED, now, now + lease)
            })
            .await
    }

    async fn release(&self) -> Result<usize, StoreError> {
        let worker = self.worker.clone();
        self.ctx
            .store
            .write(move |conn| jobs::release(conn, &worker))
            .await
    }

    /// Run `job`; `ahead`, the request it is about as the dispatcher read
    /// it after the claim (see `requests::read_ahead`), saves its handler
    /// that read.
    async fn run_one(
        &self,
        job: JobRow,
        now: DateTime<Utc>,
        ahead: Option<Ahead>,
    ) -> Result<Outcome, StoreError> {
        let Some(kind) = JobKind::parse(&job.kind) else {
            let id = job.id.clone();
            self.ctx
                .store
                .write_quietly(move |conn| jobs::bury(conn, &id, "unknown job kind", now))
                .await?;
            return Ok(Outcome::Buried);
        };
        let unit = |r: Result<(), JobError>| r.map(|()| Done::ToRecord);
        let result = match kind {
            JobKind::SendApprovalEmail => {
                approval::send_for_request(&self.ctx, &job, now, false, ahead).await
            }
            JobKind::ApprovalReminder => approval::remind(&self.ctx, &job, now).await,
            JobKind::SendBatchApprovalEmail => {
                approval::send_for_batch(&self.ctx, &job, now, false).await
            }
            JobKind::EscalateDeadline => unit(approval::escalate(&self.ctx, &job, now).await),
            JobKind::ApprovalFollowUp => approval::follow_up(&self.ctx, &job, now).await,
            JobKind::NotifySubject => notices::send(&self.ctx, &job, now).await,
            JobKind::CallTarget => erasure::call_target(&self.ctx, &job, now, ahead).await,
            JobKind::Callback => unit(erasure::callback(&self.ctx, &job).await),
            JobKind::Scrub => erasure::scrub(&self.ctx, &job, now).await,
            JobKind::SendReceipt => erasure::send_receipt(&self.ctx, &job, now, ahead).await,
            JobKind::OpenDsrCallback => unit(opendsr::callback(&self.ctx, &job).await),
            JobKind::SupportDigest => unit(digest::send(&self.ctx, now).await),
            JobKind::TargetOwnerReminder => unit(owners::remind(&self.ctx, &job, now).await),
            // Expanded into CallTarget jobs when written; never stored.
            JobKind::StartErasure => Err(JobError::Permanent(
                "start_erasure is not a stored job".into(),
            )),
        };
        let id = job.id.clone();
        match result {
            Ok(done) => {
                crate::metrics::job(kind.as_str(), "done");
                if done == Done::ToRecord {
                    self.ctx
                        .store
                        .write_quietly(move |conn| jobs::complete(conn, &id, now))
                        .await?;
                }
                Ok(Outcome::Done)
            }
            Err(err @ (JobError::Retry(_) | JobError::RetryAt(..)))
                if job.attempts < job.max_attempts =>
            {
                let jitter: f64 = rand::thread_rng().gen();
                let (run_at, e) = match err {
                    JobError::RetryAt(at, e) => (at, e),
                    JobError::Retry(e) => {
                        (deadline::now().max(now) + backoff(job.attempts, jitter), e)
                    }
                    JobError::Permanent(e) => (now, e),
                };
                crate::metrics::job(kind.as_str(), "retried");
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %e, "job failed, will retry");
                self.ctx
                    .store
                    .write_quietly(move |conn| jobs::retry_at(conn, &id, run_at, &e))
                    .await?;
                Ok(Outcome::Retried)
            }
            Err(e) => {
                let error = e.to_string();
                crate::metrics::job(kind.as_str(), "dead");
                tracing::error!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %error, "job failed for good");
                let permanent = matches!(e, JobError::Permanent(_));
                approval::on_dead(&self.ctx, kind, &job, permanent, now).await?;
                if kind == JobKind::CallTarget {
                    erasure::on_call_dead(&self.ctx, &job, now).await?;
                }
                self.ctx
                    .store
                    .write_quietly(move |conn| jobs::bury(conn, &id, &error, now))
                    .await?;
                Ok(Outcome::Buried)
            }
        }
    }

    /// Run up to `n` jobs at once until `stop` turns true; then let the
    /// running ones finish and hand back leases. One dispatcher claims due
    /// jobs for the free slots (up to [`CLAIM_BATCH`] in one statement) and
    /// runs each on a task of its own. On PostgreSQL without autovacuum,
    /// they also keep the busy tables' planner statistics (`statistics`).
    pub fn spawn(
        self,
        n: usize,
        poll: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        if n == 0 {
            return Vec::new();
        }
        // A name of its own: `run_due` on a clone releases only its own leases.
        let runner = Runner {
            ctx: self.ctx.clone(),
            worker: format!("{}-d", self.worker),
        };
        let store = self.ctx.store.clone();
        vec![
            tokio::spawn(runner.dispatch(n, poll, stop.clone())),
            tokio::spawn(statistics::keep(store, stop)),
        ]
    }

    async fn dispatch(
        self,
        n: usize,
        poll: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let slots = Arc::new(tokio::sync::Semaphore::new(n));
        let all = u32::try_from(n).unwrap_or(u32::MAX);
        let batch = n.min(CLAIM_BATCH);
        // The last claim filled every slot it had: the queue is deep, so wait
        // for a batch's worth of free slots before claiming again (fewer
        // claims under load). Otherwise one free slot is enough (a job that
        // just came in starts at once).
        let mut deep = false;
        loop {
            if *stop.borrow() {
                break;
            }
            let want = if deep { batch } else { 1 };
            let mut permits = tokio::select! {
                p = slots.clone().acquire_many_owned(u32::try_from(want).unwrap_or(1)) => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                r = stop.changed() => if r.is_ok() { continue } else { break },
            };
            while permits.num_permits() < batch {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.merge(p),
                    Err(_) => break,
                }
            }
            // Before claiming: a job written meanwhile must wake us.
            let wake = self.ctx.store.written();
            let now = deadline::now();
            match self.claim_many(now, permits.num_permits()).await {
                Ok(jobs) if !jobs.is_empty() => {
                    deep = jobs.len() == permits.num_permits();
                    let ahead = self.read_ahead(&jobs).await;
                    for job in jobs {
                        let slot = permits.split(1);
                        let runner = self.clone();
                        let ahead = reads_ahead(&job).and_then(|id| ahead.get(&id).cloned());
                        tokio::spawn(async move {
                            if let Err(e) = runner.run_one(job, now, ahead).await {
                                tracing::warn!(error = %e, "job worker cannot reach the database");
                            }
                            drop(slot);
                        });
                    }
                    continue;
                }
                Ok(_) => deep = false,
                Err(e) => {
                    deep = false;
                    tracing::warn!(error = %e, "job worker cannot reach the database");
                }
            }
            drop(permits);
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = wake => {}
                r = stop.changed() => if r.is_err() { break },
            }
        }
        // The running jobs finish; then what is still leased goes back.
        let _ = slots.acquire_many(all).await;
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "could not release job leases");
        }
    }

    /// The requests claimed `jobs` are about, read in one go for the jobs
    /// that would each read theirs first thing (see `requests::read_ahead`);
    /// only for two or more (one gains nothing), none if the read fails
    /// (each job then reads its own).
    async fn read_ahead(&self, jobs: &[JobRow]) -> HashMap<RequestId, Ahead> {
        let ids: Vec<RequestId> = jobs.iter().filter_map(reads_ahead).collect();
        if ids.len() < 2 {
            return HashMap::new();
        }
        let calls = jobs.iter().any(|j| {
            j.kind == JobKind::CallTarget.as_str() || j.kind == JobKind::SendReceipt.as_str()
        });
        let read = self
            .ctx
            .store
            .read(move |conn| requests::read_ahead(conn, &ids, calls))
            .await;
        read.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read ahead for claimed jobs");
            HashMap::new()
        })
    }

    async fn claim_many(&self, now: DateTime<Utc>, n: usize) -> Result<Vec<JobRow>, StoreError> {
        let worker = self.worker.clone();
        let lease = self.ctx.lease;
        self.ctx
            .store
            // One statement: no transaction around it.
            .write_self_contained_quietly(move |conn| {
                jobs::claim_many(conn, &worker, HANDLED, now, now + lease, n)
            })
            .await
    }
}

/// Most jobs one claim takes. 16 rather than 4: fewer claims under load
/// (bench/pipeline, N = 4,000, alternating binaries twice: PostgreSQL
/// 101/107 -> 109/113 erasures/s, SQLite 196/199 -> 236/216).
const CLAIM_BATCH: usize = 16;

enum Outcome {
    Done,
    Retried,
    Buried,
}

/// The request a job is about, if its handler reads it first thing and can
/// take it read ahead (see [`Runner::read_ahead`]).
fn reads_ahead(job: &JobRow) -> Option<RequestId> {
    let kind = JobKind::parse(&job.kind)?;
    matches!(
        kind,
        JobKind::SendApprovalEmail | JobKind::CallTarget | JobKind::SendReceipt
    )
    .then(|| request_of(job).ok())
    .flatten()
}

/// The request a job is about.
fn request_of(job: &JobRow) -> Result<crate::domain::RequestId, JobError> {
    job.request_id
        .as_deref()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| JobError::Permanent("the job names no request".into()))
}

fn tenant_of(job: &JobRow) -> Result<crate::domain::TenantId, JobError> {
    job.tenant_id
        .as_deref()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| JobError::Permanent("the job names no tenant".into()))
}

fn payload(job: &JobRow) -> Result<serde_json::Value, JobError> {
    serde_json::from_str(&job.payload).map_err(|e| JobError::Permanent(format!("bad payload: {e}")))
}
