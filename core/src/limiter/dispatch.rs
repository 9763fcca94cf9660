//! The one place that chooses between a storage's own operation and the generic
//! compare-and-set path, and the generic paths themselves.

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{Answer, Batch, BatchItem, KeyOp, Storage};
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
