//! Connection pools and the two ways in: [`Store::read`] and [`Store::write`].

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

use super::approvals::LinkRow;
use super::job_writes::{JobWrite, JobWrites, LinkWrite};
use super::requests::Guarded;
use super::requests::SeenWrite;
use super::submit_group::{Grouped, SubmitGroups};
use super::StoreError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A validated database URL: `sqlite://path/to/file.db`, `sqlite:///abs.db`,
/// or `postgres://...` / `postgresql://...`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver is given: a file path for SQLite, the URL for PostgreSQL.
    target: String,
}

impl DatabaseUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("a sqlite:// URL needs a file path, e.g. sqlite://lethe.db".into());
            }
            if path.contains(":memory:") {
                return Err(
                    "in-memory SQLite is not supported: lethe must keep what it acknowledges"
                        .into(),
                );
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                target: path.to_owned(),
            });
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            url::Url::parse(s).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            return Ok(Self {
                backend: Backend::Postgres,
                target: s.to_owned(),
            });
        }
        Err("must start with sqlite:// or postgres://".into())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn target(&self) -> &str {
        &self.target
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // PostgreSQL URLs may carry a password.
        match self.backend {
            Backend::Sqlite => write!(f, "sqlite://{}", self.target),
            Backend::Postgres => match url::Url::parse(&self.target) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    write!(f, "{u}")
                }
                Err(_) => f.write_str("postgres://***"),
            },
        }
    }
}

/// Pool sizing and SQLite durability.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// PostgreSQL connections per process.
    pub pg_pool_size: u32,
    /// SQLite read connections (writes go through one connection).
    pub sqlite_readers: u32,
    /// `PRAGMA synchronous`: FULL (default) survives power loss, NORMAL only
    /// a process crash.
    pub sqlite_synchronous_full: bool,
    /// How long a caller waits for a connection before the store reports
    /// itself unavailable.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pg_pool_size: 8,
            sqlite_readers: 4,
            sqlite_synchronous_full: true,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A borrowed connection of either backend. Use [`crate::with_conn!`].
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Pg(&'a mut PgConnection),
}

impl Conn<'_> {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Pg(_) => Backend::Postgres,
        }
    }

    /// Run `f` atomically: in a transaction, or a savepoint when the
    /// connection is in one already. An `Err` rolls back what `f` wrote.
    pub fn atomic<T>(
        &mut self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Conn::Sqlite(c) => c.transaction(|c| f(&mut Conn::Sqlite(c))),
            Conn::Pg(c) => c.transaction(|c| f(&mut Conn::Pg(c))),
        }
    }
}

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type PgPool = Pool<ConnectionManager<PgConnection>>;

enum Pools {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
        /// The write-ahead log to flush after writes made outside the group
        /// commit (migrations), when `synchronous=full`.
        wal: Option<std::path::PathBuf>,
        /// Write transactions, run by the group-commit thread ([`group_commit`]).
        queue: std::sync::mpsc::Sender<WriteJob>,
    },
    Postgres(PgPool),
}

/// What the group-commit thread does with a job's outcome once the batch's
/// COMMIT has returned: `None` means committed.
type Delivery = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// One caller's write transaction, run inside a savepoint of a shared
/// transaction. Returns the delivery, and `false` if the batch must be rolled
/// back as a whole (the caller's closure panicked).
type WriteJob = Box<dyn FnOnce(&mut SqliteConnection) -> (Delivery, bool) + Send>;

/// Most write transactions one SQLite commit carries.
const GROUP_COMMIT_MAX: usize = 256;

