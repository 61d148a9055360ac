//! GDPR Art. 12(3) deadlines, counted as EU Regulation 1182/71 counts months:
//! a period of N months ends with the last hour of the day that, in the last
//! month, bears the same number as the day the period started; when that month
//! has no such day (31 January + 1 month), it ends with its last day.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};

/// Add `months` calendar months to a date, clamping to the month's last day.
pub fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    let total = date.year() * 12 + date.month0() as i32 + months as i32;
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12) as u32);
    let last = last_day_of_month(year, month0 + 1);
    NaiveDate::from_ymd_opt(year, month0 + 1, date.day().min(last))
        .expect("a clamped day is always a valid date")
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .expect("month between 1 and 12")
}

/// The end of the given UTC day: the last microsecond before midnight.
pub fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    let t = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("valid time");
    Utc.from_utc_datetime(&date.and_time(t))
}

/// The deadline for a request received at `received_at`: one month later.
pub fn due_at(received_at: DateTime<Utc>) -> DateTime<Utc> {
    end_of_day(add_months(received_at.date_naive(), 1))
}

/// The latest deadline an extension may set: three months after receipt
/// (one month plus at most two further months).
pub fn max_extended_due_at(received_at: DateTime<Utc>) -> DateTime<Utc> {
    end_of_day(add_months(received_at.date_naive(), 3))
}

/// Truncate a timestamp to whole microseconds, the precision both databases
/// keep, so that what is hashed is exactly what is read back.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).expect("in range")
}

/// The current time, truncated to microseconds.
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn same_numbered_day_of_next_month() {
        assert_eq!(add_months(d(2026, 3, 15), 1), d(2026, 4, 15));
        assert_eq!(add_months(d(2026, 12, 3), 1), d(2027, 1, 3));
    }

    #[test]
    fn month_without_that_day_ends_on_its_last_day() {
        assert_eq!(add_months(d(2026, 1, 31), 1), d(2026, 2, 28));
        assert_eq!(add_months(d(2028, 1, 31), 1), d(2028, 2, 29));
        assert_eq!(add_months(d(2026, 3, 31), 1), d(2026, 4, 30));
        assert_eq!(add_months(d(2026, 1, 30), 1), d(2026, 2, 28));
    }

    #[test]
    fn not_a_flat_number_of_days() {
        // February is short, but the period still ends on the 15th of March.
        assert_eq!(add_months(d(2026, 2, 15), 1), d(2026, 3, 15));
        assert_eq!(add_months(d(2026, 11, 30), 3), d(2027, 2, 28));
    }

    #[test]
    fn due_at_is_the_end_of_that_day() {
        let received = Utc.with_ymd_and_hms(2026, 1, 31, 10, 30, 0).unwrap();
        let due = due_at(received);
        assert_eq!(due.date_naive(), d(2026, 2, 28));
        assert_eq!(
            due.time(),
            NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()
        );
        assert_eq!(max_extended_due_at(received).date_naive(), d(2026, 4, 30));
    }

    #[test]
    fn truncation_keeps_microseconds_only() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(truncate_micros(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
