//! The daily digest's schedule. Each day's digest is one job whose id names
//! the day, written with `ON CONFLICT DO NOTHING`: replicas starting together,
//! or a digest scheduling its successor, never queue the same day twice.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use diesel::prelude::*;

use crate::domain::outbox::JobKind;
use crate::store::jobs::JobRow;
use crate::store::schema::jobs;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// The next time the digest is due: today at `hour`:00 UTC, or tomorrow if
/// that has passed.
pub fn next_slot(now: DateTime<Utc>, hour: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour.min(23), 0, 0).expect("valid hour");
    let today = now.date_naive().and_time(time).and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

/// Queue the digest for the next slot unless that day's is queued already.
/// Returns whether a job was written.
pub fn schedule(conn: &mut Conn<'_>, hour: u32, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let at = next_slot(now, hour);
    let mut job = JobRow::new(
        JobKind::SupportDigest,
        None,
        None,
        serde_json::json!({ "day": at.date_naive() }),
        now,
    );
    job.id = format!("support_digest:{}", at.date_naive());
    job.run_at = at.naive_utc();
    let n = with_conn!(conn, |c| diesel::insert_into(jobs::table)
        .values(&job)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_next_slot_is_today_or_tomorrow() {
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
        assert_eq!(next_slot(at(5, 6, 59), 7), at(5, 7, 0));
        assert_eq!(next_slot(at(5, 7, 0), 7), at(6, 7, 0));
        assert_eq!(next_slot(at(5, 22, 0), 7), at(6, 7, 0));
    }
}
