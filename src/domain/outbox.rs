//! The work a transition causes. Jobs are written in the same transaction as
//! the transition (transactional outbox) and carried out by workers. What to
//! schedule is decided here, purely; the store writes it and `jobs` runs it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::RequestState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Email the privacy contact an approval link for one request.
    SendApprovalEmail,
    /// Email the privacy contact one link for a whole batch.
    SendBatchApprovalEmail,
    /// Remind the privacy contact (a new link; the old one is voided).
    ApprovalReminder,
    /// Flag an undecided request for support before its deadline.
    EscalateDeadline,
    /// Tell the data subject about their request.
    NotifySubject,
    /// Tell every erasure target to erase (expanded by the store into one
    /// `CallTarget` job per enabled target, in the same transaction).
    StartErasure,
    /// Call one erasure target.
    CallTarget,
    /// Tell the platform's `callback_url` about a state change.
    Callback,
    /// Remove the personal fields of a closed request.
    Scrub,
    /// Email the privacy contact the certificate of erasure.
    SendReceipt,
    /// Tell an OpenDSR controller's status callback URL (RSA-signed).
    OpenDsrCallback,
    /// Email the support team the daily digest (new, overdue, failed).
    SupportDigest,
    /// Remind a manual target's owner (a fresh link) until they confirm.
    TargetOwnerReminder,
}

impl JobKind {
    pub const ALL: [JobKind; 13] = [
        Self::SendApprovalEmail,
        Self::SendBatchApprovalEmail,
        Self::ApprovalReminder,
        Self::EscalateDeadline,
        Self::NotifySubject,
        Self::StartErasure,
        Self::CallTarget,
        Self::Callback,
        Self::Scrub,
        Self::SendReceipt,
        Self::OpenDsrCallback,
        Self::SupportDigest,
        Self::TargetOwnerReminder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::SendApprovalEmail => "send_approval_email",
            JobKind::SendBatchApprovalEmail => "send_batch_approval_email",
            JobKind::ApprovalReminder => "approval_reminder",
            JobKind::EscalateDeadline => "escalate_deadline",
            JobKind::NotifySubject => "notify_subject",
            JobKind::StartErasure => "start_erasure",
            JobKind::CallTarget => "call_target",
            JobKind::Callback => "callback",
            JobKind::Scrub => "scrub",
            JobKind::SendReceipt => "send_receipt",
            JobKind::OpenDsrCallback => "opendsr_callback",
            JobKind::SupportDigest => "support_digest",
            JobKind::TargetOwnerReminder => "target_owner_reminder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How often a job of this kind is tried before it is dead. With the
    /// backoff below, 12 tries span about a day.
    pub fn max_attempts(self) -> i32 {
        12
    }
}

/// What the subject is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNotice {
    Received,
    Rejected,
    Erased,
    /// Support extended the deadline (GDPR Art. 12(3): the subject is told,
    /// with the reason, within the first month).
    Extended,
}

/// A job to write, with its payload and when it is due.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedJob {
    pub kind: JobKind,
    pub run_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// The tenant's and request's facts that decide follow-up work.
#[derive(Debug, Clone)]
pub struct FollowUp<'a> {
    pub now: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// Part of a batch: approval mail goes out once per batch, not per item.
    pub in_batch: bool,
    /// The tenant tells subjects, and this subject gave an email address.
    pub notify_subject: bool,
    /// Days after the first email at which reminders go out.
    pub reminder_days: &'a [u32],
    /// How long before `due_at` an undecided request is escalated.
    pub escalate_before: Duration,
    /// The state was entered on submission (so the subject gets a receipt).
    pub on_submit: bool,
    /// The state left (none on submission).
    pub from: Option<RequestState>,
    /// The platform asked to be called back on every state change.
    pub has_callback: bool,
    /// Days a closed request keeps its personal fields.
    pub retention: &'a Retention,
}

/// How long closed requests keep their personal fields, in days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub erased_days: u32,
    pub rejected_days: u32,
    pub cancelled_days: u32,
}

/// The email to the subject entering `to` causes, if the tenant tells them.
fn notice_on_entering(to: RequestState, f: &FollowUp<'_>) -> Option<SubjectNotice> {
    let notice = match to {
        RequestState::AwaitingApproval | RequestState::Erasing if f.on_submit => {
            Some(SubjectNotice::Received)
        }
        RequestState::Rejected => Some(SubjectNotice::Rejected),
        RequestState::Erased => Some(SubjectNotice::Erased),
        _ => None,
    };
    notice.filter(|_| f.notify_subject)
}

