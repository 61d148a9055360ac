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
    /// Remind the privacy contact (a new link; the old one is voided). A
    /// batch's reminders, and a request's from before `ApprovalFollowUp`.
    ApprovalReminder,
    /// Flag an undecided request for support before its deadline (a batch
    /// item's, or a request's after its deadline was extended).
    EscalateDeadline,
    /// One request's reminders and escalation, one after another: a single
    /// job that moves itself to its next step ([`FollowUpProgress`]).
    ApprovalFollowUp,
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
    pub const ALL: [JobKind; 14] = [
        Self::SendApprovalEmail,
        Self::SendBatchApprovalEmail,
        Self::ApprovalReminder,
        Self::EscalateDeadline,
        Self::ApprovalFollowUp,
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
            JobKind::ApprovalFollowUp => "approval_follow_up",
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

impl FollowUp<'_> {
    fn schedule(&self) -> FollowUpSchedule<'_> {
        FollowUpSchedule {
            reminder_days: self.reminder_days,
            escalate_before: self.escalate_before,
        }
    }
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
        RequestState::AwaitingApproval if f.in_batch => {
            // The batch's email and reminders are the batch's own jobs.
            jobs.push(PlannedJob {
                kind: JobKind::EscalateDeadline,
                run_at: (f.due_at - f.escalate_before).max(f.now),
                payload: serde_json::json!({}),
            });
        }
        RequestState::AwaitingApproval => {
            jobs.push(now_job(JobKind::SendApprovalEmail, serde_json::json!({})));
            let started = FollowUpProgress {
                since: f.now,
                reminders_sent: 0,
            };
            let open = Undecided {
                due_at: f.due_at,
                escalated: false,
            };
            jobs.extend(started.next(&open, &f.schedule()));
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

/// When an undecided request's privacy contact is reminded and support is
/// told: the tenant-independent part of [`WorkflowPolicy`].
#[derive(Debug, Clone, Copy)]
pub struct FollowUpSchedule<'a> {
    /// Days after the first email, ascending.
    pub reminder_days: &'a [u32],
    pub escalate_before: Duration,
}

/// What a request's follow-up job reads from the request when it wakes:
/// the deadline (support may have extended it) and whether support was
/// already told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided {
    pub due_at: DateTime<Utc>,
    pub escalated: bool,
}

/// One step of a request's follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpStep {
    /// Send reminder number n (from 1): a new link, the old one voided.
    Remind(u32),
    /// Flag the request for support.
    Escalate,
}

/// How far a request's follow-up has got: the payload of its
/// `ApprovalFollowUp` job, which carries it from step to step. Reminders
/// count from `since` (when approval was first asked); the escalation from
/// the request's deadline as it is when the job wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpProgress {
    pub since: DateTime<Utc>,
    pub reminders_sent: u32,
}

impl FollowUpProgress {
    /// The step due at `now`, if any. When both the escalation and a
    /// reminder are (a reminder retried for hours, a worker that was down),
    /// support hears first: a reminder the mail server keeps refusing must
    /// not hold up the escalation.
    pub fn due(
        &self,
        open: &Undecided,
        s: &FollowUpSchedule<'_>,
        now: DateTime<Utc>,
    ) -> Option<FollowUpStep> {
        let [remind, escalate] = self.steps(open, s);
        [escalate, remind]
            .into_iter()
            .flatten()
            .find(|(_, at)| *at <= now)
            .map(|(step, _)| step)
    }

    /// The progress once `step` is done.
    pub fn after(self, step: FollowUpStep) -> Self {
        match step {
            FollowUpStep::Remind(n) => Self {
                reminders_sent: self.reminders_sent.max(n),
                ..self
            },
            FollowUpStep::Escalate => self,
        }
    }

    /// The job for the next step (none when every step is done), due when
    /// its step is, or at `since` if that time has passed (it then runs at
    /// once).
    pub fn next(&self, open: &Undecided, s: &FollowUpSchedule<'_>) -> Option<PlannedJob> {
        let (_, at) = self
            .steps(open, s)
            .into_iter()
            .flatten()
            .min_by_key(|(_, at)| *at)?;
        Some(PlannedJob {
            kind: JobKind::ApprovalFollowUp,
            run_at: at.max(self.since),
            payload: serde_json::to_value(self).unwrap_or_default(),
        })
    }

    /// The next reminder and the escalation, each with its time, if still
    /// to come.
    fn steps(
        &self,
        open: &Undecided,
        s: &FollowUpSchedule<'_>,
    ) -> [Option<(FollowUpStep, DateTime<Utc>)>; 2] {
        let remind = s
            .reminder_days
            .get(self.reminders_sent as usize)
            .map(|days| {
                (
                    FollowUpStep::Remind(self.reminders_sent + 1),
                    self.since + Duration::days(i64::from(*days)),
                )
            });
        let escalate =
            (!open.escalated).then(|| (FollowUpStep::Escalate, open.due_at - s.escalate_before));
        [remind, escalate]
    }
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
    fn awaiting_approval_mails_and_queues_one_follow_up() {
        let f = ctx(&[3, 7]);
        let jobs = jobs_on_entering(RequestState::AwaitingApproval, &f);
        assert_eq!(
            kinds(&jobs),
            vec![JobKind::SendApprovalEmail, JobKind::ApprovalFollowUp]
        );
        assert_eq!(jobs[1].run_at, f.now + Duration::days(3));
        let progress: FollowUpProgress = serde_json::from_value(jobs[1].payload.clone()).unwrap();
        assert_eq!(
            progress,
            FollowUpProgress {
                since: f.now,
                reminders_sent: 0
            }
        );
    }

