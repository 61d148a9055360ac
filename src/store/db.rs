//! Connection pools and the two ways in: [`Store::read`] and [`Store::write`].

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

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
            pg_pool_size: 16,
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
}

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type PgPool = Pool<ConnectionManager<PgConnection>>;

enum Pools {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
    /// Woken after every committed write, so idle job workers look at once.
    written: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct SqlitePragmas {
    synchronous_full: bool,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        let sync = if self.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -4000;"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Open the pools. Does not require the database to be up (PostgreSQL
    /// connections are made lazily); see [`Store::ping`].
    pub fn open(url: &DatabaseUrl, opts: &StoreOptions) -> Result<Self, StoreError> {
        let pools = match url.backend {
            Backend::Sqlite => {
                let make = |size: u32| {
                    Pool::builder()
                        .max_size(size)
                        .min_idle(Some(1))
                        .test_on_check_out(false)
                        .connection_timeout(opts.acquire_timeout)
                        .connection_customizer(Box::new(SqlitePragmas {
                            synchronous_full: opts.sqlite_synchronous_full,
                        }))
                        .build(ConnectionManager::<SqliteConnection>::new(&url.target))
                };
                // The writer first: it switches the file to WAL mode.
                let writer = make(1)?;
                let readers = make(opts.sqlite_readers.max(1))?;
                Pools::Sqlite { writer, readers }
            }
            Backend::Postgres => {
                let pool = Pool::builder()
                    .max_size(opts.pg_pool_size.max(1))
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .connection_timeout(opts.acquire_timeout)
                    .build_unchecked(ConnectionManager::<PgConnection>::new(&url.target));
                Pools::Postgres(pool)
            }
        };
        Ok(Self {
            pools: Arc::new(pools),
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
    /// the transaction back.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        let result = run_blocking(move || store.write_blocking(f)).await;
        if result.is_ok() {
            self.written.notify_waiters();
        }
        result
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

    pub fn write_blocking<T>(
        &self,
        f: impl FnOnce(&mut Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &*self.pools {
            Pools::Sqlite { writer, .. } => {
                let mut c = writer.get()?;
                c.immediate_transaction(|c| f(&mut Conn::Sqlite(c)))
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
            Pools::Sqlite { writer, .. } => {
                let mut c = writer.get()?;
                super::migrate::run_sqlite(&mut c)
            }
            Pools::Postgres(pool) => {
                let mut c = pool.get()?;
                super::migrate::run_postgres(&mut c)
            }
        })
        .await
    }
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

    #[test]
    fn passwords_are_masked() {
        let u = DatabaseUrl::parse("postgres://u:hunter2@h/db").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
    }
}
