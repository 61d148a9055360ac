//! The support team's rules, pure: how urgent a deadline is, when a deadline
//! may be extended (GDPR Art. 12(3)), when repeated failed logins lock a
//! support account, and the secrets a support session carries.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::deadline::{add_months, due_at, end_of_day, max_extended_due_at};
use super::values::InvalidValue;
use super::RequestState;

/// How urgent a request's deadline is, as the dashboard colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Ten days or more left.
    Green,
    /// Fewer than ten days left.
    Amber,
    /// Fewer than five days left (including the last day).
    Red,
    /// The deadline has passed and the request is still open.
    Overdue,
    /// The request is closed: no deadline runs.
    Closed,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Green => "green",
            Urgency::Amber => "amber",
            Urgency::Red => "red",
            Urgency::Overdue => "overdue",
            Urgency::Closed => "closed",
        }
    }
}

/// Days left until a deadline, counted in calendar days (UTC), as the
/// deadline itself is counted in calendar months: a request due at the end of
/// 15 March has 0 days left on 15 March and is overdue from 16 March.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaysLeft {
    /// Calendar days from today to the due date; negative once overdue.
    pub days: i64,
    pub urgency: Urgency,
}

impl DaysLeft {
    pub fn of(state: RequestState, due: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let days = (due.date_naive() - now.date_naive()).num_days();
        let urgency = if !state.is_open() {
            Urgency::Closed
        } else if now > due {
            Urgency::Overdue
        } else if days < 5 {
            Urgency::Red
        } else if days < 10 {
            Urgency::Amber
        } else {
            Urgency::Green
        };
        Self { days, urgency }
    }

    /// Words for the badge: the colour is never the only signal.
    pub fn label(&self) -> String {
        match (self.urgency, self.days) {
            (Urgency::Closed, _) => "closed".to_owned(),
            (Urgency::Overdue, d) if d >= 0 => "overdue".to_owned(),
            (Urgency::Overdue, -1) => "overdue by 1 day".to_owned(),
            (Urgency::Overdue, d) => format!("overdue by {} days", -d),
            (_, 0) => "due today".to_owned(),
            (_, 1) => "1 day left".to_owned(),
            (_, d) => format!("{d} days left"),
        }
    }
}

/// The most a deadline may be extended by (GDPR Art. 12(3)).
pub const MAX_EXTENSION_MONTHS: u32 = 2;

/// How support asks to extend a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendBy {
    /// By one or two months: the deadline becomes receipt + 1 + n months.
    Months(u32),
    /// To the end of a given day (UTC).
    Until(NaiveDate),
}

impl ExtendBy {
    pub fn months(n: u32) -> Result<Self, InvalidValue> {
        if (1..=MAX_EXTENSION_MONTHS).contains(&n) {
            Ok(ExtendBy::Months(n))
        } else {
            Err(InvalidValue::new(
                "months",
                format!("must be from 1 to {MAX_EXTENSION_MONTHS}"),
            ))
        }
    }

    /// The deadline this asks for, for a request received at `received_at`.
    pub fn new_due(self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            ExtendBy::Months(n) => end_of_day(add_months(received_at.date_naive(), 1 + n)),
            ExtendBy::Until(day) => end_of_day(day),
        }
    }
}

/// What decides whether a request's deadline may be extended.
#[derive(Debug, Clone, Copy)]
pub struct ExtensionFacts {
    pub state: RequestState,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub extended_at: Option<DateTime<Utc>>,
}

/// Why an extension is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("the request is {0}: no deadline runs any more")]
    Closed(RequestState),
    #[error("the deadline was already extended once; GDPR Art. 12(3) allows one extension")]
    AlreadyExtended,
    #[error("the first month ended on {}: an extension must be decided and told to the subject within it", .0.format("%Y-%m-%d"))]
    FirstMonthOver(DateTime<Utc>),
    #[error("the deadline may be extended to {} at the latest (two further months)", .0.format("%Y-%m-%d"))]
    TooLong(DateTime<Utc>),
    #[error("the new deadline must be later than the current one ({})", .0.format("%Y-%m-%d"))]
    NotLater(DateTime<Utc>),
}

impl ExtensionError {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            ExtensionError::Closed(_) => "request_closed",
            ExtensionError::AlreadyExtended => "already_extended",
            ExtensionError::FirstMonthOver(_) => "extension_window_closed",
            ExtensionError::TooLong(_) => "extension_too_long",
            ExtensionError::NotLater(_) => "extension_not_later",
        }
    }

    /// True when the request's situation forbids it (409); false when the
    /// asked-for date is wrong (422).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ExtensionError::Closed(_)
                | ExtensionError::AlreadyExtended
                | ExtensionError::FirstMonthOver(_)
        )
    }
}

impl ExtensionFacts {
    /// The one-month deadline the request started with.
    pub fn original_due(&self) -> DateTime<Utc> {
        due_at(self.received_at)
    }

