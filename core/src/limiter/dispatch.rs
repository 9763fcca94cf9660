//! The one place that chooses between a storage's own operation and the generic
//! compare-and-set path, and the generic paths themselves.

use std::future::Future;

use crate::clock::Timestamp;
use crate::error::{StorageError, StorageErrorKind};
use crate::limit::RateLimit;
use crate::storage::{Answer, Batch, BatchItem, KeyOp, KeyRef, Storage};
use crate::strategy::{Op, Strategy, Verdict};

use super::backoff;

/// `key_op` on the storage, as an expression of the calling `async fn`: the storage's
/// own operation when it runs the strategy natively, else the compare-and-set core.
/// The one place that chooses between the two.
///
/// A macro rather than a method so that a hit's future is one level deep: an
/// in-process storage answers at once, and a nested future to set up and copy is a
/// measurable share of such a hit.
macro_rules! run_op {
    ($storage:expr, $strategy:expr, $max_attempts:expr, $key_op:expr) => {{
        let (storage, strategy): (&dyn Storage, &dyn Strategy) = ($storage, $strategy);
        let key_op: KeyOp<'_> = $key_op;
        let answer = match (strategy.builtin(), storage.abilities().get_native()) {
            (Some(builtin), Some(native)) => native.apply(builtin, key_op),
            _ => Answer::Declined,
        };
        match answer {
            Answer::Ready(result) => result,
            Answer::Pending(future) => future.await,
            // Boxed, so that the future of every hit stays small.
            Answer::Declined => {
                Box::pin(apply_with_cas(storage, strategy, $max_attempts, key_op)).await
            }
        }
    }};
}

/// Runs `op` on `storage` as the [`RateLimiter`](crate::RateLimiter) does: through the storage's own
/// operation when it runs `strategy` natively
/// ([`NativeStrategies`](crate::storage::NativeStrategies)), else through the generic
/// path, [`apply_with_cas`] (which gives up after `max_attempts` lost races).
///
/// # Errors
///
/// The storage's errors; see [`apply_with_cas`] for the generic path's.
pub async fn apply(
    storage: &dyn Storage,
    strategy: &dyn Strategy,
    max_attempts: u32,
    op: KeyOp<'_>,
) -> Result<Verdict, StorageError> {
    run_op!(storage, strategy, max_attempts, op)
}

/// Runs a multi-limit hit all or nothing over single-key operations ([`apply`] on
/// each), as the [`RateLimiter`](crate::RateLimiter) does for a storage without a native
/// [`batch`](crate::storage::NativeStrategies::batch); a native batch may call it for
/// the cases it cannot run itself.
///
/// It tests every item first, so that the common rejection writes nothing; then hits
/// them one by one. When a hit rejects (a concurrent caller spent the units meanwhile)
/// or fails, it gives back what it took, best effort (a give-back that fails leaves
/// units consumed, which can reject later hits early but never admit one too many),
/// and answers with tests of every item, or the error. Concurrent callers may see the
/// earlier items consumed in between: they may reject where they would have passed,
/// never pass where they should reject.
///
/// # Errors
///
/// The storage's errors, as [`apply`].
pub async fn apply_batch<'b>(
    storage: &dyn Storage,
    strategy: &dyn Strategy,
    max_attempts: u32,
    batch: Batch<'b>,
) -> Result<Vec<Verdict>, StorageError> {
    let now = batch.now();
    all_or_nothing(batch, |item: BatchItem<'b>, op: Op| {
        let op = KeyOp {
            key: item.key,
            limit: item.limit,
            op,
            now,
        };
        apply(storage, strategy, max_attempts, op)
    })
    .await
}

