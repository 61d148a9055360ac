//! The support dashboard: server-rendered pages under `/support` (session
//! cookie, CSRF token on every form, no JavaScript) and the same as JSON
//! under `/v1/support` (support API tokens). Support works across tenants;
//! every action lands in the request's audit chain with the support user's id.

pub mod api;
pub mod auth;
pub mod pages;
pub mod queue;

use std::collections::HashSet;

use crate::domain::audit::Actor;
use crate::domain::deadline;
use crate::domain::support::{ExtendBy, SupportPolicy, SupportUserId};
use crate::domain::values::Reason;
use crate::domain::{BatchId, RequestId};
use crate::store::support::actions::{self, Action, Extended, Refused};
use crate::store::StoreError;

use super::state::AppState;

/// What the dashboard needs from the settings.
#[derive(Debug, Clone)]
pub struct SupportConfig {
    pub policy: SupportPolicy,
    /// Mark cookies `Secure` (lethe is reached over https).
    pub secure_cookie: bool,
}

impl SupportConfig {
    pub fn new(policy: SupportPolicy, public_url: &url::Url) -> Self {
        Self {
            policy,
            secure_cookie: public_url.scheme() == "https",
        }
    }
}

/// Most requests one bulk action may name.
pub const MAX_BULK: usize = 100;

/// An action with what it needs, checked.
#[derive(Debug, Clone)]
pub enum Command {
    ResendApproval,
    Retry,
    Cancel(Reason),
    Extend(ExtendBy, Reason),
}

impl Command {
    pub fn action(&self) -> Action {
        match self {
            Command::ResendApproval => Action::ResendApproval,
            Command::Retry => Action::Retry,
            Command::Cancel(_) => Action::Cancel,
            Command::Extend(..) => Action::Extend,
        }
    }
}

/// The URL segment of an action (`resend-approval`) and back.
pub fn action_from_path(s: &str) -> Option<Action> {
    Action::parse(&s.replace('-', "_"))
}

pub fn action_path(a: Action) -> String {
    a.as_str().replace('_', "-")
}

/// What happened to one request of an action.
#[derive(Debug)]
pub enum ItemResult {
    Done(Option<Extended>),
    Refused(Refused),
    NotFound,
    /// The request changed while the action ran; nothing was written.
    Conflict(&'static str),
}

/// Carry out `cmd` on each request, each in its own transaction so one
/// refusal does not undo the others.
pub async fn perform(
    state: &AppState,
    user: SupportUserId,
    ids: &[RequestId],
    cmd: &Command,
) -> Result<Vec<(RequestId, ItemResult)>, StoreError> {
    let actor: Actor = crate::domain::support::actor(user);
    let mut batches: HashSet<BatchId> = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let (actor, command, workflow) = (actor.clone(), cmd.clone(), state.workflow.clone());
        let mut queued = std::mem::take(&mut batches);
        let result = state
            .store
            .write(move |conn| {
                let now = deadline::now();
                let r = match &command {
                    Command::ResendApproval => {
                        actions::resend(conn, id, &actor, &mut queued, now)?.map(|()| None)
                    }
                    Command::Retry => {
                        actions::retry(conn, id, &actor, &workflow, now)?.map(|()| None)
                    }
                    Command::Cancel(reason) => {
                        actions::cancel(conn, id, &actor, reason, &workflow, now)?.map(|()| None)
                    }
                    Command::Extend(by, reason) => {
                        actions::extend(conn, id, user, *by, reason, &workflow, now)?.map(Some)
                    }
                };
                Ok((r, queued))
            })
            .await;
        let item = match result {
            Ok((Ok(extended), queued)) => {
                batches = queued;
                ItemResult::Done(extended)
            }
            Ok((Err(refused), queued)) => {
                batches = queued;
                ItemResult::Refused(refused)
            }
            Err(StoreError::NotFound) => ItemResult::NotFound,
            Err(StoreError::Transition(t)) => ItemResult::Refused(Refused::Transition(t)),
            Err(StoreError::Conflict(m)) => ItemResult::Conflict(m),
            Err(e) => return Err(e),
        };
        tracing::info!(request = %id, user = %user, action = cmd.action().as_str(), done = matches!(item, ItemResult::Done(_)), "support action");
        out.push((id, item));
    }
    Ok(out)
}