    /// Whether the deadline can still be extended at all at `now`.
    pub fn can_extend(&self, now: DateTime<Utc>) -> Result<(), ExtensionError> {
        if !self.state.is_open() {
            return Err(ExtensionError::Closed(self.state));
        }
        if self.extended_at.is_some() {
            return Err(ExtensionError::AlreadyExtended);
        }
        let original = self.original_due();
        if now >= original {
            return Err(ExtensionError::FirstMonthOver(original));
        }
        Ok(())
    }

    /// Check an extension to `new_due` at `now`: once, only within the first
    /// month, later than the current deadline, and at most two further
    /// months (`max_extended_due_at`).
    pub fn check(
        &self,
        new_due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, ExtensionError> {
        self.can_extend(now)?;
        if new_due <= self.due_at {
            return Err(ExtensionError::NotLater(self.due_at));
        }
        let max = max_extended_due_at(self.received_at);
        if new_due > max {
            return Err(ExtensionError::TooLong(max));
        }
        Ok(new_due)
    }
}

/// When repeated failed logins lock a support account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failed logins that lock the account.
    pub max_failures: u32,
    /// How long the account stays locked.
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: Duration::minutes(15),
        }
    }
}

/// The daily digest email to the support team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPolicy {
    pub to: super::values::EmailAddress,
    /// Hour of the day (UTC) it goes out.
    pub hour: u32,
}

/// The support dashboard's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportPolicy {
    /// How long a login lasts.
    pub session_ttl: Duration,
    pub lockout: LockoutPolicy,
    pub digest: Option<DigestPolicy>,
}

impl Default for SupportPolicy {
    fn default() -> Self {
        Self {
            session_ttl: Duration::hours(12),
            lockout: LockoutPolicy::default(),
            digest: None,
        }
    }
}

/// The account's state after a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// Consecutive failures to store (reset to 0 when the account locks).
    pub failures: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl LockoutPolicy {
    pub fn is_locked(&self, locked_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        locked_until.is_some_and(|until| now < until)
    }

    /// Count one more failure on top of `failures` earlier consecutive ones.
    pub fn after_failure(&self, failures: i32, now: DateTime<Utc>) -> AfterFailure {
        let n = failures.saturating_add(1);
        if n >= self.max_failures as i32 {
            AfterFailure {
                failures: 0,
                locked_until: Some(now + self.lock_for),
            }
        } else {
            AfterFailure {
                failures: n,
                locked_until: None,
            }
        }
    }
}