/// [`apply_batch`]'s routine over any way of running one item's operation at the
/// batch's time: the limiter's own runs each through its coalescing and rejection
/// cache.
pub(crate) async fn all_or_nothing<'b, F, Fut>(
    batch: Batch<'b>,
    run: F,
) -> Result<Vec<Verdict>, StorageError>
where
    F: Fn(BatchItem<'b>, Op) -> Fut,
    Fut: std::future::Future<Output = Result<Verdict, StorageError>>,
{
    let (items, cost, now) = (batch.items(), batch.cost(), batch.now());
    let mut verdicts = Vec::with_capacity(items.len());
    for item in items {
        verdicts.push(run(*item, Op::Test { cost }).await?);
    }
    if verdicts.iter().any(|v| !v.allowed) {
        return Ok(verdicts);
    }
    for (i, item) in items.iter().enumerate() {
        match run(*item, Op::Hit { cost }).await {
            Ok(verdict) if verdict.allowed => verdicts[i] = verdict,
            lost => {
                for taken in &items[..i] {
                    let _ = run(*taken, Op::Refund { cost, at: now }).await;
                }
                // A rejected hit reads as a test of the same state.
                verdicts[i] = lost?;
                for (taken, verdict) in items[..i].iter().zip(&mut verdicts) {
                    *verdict = run(*taken, Op::Test { cost }).await?;
                }
                return Ok(verdicts);
            }
        }
    }
    Ok(verdicts)
}

/// The time-to-live and time of the last operation that changed a state.
type LastWrite = Option<(std::time::Duration, Timestamp)>;

/// Several operations on one key, in order, on the key's state held by the caller,
/// each with its own time, as if each ran alone right after the one before: each
/// operation's verdict, and the time-to-live and time of the last one that changed
/// the state (`None`: none did, nothing to write). The routine under
/// [`apply_many_with_cas`], for a storage that holds the state another way (a state
/// it wrote itself, whose version it knows), then writes it back with one
/// compare-and-set.
///
/// # Errors
///
/// [`StorageErrorKind::Corrupt`] when the state does not decode.
pub fn apply_in_turn(
    strategy: &dyn Strategy,
    limit: &RateLimit,
    state: &mut Vec<u8>,
    ops: &[(Op, Timestamp)],
) -> Result<(Vec<Verdict>, LastWrite), StorageError> {
    let mut verdicts = Vec::with_capacity(ops.len());
    let mut write = None;
    for &(op, now) in ops {
        let transition = strategy
            .apply(limit, state, op, now)
            .map_err(|e| StorageError::new(StorageErrorKind::Corrupt, "apply", e.to_string()))?;
        if let Some(ttl) = transition.write {
            write = Some((ttl, now));
        }
        verdicts.push(transition.verdict);
    }
    Ok((verdicts, write))
}

/// Several operations on one key in one read and one compare-and-set, each with its
/// own time, in order, as if each ran alone right after the one before: what a
/// storage's [`apply_many`](crate::storage::NativeStrategies::apply_many) must answer,
/// computed by `strategy` on the client.
///
/// One attempt: `Ok(None)` when another writer changed the key between the read and
/// the write, in which case nothing was written (the caller runs the operations
/// another way, or again). When no operation changes the state, nothing is written
/// and the verdicts are those of the state read. A native storage may call it for a
/// unit of many operations, where one write of the final state costs its server less
/// than running every operation there, and fall back to its own step on a lost race.
///
/// # Errors
///
/// The storage's errors; [`StorageErrorKind::Corrupt`] when the stored state does not
/// decode.
pub async fn apply_many_with_cas(
    storage: &dyn Storage,
    strategy: &dyn Strategy,
    key: KeyRef<'_>,
    limit: &RateLimit,
    ops: &[(Op, Timestamp)],
) -> Result<Option<Vec<Verdict>>, StorageError> {
    let Some(&(_, first)) = ops.first() else {
        return Ok(Some(Vec::new()));
    };
    let stored = key.to_storage_key();
    let (mut state, version) = match storage.get(&stored, first).await? {
        Some(current) => (current.value, Some(current.version)),
        None => (Vec::new(), None),
    };
    let (verdicts, write) =
        apply_in_turn(strategy, limit, &mut state, ops).map_err(|e| e.with_key(stored.as_str()))?;
    let Some((ttl, now)) = write else {
        return Ok(Some(verdicts));
    };
    let wrote = storage
        .compare_and_set(&stored, version, &state, ttl, now)
        .await?;
    Ok(wrote.then_some(verdicts))
}

/// The time-to-live of the last write to a state (`None`: unchanged).
type LastTtl = Option<std::time::Duration>;

/// Several multi-limit hits on one set of keys, in order, on the keys' states held by
/// the caller (`states[i]` is `items[i]`'s), each all or nothing as [`apply_batch`]
/// decides it, right after the one before: what a storage's
/// [`batch_many`](crate::storage::NativeStrategies::batch_many) must answer. For a
/// storage that reads the keys at once and writes them back at once, if none changed
/// meanwhile.
///
/// Returns each call's verdicts (one per item, in order) and, per item, the
/// time-to-live of the last write to its state (`None`: its state is unchanged).
///
/// # Errors
///
/// [`StorageErrorKind::Corrupt`] when a state does not decode.
pub fn apply_batches_in_turn(
    strategy: &dyn Strategy,
    items: &[BatchItem<'_>],
    states: &mut [Vec<u8>],
    calls: &[(u64, crate::clock::Timestamp)],
) -> Result<(Vec<Vec<Verdict>>, Vec<LastTtl>), StorageError> {
    let held = std::cell::RefCell::new((states, vec![None; items.len()]));
    // One operation on the held state of `item` (the batch's keys are distinct).
    let run = |item: BatchItem<'_>, op: Op, now| {
        let mut held = held.borrow_mut();
        let (states, ttls) = &mut *held;
        let i = items.iter().position(|other| other.key == item.key);
        let result = match i.and_then(|i| Some((states.get_mut(i)?, ttls.get_mut(i)?))) {
            Some((state, ttl)) => strategy
                .apply(item.limit, state, op, now)
                .map(|transition| {
                    if transition.write.is_some() {
                        *ttl = transition.write;
                    }
                    transition.verdict
                })
                .map_err(|e| {
                    StorageError::new(StorageErrorKind::Corrupt, "apply", e.to_string())
                        .with_key(item.key.to_string())
                }),
            None => Err(StorageError::new(
                StorageErrorKind::Other,
                "batch",
                format!("{} items for {} states", items.len(), states.len()),
            )),
        };
        std::future::ready(result)
    };
    let mut all = Vec::with_capacity(calls.len());
    for &(cost, now) in calls {
        let batch = Batch::new(items, cost, now)
            .map_err(|e| StorageError::new(StorageErrorKind::Other, "batch", e.to_string()))?;
        // The limiter's own all-or-nothing routine, on operations that never wait:
        // it completes on its first poll.
        let mut decided = std::pin::pin!(all_or_nothing(batch, |item, op| run(item, op, now)));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match decided.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(verdicts) => all.push(verdicts?),
            std::task::Poll::Pending => {
                return Err(StorageError::new(
                    StorageErrorKind::Other,
                    "batch",
                    "an in-memory batch waited",
                ))
            }
        }
    }
    let (_, ttls) = held.into_inner();
    Ok((all, ttls))
}

