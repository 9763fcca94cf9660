//! The [`Storage`] contract on a [`MemoryStorage`]: the compare-and-set core, every
//! built-in strategy natively ([`NativeStrategies`]: one shard lock, the state decided
//! in place, see [`crate::shard`]; batches in [`crate::batch`]), and [`ClearAll`].
//! Every method is synchronous inside: no lock is held across an `await`.

use std::time::Duration;

use limiter_core::storage::{
    async_trait, Abilities, Answer, Batch, BatchItem, ClearAll, Expiry, KeyOp, KeyRef,
    NativeStrategies, Storage, StorageKey, Version, Versioned,
};
use limiter_core::strategy::{BuiltIn, Op, StateError, Verdict};
use limiter_core::{RateLimit, StorageError, StorageErrorKind, Timestamp};
use parking_lot::MutexGuard;

use crate::place::KeyBuf;
use crate::shard::{deadline, Shard};
use crate::MemoryStorage;

impl MemoryStorage {
    pub(crate) fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard.min(self.shards.len() - 1)].lock()
    }

    /// Every native operation: one shard lock, the built-in applied in place.
    fn native(&self, builtin: BuiltIn, op: &KeyOp<'_>) -> Result<Verdict, StorageError> {
        let mut buf = KeyBuf::new();
        let place = self.place(op.key, &mut buf);
        self.lock(place.shard)
            .apply(builtin, &place.key, place.hash, op.limit, op.op, op.now)
            .map_err(|e| corrupt(builtin, op.key, &e))
    }
}

#[cold]
pub(crate) fn corrupt(builtin: BuiltIn, key: KeyRef<'_>, error: &StateError) -> StorageError {
    StorageError::new(StorageErrorKind::Corrupt, builtin.name(), error.to_string())
        .with_key(key.to_string())
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        let mut buf = KeyBuf::new();
        let place = self.place(key.into(), &mut buf);
        let found = self
            .lock(place.shard)
            .get(&place.key, place.hash, now.as_millis());
        Ok(found.map(|(value, version)| Versioned {
            value,
            version: Version(version),
        }))
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let mut buf = KeyBuf::new();
        let place = self.place(key.into(), &mut buf);
        let now = now.as_millis();
        let expected = expected.map(|v| v.0);
        let expires = deadline(now, ttl);
        Ok(self
            .lock(place.shard)
            .compare_and_set(&place.key, place.hash, expected, value, expires, now))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let mut buf = KeyBuf::new();
        let place = self.place(key.into(), &mut buf);
        self.lock(place.shard).delete(&place.key, place.hash);
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Every built-in strategy and batch, decided at once; [`ClearAll`]; and keys
    /// that expire on the limiter's time.
    fn abilities(&self) -> Abilities<'_> {
        Abilities::new()
            .native(self)
            .clear_all(self)
            .expiry(Expiry::LimiterTime)
    }
}

#[async_trait]
impl ClearAll for MemoryStorage {
    async fn clear_all(&self) -> Result<(), StorageError> {
        for shard in &*self.shards {
            shard.lock().clear();
        }
        Ok(())
    }
}

impl NativeStrategies for MemoryStorage {
    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict> {
        Answer::Ready(self.native(strategy, &op))
    }

    fn batch<'a>(&'a self, strategy: BuiltIn, batch: Batch<'a>) -> Answer<'a, Vec<Verdict>> {
        Answer::Ready(self.batch_now(strategy, batch.items(), batch.cost(), batch.now()))
    }

    /// Each call in turn, as [`batch`](NativeStrategies::batch) runs it.
    fn batch_many<'a>(
        &'a self,
        strategy: BuiltIn,
        items: &'a [BatchItem<'a>],
        calls: &'a [(u64, Timestamp)],
    ) -> Answer<'a, Vec<Vec<Verdict>>> {
        let all = calls
            .iter()
            .map(|&(cost, now)| self.batch_now(strategy, items, cost, now))
            .collect();
        Answer::Ready(all)
    }

    /// Every operation in turn under one lock of the key's shard.
    fn apply_many<'a>(
        &'a self,
        strategy: BuiltIn,
        key: KeyRef<'a>,
        limit: &'a RateLimit,
        ops: &'a [(Op, Timestamp)],
    ) -> Answer<'a, Vec<Verdict>> {
        let mut buf = KeyBuf::new();
        let place = self.place(key, &mut buf);
        let mut shard = self.lock(place.shard);
        let verdicts = ops
            .iter()
            .map(|&(op, now)| {
                shard
                    .apply(strategy, &place.key, place.hash, limit, op, now)
                    .map_err(|e| corrupt(strategy, key, &e))
            })
            .collect();
        Answer::Ready(verdicts)
    }
}
