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

use std::sync::PoisonError;

use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::PgConnection;

use super::group_writers::{self, GroupWriters, Queue, Unanswered};
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

type Waiting = group_writers::Waiting<Guarded, Result<Grouped, StoreError>>;

/// The queue the writer threads serve. They stop when it is dropped.
pub(super) struct SubmitGroups {
    writers: GroupWriters<Guarded, Result<Grouped, StoreError>>,
}

impl SubmitGroups {
    pub(super) fn start(pool: PgPool) -> Result<Self, StoreError> {
        let writers = GroupWriters::start(WRITERS, "lethe-pg-submit", move |waiting| {
            write_groups(&pool, waiting)
        })?;
        Ok(Self { writers })
    }

    /// Wait for `submission`'s group to be written (see the module's note).
    pub(super) async fn submit(&self, submission: Guarded) -> Result<Grouped, StoreError> {
        match self.writers.send(submission).await {
            Ok(answer) => answer,
            Err(Unanswered::Closed(s)) => Ok(Grouped::Alone(s)),
            Err(Unanswered::Stopped) => {
                Err(StoreError::Internal("a submission writer stopped".into()))
            }
        }
    }
}

type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A writer keeps its connection from group to group: a group's statement
/// is large (64 submissions' rows), and the buffers a connection grows for
/// it stay with that connection, so two connections carry them instead of
/// every one in the pool. A group that failed gives its connection up (it
/// may be broken); the next takes a fresh one.
fn write_groups(pool: &PgPool, waiting: &Queue<Guarded, Result<Grouped, StoreError>>) {
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
        group.into_iter().map(|w| (w.item, w.reply)).unzip();
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
