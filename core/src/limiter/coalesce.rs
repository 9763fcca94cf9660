//! Group commit on the generic path: while one decision on a stored key is in flight in
//! this process, later calls on that key wait in a FIFO queue; when it completes, the
//! queued calls go together as one unit, one `get` and one `compare_and_set` that
//! apply every queued operation in arrival order, each with its own verdict.
//!
//! There is no timer: a lone call goes at once, and a queue forms only behind a call
//! already waiting on the storage. A unit holds at most `max_batch` calls.
//!
//! **Exactness.** A unit reads the key's state once, applies its operations one after
//! another to that state with the strategy (each at its own caller's time), and writes
//! the result with one compare-and-set on the version it read; a lost race reruns the
//! whole unit on the new state. So the outcome is that of the unit's calls run one at a
//! time, in arrival order, with nothing in between: a serial order of all calls.
//!
//! **Hand-off.** The caller that runs a unit is its leader; its followers wait for
//! their verdicts. When the unit is done, the leader wakes the first queued call as the
//! next leader, handing it the calls queued behind it, and returns. Every caller runs
//! at most one unit, its own.
//!
//! **Cancellation.** A queued call that is dropped is skipped (its operation never
//! runs). A leader dropped before its write was sent hands its followers to the first
//! of them, whose unit then runs without it; one dropped while its write was in flight
//! answers its followers with an error, since the write may or may not have happened.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{KeyOp, Storage};
use crate::strategy::{Op, Strategy, Verdict};

use super::backoff::Backoff;

const SHARDS: usize = 16;

type Queue = VecDeque<Arc<Waiter>>;

/// One call waiting for its key.
struct Waiter {
    op: Op,
    now: Timestamp,
    mailbox: Mutex<Mailbox>,
}

#[derive(Default)]
struct Mailbox {
    message: Option<Message>,
    waker: Option<Waker>,
    closed: bool,
}