/// Runs `strategy` on `storage`'s compare-and-set core: read, decide, write if the
/// state changed, and start over when another writer got there first.
///
/// This is the generic path the [`RateLimiter`](crate::RateLimiter) takes when a storage has no native
/// operation; storage authors may call it to fall back from their own native code.
///
/// After each lost race it backs off, so that a burst of writers on one key ends in
/// decisions rather than errors: when the storage can sleep
/// ([`Sleep`](crate::storage::Sleep)), for a random time whose range doubles with each
/// loss (from 250 µs up to 16 ms), within the storage's
/// [`budget`](crate::storage::Sleep::budget); otherwise for a random number of
/// scheduler turns (yields to the async runtime, whichever it is), doubling the range
/// with each loss up to 256 turns.
///
/// # Errors
///
/// The storage's errors; [`StorageErrorKind::Corrupt`] when the stored state does not
/// decode; [`StorageErrorKind::Contention`] after `max_attempts` lost races, or when
/// the back-off budget is spent.
pub async fn apply_with_cas(
    storage: &dyn Storage,
    strategy: &dyn Strategy,
    max_attempts: u32,
    op: KeyOp<'_>,
) -> Result<Verdict, StorageError> {
    let stored = op.key.to_storage_key();
    let key = &*stored;
    let mut backoff = backoff::Backoff::new(storage.abilities().get_sleep());
    for attempt in 0..max_attempts.max(1) {
        let (mut state, version) = match storage.get(key, op.now).await? {
            Some(current) => (current.value, Some(current.version)),
            None => (Vec::new(), None),
        };
        let transition = strategy
            .apply(op.limit, &mut state, op.op, op.now)
            .map_err(|e| {
                StorageError::new(StorageErrorKind::Corrupt, "apply", e.to_string())
                    .with_key(key.as_str())
            })?;
        let Some(ttl) = transition.write else {
            return Ok(transition.verdict);
        };
        if storage
            .compare_and_set(key, version, &state, ttl, op.now)
            .await?
        {
            return Ok(transition.verdict);
        }
        tracing::trace!(
            limiter.key.digest = %crate::observe::key_digest(key.as_str()),
            limiter.attempt = attempt + 1,
            "compare-and-set lost a race; backing off"
        );
        if !backoff.wait().await {
            break;
        }
    }
    tracing::warn!(
        limiter.key.digest = %crate::observe::key_digest(key.as_str()),
        limiter.attempts = max_attempts,
        "compare-and-set contention: giving up"
    );
    Err(StorageError::new(
        StorageErrorKind::Contention,
        "compare_and_set",
        format!("gave up after {max_attempts} attempts"),
    )
    .with_key(key.as_str()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::doc_support::TinyStorage;
    use crate::storage::{async_trait, StorageKey, Version, Versioned};
    use crate::strategy::FixedWindow;

    /// [`TinyStorage`] that, once armed, writes the key itself between a read and the
    /// next compare-and-set, as another client would.
    #[derive(Debug, Default)]
    struct Raced {
        inner: TinyStorage,
        armed: AtomicBool,
    }

    #[async_trait]
    impl Storage for Raced {
        async fn get(
            &self,
            key: &StorageKey,
            now: Timestamp,
        ) -> Result<Option<Versioned>, StorageError> {
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
            if self.armed.swap(false, Ordering::SeqCst) {
                let current = self.inner.get(key, now).await?;
                let (bytes, version) = current.map(|c| (c.value, c.version)).unzip();
                let bytes = bytes.unwrap_or_default();
                assert!(
                    self.inner
                        .compare_and_set(key, version, &bytes, ttl, now)
                        .await?
                );
            }
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
    }

    #[test]
    fn apply_many_with_cas_applies_in_turn_and_writes_nothing_on_a_lost_race() {
        futures::executor::block_on(async {
            let storage = Raced::default();
            let limit: RateLimit = "3 per minute".parse().unwrap();
            let key = StorageKey::new("tests", "k");
            let at = Timestamp::from_millis;
            let ops: Vec<(Op, Timestamp)> = (0..4)
                .map(|i| (Op::Hit { cost: 1 }, at(1_000 + i)))
                .collect();
            let verdicts = apply_many_with_cas(&storage, &FixedWindow, (&key).into(), &limit, &ops)
                .await
                .unwrap()
                .expect("no race");
            let allowed: Vec<bool> = verdicts.iter().map(|v| v.allowed).collect();
            assert_eq!(allowed, [true, true, true, false]);
            let stored = storage.get(&key, at(1_004)).await.unwrap().unwrap();

            // Another writer between the read and the write: nothing is written.
            storage.armed.store(true, Ordering::SeqCst);
            let refund = [(
                Op::Refund {
                    cost: 1,
                    at: at(1_000),
                },
                at(1_005),
            )];
            let raced = apply_many_with_cas(&storage, &FixedWindow, (&key).into(), &limit, &refund)
                .await
                .unwrap();
            assert!(raced.is_none());
            let after = storage.get(&key, at(1_005)).await.unwrap().unwrap();
            assert_eq!(after.value, stored.value, "the refund was not written");
            assert_ne!(after.version, stored.version, "the other writer's version");

            // Nothing to write: the verdicts of the state read, and no write at all.
            storage.armed.store(true, Ordering::SeqCst);
            let test = [(Op::Test { cost: 1 }, at(1_006))];
            let tested = apply_many_with_cas(&storage, &FixedWindow, (&key).into(), &limit, &test)
                .await
                .unwrap()
                .expect("a test writes nothing, so it cannot lose a race");
            assert!(!tested[0].allowed);
            assert!(
                storage.armed.load(Ordering::SeqCst),
                "no compare-and-set was sent"
            );
        });
    }
}
