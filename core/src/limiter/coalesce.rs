//! Group commit: while one decision on a stored key is in flight in this process,
//! later calls on that key wait in a FIFO queue; when it completes, the queued calls
//! go together as one unit, each with its own verdict: on the generic path one `get`
//! and one `compare_and_set` that apply every queued operation in arrival order; on a
//! storage that runs the strategy natively, one
//! [`apply_many`](crate::storage::NativeStrategies::apply_many), which the storage
//! runs as one atomic step (one script call on Redis, or one read and one
//! compare-and-set for a wide unit), or, if it declines, each
//! operation in turn.
//!
//! One client's multi-limit hits ([`hit_all`](crate::RateLimiter::hit_all)) queue
//! the same way, by the list of their stored keys, on a storage with its own batches:
//! a unit is one [`batch_many`](crate::storage::NativeStrategies::batch_many), each
//! call all or nothing in arrival order ([`Coalescer::run_batch`]).
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
//! **Cancellation.** A queued call that is dropped before its unit starts is skipped
//! (its operation never runs); one dropped later may or may not count, as any call
//! dropped while its write is in flight. A leader dropped before its write was sent hands its followers to the first
//! of them, whose unit then runs without it; one dropped while its write was in flight
//! answers its followers with an error, since the write may or may not have happened.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use crate::clock::Timestamp;
use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{Answer, BatchItem, KeyOp, KeyRef, NativeStrategies, Storage};
use crate::strategy::{BuiltIn, Op, Strategy, Verdict};

use super::backoff::Backoff;
use super::dispatch::{apply_in_turn, apply_with_cas};

const SHARDS: usize = 16;

type Queue<T> = VecDeque<Arc<Waiter<T>>>;

/// The keys in flight in one shard, each with the calls queued behind it.
type Shard<T> = Mutex<HashMap<Box<str>, Queue<T>>>;

/// One call waiting for its key; `T` is what it is answered with (a verdict, or a
/// multi-limit hit's verdicts).
struct Waiter<T> {
    op: Op,
    now: Timestamp,
    mailbox: Mutex<Mailbox<T>>,
}

struct Mailbox<T> {
    message: Option<Message<T>>,
    waker: Option<Waker>,
    closed: bool,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox {
            message: None,
            waker: None,
            closed: false,
        }
    }
}

enum Message<T> {
    /// The call's answer, from the unit that ran it.
    Done(Result<T, StorageError>),
    /// The call leads the next unit, with these followers.
    Lead(Vec<Arc<Waiter<T>>>),
}

