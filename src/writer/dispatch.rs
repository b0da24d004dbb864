//! When the writer starts a transaction, and with which messages.
//!
//! One queue feeds every transaction. While none is in flight, the next one takes what
//! is waiting at once. While one is in flight, what arrives waits for its commit and
//! joins the next transaction, so at a steady rate each transaction carries everything
//! that arrived during the previous one, and its fixed cost (round trips, the commit)
//! is shared by as many messages as possible. A second transaction starts alongside
//! only when waiting does not pay: nothing more arrives within [`QUIET`] (the senders
//! are waiting on these very messages: few senders, or a slow commit), or a full batch
//! is waiting.
//!
//! Order: a conversation is written by one transaction at a time, and its messages
//! join transactions in the order they were queued. A message whose conversation is in
//! a transaction in flight, or behind an earlier message of its conversation that is
//! held back, is held back too.

use std::{
    collections::{HashSet, VecDeque},
    time::Duration,
};

use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

/// How long a transaction in flight may keep the next one waiting when nothing more
/// arrives meanwhile.
pub const QUIET: Duration = Duration::from_millis(1);

/// What the dispatcher needs to know of a queued message.
pub trait Keyed {
    /// The conversation it is written to.
    fn conversation(&self) -> i64;
}

/// How a transaction started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No other transaction was in flight.
    Alone,
    /// Beside one in flight.
    Alongside,
}

impl Start {
    pub fn label(self) -> &'static str {
        match self {
            Start::Alone => "alone",
            Start::Alongside => "alongside",
        }
    }
}

/// How many messages a transaction takes, how many transactions run at once, and how
/// long a quiet spell sends a transaction alongside one in flight ([`QUIET`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch: usize,
    pub max_in_flight: usize,
    pub quiet: Duration,
}

/// Runs until `stop` is cancelled and everything queued has been written: takes
/// messages from `queue` and hands batches to `write`, within `limits`.
pub async fn run<T, W, F>(mut queue: mpsc::Receiver<T>, limits: Limits, stop: CancellationToken, mut write: W)
where
    T: Keyed,
    W: FnMut(Vec<T>, Start) -> F,
    F: Future<Output = ()>,
{
    let max_batch = limits.max_batch.max(1);
    let max_in_flight = limits.max_in_flight.max(1);
    let mut waiting = Waiting::default();
    let mut in_flight = FuturesUnordered::new();
    let mut busy: HashSet<i64> = HashSet::new();
    let mut open = true;
    let mut stopping = false;
    // Whether what waits behind a transaction in flight was joined by more, since the
    // first of it arrived; `quiet` fires `limits.quiet` after that first arrival.
    let quiet = tokio::time::sleep(limits.quiet);
    tokio::pin!(quiet);
    let mut watching = false;
    let mut heard = false;
    let mut quiet_passed = false;
    loop {
        while !waiting.is_empty() && in_flight.len() < max_in_flight {
            let start = if in_flight.is_empty() {
                Start::Alone
            } else if !open || quiet_passed || waiting.len() >= max_batch {
                Start::Alongside
            } else {
                break;
            };
            let batch = waiting.take_free(&busy, max_batch);
            if batch.is_empty() {
                break;
            }
            let conversations: Vec<i64> = batch.iter().map(Keyed::conversation).collect();
            busy.extend(conversations.iter().copied());
            let written = write(batch, start);
            in_flight.push(async move {
                written.await;
                conversations
            });
            if waiting.is_empty() {
                (watching, heard, quiet_passed) = (false, false, false);
            }
        }
        if !open && waiting.is_empty() && in_flight.is_empty() {
            return;
        }
        if !waiting.is_empty() && !in_flight.is_empty() && !watching && !quiet_passed {
            quiet.as_mut().reset(Instant::now() + limits.quiet);
            (watching, heard) = (true, false);
        }
        tokio::select! {
            biased;
            Some(conversations) = in_flight.next() => {
                for conversation in conversations {
                    busy.remove(&conversation);
                }
            }
            () = stop.cancelled(), if !stopping => {
                // No new messages; what is already queued is still written.
                stopping = true;
                queue.close();
            }
            job = queue.recv(), if open && waiting.len() < max_batch => match job {
                Some(job) => {
                    waiting.push(job);
                    while waiting.len() < max_batch {
                        let Ok(job) = queue.try_recv() else { break };
                        waiting.push(job);
                    }
                    heard |= watching;
                }
                None => open = false,
            },
            () = &mut quiet, if watching && !heard => {
                watching = false;
                quiet_passed = true;
            }
        }
    }
}

