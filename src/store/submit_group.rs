//! PostgreSQL's group commit for submissions. A submission whose key came
//! from the in-process cache waits here instead of taking a connection of
//! its own; a few writer threads each take every submission waiting when
//! they become free (up to [`GROUP_MAX`]) and write them as one statement
//! ([`requests::insert_grouped`]): one round trip and one commit for the
//! group, so the database's work per statement and per commit is shared.
//! Nobody hears back before that statement has committed, so a 201 still
//! means committed.
//!
//! A submission the group did not write (a replay, the subject's open
//! request, a key revoked meanwhile) wrote nothing and is handed back, to
//! be written alone, which tells those apart; so is the whole group if its
//! statement fails (a deadlock between two groups, say): grouping never
//! changes an answer, only what it costs.

use std::sync::{mpsc, Arc, Mutex, PoisonError};

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::PgConnection;

use super::requests::{self, Guarded, Submitted};
use super::StoreError;

/// Most submissions one statement carries.
pub const GROUP_MAX: usize = 64;

/// Writer threads: with two, one group is being written while the next
/// gathers, and a slow commit does not hold up every submission.
const WRITERS: usize = 2;

/// What became of a submission. (Made and moved once per submission: its
/// size does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Grouped {
    /// Written with its group.
    Written(Submitted),
    /// Not written: write it alone.
    Alone(Guarded),
}

struct Waiting {
    submission: Guarded,
    reply: tokio::sync::oneshot::Sender<Result<Grouped, StoreError>>,
}

/// The queue the writer threads serve. They stop when it is dropped.
pub(super) struct SubmitGroups {
    queue: mpsc::Sender<Waiting>,
}

impl SubmitGroups {
    pub(super) fn start(pool: PgPool) -> Result<Self, StoreError> {
        let (queue, waiting) = mpsc::channel();
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..WRITERS {
            let (pool, waiting) = (pool.clone(), waiting.clone());
            std::thread::Builder::new()
                .name(format!("lethe-pg-submit-{n}"))
                .spawn(move || write_groups(&pool, &waiting))
                .map_err(|e| StoreError::Internal(format!("starting a submission writer: {e}")))?;
        }
        Ok(Self { queue })
    }

    /// Wait for `submission`'s group to be written (see the module's note).
    pub(super) async fn submit(&self, submission: Guarded) -> Result<Grouped, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if let Err(mpsc::SendError(w)) = self.queue.send(Waiting { submission, reply }) {
            return Ok(Grouped::Alone(w.submission));
        }
        answer
            .await
            .map_err(|_| StoreError::Internal("a submission writer stopped".into()))?
    }
}

type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A writer keeps its connection from group to group: a group's statement
/// is large (64 submissions' rows), and the buffers a connection grows for
/// it stay with that connection, so two connections carry them instead of
/// every one in the pool. A group that failed gives its connection up (it
/// may be broken); the next takes a fresh one.
fn write_groups(pool: &PgPool, waiting: &Mutex<mpsc::Receiver<Waiting>>) {
    let mut conn = None;
    loop {
        let group = {
            let waiting = waiting.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = waiting.recv() else { return };
            let mut group = vec![first];
            while group.len() < GROUP_MAX {
                match waiting.try_recv() {
                    Ok(w) => group.push(w),
                    Err(_) => break,
                }
            }
            group
        };
        write_group(pool, &mut conn, group);
    }
}

fn write_group(
    pool: &PgPool,
    conn: &mut Option<PooledConnection<ConnectionManager<PgConnection>>>,
    group: Vec<Waiting>,
) {
    let (submissions, replies): (Vec<Guarded>, Vec<_>) =
        group.into_iter().map(|w| (w.submission, w.reply)).unzip();
    let c = match conn {
        Some(c) => c,
        None => match pool.get() {
            Ok(c) => conn.insert(c),
            Err(e) => {
                let e = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(e.clone())));
                }
                return;
            }
        },
    };
    let written = requests::insert_grouped(c, &submissions).map_err(|e| {
        // The message only: a unique index's detail would name values.
        tracing::warn!(error = %e, size = submissions.len(), "a group of submissions was not written; each goes alone");
    });
    if written.is_err() {
        *conn = None;
    }
    let size = submissions.len();
    crate::metrics::submission_group(
        size,
        written
            .as_ref()
            .map_or(0, |w| w.iter().filter(|&&x| x).count()),
    );
    for (n, (s, reply)) in submissions.into_iter().zip(replies).enumerate() {
        let answer = match &written {
            Ok(w) if w[n] => s.prepared.into_created().map(Grouped::Written),
            _ => Ok(Grouped::Alone(s)),
        };
        let _ = reply.send(answer);
    }
}