/// SQLite's group commit: one thread owns the write path and runs every
/// write transaction that is waiting when it becomes free in one `BEGIN
/// IMMEDIATE ... COMMIT`, each caller's work in its own savepoint. A caller
/// whose closure fails has its savepoint rolled back and gets its error; the
/// others are unaffected. Nobody hears back before the COMMIT has returned
/// (and, with `flush`, before the write-ahead log holding it is on disk),
/// so an `Ok` still means committed; if the COMMIT fails, every caller in
/// the batch gets the error. What this buys: one flush per batch instead of
/// one per write, which is what bounds SQLite's write rate.
///
/// With `flush` (`synchronous=full`, the default) the connection commits
/// with `synchronous=NORMAL` (nothing flushed in COMMIT) and a second thread
/// ([`flush_wal`]) flushes the log with `fdatasync` before anyone hears
/// back. The next batch runs while the last one is being flushed, and one
/// flush carries every batch committed before it started: the write path is
/// bounded by the larger of the two, not their sum. (This is what
/// `synchronous=FULL` does in WAL mode, a flush of the log per commit, done
/// beside the write path instead of in it.)
fn group_commit(
    writer: SqlitePool,
    queue: std::sync::mpsc::Receiver<WriteJob>,
    flush: Option<std::sync::mpsc::Sender<Committed>>,
    grown: std::sync::mpsc::SyncSender<()>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut deliveries: Vec<Delivery> = Vec::with_capacity(batch.len());
        let outcome = match writer.get() {
            Err(e) => Err(StoreError::from(e)),
            Ok(mut c) => c.immediate_transaction(|c| {
                let mut whole = Ok(());
                for job in batch.drain(..) {
                    let (deliver, ok) = job(c);
                    deliveries.push(deliver);
                    if !ok {
                        whole = Err(StoreError::Internal(
                            "a write in this commit panicked".into(),
                        ));
                        break;
                    }
                }
                whole
            }),
        };
        // Jobs never started (the pool was unavailable, or a panic stopped the batch).
        for job in batch {
            drop(job);
        }
        let err = outcome.err();
        // The log grew: the checkpointer looks (unless it has a note already).
        let _ = grown.try_send(());
        match (&flush, err) {
            (Some(flusher), None) => {
                if let Err(unsent) = flusher.send(deliveries) {
                    // The flusher is gone: nothing can be acknowledged.
                    let e = StoreError::Unavailable("the SQLite log flusher stopped".into());
                    for deliver in unsent.0 {
                        deliver(Some(&e));
                    }
                }
            }
            (_, err) => {
                for deliver in deliveries {
                    deliver(err.as_ref());
                }
            }
        }
    }
}

/// How often, at most, [`checkpoint_wal`] copies the log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// Log frames (pages) after which the writer checkpoints itself: four times
/// SQLite's default, as the checkpointer has copied most of them by then.
const WRITER_CHECKPOINT_PAGES: u32 = 4000;

/// SQLite's checkpoints, mostly beside the write path: after commits, at
/// most every [`CHECKPOINT_EVERY`], a `PASSIVE` checkpoint on a connection
/// of its own copies the log's new pages into the database file (and
/// flushes it) while the writer goes on appending. A checkpoint beside a
/// busy writer never quite catches up, and only a checkpoint that has
/// copied the whole log lets the next write start the log from its
/// beginning again (a `RESTART` checkpoint from here starves: the writer
/// takes its lock back first). So the writer still checkpoints itself every
/// [`WRITER_CHECKPOINT_PAGES`] pages (SQLite's automatic checkpoint), which
/// finds most pages copied already and only does the rest. Before, the
/// writer did it all: copying the pages and flushing the database file took
/// a twelfth of its time under load. A failed checkpoint here is logged and
/// tried again after the next commit.
fn checkpoint_wal(target: &str, grown: std::sync::mpsc::Receiver<()>) {
    let mut conn: Option<SqliteConnection> = None;
    let mut last: Option<std::time::Instant> = None;
    while grown.recv().is_ok() {
        if let Some(wait) = last.map(|t| CHECKPOINT_EVERY.saturating_sub(t.elapsed())) {
            if !wait.is_zero() {
                std::thread::sleep(wait);
                while grown.try_recv().is_ok() {}
            }
        }
        last = Some(std::time::Instant::now());
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match SqliteConnection::establish(target) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the SQLite checkpointer cannot open the database");
                    continue;
                }
            },
        };
        if let Err(e) =
            c.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA wal_checkpoint(PASSIVE);")
        {
            tracing::warn!(error = %e, "SQLite checkpoint failed; tried again after the next commit");
            conn = None;
        }
    }
}