enum Message {
    /// The call's verdict, from the unit that ran it.
    Done(Result<Verdict, StorageError>),
    /// The call leads the next unit, with these followers.
    Lead(Vec<Arc<Waiter>>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Waiter {
    /// Delivers `message`, or hands it back when the call is gone.
    fn send(&self, message: Message) -> Result<(), Message> {
        let waker = {
            let mut mailbox = lock(&self.mailbox);
            if mailbox.closed {
                return Err(message);
            }
            mailbox.message = Some(message);
            mailbox.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

/// One unit's log entry, for the model-based tests: each call's operation, time and
/// verdict, in the order they were applied.
#[cfg(test)]
pub(crate) type Unit = Vec<(Op, Timestamp, Verdict)>;

/// The calls on each key in flight in this process, and their queues.
pub(crate) struct Coalescer {
    shards: Box<[Mutex<HashMap<Box<str>, Queue>>]>,
    hasher: RandomState,
    max_batch: usize,
    #[cfg(test)]
    pub(crate) log: Mutex<Vec<Unit>>,
}

impl Coalescer {
    /// Units of at most `max_batch` calls (at least 1).
    pub(crate) fn new(max_batch: usize) -> Coalescer {
        Coalescer {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            max_batch: max_batch.max(1),
            #[cfg(test)]
            log: Mutex::new(Vec::new()),
        }
    }

    /// The largest number of calls in one unit.
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<Box<str>, Queue>> {
        let hash = self.hasher.hash_one(key);
        &self.shards[usize::try_from(hash % SHARDS as u64).unwrap_or(0)]
    }

    /// Runs `op` on the generic path, in a unit with the calls on the same key queued
    /// behind the one in flight.
    pub(crate) async fn run(
        &self,
        storage: &dyn Storage,
        strategy: &dyn Strategy,
        max_attempts: u32,
        op: KeyOp<'_>,
    ) -> Result<Verdict, StorageError> {
        let key = op.key.as_str();
        let queued = {
            let mut map = lock(self.shard(key));
            match map.get_mut(key) {
                None => {
                    map.insert(key.into(), VecDeque::new());
                    None
                }
                Some(queue) => {
                    let waiter = Arc::new(Waiter {
                        op: op.op,
                        now: op.now,
                        mailbox: Mutex::new(Mailbox::default()),
                    });
                    queue.push_back(Arc::clone(&waiter));
                    Some(waiter)
                }
            }
        };
        let followers = match queued {
            None => Vec::new(),
            Some(waiter) => {
                let mut ticket = Ticket {
                    coalescer: self,
                    key,
                    waiter,
                };
                match ticket.wait().await {
                    Message::Done(result) => return result,
                    Message::Lead(followers) => followers,
                }
            }
        };
        let mut leader = Leader {
            coalescer: self,
            key,
            followers,
            write_sent: false,
            finished: false,
        };
        let result = leader.run(storage, strategy, max_attempts, op).await;
        leader.finish();
        result
    }

    /// Passes the lead to the first of `followers` that is still waiting, with the
    /// rest; with none, to the first queued call, with up to `max_batch − 1` behind it;
    /// with no call queued, marks the key as no longer in flight.
    fn hand_off(&self, key: &str, mut followers: Vec<Arc<Waiter>>) {
        loop {
            if followers.is_empty() {
                let mut map = lock(self.shard(key));
                let Some(queue) = map.get_mut(key) else {
                    return;
                };
                while followers.len() < self.max_batch {
                    let Some(waiter) = queue.pop_front() else {
                        break;
                    };
                    if !lock(&waiter.mailbox).closed {
                        followers.push(waiter);
                    }
                }
                if followers.is_empty() {
                    map.remove(key);
                    return;
                }
            }
            let next = followers.remove(0);
            match next.send(Message::Lead(followers)) {
                Ok(()) => return,
                Err(Message::Lead(rest)) => followers = rest,
                Err(Message::Done(_)) => return,
            }
        }
    }
}

/// A queued call's place: waits for its message, and on drop leaves the queue cleanly.
struct Ticket<'c> {
    coalescer: &'c Coalescer,
    key: &'c str,
    waiter: Arc<Waiter>,
}

impl Ticket<'_> {
    async fn wait(&mut self) -> Message {
        std::future::poll_fn(|cx| {
            let mut mailbox = lock(&self.waiter.mailbox);
            match mailbox.message.take() {
                Some(message) => Poll::Ready(message),
                None => {
                    mailbox.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let message = {
            let mut mailbox = lock(&self.waiter.mailbox);
            mailbox.closed = true;
            mailbox.message.take()
        };
        // Made leader but dropped before leading: the next call leads instead.
        if let Some(Message::Lead(followers)) = message {
            self.coalescer.hand_off(self.key, followers);
        }
    }
}

/// The caller running a unit: its own call first, then its followers'.
struct Leader<'c> {
    coalescer: &'c Coalescer,
    key: &'c str,
    followers: Vec<Arc<Waiter>>,
    /// Whether a write of the unit may have reached the storage.
    write_sent: bool,
    finished: bool,
}

impl Leader<'_> {
    async fn run(
        &mut self,
        storage: &dyn Storage,
        strategy: &dyn Strategy,
        max_attempts: u32,
        op: KeyOp<'_>,
    ) -> Result<Verdict, StorageError> {
        let ops: Vec<(Op, Timestamp)> = std::iter::once((op.op, op.now))
            .chain(self.followers.iter().map(|w| (w.op, w.now)))
            .collect();
        let outcome = run_unit(
            storage,
            strategy,
            max_attempts,
            op,
            &ops,
            &mut self.write_sent,
        )
        .await;
        match outcome {
            Ok(verdicts) => {
                #[cfg(test)]
                lock(&self.coalescer.log).push(
                    ops.iter()
                        .zip(&verdicts)
                        .map(|(&(op, now), &verdict)| (op, now, verdict))
                        .collect(),
                );
                let mut verdicts = verdicts.into_iter();
                let own = verdicts.next();
                for (waiter, verdict) in self.followers.drain(..).zip(verdicts) {
                    let _ = waiter.send(Message::Done(Ok(verdict)));
                }
                own.ok_or_else(|| {
                    StorageError::new(StorageErrorKind::Other, "coalesce", "no verdict")
                })
            }
            Err(error) => {
                for waiter in self.followers.drain(..) {
                    let _ = waiter.send(Message::Done(Err(error.duplicate())));
                }
                Err(error)
            }
        }
    }

    /// Hands the key over to the next queued call.
    fn finish(&mut self) {
        self.finished = true;
        let followers = std::mem::take(&mut self.followers);
        self.coalescer.hand_off(self.key, followers);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.write_sent {
            for waiter in self.followers.drain(..) {
                let error = StorageError::new(
                    StorageErrorKind::Other,
                    "coalesce",
                    "the call that carried this one was cancelled while its write was in flight",
                )
                .with_key(self.key);
                let _ = waiter.send(Message::Done(Err(error)));
            }
        }
        // Unapplied followers lead their own unit; or the queue moves on.
        let followers = std::mem::take(&mut self.followers);
        self.coalescer.hand_off(self.key, followers);
    }
}

/// One unit on the compare-and-set core: read once, apply every operation in order,
/// write once; start over when another writer got there first.
async fn run_unit(
    storage: &dyn Storage,
    strategy: &dyn Strategy,
    max_attempts: u32,
    first: KeyOp<'_>,
    ops: &[(Op, Timestamp)],
    write_sent: &mut bool,
) -> Result<Vec<Verdict>, StorageError> {
    let (key, limit) = (first.key, first.limit);
    let mut backoff = Backoff::new(storage.abilities().get_sleep());
    for _ in 0..max_attempts.max(1) {
        let (mut state, version) = match storage.get(key, first.now).await? {
            Some(current) => (current.value, Some(current.version)),
            None => (Vec::new(), None),
        };
        let mut verdicts = Vec::with_capacity(ops.len());
        let mut write: Option<(Duration, Timestamp)> = None;
        for &(op, now) in ops {
            let transition = strategy.apply(limit, &mut state, op, now).map_err(|e| {
                StorageError::new(StorageErrorKind::Corrupt, "apply", e.to_string())
                    .with_key(key.as_str())
            })?;
            if let Some(ttl) = transition.write {
                write = Some((ttl, now));
            }
            verdicts.push(transition.verdict);
        }
        let Some((ttl, now)) = write else {
            return Ok(verdicts);
        };
        *write_sent = true;
        if storage
            .compare_and_set(key, version, &state, ttl, now)
            .await?
        {
            return Ok(verdicts);
        }
        *write_sent = false;
        if !backoff.wait().await {
            break;
        }
    }
    Err(StorageError::new(
        StorageErrorKind::Contention,
        "compare_and_set",
        format!("gave up after {max_attempts} attempts"),
    )
    .with_key(key.as_str()))
}
