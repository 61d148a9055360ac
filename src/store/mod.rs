//! Storage: diesel over SQLite (embedded default) or PostgreSQL (production).
//!
//! One set of queries serves both backends: every query is written once inside
//! [`with_conn!`], which expands it for each connection type. Database work runs
//! on tokio's blocking pool, never on the async executor. Writes run in one
//! transaction each (`BEGIN IMMEDIATE` on SQLite's single writer connection).

pub mod api_keys;
pub mod approvals;
pub mod audit;
pub mod db;
pub mod error;
pub mod facebook;
mod group_writers;
pub mod job_writes;
pub mod jobs;
pub mod key_cache;
pub mod migrate;
pub mod opendsr;
pub mod planner_stats;
pub mod receipts;
pub mod requests;
pub mod schema;
pub mod stats;
pub mod submit_group;
pub mod support;
pub mod target_links;
pub mod targets;
pub mod tenants;

pub use db::{Backend, Conn, DatabaseUrl, Store, StoreOptions};
pub use error::StoreError;

/// Run `$body` with `$c` bound to the concrete diesel connection, whichever
/// backend the store uses. The body is type-checked once per backend.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c) => {
                let $c: &mut diesel::sqlite::SqliteConnection = &mut **$c;
                $body
            }
            $crate::store::Conn::Pg($c) => {
                let $c: &mut diesel::pg::PgConnection = &mut **$c;
                $body
            }
        }
    };
}
