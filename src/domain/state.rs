//! The erasure request state machine: every (state, event) pair is either a
//! defined transition or a typed error. Storage applies the result with a
//! compare-and-set on the current state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Received, not yet sent for approval or erasure.
    Pending,
    /// Waiting for the tenant's privacy contact to decide.
    AwaitingApproval,
    /// Approved (or no approval needed): targets are erasing.
    Erasing,
    /// Every target confirmed the erasure.
    Erased,
    /// The privacy contact refused, with a reason.
    Rejected,
    /// Withdrawn by the platform or support before erasure started.
    Cancelled,
    /// Erasure could not be completed after all retries; support must act.
    Failed,
}

impl RequestState {
    pub const ALL: [RequestState; 7] = [
        RequestState::Pending,
        RequestState::AwaitingApproval,
        RequestState::Erasing,
        RequestState::Erased,
        RequestState::Rejected,
        RequestState::Cancelled,
        RequestState::Failed,
    ];

    /// States in which the request still holds the subject (a new request for
    /// the same subject returns this one).
    pub const OPEN: [RequestState; 4] = [
        RequestState::Pending,
        RequestState::AwaitingApproval,
        RequestState::Erasing,
        RequestState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::AwaitingApproval => "awaiting_approval",
            RequestState::Erasing => "erasing",
            RequestState::Erased => "erased",
            RequestState::Rejected => "rejected",
            RequestState::Cancelled => "cancelled",
            RequestState::Failed => "failed",
        }
    }

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Must the platform keep the subject's account active?
    /// Only once lethe moves a request to `erasing` may the platform act.
    pub fn keeps_account_active(self) -> bool {
        matches!(self, RequestState::Pending | RequestState::AwaitingApproval)
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for RequestState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Something that happens to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The tenant's policy requires the privacy contact's approval: the
    /// approval email is queued.
    RequestApproval,
    /// The tenant's policy needs no approval: erasure starts at once.
    SkipApproval,
    /// The privacy contact approved.
    Approve,
    /// The privacy contact rejected, with a reason.
    Reject,
    /// The platform or support withdrew the request.
    Cancel,
    /// Every target confirmed.
    Complete,
    /// Retries exhausted or a target refused permanently.
    Fail,
    /// Support retries a failed erasure.
    Retry,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::RequestApproval,
        Event::SkipApproval,
        Event::Approve,
        Event::Reject,
        Event::Cancel,
        Event::Complete,
        Event::Fail,
        Event::Retry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::RequestApproval => "request_approval",
            Event::SkipApproval => "skip_approval",
            Event::Approve => "approve",
            Event::Reject => "reject",
            Event::Cancel => "cancel",
            Event::Complete => "complete",
            Event::Fail => "fail",
            Event::Retry => "retry",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The request is closed; nothing can happen to it any more.
    #[error("the request is {from} and can no longer change")]
    Closed { from: RequestState, event: Event },
    /// The event makes no sense in this state.
    #[error("cannot {event} a request that is {from}")]
    NotAllowed { from: RequestState, event: Event },
}

/// The transition table. Pure: no I/O, no clock.
pub fn transition(from: RequestState, event: Event) -> Result<RequestState, TransitionError> {
    use Event as E;
    use RequestState as S;
    match (from, event) {
        (S::Pending, E::RequestApproval) => Ok(S::AwaitingApproval),
        (S::Pending, E::SkipApproval) => Ok(S::Erasing),
        (S::Pending | S::AwaitingApproval, E::Cancel) => Ok(S::Cancelled),
        (S::AwaitingApproval, E::Approve) => Ok(S::Erasing),
        (S::AwaitingApproval, E::Reject) => Ok(S::Rejected),
        (S::Erasing, E::Complete) => Ok(S::Erased),
        (S::Erasing, E::Fail) => Ok(S::Failed),
        (S::Failed, E::Retry) => Ok(S::Erasing),
        // A failed erasure can still be confirmed by a late target callback or
        // the platform's own completion.
        (S::Failed, E::Complete) => Ok(S::Erased),
        (S::Erased | S::Rejected | S::Cancelled, event) => {
            Err(TransitionError::Closed { from, event })
        }
        (from, event) => Err(TransitionError::NotAllowed { from, event }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use RequestState as S;

    /// The whole table, written out: every (state, event) pair once.
    fn expected(from: S, event: E) -> Option<S> {
        let table: &[(S, E, S)] = &[
            (S::Pending, E::RequestApproval, S::AwaitingApproval),
            (S::Pending, E::SkipApproval, S::Erasing),
            (S::Pending, E::Cancel, S::Cancelled),
            (S::AwaitingApproval, E::Approve, S::Erasing),
            (S::AwaitingApproval, E::Reject, S::Rejected),
            (S::AwaitingApproval, E::Cancel, S::Cancelled),
            (S::Erasing, E::Complete, S::Erased),
            (S::Erasing, E::Fail, S::Failed),
            (S::Failed, E::Retry, S::Erasing),
            (S::Failed, E::Complete, S::Erased),
        ];
        table
            .iter()
            .find(|(f, e, _)| *f == from && *e == event)
            .map(|(_, _, to)| *to)
    }

    #[test]
    fn every_state_event_pair_is_a_transition_or_a_typed_error() {
        let mut defined = 0;
        for from in S::ALL {
            for event in E::ALL {
                let got = transition(from, event);
                match expected(from, event) {
                    Some(to) => {
                        assert_eq!(got, Ok(to), "{from} --{event}-->");
                        defined += 1;
                    }
                    None if matches!(from, S::Erased | S::Rejected | S::Cancelled) => {
                        assert_eq!(got, Err(TransitionError::Closed { from, event }))
                    }
                    None => assert_eq!(got, Err(TransitionError::NotAllowed { from, event })),
                }
            }
        }
        assert_eq!(defined, 10);
    }

    #[test]
    fn closed_states_accept_nothing() {
        for from in [S::Erased, S::Rejected, S::Cancelled] {
            assert!(!from.is_open());
            for event in E::ALL {
                assert!(transition(from, event).is_err());
            }
        }
    }

    #[test]
    fn account_stays_active_until_erasure_starts() {
        assert!(S::Pending.keeps_account_active());
        assert!(S::AwaitingApproval.keeps_account_active());
        assert!(!S::Erasing.keeps_account_active());
        assert!(!S::Erased.keeps_account_active());
    }

    #[test]
    fn states_round_trip_through_strings() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("deleted".parse::<S>().is_err());
    }
}
