//! [`Batch`]: a multi-limit hit, as a storage receives it.

use crate::clock::Timestamp;
use crate::key::KeyRef;
use crate::limit::RateLimit;

/// One limit of a [`Batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The stored key (see [`KeyOp::key`](super::KeyOp::key)).
    pub key: KeyRef<'a>,
    /// The limit the key counts against.
    pub limit: &'a RateLimit,
}

/// A multi-limit hit of one cost at one time, for
/// [`NativeStrategies::batch`](super::NativeStrategies::batch): at least one item, no
/// key twice, a cost of at least 1. Only [`Batch::new`] makes one, and it checks all
/// three, so a storage can rely on them.
///
/// ```
/// use limiter_core::storage::{Batch, BatchItem, KeyRef, StorageKey};
/// use limiter_core::{RateLimit, Timestamp};
///
/// // The keys of one client's two limits: one group, two limit parts.
/// let per_second = StorageKey::new("client-1", "per-second");
/// let per_minute = StorageKey::new("client-1", "per-minute");
/// let limits: [RateLimit; 2] = ["1 per second".parse()?, "10 per minute".parse()?];
/// let items = [
///     BatchItem { key: KeyRef::from(&per_second), limit: &limits[0] },
///     BatchItem { key: KeyRef::from(&per_minute), limit: &limits[1] },
/// ];
/// let batch = Batch::new(&items, 1, Timestamp::from_millis(0))?;
/// assert_eq!(batch.items().len(), 2);
/// assert!(Batch::new(&[items[0], items[0]], 1, Timestamp::ZERO).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    items: &'a [BatchItem<'a>],
    cost: u64,
    now: Timestamp,
}

/// Why [`Batch::new`] refused its items.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// No items.
    #[error("a batch needs at least one item")]
    Empty,
    /// A cost of zero.
    #[error("a batch costs at least 1")]
    ZeroCost,
    /// A key given twice.
    #[error("key {0} appears twice in one batch")]
    RepeatedKey(String),
}

impl<'a> Batch<'a> {
    /// A batch of `items` hit with `cost` at the limiter's time `now`.
    ///
    /// # Errors
    ///
    /// A [`BatchError`] when `items` is empty, `cost` is 0, or a key repeats.
    pub fn new(
        items: &'a [BatchItem<'a>],
        cost: u64,
        now: Timestamp,
    ) -> Result<Batch<'a>, BatchError> {
        if items.is_empty() {
            return Err(BatchError::Empty);
        }
        if cost == 0 {
            return Err(BatchError::ZeroCost);
        }
        for (i, item) in items.iter().enumerate() {
            if items[..i].iter().any(|other| other.key == item.key) {
                return Err(BatchError::RepeatedKey(item.key.to_string()));
            }
        }
        Ok(Batch { items, cost, now })
    }

    /// A batch the caller knows to be valid (the limiter, which makes its keys from
    /// distinct limits).
    pub(crate) fn trusted(items: &'a [BatchItem<'a>], cost: u64, now: Timestamp) -> Batch<'a> {
        debug_assert!(Batch::new(items, cost, now).is_ok());
        Batch { items, cost, now }
    }

    /// The limits and their keys, never empty, no key twice.
    pub fn items(&self) -> &'a [BatchItem<'a>] {
        self.items
    }

    /// The cost of the hit, at least 1.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// The limiter's time of the hit.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}