/// Days a request closed in `to` keeps its personal fields (`None`: `to`
/// is open).
fn keep_days(to: RequestState, retention: &Retention) -> Option<u32> {
    match to {
        RequestState::Erased => Some(retention.erased_days),
        RequestState::Rejected => Some(retention.rejected_days),
        RequestState::Cancelled => Some(retention.cancelled_days),
        _ => None,
    }
}

/// Does the write that closes the request in `to` scrub its personal fields
/// itself? When it keeps them no day at all and no email to the subject is
/// still to go out (that needs the address), there is nothing to wait for:
/// no `Scrub` job is written, the transition scrubs.
pub fn scrubbed_on_entering(to: RequestState, f: &FollowUp<'_>) -> bool {
    keep_days(to, f.retention) == Some(0) && notice_on_entering(to, f).is_none()
}

/// The jobs entering `to` causes.
pub fn jobs_on_entering(to: RequestState, f: &FollowUp<'_>) -> Vec<PlannedJob> {
    let now_job = |kind, payload| PlannedJob {
        kind,
        run_at: f.now,
        payload,
    };
    let mut jobs = Vec::new();
    match to {
        RequestState::AwaitingApproval => {
            if !f.in_batch {
                jobs.push(now_job(JobKind::SendApprovalEmail, serde_json::json!({})));
                jobs.extend(reminders(f, serde_json::json!({})));
            }
            let escalate_at = (f.due_at - f.escalate_before).max(f.now);
            jobs.push(PlannedJob {
                kind: JobKind::EscalateDeadline,
                run_at: escalate_at,
                payload: serde_json::json!({}),
            });
        }
        RequestState::Erasing => jobs.push(now_job(JobKind::StartErasure, serde_json::json!({}))),
        _ => {}
    }
    if let Some(notice) = notice_on_entering(to, f) {
        jobs.push(now_job(
            JobKind::NotifySubject,
            serde_json::json!({ "notice": notice }),
        ));
    }
    if to == RequestState::Erased {
        jobs.push(now_job(JobKind::SendReceipt, serde_json::json!({})));
    }
    match keep_days(to, f.retention) {
        Some(_) if scrubbed_on_entering(to, f) => {}
        Some(days) => jobs.push(PlannedJob {
            kind: JobKind::Scrub,
            run_at: f.now + Duration::days(i64::from(days)),
            payload: serde_json::json!({}),
        }),
        None => {}
    }
    if f.has_callback {
        jobs.push(now_job(
            JobKind::Callback,
            serde_json::json!({ "from": f.from, "to": to, "at": f.now }),
        ));
    }
    jobs
}

/// Reminder jobs, one per configured day; `payload` says what they remind of.
pub fn reminders(f: &FollowUp<'_>, payload: serde_json::Value) -> Vec<PlannedJob> {
    f.reminder_days
        .iter()
        .enumerate()
        .map(|(n, days)| {
            let mut p = payload.clone();
            p["reminder"] = serde_json::json!(n + 1);
            PlannedJob {
                kind: JobKind::ApprovalReminder,
                run_at: f.now + Duration::days(i64::from(*days)),
                payload: p,
            }
        })
        .collect()
}

