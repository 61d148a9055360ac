//! Counts for metrics and dashboards, computed with GROUP BY (no rows loaded).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::dsl::{count_star, min, sql};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::{erasure_requests as er, jobs};
use super::{Conn, StoreError};
use crate::with_conn;

#[derive(Debug, Default)]
pub struct Snapshot {
    pub by_state: Vec<(String, i64)>,
    pub overdue: i64,
    /// (kind, pending jobs, seconds the oldest due one has waited)
    pub jobs: Vec<(String, i64, f64)>,
    pub dead_jobs: i64,
}

pub fn snapshot(conn: &mut Conn<'_>, now: DateTime<Utc>) -> Result<Snapshot, StoreError> {
    let by_state: Vec<(String, i64)> = with_conn!(conn, |c| er::table
        .group_by(er::state)
        .select((er::state, count_star()))
        .load(c))?;
    let n = now.naive_utc();
    // Written like the partial index over open requests, so it is a range
    // of that index (see support::queue::OPEN_SQL).
    let overdue: i64 = with_conn!(conn, |c| er::table
        .filter(sql::<Bool>(super::support::queue::OPEN_SQL))
        .filter(er::due_at.lt(n))
        .count()
        .get_result(c))?;
    let pending: Vec<(String, i64, Option<NaiveDateTime>)> = with_conn!(conn, |c| jobs::table
        .filter(jobs::finished_at.is_null())
        .group_by(jobs::kind)
        .select((jobs::kind, count_star(), min(jobs::run_at)))
        .load(c))?;
    let dead: i64 = with_conn!(conn, |c| jobs::table
        .filter(jobs::dead.eq(true))
        .count()
        .get_result(c))?;
    Ok(Snapshot {
        by_state,
        overdue,
        jobs: pending
            .into_iter()
            .map(|(k, depth, oldest)| {
                let age = oldest
                    .map(|t| (n - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                (k, depth, age)
            })
            .collect(),
        dead_jobs: dead,
    })
}