/// Messages received and not yet in a transaction, in arrival order.
struct Waiting<T> {
    jobs: VecDeque<T>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Self { jobs: VecDeque::new() }
    }
}

impl<T: Keyed> Waiting<T> {
    fn push(&mut self, job: T) {
        self.jobs.push_back(job);
    }

    fn len(&self) -> usize {
        self.jobs.len()
    }

    fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Takes up to `max` messages, in order, whose conversations are not `busy` and
    /// have no earlier message still waiting; the rest keep their order.
    fn take_free(&mut self, busy: &HashSet<i64>, max: usize) -> Vec<T> {
        let mut taken = Vec::new();
        let mut held_back = VecDeque::new();
        let mut held_conversations = HashSet::new();
        while let Some(job) = self.jobs.pop_front() {
            let conversation = job.conversation();
            if taken.len() < max && !busy.contains(&conversation) && !held_conversations.contains(&conversation) {
                taken.push(job);
            } else {
                held_conversations.insert(conversation);
                held_back.push_back(job);
            }
        }
        self.jobs = held_back;
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Long enough against the timer's millisecond that a quarter of it is a shorter wait.
    const Q: Duration = Duration::from_millis(40);

    fn limits(max_in_flight: usize) -> Limits {
        Limits { max_batch: 8, max_in_flight, quiet: Q }
    }

    /// A message: (conversation, number).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Msg(i64, u32);

    impl Keyed for Msg {
        fn conversation(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn held_back_messages_keep_their_order_and_hold_back_their_conversation() {
        let mut waiting = Waiting::default();
        for msg in [Msg(1, 1), Msg(2, 2), Msg(1, 3), Msg(3, 4), Msg(2, 5)] {
            waiting.push(msg);
        }
        let busy = HashSet::from([2]);
        assert_eq!(waiting.take_free(&busy, 10), [Msg(1, 1), Msg(1, 3), Msg(3, 4)]);
        assert_eq!(waiting.take_free(&HashSet::new(), 10), [Msg(2, 2), Msg(2, 5)]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_batch_that_is_full_holds_back_the_rest_of_a_conversation() {
        let mut waiting = Waiting::default();
        for msg in [Msg(1, 1), Msg(2, 2), Msg(1, 3)] {
            waiting.push(msg);
        }
        assert_eq!(waiting.take_free(&HashSet::new(), 2), [Msg(1, 1), Msg(2, 2)]);
        assert_eq!(waiting.take_free(&HashSet::new(), 2), [Msg(1, 3)]);
    }

    /// What the fake writer saw: each batch with how it started.
    type Log = Arc<Mutex<Vec<(Vec<Msg>, Start)>>>;

    /// Starts the dispatcher with a writer that takes `write_time` per batch.
    fn start(write_time: Duration, max_in_flight: usize) -> (mpsc::Sender<Msg>, Log, CancellationToken) {
        let (sender, queue) = mpsc::channel(64);
        let log: Log = Arc::default();
        let stop = CancellationToken::new();
        let seen = log.clone();
        tokio::spawn(run(queue, limits(max_in_flight), stop.clone(), move |batch, start| {
            seen.lock().unwrap().push((batch, start));
            tokio::time::sleep(write_time)
        }));
        (sender, log, stop)
    }

    fn batches(log: &Log) -> Vec<(Vec<Msg>, Start)> {
        log.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn what_keeps_arriving_during_a_transaction_waits_for_its_commit_and_goes_in_one() {
        let (sender, log, _stop) = start(Q * 10, 2);
        sender.send(Msg(1, 1)).await.unwrap();
        tokio::time::sleep(Q / 4).await;
        // Arrivals during the first transaction, never a quiet Q apart.
        for n in 2..=5 {
            sender.send(Msg(i64::from(n), n)).await.unwrap();
            tokio::time::sleep(Q / 2).await;
        }
        tokio::time::sleep(Q * 20).await;
        assert_eq!(
            batches(&log),
            [(vec![Msg(1, 1)], Start::Alone), (vec![Msg(2, 2), Msg(3, 3), Msg(4, 4), Msg(5, 5)], Start::Alone),]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_nothing_follows_goes_alongside_after_quiet() {
        let (sender, log, _stop) = start(Q * 10, 2);
        sender.send(Msg(1, 1)).await.unwrap();
        tokio::time::sleep(Q / 4).await;
        sender.send(Msg(2, 2)).await.unwrap();
        let sent = Instant::now();
        while batches(&log).len() < 2 {
            tokio::time::sleep(Q / 4).await;
        }
        let waited = sent.elapsed();
        assert!(waited >= Q && waited < Q * 3, "went alongside after {waited:?}");
        assert_eq!(batches(&log)[1], (vec![Msg(2, 2)], Start::Alongside));
    }

    #[tokio::test(start_paused = true)]
    async fn a_conversation_is_never_in_two_transactions_at_once() {
        let (sender, log, _stop) = start(Q * 10, 2);
        sender.send(Msg(1, 1)).await.unwrap();
        tokio::time::sleep(Q / 4).await;
        // Quiet afterwards, but conversation 1 is in flight: only conversation 2 goes.
        sender.send(Msg(1, 2)).await.unwrap();
        sender.send(Msg(2, 3)).await.unwrap();
        sender.send(Msg(1, 4)).await.unwrap();
        tokio::time::sleep(Q * 30).await;
        assert_eq!(
            batches(&log),
            [
                (vec![Msg(1, 1)], Start::Alone),
                (vec![Msg(2, 3)], Start::Alongside),
                // Quiet since long before: they go as soon as their conversation is free.
                (vec![Msg(1, 2), Msg(1, 4)], Start::Alongside),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_transaction_at_a_time_when_so_configured() {
        let (sender, log, _stop) = start(Q * 10, 1);
        sender.send(Msg(1, 1)).await.unwrap();
        tokio::time::sleep(Q / 4).await;
        sender.send(Msg(2, 2)).await.unwrap();
        tokio::time::sleep(Q * 30).await;
        assert_eq!(batches(&log), [(vec![Msg(1, 1)], Start::Alone), (vec![Msg(2, 2)], Start::Alone)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_alongside_at_once() {
        let (sender, log, _stop) = start(Q * 10, 2);
        sender.send(Msg(0, 0)).await.unwrap();
        tokio::time::sleep(Q / 4).await;
        for n in 1..=8 {
            sender.send(Msg(i64::from(n), n)).await.unwrap();
        }
        tokio::time::sleep(Q / 4).await;
        let log = batches(&log);
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].0.len(), 8);
        assert_eq!(log[1].1, Start::Alongside);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_writes_everything_queued_then_ends() {
        let (sender, queue) = mpsc::channel(64);
        let log: Log = Arc::default();
        let stop = CancellationToken::new();
        let seen = log.clone();
        let writer = tokio::spawn(run(queue, limits(2), stop.clone(), move |batch, start| {
            seen.lock().unwrap().push((batch, start));
            tokio::time::sleep(Q * 10)
        }));
        for n in 1..=3 {
            sender.send(Msg(1, n)).await.unwrap();
        }
        stop.cancel();
        tokio::time::timeout(Q * 100, writer).await.expect("the writer ends").unwrap();
        let written: Vec<Msg> = batches(&log).into_iter().flat_map(|(batch, _)| batch).collect();
        assert_eq!(written, [Msg(1, 1), Msg(1, 2), Msg(1, 3)]);
        assert!(sender.send(Msg(1, 4)).await.is_err(), "the queue is closed");
    }
}