/// `fdatasync` the file at `path` (opened afresh). A missing file is fine:
/// no log means the last connection closed, which checkpoints the log into
/// the database file and flushes it.
fn sync_file(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A committed batch's callers, waiting for the log to reach the disk.
type Committed = Vec<Delivery>;

/// Flush the write-ahead log for every committed batch waiting, then tell
/// their callers. One `fdatasync` serves all batches committed before it
/// started. The file is opened afresh each time, so a log SQLite removed
/// and made again is the one flushed.
fn flush_wal(wal: std::path::PathBuf, committed: std::sync::mpsc::Receiver<Committed>) {
    while let Ok(first) = committed.recv() {
        let mut waiting = first;
        while let Ok(more) = committed.try_recv() {
            waiting.extend(more);
        }
        let err = sync_file(&wal).err().map(|e| {
            tracing::error!(error = %e, "could not flush the SQLite write-ahead log");
            StoreError::Unavailable("the database could not flush its log to disk".into())
        });
        for deliver in waiting {
            deliver(err.as_ref());
        }
    }
}

/// The error a caller gets when its work was fine but the shared COMMIT failed.
fn commit_failed(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Internal(format!("commit failed: {other}")),
    }
}

/// The database handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
    /// PostgreSQL: the group commit for submissions ([`Store::submit_grouped`]).
    submit_groups: Option<Arc<SubmitGroups>>,
    /// PostgreSQL: the group commit for jobs' writes ([`Store::write_seen`]).
    job_writes: Option<Arc<JobWrites>>,
    /// Woken after every committed write, so idle job workers look at once.
    written: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct SqlitePragmas {
    synchronous_full: bool,
    /// Pages of log after which this connection checkpoints itself (SQLite's
    /// default is 1,000; see [`checkpoint_wal`] for the writer's).
    autocheckpoint: u32,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let sync = if self.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        let pages = self.autocheckpoint;
        // temp_store = MEMORY: the group commit runs each caller's write in
        // a savepoint, and SQLite keeps the pages a savepoint changes in a
        // statement journal, by default a temporary file: three in four of
        // the writer's write calls went there (about 40 pages per
        // submission), none of which durability needs (the log is what
        // survives a crash). In memory, the journal is one savepoint's pages.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -4000; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = {pages};"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Open the pools. Does not require the database to be up (PostgreSQL
    /// connections are made lazily); see [`Store::ping`].
    pub fn open(url: &DatabaseUrl, opts: &StoreOptions) -> Result<Self, StoreError> {
        let mut submit_groups = None;
        let mut job_writes = None;
        let pools = match url.backend {
            Backend::Sqlite => {
                let make = |size: u32, synchronous_full: bool, autocheckpoint: u32| {
                    Pool::builder()
                        .max_size(size)
                        .min_idle(Some(1))
                        .test_on_check_out(false)
                        .connection_timeout(opts.acquire_timeout)
                        .connection_customizer(Box::new(SqlitePragmas {
                            synchronous_full,
                            autocheckpoint,
                        }))
                        .build(ConnectionManager::<SqliteConnection>::new(&url.target))
                };
                // The writer first: it switches the file to WAL mode. With
                // `full`, it commits without flushing and the flusher
                // thread flushes the log before callers hear back.
                let full = opts.sqlite_synchronous_full;
                let writer = make(1, false, WRITER_CHECKPOINT_PAGES)?;
                let readers = make(opts.sqlite_readers.max(1), full, 1000)?;
                let (grown, checkpoints) = std::sync::mpsc::sync_channel(1);
                let target = url.target.clone();
                std::thread::Builder::new()
                    .name("lethe-sqlite-checkpoint".into())
                    .spawn(move || checkpoint_wal(&target, checkpoints))
                    .map_err(|e| StoreError::Internal(format!("starting the checkpointer: {e}")))?;
                let (queue, jobs) = std::sync::mpsc::channel();
                let committer = writer.clone();
                let wal = full.then(|| std::path::PathBuf::from(format!("{}-wal", url.target)));
                let flush = if let Some(wal) = wal.clone() {
                    let (tx, rx) = std::sync::mpsc::channel();
                    std::thread::Builder::new()
                        .name("lethe-sqlite-flush".into())
                        .spawn(move || flush_wal(wal, rx))
                        .map_err(|e| StoreError::Internal(format!("starting the flusher: {e}")))?;
                    Some(tx)
                } else {
                    None
                };
                std::thread::Builder::new()
                    .name("lethe-sqlite-writer".into())
                    .spawn(move || group_commit(committer, jobs, flush, grown))
                    .map_err(|e| StoreError::Internal(format!("starting the writer: {e}")))?;
                Pools::Sqlite {
                    writer,
                    readers,
                    wal,
                    queue,
                }
            }
            Backend::Postgres => {
                let pool = Pool::builder()
                    .max_size(opts.pg_pool_size.max(1))
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .connection_timeout(opts.acquire_timeout)
                    .build_unchecked(ConnectionManager::<PgConnection>::new(&url.target));
                submit_groups = Some(Arc::new(SubmitGroups::start(pool.clone())?));
                job_writes = Some(Arc::new(JobWrites::start(pool.clone())?));
                Pools::Postgres(pool)
            }
        };
        Ok(Self {
            pools: Arc::new(pools),
            submit_groups,
            job_writes,
            written: Arc::new(tokio::sync::Notify::new()),
        })
    }

    pub fn backend(&self) -> Backend {
        match *self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Run `f` in a read-only context on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        run_blocking(move || store.read_blocking(f)).await
    }

    /// Run `f` in one write transaction on the blocking pool. An `Err` rolls
    /// the transaction back. Once it has committed, whoever waits on
    /// [`Store::written`] (idle job workers) is woken: it may have queued work.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let result = self.write_quietly(f).await;
        self.woken_after(result)
    }

    /// Wake those waiting on [`Store::written`] if `result` is a committed write.
    fn woken_after<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            self.written.notify_waiters();
        }
        result
    }

    /// [`Store::write`] without waking those waiting on [`Store::written`],
    /// for a write that queues no work: a job worker claiming a job or
    /// recording how it went. (If claims woke the idle workers, each empty
    /// claim would wake them all to claim again, for ever.)
    pub async fn write_quietly<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match &*self.pools {
            Pools::Sqlite { queue, .. } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                enqueue_write(queue, f, tx)?;
                rx.await.unwrap_or_else(|_| Err(writer_gone()))
            }
            Pools::Postgres(_) => {
                let store = self.clone();
                run_blocking(move || store.write_blocking(f)).await
            }
        }
    }

    /// Like [`Store::write`], but on PostgreSQL `f` runs on a connection
    /// with no transaction open: it must make its writes atomic itself, as
    /// one statement or with [`Conn::atomic`]. A write that is one statement
    /// saves the `BEGIN` and `COMMIT` round trips. On SQLite this is
    /// [`Store::write`] (the group commit's transaction).
    pub async fn write_self_contained<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let result = self.write_self_contained_quietly(f).await;
        self.woken_after(result)
    }

    /// [`Store::write_self_contained`] without waking those waiting on
    /// [`Store::written`] (see [`Store::write_quietly`]): a job claim.
    pub async fn write_self_contained_quietly<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match &*self.pools {
            Pools::Sqlite { .. } => self.write_quietly(f).await,
            Pools::Postgres(pool) => {
                let pool = pool.clone();
                run_blocking(move || {
                    let mut c = pool.get()?;
                    f(&mut Conn::Pg(&mut c))
                })
                .await
            }
        }
    }

    /// Write a submission whose key came from the cache (see
    /// [`crate::store::submit_group`]): on PostgreSQL with the others
    /// waiting, as one statement. One it did not write (and, on SQLite, every
    /// one) comes back [`Grouped::Alone`], for
    /// [`crate::store::requests::submit_prepared`].
    pub async fn submit_grouped(&self, s: Guarded) -> Result<Grouped, StoreError> {
        match &self.submit_groups {
            Some(groups) if !s.prepared.goes_alone() => {
                let answer = groups.submit(s).await;
                if let Ok(Grouped::Written(_)) = answer {
                    self.written.notify_waiters();
                }
                answer
            }
            _ => Ok(Grouped::Alone(s)),
        }
    }

    /// Write what a job planned on the request as it read it (see
    /// [`crate::store::job_writes`]): on PostgreSQL with the others waiting,
    /// as one statement. On SQLite every one comes back [`JobWrite::Alone`],
    /// to be written through [`Store::write`] (its group commit already
    /// shares the transaction).
    pub async fn write_seen(&self, write: SeenWrite) -> Result<JobWrite, StoreError> {
        match &self.job_writes {
            Some(groups) => {
                let answer = groups.write(write).await;
                if let Ok(JobWrite::Written(_)) = answer {
                    self.written.notify_waiters();
                }
                answer
            }
            None => Ok(JobWrite::Alone(write)),
        }
    }

    /// Store a new approval link ([`crate::store::approvals::plan`]) before
    /// an email carries it: on PostgreSQL with the jobs' writes waiting (see
    /// [`crate::store::job_writes`]), as one statement. A link for a batch,
    /// and every link on SQLite, comes back [`LinkWrite::Alone`], to be
    /// stored with `approvals::insert`.
    pub async fn write_link(&self, link: LinkRow) -> Result<LinkWrite, StoreError> {
        match &self.job_writes {
            Some(groups) => groups.link(link).await,
            None => Ok(LinkWrite::Alone(link)),
        }
    }

    /// Resolves after the next committed write through this handle.
    pub fn written(&self) -> tokio::sync::futures::Notified<'_> {
        self.written.notified()
    }

    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &*self.pools {
            Pools::Sqlite { readers, .. } => {
                let mut c: PooledConnection<_> = readers.get()?;
                f(&mut Conn::Sqlite(&mut c))
            }
            Pools::Postgres(pool) => {
                let mut c = pool.get()?;
                f(&mut Conn::Pg(&mut c))
            }
        }
    }

    /// [`Store::write`] for a caller outside the async runtime. Blocks.
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match &*self.pools {
            Pools::Sqlite { queue, .. } => {
                // Through the group-commit thread, like `write`: one write path.
                let (tx, rx) = tokio::sync::oneshot::channel();
                enqueue_write(queue, f, tx)?;
                rx.blocking_recv().unwrap_or_else(|_| Err(writer_gone()))
            }
            Pools::Postgres(pool) => {
                let mut c = pool.get()?;
                c.transaction(|c| f(&mut Conn::Pg(c)))
            }
        }
    }

    /// Is the database reachable? (`/readyz`)
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            crate::with_conn!(conn, |c| c
                .batch_execute("SELECT 1")
                .map_err(StoreError::from))
        })
        .await
    }

    /// Apply pending migrations (guarded by an advisory lock on PostgreSQL so
    /// replicas starting together do not race).
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let store = self.clone();
        run_blocking(move || match &*store.pools {
            Pools::Sqlite { writer, wal, .. } => {
                let mut c = writer.get()?;
                let applied = super::migrate::run_sqlite(&mut c)?;
                if let Some(wal) = wal {
                    sync_file(wal).map_err(|e| {
                        StoreError::Unavailable(format!("could not flush the database log: {e}"))
                    })?;
                }
                Ok(applied)
            }
            Pools::Postgres(pool) => {
                let mut c = pool.get()?;
                super::migrate::run_postgres(&mut c)
            }
        })
        .await
    }
}