/// Exponential backoff with jitter for a job's next try: about 10 s, 20 s,
/// 40 s ... capped at one hour; `jitter` in [0, 1) spreads retries out.
pub fn backoff(attempts: i32, jitter: f64) -> Duration {
    let base = 10f64 * 2f64.powi(attempts.clamp(0, 20) - 1);
    let capped = base.min(3600.0);
    let spread = capped * (0.5 + jitter.clamp(0.0, 1.0) * 0.5);
    Duration::milliseconds((spread * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    static RETENTION: Retention = Retention {
        erased_days: 0,
        rejected_days: 30,
        cancelled_days: 30,
    };

    fn ctx(days: &[u32]) -> FollowUp<'_> {
        let now = Utc::now();
        FollowUp {
            from: None,
            has_callback: false,
            retention: &RETENTION,
            now,
            due_at: now + Duration::days(30),
            in_batch: false,
            notify_subject: false,
            reminder_days: days,
            escalate_before: Duration::days(7),
            on_submit: true,
        }
    }

    fn kinds(jobs: &[PlannedJob]) -> Vec<JobKind> {
        jobs.iter().map(|j| j.kind).collect()
    }

    #[test]
    fn awaiting_approval_mails_reminds_and_escalates() {
        let f = ctx(&[3, 7]);
        let jobs = jobs_on_entering(RequestState::AwaitingApproval, &f);
        assert_eq!(
            kinds(&jobs),
            vec![
                JobKind::SendApprovalEmail,
                JobKind::ApprovalReminder,
                JobKind::ApprovalReminder,
                JobKind::EscalateDeadline
            ]
        );
        assert_eq!(jobs[1].run_at, f.now + Duration::days(3));
        assert_eq!(jobs[2].run_at, f.now + Duration::days(7));
        assert_eq!(jobs[3].run_at, f.due_at - Duration::days(7));
    }

    #[test]
    fn batch_items_get_no_mail_of_their_own() {
        let mut f = ctx(&[3]);
        f.in_batch = true;
        assert_eq!(
            kinds(&jobs_on_entering(RequestState::AwaitingApproval, &f)),
            vec![JobKind::EscalateDeadline]
        );
    }

    #[test]
    fn subjects_are_told_when_enabled() {
        let mut f = ctx(&[]);
        assert!(
            !kinds(&jobs_on_entering(RequestState::Rejected, &f)).contains(&JobKind::NotifySubject)
        );
        f.notify_subject = true;
        assert_eq!(
            kinds(&jobs_on_entering(RequestState::Rejected, &f)),
            vec![JobKind::NotifySubject, JobKind::Scrub]
        );
        assert_eq!(
            kinds(&jobs_on_entering(RequestState::Erasing, &f)),
            vec![JobKind::StartErasure, JobKind::NotifySubject]
        );
        f.on_submit = false;
        assert_eq!(
            kinds(&jobs_on_entering(RequestState::Erasing, &f)),
            vec![JobKind::StartErasure]
        );
        assert_eq!(
            kinds(&jobs_on_entering(RequestState::Cancelled, &f)),
            vec![JobKind::Scrub]
        );
    }

    #[test]
    fn erasure_sends_a_receipt_scrubs_and_calls_back() {
        let mut f = ctx(&[]);
        f.has_callback = true;
        f.from = Some(RequestState::Erasing);
        // Kept no day and nobody to email: the transition itself scrubs.
        let jobs = jobs_on_entering(RequestState::Erased, &f);
        assert_eq!(kinds(&jobs), vec![JobKind::SendReceipt, JobKind::Callback]);
        assert!(scrubbed_on_entering(RequestState::Erased, &f));
        assert_eq!(jobs[1].payload["from"], "erasing");
        // The subject's email still to go out needs the address: a job
        // scrubs, due at once.
        f.notify_subject = true;
        let jobs = jobs_on_entering(RequestState::Erased, &f);
        assert_eq!(
            kinds(&jobs),
            vec![
                JobKind::NotifySubject,
                JobKind::SendReceipt,
                JobKind::Scrub,
                JobKind::Callback
            ]
        );
        assert_eq!(jobs[2].run_at, f.now);
        assert!(!scrubbed_on_entering(RequestState::Erased, &f));
        // Kept for days: a job scrubs then.
        let rejected = jobs_on_entering(RequestState::Rejected, &f);
        assert_eq!(rejected[1].run_at, f.now + Duration::days(30));
        assert!(!scrubbed_on_entering(RequestState::Rejected, &f));
        assert!(!scrubbed_on_entering(RequestState::Erasing, &f));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1, 0.0) < backoff(2, 0.0));
        assert!(backoff(30, 0.99) <= Duration::hours(1));
        assert!(backoff(1, 0.0) >= Duration::seconds(5));
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
    }
}

/// Workflow timing an operator can tune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowPolicy {
    /// Days after the first approval email at which reminders go out.
    pub reminder_days: Vec<u32>,
    /// Escalate an undecided request this many days before its deadline.
    pub escalate_before_days: u32,
    /// How long an approval link (or a manual target's link) stays valid.
    pub link_ttl_days: u32,
    /// Days between reminders to a manual target's owner; 0: none.
    pub owner_reminder_days: u32,
    pub retention: Retention,
}

impl Default for WorkflowPolicy {
    fn default() -> Self {
        Self {
            reminder_days: vec![3, 7],
            escalate_before_days: 7,
            link_ttl_days: 14,
            owner_reminder_days: 3,
            retention: Retention {
                erased_days: 0,
                rejected_days: 30,
                cancelled_days: 30,
            },
        }
    }
}

impl WorkflowPolicy {
    pub fn follow_up(&self, now: DateTime<Utc>, due_at: DateTime<Utc>) -> FollowUp<'_> {
        FollowUp {
            now,
            due_at,
            in_batch: false,
            notify_subject: false,
            reminder_days: &self.reminder_days,
            escalate_before: Duration::days(i64::from(self.escalate_before_days)),
            on_submit: false,
            from: None,
            has_callback: false,
            retention: &self.retention,
        }
    }
}
