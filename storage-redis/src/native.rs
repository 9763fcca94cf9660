//! The native operations: one Lua script per decision.

use limiter_core::strategy::{BuiltIn, Verdict};
use limiter_core::{BatchItem, KeyOp, Native, Timestamp};

use crate::storage::RedisStorage;

pub(crate) fn apply<'a>(
    _storage: &'a RedisStorage,
    _strategy: BuiltIn,
    _op: KeyOp<'a>,
) -> Native<'a, Verdict> {
    Native::Declined
}

pub(crate) fn batch<'a>(
    _storage: &'a RedisStorage,
    _strategy: BuiltIn,
    _items: &'a [BatchItem<'a>],
    _cost: u64,
    _now: Timestamp,
) -> Native<'a, Vec<Verdict>> {
    Native::Declined
}