/// A support user's password, checked for length only (long passphrases
/// beat composition rules). Never printed by Debug.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 12;
    pub const MAX_LEN: usize = 1024;

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let n = s.chars().count();
        if n < Self::MIN_LEN {
            return Err(InvalidValue::new(
                "password",
                format!("must be at least {} characters", Self::MIN_LEN),
            ));
        }
        if n > Self::MAX_LEN {
            return Err(InvalidValue::new(
                "password",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A support user's id (UUIDv7). The audit trail names support users by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SupportUserId(uuid::Uuid);

impl SupportUserId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for SupportUserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::str::FromStr for SupportUserId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

impl std::fmt::Display for SupportUserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The audit trail's actor for a support user.
pub fn actor(user: SupportUserId) -> super::audit::Actor {
    super::audit::Actor::new(super::audit::ActorKind::Support, user.to_string())
}

/// Prefix of support API tokens, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "lethe_st_";
/// Prefix of support session secrets (the cookie's value).
pub const SESSION_PREFIX: &str = "ss_";
/// Prefix of the pre-login form secret (double-submit cookie).
pub const LOGIN_FORM_PREFIX: &str = "lf_";

/// The CSRF token of a session: derived from the session's secret, so it
/// needs no storage and is worthless without the cookie it belongs to.
pub fn csrf_token(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"lethe-support-csrf\0");
    h.update(session_secret.as_bytes());
    hex::encode(&h.finalize()[..20])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn days_left_are_calendar_days_and_coloured() {
        let due = end_of_day(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        let open = RequestState::AwaitingApproval;
        let cases = [
            (at(2026, 3, 1, 9), 30, Urgency::Green, "30 days left"),
            (at(2026, 3, 21, 9), 10, Urgency::Green, "10 days left"),
            (at(2026, 3, 22, 9), 9, Urgency::Amber, "9 days left"),
            (at(2026, 3, 26, 23), 5, Urgency::Amber, "5 days left"),
            (at(2026, 3, 27, 0), 4, Urgency::Red, "4 days left"),
            (at(2026, 3, 30, 9), 1, Urgency::Red, "1 day left"),
            (at(2026, 3, 31, 23), 0, Urgency::Red, "due today"),
            (at(2026, 4, 1, 0), -1, Urgency::Overdue, "overdue by 1 day"),
            (at(2026, 4, 3, 0), -3, Urgency::Overdue, "overdue by 3 days"),
        ];
        for (now, days, urgency, label) in cases {
            let d = DaysLeft::of(open, due, now);
            assert_eq!((d.days, d.urgency), (days, urgency), "{now}");
            assert_eq!(d.label(), label);
        }
        let closed = DaysLeft::of(RequestState::Erased, due, at(2026, 4, 3, 0));
        assert_eq!(closed.urgency, Urgency::Closed);
        assert_eq!(closed.label(), "closed");
        // Failed is open: its deadline still runs.
        assert_eq!(
            DaysLeft::of(RequestState::Failed, due, at(2026, 4, 3, 0)).urgency,
            Urgency::Overdue
        );
    }

    #[test]
    fn february_is_not_thirty_days() {
        // Received 31 January: due end of 28 February, not 2 March.
        let received = at(2026, 1, 31, 10);
        let due = due_at(received);
        assert_eq!(
            DaysLeft::of(RequestState::Pending, due, at(2026, 2, 28, 12)).days,
            0
        );
        assert_eq!(
            DaysLeft::of(RequestState::Pending, due, at(2026, 3, 1, 0)).urgency,
            Urgency::Overdue
        );
    }

    fn facts(received: DateTime<Utc>) -> ExtensionFacts {
        ExtensionFacts {
            state: RequestState::AwaitingApproval,
            received_at: received,
            due_at: due_at(received),
            extended_at: None,
        }
    }

    #[test]
    fn an_extension_is_at_most_two_more_months() {
        let received = at(2026, 1, 31, 10);
        let f = facts(received);
        let now = at(2026, 2, 10, 9);
        let two = ExtendBy::months(2).unwrap().new_due(received);
        assert_eq!(
            two.date_naive(),
            NaiveDate::from_ymd_opt(2026, 4, 30).unwrap()
        );
        assert_eq!(f.check(two, now), Ok(two));
        let one = ExtendBy::months(1).unwrap().new_due(received);
        assert_eq!(
            one.date_naive(),
            NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()
        );
        assert!(f.check(one, now).is_ok());
        let too_far = ExtendBy::Until(NaiveDate::from_ymd_opt(2026, 5, 1).unwrap());
        assert_eq!(
            f.check(too_far.new_due(received), now),
            Err(ExtensionError::TooLong(max_extended_due_at(received)))
        );
        let earlier = ExtendBy::Until(NaiveDate::from_ymd_opt(2026, 2, 20).unwrap());
        assert!(matches!(
            f.check(earlier.new_due(received), now),
            Err(ExtensionError::NotLater(_))
        ));
        assert!(ExtendBy::months(0).is_err());
        assert!(ExtendBy::months(3).is_err());
    }

    #[test]
    fn only_once_only_open_only_in_the_first_month() {
        let received = at(2026, 3, 15, 10);
        let new_due = ExtendBy::Months(2).new_due(received);
        let mut f = facts(received);
        f.extended_at = Some(at(2026, 3, 20, 0));
        assert_eq!(
            f.check(new_due, at(2026, 3, 21, 0)),
            Err(ExtensionError::AlreadyExtended)
        );
        let mut f = facts(received);
        f.state = RequestState::Erased;
        assert_eq!(
            f.check(new_due, at(2026, 3, 21, 0)),
            Err(ExtensionError::Closed(RequestState::Erased))
        );
        let f = facts(received);
        // The last moment of the first month still counts; the next does not.
        assert!(f.check(new_due, at(2026, 4, 15, 23)).is_ok());
        assert_eq!(
            f.check(new_due, at(2026, 4, 16, 0)),
            Err(ExtensionError::FirstMonthOver(due_at(received)))
        );
        assert!(ExtensionError::AlreadyExtended.is_conflict());
        assert!(!ExtensionError::TooLong(new_due).is_conflict());
    }

    #[test]
    fn repeated_failures_lock_for_a_while() {
        let p = LockoutPolicy::default();
        let now = at(2026, 1, 1, 0);
        let mut failures = 0;
        for _ in 0..4 {
            let a = p.after_failure(failures, now);
            assert_eq!(a.locked_until, None);
            failures = a.failures;
        }
        let a = p.after_failure(failures, now);
        assert_eq!(a.failures, 0);
        let until = a.locked_until.unwrap();
        assert!(p.is_locked(Some(until), now + Duration::minutes(14)));
        assert!(!p.is_locked(Some(until), now + Duration::minutes(15)));
        assert!(!p.is_locked(None, now));
    }

    #[test]
    fn passwords_and_csrf() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("correct horse battery").is_ok());
        assert!(
            !format!("{:?}", Password::parse("correct horse battery").unwrap()).contains("horse")
        );
        let a = csrf_token("ss_a");
        assert_eq!(a, csrf_token("ss_a"));
        assert_ne!(a, csrf_token("ss_b"));
        assert_eq!(a.len(), 40);
    }
}