/// How a call that joined a key's queue goes on.
enum Joined<T> {
    /// It leads a unit, with these followers.
    Lead(Vec<Arc<Waiter<T>>>),
    /// A unit led by another call ran it.
    Done(Result<T, StorageError>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Waiter<T> {
    /// Delivers `message`, or hands it back when the call is gone.
    fn send(&self, message: Message<T>) -> Result<(), Message<T>> {
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

/// The calls on each key in flight in this process, and their queues: single-key
/// operations (`Coalescer<Verdict>`), or multi-limit hits on one client's keys
/// (`Coalescer<Vec<Verdict>>`).
pub(crate) struct Coalescer<T = Verdict> {
    shards: Box<[Shard<T>]>,
    hasher: RandomState,
    max_batch: usize,
    #[cfg(test)]
    pub(crate) log: Mutex<Vec<Unit>>,
}

impl<T> Coalescer<T> {
    /// Units of at most `max_batch` calls (at least 1).
    pub(crate) fn new(max_batch: usize) -> Coalescer<T> {
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

    fn shard(&self, key: &str) -> &Shard<T> {
        let hash = self.hasher.hash_one(key);
        &self.shards[usize::try_from(hash % SHARDS as u64).unwrap_or(0)]
    }

    /// Joins the queue of `key` with `op` at `now`: leads a unit at once when no call
    /// on `key` is in flight, else waits for a unit to run it or for the lead.
    async fn join(&self, key: &str, op: Op, now: Timestamp) -> Joined<T> {
        let queued = {
            let mut map = lock(self.shard(key));
            match map.get_mut(key) {
                None => {
                    map.insert(key.into(), VecDeque::new());
                    None
                }
                Some(queue) => {
                    let waiter = Arc::new(Waiter {
                        op,
                        now,
                        mailbox: Mutex::new(Mailbox::default()),
                    });
                    queue.push_back(Arc::clone(&waiter));
                    Some(waiter)
                }
            }
        };
        match queued {
            None => Joined::Lead(Vec::new()),
            Some(waiter) => {
                let mut ticket = Ticket {
                    coalescer: self,
                    key,
                    waiter,
                };
                match ticket.wait().await {
                    Message::Done(result) => Joined::Done(result),
                    Message::Lead(followers) => Joined::Lead(followers),
                }
            }
        }
    }

    /// Answers every call queued on `key` with `error` and marks the key as no longer
    /// in flight: the next call on it goes at once.
    fn fail_queued(&self, key: &str, error: &StorageError) {
        let queue = lock(self.shard(key)).remove(key);
        for waiter in queue.into_iter().flatten() {
            let _ = waiter.send(Message::Done(Err(error.duplicate())));
        }
    }

    /// Passes the lead to the first of `followers` that is still waiting, with the
    /// rest; with none, to the first queued call, with up to `max_batch − 1` behind it;
    /// with no call queued, marks the key as no longer in flight.
    fn hand_off(&self, key: &str, mut followers: Vec<Arc<Waiter<T>>>) {
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

impl Coalescer<Verdict> {
    /// Runs `op` on the generic path, in a unit with the calls on the same key queued
    /// behind the one in flight.
    pub(crate) async fn run(
        &self,
        path: Path<'_>,
        storage: &dyn Storage,
        strategy: &dyn Strategy,
        max_attempts: u32,
        op: KeyOp<'_>,
    ) -> Result<Verdict, StorageError> {
        let stored = op.key.to_storage_key();
        let op = KeyOp {
            key: KeyRef::from(&*stored),
            ..op
        };
        let key = stored.as_str();
        let followers = match self.join(key, op.op, op.now).await {
            Joined::Done(result) => return result,
            Joined::Lead(followers) => followers,
        };
        let mut leader = Leader::new(self, key, followers);
        let result = leader.run(path, storage, strategy, max_attempts, op).await;
        leader.finish();
        result
    }
}

impl Coalescer<Vec<Verdict>> {
    /// Runs a multi-limit hit of `cost` at `now` on `items` through the storage's own
    /// batches, in a unit with the `hit_all` calls on the same items queued behind the
    /// one in flight: one [`batch_many`](NativeStrategies::batch_many) for the unit, or,
    /// when the storage declines it, each call in turn through `one` (a multi-limit
    /// hit as the limiter sends it alone).
    pub(crate) async fn run_batch<F, Fut>(
        &self,
        native: &dyn NativeStrategies,
        builtin: BuiltIn,
        items: &[BatchItem<'_>],
        (cost, now): (u64, Timestamp),
        one: F,
    ) -> Result<Vec<Verdict>, StorageError>
    where
        F: Fn(u64, Timestamp) -> Fut,
        Fut: Future<Output = Result<Vec<Verdict>, StorageError>>,
    {
        // The queue's name: each stored key with its length in front, so that no two
        // lists of keys share one.
        let mut key = String::new();
        for item in items {
            let stored = item.key.to_storage_key();
            key.push_str(itoa::Buffer::new().format(stored.as_str().len()));
            key.push(':');
            key.push_str(stored.as_str());
        }
        let followers = match self.join(&key, Op::Hit { cost }, now).await {
            Joined::Done(result) => return result,
            Joined::Lead(followers) => followers,
        };
        let mut leader = Leader::new(self, &key, followers);
        leader.followers.retain(|w| !lock(&w.mailbox).closed);
        let calls: Vec<(u64, Timestamp)> = std::iter::once((cost, now))
            .chain(leader.followers.iter().map(|w| (w.op.cost(), w.now)))
            .collect();
        let outcome =
            batch_unit(native, builtin, items, &calls, &one, &mut leader.write_sent).await;
        let result = leader.deliver(outcome);
        leader.finish();
        result
    }
}

/// One unit of multi-limit hits: one `batch_many`, or each call in turn.
async fn batch_unit<F, Fut>(
    native: &dyn NativeStrategies,
    builtin: BuiltIn,
    items: &[BatchItem<'_>],
    calls: &[(u64, Timestamp)],
    one: &F,
    write_sent: &mut bool,
) -> Result<Vec<Vec<Verdict>>, StorageError>
where
    F: Fn(u64, Timestamp) -> Fut,
    Fut: Future<Output = Result<Vec<Verdict>, StorageError>>,
{
    if calls.len() > 1 {
        let answer = native.batch_many(builtin, items, calls);
        let answered = match answer {
            Answer::Ready(results) => Some(results),
            Answer::Pending(future) => {
                *write_sent = true;
                Some(future.await)
            }
            Answer::Declined => None,
        };
        if let Some(results) = answered {
            let results = results?;
            if results.len() != calls.len() || results.iter().any(|r| r.len() != items.len()) {
                let message = format!(
                    "{} answers for {} calls of {} limits",
                    results.len(),
                    calls.len(),
                    items.len()
                );
                return Err(StorageError::new(
                    StorageErrorKind::Protocol,
                    "batch_many",
                    message,
                ));
            }
            return Ok(results);
        }
    }
    let mut results = Vec::with_capacity(calls.len());
    for &(cost, now) in calls {
        *write_sent = true;
        results.push(one(cost, now).await?);
    }
    Ok(results)
}

/// A queued call's place: waits for its message, and on drop leaves the queue cleanly.
struct Ticket<'c, T> {
    coalescer: &'c Coalescer<T>,
    key: &'c str,
    waiter: Arc<Waiter<T>>,
}

impl<T> Ticket<'_, T> {
    async fn wait(&mut self) -> Message<T> {
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

impl<T> Drop for Ticket<'_, T> {
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
struct Leader<'c, T> {
    coalescer: &'c Coalescer<T>,
    key: &'c str,
    followers: Vec<Arc<Waiter<T>>>,
    /// Whether a write of the unit may have reached the storage.
    write_sent: bool,
    /// The transport error the unit failed with, for the calls queued behind it.
    unreachable: Option<StorageError>,
    finished: bool,
}

impl Leader<'_, Verdict> {
    async fn run(
        &mut self,
        path: Path<'_>,
        storage: &dyn Storage,
        strategy: &dyn Strategy,
        max_attempts: u32,
        op: KeyOp<'_>,
    ) -> Result<Verdict, StorageError> {
        // Followers dropped since they were handed over do not run.
        self.followers.retain(|w| !lock(&w.mailbox).closed);
        let ops: Vec<(Op, Timestamp)> = std::iter::once((op.op, op.now))
            .chain(self.followers.iter().map(|w| (w.op, w.now)))
            .collect();
        let outcome = match path {
            Path::Generic => {
                run_unit(
                    storage,
                    strategy,
                    max_attempts,
                    op,
                    &ops,
                    &mut self.write_sent,
                )
                .await
            }
            Path::Native(native, builtin) => {
                let unit = NativeUnit {
                    native,
                    builtin,
                    storage,
                    strategy,
                    max_attempts,
                };
                unit.run(op, &ops, &mut self.write_sent).await
            }
        };
        #[cfg(test)]
        if let Ok(verdicts) = &outcome {
            lock(&self.coalescer.log).push(
                ops.iter()
                    .zip(verdicts)
                    .map(|(&(op, now), &verdict)| (op, now, verdict))
                    .collect(),
            );
        }
        self.deliver(outcome)
    }
}

impl<'c, T> Leader<'c, T> {
    fn new(coalescer: &'c Coalescer<T>, key: &'c str, followers: Vec<Arc<Waiter<T>>>) -> Self {
        Leader {
            coalescer,
            key,
            followers,
            write_sent: false,
            unreachable: None,
            finished: false,
        }
    }

    /// Answers the followers from the unit's outcome (one answer per call, the
    /// leader's first) and returns the leader's.
    fn deliver(&mut self, outcome: Result<Vec<T>, StorageError>) -> Result<T, StorageError> {
        match outcome {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                let own = answers.next();
                for (waiter, answer) in self.followers.drain(..).zip(answers) {
                    let _ = waiter.send(Message::Done(Ok(answer)));
                }
                own.ok_or_else(|| {
                    StorageError::new(StorageErrorKind::Other, "coalesce", "no verdict")
                })
            }
            Err(error) => {
                for waiter in self.followers.drain(..) {
                    let _ = waiter.send(Message::Done(Err(error.duplicate())));
                }
                if matches!(
                    error.kind(),
                    StorageErrorKind::Unavailable | StorageErrorKind::Timeout
                ) {
                    self.unreachable = Some(error.duplicate());
                }
                Err(error)
            }
        }
    }

    /// Hands the key over to the next queued call; or, when the unit could not reach
    /// the storage, answers every queued call with that error at once, so that no
    /// call waits more than one command's time for a storage that does not answer
    /// (the calls queued meanwhile never reached it).
    fn finish(&mut self) {
        self.finished = true;
        let followers = std::mem::take(&mut self.followers);
        match self.unreachable.take() {
            Some(error) => self.coalescer.fail_queued(self.key, &error),
            None => self.coalescer.hand_off(self.key, followers),
        }
    }
}

impl<T> Drop for Leader<'_, T> {
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

/// How a unit reaches the storage.
#[derive(Clone, Copy)]
pub(crate) enum Path<'s> {
    /// The compare-and-set core ([`run_unit`]).
    Generic,
    /// The storage's own operations for a built-in strategy ([`NativeUnit`]).
    Native(&'s dyn NativeStrategies, BuiltIn),
}

/// One unit through the storage's own operations: one
/// [`apply_many`](NativeStrategies::apply_many) for the whole unit, or, when the
/// storage declines it, each operation in turn as the limiter would send it alone.
struct NativeUnit<'s> {
    native: &'s dyn NativeStrategies,
    builtin: BuiltIn,
    storage: &'s dyn Storage,
    strategy: &'s dyn Strategy,
    max_attempts: u32,
}

impl NativeUnit<'_> {
    async fn run(
        &self,
        first: KeyOp<'_>,
        ops: &[(Op, Timestamp)],
        write_sent: &mut bool,
    ) -> Result<Vec<Verdict>, StorageError> {
        if ops.len() > 1 {
            let answer = self
                .native
                .apply_many(self.builtin, first.key, first.limit, ops);
            let verdicts = match answer {
                Answer::Ready(verdicts) => Some(verdicts),
                Answer::Pending(future) => {
                    *write_sent = true;
                    Some(future.await)
                }
                Answer::Declined => None,
            };
            if let Some(verdicts) = verdicts {
                let verdicts = verdicts?;
                if verdicts.len() != ops.len() {
                    let message =
                        format!("{} verdicts for {} operations", verdicts.len(), ops.len());
                    return Err(StorageError::new(
                        StorageErrorKind::Protocol,
                        "apply_many",
                        message,
                    )
                    .with_key(first.key.to_string()));
                }
                return Ok(verdicts);
            }
        }
        let mut verdicts = Vec::with_capacity(ops.len());
        for &(op, now) in ops {
            let key_op = KeyOp { op, now, ..first };
            *write_sent = true;
            verdicts.push(run_op!(
                self.storage,
                self.strategy,
                self.max_attempts,
                key_op
            )?);
        }
        Ok(verdicts)
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
    let (key, limit) = (first.key.to_storage_key(), first.limit);
    let key = &*key;
    let mut backoff = Backoff::new(storage.abilities().get_sleep());
    for _ in 0..max_attempts.max(1) {
        let (mut state, version) = match storage.get(key, first.now).await? {
            Some(current) => (current.value, Some(current.version)),
            None => (Vec::new(), None),
        };
        let (verdicts, write) = apply_in_turn(strategy, limit, &mut state, ops)
            .map_err(|e| e.with_key(key.as_str()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc_support::TinyStorage;
    use crate::limit::RateLimit;
    use crate::storage::{async_trait, Version, Versioned};
    use crate::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
    use crate::StorageKey;
    use proptest::prelude::{prop_assert, proptest, ProptestConfig};
    use std::future::Future;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// [`TinyStorage`] whose reads and writes yield a few times, as a round trip
    /// would, so that calls queue up behind the one in flight; counts its calls.
    #[derive(Debug, Default)]
    struct Slow {
        inner: TinyStorage,
        gets: AtomicU32,
        sets: AtomicU32,
        /// Whether it runs the built-in strategies itself ([`NativeStrategies`]).
        native: bool,
        /// Native calls: `apply` and `apply_many` alike.
        applies: AtomicU32,
        /// `batch_many` calls.
        batches: AtomicU32,
        /// Whether every read times out, as against a hung server.
        hung: bool,
    }

    impl Slow {
        /// `ops` in turn on `key`'s state, as one atomic step (a unit never races
        /// another on one key), after a few yields.
        async fn run_many(
            &self,
            builtin: BuiltIn,
            key: KeyRef<'_>,
            limit: &RateLimit,
            ops: &[(Op, Timestamp)],
        ) -> Result<Vec<Verdict>, StorageError> {
            self.applies.fetch_add(1, Ordering::SeqCst);
            yields(3).await;
            let key = key.to_storage_key();
            let current = self.inner.get(&key, Timestamp::ZERO).await?;
            let version = current.as_ref().map(|v| v.version);
            let mut state = current.map(|v| v.value).unwrap_or_default();
            let mut verdicts = Vec::new();
            let mut write = None;
            for &(op, now) in ops {
                let transition = builtin
                    .strategy()
                    .apply(limit, &mut state, op, now)
                    .map_err(|e| {
                        StorageError::new(StorageErrorKind::Corrupt, "apply", e.to_string())
                    })?;
                if let Some(ttl) = transition.write {
                    write = Some((ttl, now));
                }
                verdicts.push(transition.verdict);
            }
            if let Some((ttl, now)) = write {
                let set = self
                    .inner
                    .compare_and_set(&key, version, &state, ttl, now)
                    .await?;
                assert!(set, "a native unit raced");
            }
            Ok(verdicts)
        }
    }

    impl NativeStrategies for Slow {
        fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict> {
            Answer::Pending(Box::pin(async move {
                let verdicts = self
                    .run_many(strategy, op.key, op.limit, &[(op.op, op.now)])
                    .await?;
                verdicts
                    .into_iter()
                    .next()
                    .ok_or_else(|| StorageError::new(StorageErrorKind::Other, "apply", "none"))
            }))
        }

        fn apply_many<'a>(
            &'a self,
            strategy: BuiltIn,
            key: KeyRef<'a>,
            limit: &'a RateLimit,
            ops: &'a [(Op, Timestamp)],
        ) -> Answer<'a, Vec<Verdict>> {
            Answer::Pending(Box::pin(self.run_many(strategy, key, limit, ops)))
        }

        /// Each call in turn, all or nothing, through the generic routine (a unit
        /// never races another on the same keys), after a few yields.
        fn batch_many<'a>(
            &'a self,
            strategy: BuiltIn,
            items: &'a [BatchItem<'a>],
            calls: &'a [(u64, Timestamp)],
        ) -> Answer<'a, Vec<Vec<Verdict>>> {
            Answer::Pending(Box::pin(async move {
                self.batches.fetch_add(1, Ordering::SeqCst);
                yields(3).await;
                let mut all = Vec::new();
                for &(cost, now) in calls {
                    let batch = crate::storage::Batch::trusted(items, cost, now);
                    all.push(
                        crate::limiter::apply_batch(&self.inner, strategy.strategy(), 4, batch)
                            .await?,
                    );
                }
                Ok(all)
            }))
        }
    }

    async fn yields(n: u32) {
        for _ in 0..n {
            let mut once = false;
            std::future::poll_fn(|cx| {
                if once {
                    Poll::Ready(())
                } else {
                    once = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
        }
    }

    #[async_trait]
    impl Storage for Slow {
        async fn get(
            &self,
            key: &StorageKey,
            now: Timestamp,
        ) -> Result<Option<Versioned>, StorageError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            yields(3).await;
            if self.hung {
                return Err(StorageError::new(StorageErrorKind::Timeout, "get", "hung"));
            }
            self.inner.get(key, now).await
        }

        async fn compare_and_set(
            &self,
            key: &StorageKey,
            expected: Option<Version>,
            value: &[u8],
            ttl: Duration,
            now: Timestamp,
        ) -> Result<bool, StorageError> {
            self.sets.fetch_add(1, Ordering::SeqCst);
            yields(3).await;
            self.inner
                .compare_and_set(key, expected, value, ttl, now)
                .await
        }

        async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
            self.inner.delete(key).await
        }

        async fn check(&self) -> Result<(), StorageError> {
            Ok(())
        }

        fn abilities(&self) -> crate::storage::Abilities<'_> {
            let abilities = crate::storage::Abilities::new();
            if self.native {
                abilities.native(self)
            } else {
                abilities
            }
        }
    }

    fn strategy(index: usize) -> &'static dyn Strategy {
        [
            &FixedWindow as &dyn Strategy,
            &MovingWindow,
            &SlidingWindow,
            &Gcra,
        ][index % 4]
    }

    /// Runs `calls` concurrently through one coalescer on one key; checks that every
    /// unit is at most `max_batch` calls, that the units, replayed one call at a time
    /// on an empty state in the order they committed, give every call the verdict it
    /// got, and that the stored state is the replay's. Returns the units' sizes.
    fn check_serial(
        strategy: &'static dyn Strategy,
        limit: RateLimit,
        calls: &[(Op, Timestamp)],
        max_batch: usize,
    ) -> Vec<usize> {
        check_serial_on(strategy, limit, calls, max_batch, false)
    }

    /// [`check_serial`] through the storage's own operations when `native`.
    fn check_serial_on(
        strategy: &'static dyn Strategy,
        limit: RateLimit,
        calls: &[(Op, Timestamp)],
        max_batch: usize,
        native: bool,
    ) -> Vec<usize> {
        let storage = Slow {
            native,
            ..Slow::default()
        };
        let path = match strategy.builtin() {
            Some(builtin) if native => Path::Native(&storage, builtin),
            _ => Path::Generic,
        };
        let coalescer = Coalescer::new(max_batch);
        let key = StorageKey::new("model", "key");
        let results = futures::executor::block_on(futures::future::join_all(calls.iter().map(
            |&(op, now)| {
                let key_op = KeyOp {
                    key: (&key).into(),
                    limit: &limit,
                    op,
                    now,
                };
                coalescer.run(path, &storage, strategy, 16, key_op)
            },
        )));
        let units = lock(&coalescer.log).clone();
        assert!(units.iter().all(|u| !u.is_empty() && u.len() <= max_batch));
        let mut state = Vec::new();
        let mut serial = Vec::new();
        for unit in &units {
            for &(op, now, verdict) in unit {
                let replay = strategy.apply(&limit, &mut state, op, now).expect("state");
                assert_eq!(replay.verdict, verdict, "{op:?} at {now}");
                serial.push((op, now, verdict));
            }
        }
        assert_eq!(serial.len(), calls.len());
        for (&(op, now), result) in calls.iter().zip(&results) {
            let verdict = result.as_ref().expect("a verdict");
            assert!(
                serial.contains(&(op, now, *verdict)),
                "{op:?} at {now}: {verdict:?} is not its verdict in the serial order"
            );
        }
        let stored = futures::executor::block_on(storage.inner.get(&key, Timestamp::ZERO))
            .expect("get")
            .map(|v| v.value)
            .unwrap_or_default();
        assert_eq!(stored, state, "the stored state is the serial order's");
        if native {
            // One native call per unit, and nothing on the generic path.
            assert_eq!(storage.applies.load(Ordering::SeqCst) as usize, units.len());
            assert_eq!(storage.gets.load(Ordering::SeqCst), 0);
        } else {
            // One read per unit, at most one write per unit: nothing raced.
            assert_eq!(storage.gets.load(Ordering::SeqCst) as usize, units.len());
            assert!(storage.sets.load(Ordering::SeqCst) as usize <= units.len());
        }
        units.iter().map(Vec::len).collect()
    }

    fn op_strategy() -> impl proptest::strategy::Strategy<Value = (u8, u64, u64)> {
        (0u8..10, 1u64..4, 0u64..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn coalesced_units_equal_a_serial_order(
            native in proptest::bool::ANY,
            strategy_index in 0usize..4,
            amount in 1u64..6,
            max_batch in 1usize..9,
            raw in proptest::collection::vec(op_strategy(), 1..40),
        ) {
            let limit: RateLimit = format!("{amount} per second").parse().expect("limit");
            // Distinct times, so that every call is told apart in the log.
            let calls: Vec<(Op, Timestamp)> = raw
                .iter()
                .enumerate()
                .map(|(i, &(kind, cost, offset))| {
                    let now = Timestamp::from_millis(10_000 + offset * 300 + i as u64);
                    let op = match kind {
                        0..=5 => Op::Hit { cost },
                        6..=7 => Op::Test { cost },
                        _ => Op::Refund { cost, at: now },
                    };
                    (op, now)
                })
                .collect();
            let sizes = check_serial_on(strategy(strategy_index), limit, &calls, max_batch, native);
            prop_assert!(sizes.iter().sum::<usize>() == calls.len());
        }
    }

    #[test]
    fn calls_behind_one_in_flight_go_together() {
        let limit: RateLimit = "10 per minute".parse().expect("limit");
        let calls: Vec<(Op, Timestamp)> = (0..30)
            .map(|i| (Op::Hit { cost: 1 }, Timestamp::from_millis(1_000 + i)))
            .collect();
        let sizes = check_serial(&FixedWindow, limit, &calls, 8);
        // The first goes alone; the 29 queued behind it go in units of up to 8.
        assert_eq!(sizes, [1, 8, 8, 8, 5]);
        // Likewise through the storage's own operations: one call per unit.
        let sizes = check_serial_on(&FixedWindow, limit, &calls, 8, true);
        assert_eq!(sizes, [1, 8, 8, 8, 5]);
    }

    #[test]
    fn hit_all_calls_behind_one_in_flight_go_together_each_all_or_nothing() {
        let storage = Slow {
            native: true,
            ..Slow::default()
        };
        let coalescer: Coalescer<Vec<Verdict>> = Coalescer::new(8);
        let limits: [RateLimit; 2] = [
            "5 per minute".parse().expect("limit"),
            "8 per minute".parse().expect("limit"),
        ];
        let keys = [
            StorageKey::new("c", "5/1/minute"),
            StorageKey::new("c", "8/1/minute"),
        ];
        let items = [0, 1].map(|i| BatchItem {
            key: (&keys[i]).into(),
            limit: &limits[i],
        });
        let calls: Vec<(u64, Timestamp)> = (0..30)
            .map(|i| (1 + i % 2, Timestamp::from_millis(1_000 + i)))
            .collect();
        let items = &items;
        let runs = calls.iter().map(|&(cost, now)| {
            // A lone call: the generic all-or-nothing routine.
            let one = |cost, now| {
                let batch = crate::storage::Batch::trusted(items, cost, now);
                crate::limiter::apply_batch(&storage, &FixedWindow, 4, batch)
            };
            coalescer.run_batch(&storage, BuiltIn::FixedWindow, items, (cost, now), one)
        });
        let together = futures::executor::block_on(futures::future::join_all(runs));
        // The same calls one at a time, on a storage of their own.
        let alone = TinyStorage::default();
        for (&(cost, now), got) in calls.iter().zip(&together) {
            let batch = crate::storage::Batch::trusted(items, cost, now);
            let want = futures::executor::block_on(crate::limiter::apply_batch(
                &alone,
                &FixedWindow,
                4,
                batch,
            ));
            assert_eq!(got.as_ref().ok(), want.as_ref().ok(), "{cost} at {now}");
        }
        // One call alone, then units of up to 8: four storage calls for the other 29.
        assert_eq!(storage.batches.load(Ordering::SeqCst), 4);
        // All or nothing: the second limit counted exactly what the first admitted.
        let admitted: u64 = calls
            .iter()
            .zip(&together)
            .filter(|(_, r)| r.as_ref().is_ok_and(|v| v.iter().all(|v| v.allowed)))
            .map(|((cost, _), _)| cost)
            .sum();
        assert!(admitted <= 5, "{admitted}");
        let left = together
            .last()
            .and_then(|r| r.as_ref().ok())
            .expect("verdicts");
        assert_eq!(left[1].remaining, 8 - admitted);
        assert!(coalescer.shards.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn calls_queued_behind_an_unreachable_storage_fail_with_it_at_once() {
        let storage = Slow {
            hung: true,
            ..Slow::default()
        };
        let coalescer = Coalescer::new(8);
        let key = StorageKey::new("model", "key");
        let limit: RateLimit = "10 per minute".parse().expect("limit");
        let calls = (0..20).map(|i| {
            let key_op = KeyOp {
                key: (&key).into(),
                limit: &limit,
                op: Op::Hit { cost: 1 },
                now: Timestamp::from_millis(1_000 + i),
            };
            coalescer.run(Path::Generic, &storage, &FixedWindow, 4, key_op)
        });
        let results = futures::executor::block_on(futures::future::join_all(calls));
        assert!(results.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.kind() == StorageErrorKind::Timeout)));
        // Only the first call reached the storage; the key is free again.
        assert_eq!(storage.gets.load(Ordering::SeqCst), 1);
        assert!(lock(coalescer.shard(key.as_str())).is_empty());
    }

    #[test]
    fn a_lone_call_goes_at_once_and_the_key_is_released() {
        let limit: RateLimit = "10 per minute".parse().expect("limit");
        let calls = [(Op::Hit { cost: 1 }, Timestamp::from_millis(5))];
        assert_eq!(check_serial(&Gcra, limit, &calls, 8), [1]);
        let coalescer = Coalescer::new(4);
        let storage = Slow::default();
        let key = StorageKey::new("a", "b");
        for _ in 0..3 {
            let op = KeyOp {
                key: (&key).into(),
                limit: &limit,
                op: Op::Hit { cost: 1 },
                now: Timestamp::from_millis(5),
            };
            let verdict =
                futures::executor::block_on(coalescer.run(Path::Generic, &storage, &Gcra, 4, op));
            assert!(verdict.expect("verdict").allowed);
        }
        assert!(coalescer.shards.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn dropped_calls_neither_run_nor_stall_the_queue() {
        let limit: RateLimit = "100 per minute".parse().expect("limit");
        let storage = Slow::default();
        let coalescer = Coalescer::new(4);
        let key = StorageKey::new("a", "b");
        let op = |ms| KeyOp {
            key: (&key).into(),
            limit: &limit,
            op: Op::Hit { cost: 1 },
            now: Timestamp::from_millis(ms),
        };
        futures::executor::block_on(async {
            let mut leader =
                Box::pin(coalescer.run(Path::Generic, &storage, &FixedWindow, 4, op(1)));
            let mut queued: Vec<_> = (2..8)
                .map(|ms| Box::pin(coalescer.run(Path::Generic, &storage, &FixedWindow, 4, op(ms))))
                .collect();
            // Start all: the first leads, the others queue.
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(leader.as_mut().poll(&mut cx).is_pending());
            for call in &mut queued {
                assert!(call.as_mut().poll(&mut cx).is_pending());
            }
            // The leader is dropped before its write, and so are two queued calls.
            drop(leader);
            let rest: Vec<_> = queued
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 3 != 0)
                .collect();
            let verdicts = futures::future::join_all(rest.into_iter().map(|(_, call)| call)).await;
            assert!(verdicts.iter().all(|v| v.as_ref().is_ok_and(|v| v.allowed)));
            // Only the four survivors were counted.
            let last = coalescer
                .run(Path::Generic, &storage, &FixedWindow, 4, op(9))
                .await
                .expect("verdict");
            assert_eq!(last.remaining, 100 - 5);
        });
        assert!(coalescer.shards.iter().all(|s| lock(s).is_empty()));
    }
}
