//! PostgreSQL's group commit for what jobs write: a note with the job's end
//! (an approval email or receipt sent), a target's answer with what follows
//! from it, each planned on the request as its job read it ([`SeenWrite`]);
//! and the new approval link an email is about to carry (an
//! `approvals::LinkRow` for one request, voiding the request's live links).
//! Each waits here instead of taking a connection of its own; a few writer
//! threads each take every write waiting when they become free (up to
//! [`GROUP_MAX`], one per request) and write them as one statement
//! (`requests::seen_group`): one round trip and one commit for the group, so
//! the database's work per statement and per commit is shared. Nobody hears
//! back before that statement has committed, so a job is finished exactly
//! when what it did is, and no email carries a link not yet stored.
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

use super::approvals::LinkRow;
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

/// What became of a new link.
pub enum LinkWrite {
    /// Stored with its group.
    Written,
    /// Not stored: store it alone.
    Alone(LinkRow),
}

/// A write waiting for its group. (Mostly the large variant; a box would
/// cost every write an allocation to save links a copy.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Item {
    Seen(SeenWrite),
    /// A link for one request.
    Link(LinkRow),
}

impl Item {
    /// The request it writes on (at most one item per request in a group).
    fn request_id(&self) -> &str {
        match self {
            Item::Seen(w) => w.request_id(),
            Item::Link(l) => l.request_id.as_deref().unwrap_or_default(),
        }
    }

    /// Its answer when it was not written with its group.
    fn alone(self) -> Answer {
        match self {
            Item::Seen(w) => Answer::Seen(JobWrite::Alone(w)),
            Item::Link(l) => Answer::Link(LinkWrite::Alone(l)),
        }
    }
}

/// An item's answer.
#[allow(clippy::large_enum_variant)]
pub(super) enum Answer {
    Seen(JobWrite),
    Link(LinkWrite),
}

type Waiting = group_writers::Waiting<Item, Answer>;

/// The queue the writer threads serve. They stop when it is dropped.
pub(super) struct JobWrites {
    writers: GroupWriters<Item, Answer>,
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
        match self.send(Item::Seen(write)).await? {
            Answer::Seen(answer) => Ok(answer),
            Answer::Link(_) => Err(StoreError::Internal(
                "a job write answered as a link".into(),
            )),
        }
    }

    /// Wait for `link`'s group to be written; a link for a batch is
    /// [`LinkWrite::Alone`] at once.
    pub(super) async fn link(&self, link: LinkRow) -> Result<LinkWrite, StoreError> {
        if link.request_id.is_none() {
            return Ok(LinkWrite::Alone(link));
        }
        match self.send(Item::Link(link)).await? {
            Answer::Link(answer) => Ok(answer),
            Answer::Seen(_) => Err(StoreError::Internal(
                "a link answered as a job write".into(),
            )),
        }
    }

    async fn send(&self, item: Item) -> Result<Answer, StoreError> {
        match self.writers.send(item).await {
            Ok(answer) => Ok(answer),
            Err(Unanswered::Closed(item)) => Ok(item.alone()),
            Err(Unanswered::Stopped) => Err(StoreError::Internal("a job writer stopped".into())),
        }
    }
}

type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A write on a request already in the gathered group waits for this
/// writer's next group: one statement updates a row once.
fn write_groups(pool: &PgPool, waiting: &Queue<Item, Answer>) {
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
        let (mut group, later): (Vec<Waiting>, Vec<Waiting>) = gathered
            .into_iter()
            .partition(|w| requests.insert(w.item.request_id().to_owned()));
        carried = later;
        // Every group takes its rows in the same order, so two groups
        // writing at once wait for each other rather than deadlock.
        group.sort_unstable_by(|a, b| a.item.request_id().cmp(b.item.request_id()));
        write_group(pool, group);
    }
}

/// A writer takes a connection from the pool for each group and gives it
/// back (unlike the submission writers, which keep theirs): jobs' groups are
/// small, and a small pool must not lose its connections to idle writers.
fn write_group(pool: &PgPool, group: Vec<Waiting>) {
    let (mut writes, mut links, mut replies) = (Vec::new(), Vec::new(), Vec::new());
    for w in group {
        match w.item {
            Item::Seen(s) => {
                writes.push(s);
                replies.push((false, w.reply));
            }
            Item::Link(l) => {
                links.push(l);
                replies.push((true, w.reply));
            }
        }
    }
    let mut c = match pool.get() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no connection for a group of job writes; each goes alone");
            answer(writes, links, replies, Err(()));
            return;
        }
    };
    let written = requests::write_seen_group(&mut c, &writes, &links).map_err(|e| {
        // The message only: a constraint's detail would name values.
        let size = writes.len() + links.len();
        tracing::warn!(error = %e, size, "a group of job writes was not written; each goes alone");
    });
    drop(c);
    if let Ok(w) = &written {
        let size = writes.len() + links.len();
        crate::metrics::job_write_group(size, w.iter().filter(|&&x| x).count() + links.len());
    }
    answer(writes, links, replies, written);
}

/// Answer every item of a group, in the order it was gathered (`replies`
/// says which were links): `written` is which of `writes` the statement
/// wrote, or `Err` when it failed (every item goes alone). A link is written
/// whenever the statement is.
fn answer(
    writes: Vec<SeenWrite>,
    links: Vec<LinkRow>,
    replies: Vec<(bool, tokio::sync::oneshot::Sender<Answer>)>,
    written: Result<Vec<bool>, ()>,
) {
    let (mut writes, mut links) = (writes.into_iter().enumerate(), links.into_iter());
    for (is_link, reply) in replies {
        let answer = if is_link {
            let Some(l) = links.next() else { continue };
            match &written {
                Ok(_) => Answer::Link(LinkWrite::Written),
                Err(()) => Answer::Link(LinkWrite::Alone(l)),
            }
        } else {
            let Some((n, w)) = writes.next() else {
                continue;
            };
            Answer::Seen(match &written {
                Ok(done) if done[n] => {
                    w.count();
                    JobWrite::Written(w)
                }
                Ok(_) => JobWrite::Moved(w),
                Err(()) => JobWrite::Alone(w),
            })
        };
        let _ = reply.send(answer);
    }
}