    /// Reminders on `days`, escalation a week before the deadline.
    fn weekly(days: &[u32]) -> FollowUpSchedule<'_> {
        FollowUpSchedule {
            reminder_days: days,
            escalate_before: Duration::days(7),
        }
    }

    /// One reminder sent, since `since`.
    fn reminded_once(since: DateTime<Utc>) -> FollowUpProgress {
        FollowUpProgress {
            since,
            reminders_sent: 1,
        }
    }

    /// Walk a follow-up from job to job the way its worker does.
    fn walk(
        days: &[u32],
        mut open: Undecided,
        since: DateTime<Utc>,
    ) -> Vec<(FollowUpStep, DateTime<Utc>)> {
        let s = weekly(days);
        let mut progress = FollowUpProgress {
            since,
            reminders_sent: 0,
        };
        let mut done = Vec::new();
        while let Some(job) = progress.next(&open, &s) {
            progress = serde_json::from_value(job.payload).unwrap();
            let step = progress.due(&open, &s, job.run_at).expect("a step is due");
            done.push((step, job.run_at));
            progress = progress.after(step);
            open.escalated |= step == FollowUpStep::Escalate;
            assert!(done.len() < 10, "the follow-up ends");
        }
        done
    }

    #[test]
    fn a_follow_up_reminds_then_escalates_in_time_order() {
        let since = Utc::now();
        let open = Undecided {
            due_at: since + Duration::days(30),
            escalated: false,
        };
        assert_eq!(
            walk(&[3, 7], open, since),
            vec![
                (FollowUpStep::Remind(1), since + Duration::days(3)),
                (FollowUpStep::Remind(2), since + Duration::days(7)),
                (FollowUpStep::Escalate, since + Duration::days(23)),
            ]
        );
        // A reminder later than the escalation comes after it.
        assert_eq!(
            walk(&[3, 25], open, since),
            vec![
                (FollowUpStep::Remind(1), since + Duration::days(3)),
                (FollowUpStep::Escalate, since + Duration::days(23)),
                (FollowUpStep::Remind(2), since + Duration::days(25)),
            ]
        );
        // No reminders: the escalation only; already escalated: nothing.
        assert_eq!(
            walk(&[], open, since),
            vec![(FollowUpStep::Escalate, since + Duration::days(23))]
        );
        let told = Undecided {
            escalated: true,
            ..open
        };
        assert!(walk(&[], told, since).is_empty());
        // A deadline closer than the escalation window: escalated at once.
        let close = Undecided {
            due_at: since + Duration::days(2),
            escalated: false,
        };
        assert_eq!(
            walk(&[], close, since),
            vec![(FollowUpStep::Escalate, since)]
        );
    }

    #[test]
    fn when_a_reminder_and_the_escalation_are_both_due_support_hears_first() {
        let since = Utc::now();
        let s = weekly(&[3, 7]);
        let progress = reminded_once(since);
        let open = Undecided {
            due_at: since + Duration::days(30),
            escalated: false,
        };
        let late = since + Duration::days(26);
        assert_eq!(progress.due(&open, &s, late), Some(FollowUpStep::Escalate));
        let told = Undecided {
            escalated: true,
            ..open
        };
        assert_eq!(progress.due(&told, &s, late), Some(FollowUpStep::Remind(2)));
        assert_eq!(
            progress.after(FollowUpStep::Remind(2)).next(&told, &s),
            None
        );
    }

    #[test]
    fn a_follow_up_woken_early_does_nothing_and_waits_for_its_step() {
        let since = Utc::now();
        let s = weekly(&[3]);
        let progress = reminded_once(since);
        // Planned for the old deadline; support extended it meanwhile.
        let extended = Undecided {
            due_at: since + Duration::days(90),
            escalated: false,
        };
        let woke = since + Duration::days(23);
        assert_eq!(progress.due(&extended, &s, woke), None);
        assert_eq!(
            progress.next(&extended, &s).unwrap().run_at,
            since + Duration::days(83)
        );
    }

    #[test]
    fn batch_items_get_no_mail_of_their_own() {
        let mut f = ctx(&[3]);
        f.in_batch = true;
        let jobs = jobs_on_entering(RequestState::AwaitingApproval, &f);
        assert_eq!(kinds(&jobs), vec![JobKind::EscalateDeadline]);
        assert_eq!(jobs[0].run_at, f.due_at - Duration::days(7));
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
    pub fn schedule(&self) -> FollowUpSchedule<'_> {
        FollowUpSchedule {
            reminder_days: &self.reminder_days,
            escalate_before: Duration::days(i64::from(self.escalate_before_days)),
        }
    }

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
