//! Per-client order for state-changing requests. A socket runs its requests
//! concurrently (checks and reads overlap), but the requests that change state take
//! effect in the order the client sent them: each one waits, just before its effect (a
//! message entering the writer's queue, an edit's transaction), until its predecessor
//! passed that point or gave up. A client that pipelines sends therefore gets increasing
//! `seq` in the order it sent them.

use tokio::sync::oneshot;

/// Hands out turns in the order requests arrive; one per socket.
#[derive(Debug, Default)]
pub struct TurnQueue {
    last: Option<oneshot::Receiver<()>>,
}

impl TurnQueue {
    /// The next turn. Must be called in arrival order (in the socket's read loop), before
    /// the request is handed to a task.
    pub fn take_turn(&mut self) -> Turn {
        let (done, passed) = oneshot::channel();
        Turn { previous: self.last.replace(passed), done: Some(done) }
    }
}

/// One request's place in its socket's order. Dropping it passes the turn on, though
/// never ahead of a predecessor still waiting.
#[derive(Debug)]
pub struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// A turn with no predecessor and no successor: for REST, where each request is
    /// its own client call.
    pub fn alone() -> Self {
        Self { previous: None, done: None }
    }

    /// Waits until every earlier state-changing request of the socket passed its
    /// effect or gave up.
    pub async fn wait(&mut self) {
        if let Some(previous) = self.previous.as_mut() {
            // A closed channel means the predecessor passed (or its task ended). Awaited
            // in place, so a cancelled wait still leaves the successor behind it.
            let _ = previous.await;
        }
        self.previous = None;
    }

    /// This request has taken effect (or will not); the next one may go.
    pub fn pass(mut self) {
        self.release();
    }

    fn release(&mut self) {
        let Some(done) = self.done.take() else { return };
        match self.previous.take() {
            None => drop(done),
            // Gave up before its predecessor went: the successor still waits for it.
            Some(previous) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = previous.await;
                        drop(done);
                    });
                }
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn is_released(turn: &mut Turn) -> bool {
        tokio::time::timeout(Duration::from_millis(50), turn.wait()).await.is_ok()
    }

    #[tokio::test]
    async fn a_turn_waits_for_every_predecessor() {
        let mut queue = TurnQueue::default();
        let (mut first, second, mut third) = (queue.take_turn(), queue.take_turn(), queue.take_turn());
        first.wait().await;
        // The second gives up before the first went: the third must still wait.
        drop(second);
        assert!(!is_released(&mut third).await, "overtook the first request");
        first.pass();
        assert!(is_released(&mut third).await, "released once the first passed");
    }

    #[tokio::test]
    async fn a_lone_turn_never_waits() {
        let mut turn = Turn::alone();
        assert!(is_released(&mut turn).await);
    }
}
