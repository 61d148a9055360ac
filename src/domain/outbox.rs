//! The work a transition causes. Jobs are written in the same transaction as
//! the transition (transactional outbox) and carried out by workers.

use serde::{Deserialize, Serialize};

use super::RequestState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Email the privacy contact an approval link.
    SendApprovalEmail,
    /// Tell every erasure target to erase.
    StartErasure,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::SendApprovalEmail => "send_approval_email",
            JobKind::StartErasure => "start_erasure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::SendApprovalEmail, Self::StartErasure]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// How often a job of this kind is tried before it is dead.
    pub fn max_attempts(self) -> i32 {
        match self {
            JobKind::SendApprovalEmail => 12,
            JobKind::StartErasure => 12,
        }
    }
}

/// The jobs entering `to` causes.
pub fn jobs_on_entering(to: RequestState) -> &'static [JobKind] {
    match to {
        RequestState::AwaitingApproval => &[JobKind::SendApprovalEmail],
        RequestState::Erasing => &[JobKind::StartErasure],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entering_approval_sends_mail_and_erasing_starts_erasure() {
        assert_eq!(
            jobs_on_entering(RequestState::AwaitingApproval),
            &[JobKind::SendApprovalEmail]
        );
        assert_eq!(
            jobs_on_entering(RequestState::Erasing),
            &[JobKind::StartErasure]
        );
        assert!(jobs_on_entering(RequestState::Cancelled).is_empty());
        for k in [JobKind::SendApprovalEmail, JobKind::StartErasure] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
    }
}
