//! Targets' answers to one request, written one after another in this
//! process, each on the request as the one before left it.
//!
//! A request's targets are called at once and often answer within the same
//! millisecond. Each answer is written with a compare-and-set on the request
//! as its job read it before the call (`requests::answer_if_unmoved`); the
//! second of two answers written at once always misses (the first moved the
//! chain head), and then costs a read and a second write, or a transaction
//! that holds the row. Here the second waits for the first's write and takes
//! the request as that write left it: one write each. Across processes (or
//! when a write here was not the one-statement kind) the compare-and-set and
//! its fallbacks still decide; this only saves work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::domain::RequestId;
use crate::store::requests::Seen;

/// The last answer written to a request, for the next one waiting.
pub(crate) struct Moved {
    /// The chain head's sequence number the write found.
    pub from_seq: i64,
    /// The request as the write left it.
    pub after: Seen,
    /// The target whose answer it wrote.
    pub target: String,
    /// The write confirmed that target's call (one unconfirmed call fewer
    /// for the others).
    pub confirmed: bool,
}

type Slot = Arc<tokio::sync::Mutex<Option<Moved>>>;

/// Requests with an answer being written, each with its last write.
#[derive(Default)]
pub(crate) struct Answers {
    requests: Mutex<HashMap<RequestId, Slot>>,
}

impl Answers {
    /// Wait until no other answer to `id` is being written here; the turn
    /// ends when the returned guard is dropped.
    pub(crate) async fn turn(self: &Arc<Self>, id: RequestId) -> Turn {
        let slot = {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            requests.entry(id).or_default().clone()
        };
        let guard = slot.clone().lock_owned().await;
        Turn {
            answers: self.clone(),
            id,
            slot,
            guard: Some(guard),
        }
    }
}

/// One answer's turn to write (see [`Answers::turn`]).
pub(crate) struct Turn {
    answers: Arc<Answers>,
    id: RequestId,
    slot: Slot,
    guard: Option<tokio::sync::OwnedMutexGuard<Option<Moved>>>,
}

impl Turn {
    /// The last answer written here while this one waited, if it was
    /// written on the request as `seen_seq` had it (then it is the request's
    /// only change since) and by another target than `target` (an answer
    /// of the same target twice is left to the compare-and-set's fallback,
    /// which reads the call again).
    pub(crate) fn take_after(&mut self, seen_seq: i64, target: &str) -> Option<Moved> {
        let last = self.guard.as_mut()?;
        match last.as_ref() {
            Some(m) if m.from_seq == seen_seq && m.target != target => last.take(),
            _ => None,
        }
    }

    /// Leave this turn's write for the next answer waiting (`None`: it
    /// must read the request again).
    pub(crate) fn leave(&mut self, moved: Option<Moved>) {
        if let Some(last) = self.guard.as_mut() {
            **last = moved;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut requests = self
            .answers
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        // Nobody else holds or waits for the slot (the map's and ours are
        // the only references; new ones are taken under the map's lock).
        if Arc::strong_count(&self.slot) == 2 {
            requests.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_waits_for_the_one_before_and_the_map_empties() {
        let answers = Arc::new(Answers::default());
        let id = RequestId::new();
        let first = answers.turn(id).await;
        let waiting = {
            let answers = answers.clone();
            tokio::spawn(async move { answers.turn(id).await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the second turn waits for the first"
        );
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(answers.requests.lock().unwrap().len(), 1);
        drop(second);
        assert!(answers.requests.lock().unwrap().is_empty());
    }
}
