//! PostgreSQL's group commit for what jobs write when they are done: a note
//! with the job's end (an approval email or receipt sent), a target's answer
//! with what follows from it. Each is planned on the request as its job read
//! it ([`SeenWrite`]) and waits here instead of taking a connection of its
//! own; a few writer threads each take every write waiting when they become
//! free (up to [`GROUP_MAX`], one per request) and write them as one
//! statement (`requests::seen_group`): one round trip and one commit for the
//! group, so the database's work per statement and per commit is shared.
//! Nobody hears back before that statement has committed, so a job is
//! finished exactly when what it did is.
//!
//! A write whose request moved since it was read wrote nothing and comes
//! back [`JobWrite::Moved`], for its caller to read the request again; so
//! does, as [`JobWrite::Alone`], every write of a group whose statement
//! failed (a deadlock between two groups, say), to be written alone, which
//! surfaces its own error: grouping never changes an outcome, only what it
//! costs.

use std::collections::HashSet;
use std::sync::{PoisonError, TryLockError};

use diesel::r2d2::{ConnectionManager, Pool};
use diesel::PgConnection;

use super::group_writers::{self, GroupWriters, Queue, Unanswered};
use super::requests::{self, SeenWrite};
use super::StoreError;

/// Most writes one statement carries.
pub const GROUP_MAX: usize = 64;

/// Writer threads: with two, one group is being written while the next
/// gathers.
const WRITERS: usize = 2;

/// What became of a write.
pub enum JobWrite {
    /// Written with its group.
    Written(SeenWrite),
    /// Not written: its request moved since it was read.
    Moved(SeenWrite),
    /// Not written: write it alone.
    Alone(SeenWrite),
}

type Waiting = group_writers::Waiting<SeenWrite, JobWrite>;

/// The queue the writer threads serve. They stop when it is dropped.
pub(super) struct JobWrites {
    writers: GroupWriters<SeenWrite, JobWrite>,
}

impl JobWrites {
    pub(super) fn start(pool: PgPool) -> Result<Self, StoreError> {
        let writers = GroupWriters::start(WRITERS, "lethe-pg-jobs", move |waiting| {
            write_groups(&pool, waiting)
        })?;
        Ok(Self { writers })
    }

    /// Wait for `write`'s group to be written (see the module's note).
    pub(super) async fn write(&self, write: SeenWrite) -> Result<JobWrite, StoreError> {
        match self.writers.send(write).await {
            Ok(answer) => Ok(answer),
            Err(Unanswered::Closed(w)) => Ok(JobWrite::Alone(w)),
            Err(Unanswered::Stopped) => Err(StoreError::Internal("a job writer stopped".into())),
        }
    }
}

type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A write on a request already in the gathered group waits for this
/// writer's next group: one statement updates a row once.
fn write_groups(pool: &PgPool, waiting: &Queue<SeenWrite, JobWrite>) {
    let mut carried: Vec<Waiting> = Vec::new();
    loop {
        let mut gathered = std::mem::take(&mut carried);
        // With writes carried over, never wait for the queue: the other
        // writer may be holding it, waiting for a write that will not come.
        let queue = if gathered.is_empty() {
            Some(waiting.lock().unwrap_or_else(PoisonError::into_inner))
        } else {
            match waiting.try_lock() {
                Ok(q) => Some(q),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        };
        if let Some(queue) = queue {
            if gathered.is_empty() {
                let Ok(first) = queue.recv() else { return };
                gathered.push(first);
            }
            while gathered.len() < GROUP_MAX {
                match queue.try_recv() {
                    Ok(w) => gathered.push(w),
                    Err(_) => break,
                }
            }
        }
        let mut requests = HashSet::new();
        let (group, later): (Vec<Waiting>, Vec<Waiting>) = gathered
            .into_iter()
            .partition(|w| requests.insert(w.item.request_id().to_owned()));
        carried = later;
        write_group(pool, group);
    }
}

/// A writer takes a connection from the pool for each group and gives it
/// back (unlike the submission writers, which keep theirs): jobs' groups are
/// small, and a small pool must not lose its connections to idle writers.
fn write_group(pool: &PgPool, group: Vec<Waiting>) {
    let (writes, replies): (Vec<SeenWrite>, Vec<_>) =
        group.into_iter().map(|w| (w.item, w.reply)).unzip();
    let mut c = match pool.get() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no connection for a group of job writes; each goes alone");
            for (w, reply) in writes.into_iter().zip(replies) {
                let _ = reply.send(JobWrite::Alone(w));
            }
            return;
        }
    };
    let written = requests::write_seen_group(&mut c, &writes).map_err(|e| {
        // The message only: a constraint's detail would name values.
        tracing::warn!(error = %e, size = writes.len(), "a group of job writes was not written; each goes alone");
    });
    drop(c);
    let size = writes.len();
    if let Ok(w) = &written {
        crate::metrics::job_write_group(size, w.iter().filter(|&&x| x).count());
    }
    for (n, (w, reply)) in writes.into_iter().zip(replies).enumerate() {
        let answer = match &written {
            Ok(done) if done[n] => {
                w.count();
                JobWrite::Written(w)
            }
            Ok(_) => JobWrite::Moved(w),
            Err(()) => JobWrite::Alone(w),
        };
        let _ = reply.send(answer);
    }
}