/// Hand `f` to the group-commit thread; its result (after the COMMIT) goes to `tx`.
fn enqueue_write<T, F>(
    queue: &std::sync::mpsc::Sender<WriteJob>,
    f: F,
    tx: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
) -> Result<(), StoreError>
where
    F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let job: WriteJob = Box::new(move |c: &mut SqliteConnection| {
        // A nested diesel transaction is a savepoint: an `Err` rolls back
        // this caller's work only.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.transaction(|c| f(&mut Conn::Sqlite(c)))
        }));
        let (result, ok) = match run {
            Ok(r) => (r, true),
            Err(_) => (
                Err(StoreError::Internal("database task panicked".into())),
                false,
            ),
        };
        let deliver: Delivery = Box::new(move |commit: Option<&StoreError>| {
            let out = match (result, commit) {
                (Ok(v), None) => Ok(v),
                (Ok(_), Some(e)) => Err(commit_failed(e)),
                (Err(e), _) => Err(e),
            };
            let _ = tx.send(out);
        });
        (deliver, ok)
    });
    queue.send(job).map_err(|_| writer_gone())
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite write path is unavailable; the write was not run".into())
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("database task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://lethe.db").unwrap().target(),
            "lethe.db"
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/l.db")
                .unwrap()
                .target(),
            "/var/lib/l.db"
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://u@localhost/db")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("lethe.db").is_err());
    }

    /// Many concurrent writes share commits; a failing one leaves nothing
    /// behind and does not affect the others in its batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_isolates_failures() {
        use diesel::sql_types::BigInt;
        use diesel::RunQueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("g.db").display())).unwrap();
        let store = Store::open(&url, &StoreOptions::default()).unwrap();
        store
            .write(|c| {
                crate::with_conn!(c, |c| c
                    .batch_execute("CREATE TABLE t (n BIGINT PRIMARY KEY)")
                    .map_err(StoreError::from))
            })
            .await
            .unwrap();
        let writes = (0..300i64).map(|n| {
            let store = store.clone();
            async move {
                store
                    .write(move |c| {
                        crate::with_conn!(c, |c| c
                            .batch_execute(&format!("INSERT INTO t VALUES ({n})"))
                            .map_err(StoreError::from))?;
                        if n % 3 == 0 {
                            return Err(StoreError::Conflict("fails on purpose"));
                        }
                        Ok(n)
                    })
                    .await
            }
        });
        let results = futures::future::join_all(writes).await;
        for (n, r) in results.iter().enumerate() {
            assert_eq!(r.is_ok(), n % 3 != 0, "write {n}: {r:?}");
        }
        let (rows, sum) = store
            .read(|c| {
                crate::with_conn!(c, |c| diesel::select((
                    diesel::dsl::sql::<BigInt>("(SELECT count(*) FROM t)"),
                    diesel::dsl::sql::<BigInt>("(SELECT coalesce(sum(n), 0) FROM t)"),
                ))
                .get_result::<(i64, i64)>(c)
                .map_err(StoreError::from))
            })
            .await
            .unwrap();
        assert_eq!(rows, 200);
        assert_eq!(sum, (0..300i64).filter(|n| n % 3 != 0).sum::<i64>());
        // The blocking entry point goes through the same path.
        let s = store.clone();
        let n = tokio::task::spawn_blocking(move || {
            s.write_blocking(|c| {
                crate::with_conn!(c, |c| c
                    .batch_execute("INSERT INTO t VALUES (1000)")
                    .map_err(StoreError::from))?;
                Ok(1000)
            })
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 1000);
    }

    /// Under a steady stream of writes the write-ahead log stays bounded:
    /// the checkpoints beside the write path copy it into the database and
    /// the writer's own lets it start over (without the latter, it grew
    /// without end).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_stays_bounded_under_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
        let store = Store::open(&url, &StoreOptions::default()).unwrap();
        store
            .write(|c| {
                crate::with_conn!(c, |c| c
                    .batch_execute("CREATE TABLE t (n INTEGER PRIMARY KEY, b BLOB)")
                    .map_err(StoreError::from))
            })
            .await
            .unwrap();
        // 64 MiB of rows, 16 writers at a time, in 64 KiB writes.
        for round in 0..64i64 {
            let writes = (0..16i64).map(|i| {
                let store = store.clone();
                async move {
                    store
                        .write(move |c| {
                            crate::with_conn!(c, |c| c
                                .batch_execute(&format!(
                                    "INSERT INTO t VALUES ({}, zeroblob(65536))",
                                    round * 16 + i
                                ))
                                .map_err(StoreError::from))
                        })
                        .await
                }
            });
            for r in futures::future::join_all(writes).await {
                r.unwrap();
            }
        }
        let wal = std::fs::metadata(dir.path().join("w.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < 40 << 20,
            "the log holds {} MiB after 64 MiB written",
            wal >> 20
        );
    }

    #[test]
    fn passwords_are_masked() {
        let u = DatabaseUrl::parse("postgres://u:hunter2@h/db").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
    }
}
