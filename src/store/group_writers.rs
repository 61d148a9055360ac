//! Writer threads that serve one queue, for PostgreSQL's group commits
//! (`submit_group`, `job_writes`): a caller's item waits there with the
//! channel its answer goes back on; each thread takes what is waiting, writes
//! it as a group and answers every item in it.

use std::sync::{mpsc, Arc, Mutex};

use super::StoreError;

/// An item waiting for its group, and where its answer goes.
pub(super) struct Waiting<T, A> {
    pub item: T,
    pub reply: tokio::sync::oneshot::Sender<A>,
}

/// What the writer threads take items from, one thread at a time.
pub(super) type Queue<T, A> = Mutex<mpsc::Receiver<Waiting<T, A>>>;

/// Why an item got no answer.
pub(super) enum Unanswered<T> {
    /// No writer serves the queue any more: the item, untouched.
    Closed(T),
    /// The writer that took it stopped before answering.
    Stopped,
}

/// The queue `n` threads serve, each running `serve`; they stop when it is
/// dropped.
pub(super) struct GroupWriters<T, A> {
    queue: mpsc::Sender<Waiting<T, A>>,
}

impl<T: Send + 'static, A: Send + 'static> GroupWriters<T, A> {
    /// Start `n` threads named `name-0`, `name-1`, ...
    pub(super) fn start<F>(n: usize, name: &str, serve: F) -> Result<Self, StoreError>
    where
        F: Fn(&Queue<T, A>) + Clone + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel();
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..n {
            let (serve, waiting) = (serve.clone(), waiting.clone());
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || serve(&waiting))
                .map_err(|e| StoreError::Internal(format!("starting {name}-{i}: {e}")))?;
        }
        Ok(Self { queue })
    }

    /// Wait for `item`'s answer.
    pub(super) async fn send(&self, item: T) -> Result<A, Unanswered<T>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if let Err(mpsc::SendError(w)) = self.queue.send(Waiting { item, reply }) {
            return Err(Unanswered::Closed(w.item));
        }
        answer.await.map_err(|_| Unanswered::Stopped)
    }
}
