//! A stored state, inline or on the heap, and a built-in strategy run on it in place.

use limiter_core::strategy::state::InlineState;
use limiter_core::strategy::{BuiltIn, Op, StateError, Transition};
use limiter_core::{RateLimit, Timestamp};

/// A stored state: inline when short (every fixed-window, sliding-window and GCRA
/// state), else on the heap (moving-window logs).
#[derive(Debug)]
pub(super) enum Value {
    Inline(InlineState),
    Heap(Vec<u8>),
}

impl Value {
    pub(super) fn new(bytes: &[u8]) -> Value {
        match InlineState::new(bytes) {
            Some(state) => Value::Inline(state),
            None => Value::Heap(bytes.to_vec()),
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            Value::Inline(state) => state.as_slice(),
            Value::Heap(vec) => vec,
        }
    }

    /// The heap bytes the state holds: its buffer's capacity (none when inline).
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Value::Inline(_) => 0,
            Value::Heap(vec) => vec.capacity(),
        }
    }

    /// The heap bytes the state will hold once [`set`](Self::set) to `new`.
    pub(super) fn heap_bytes_after_set(&self, new: &[u8]) -> usize {
        match self {
            Value::Heap(vec) => vec.capacity().max(new.len()),
            Value::Inline(_) if new.len() <= InlineState::CAPACITY => 0,
            Value::Inline(_) => new.len(),
        }
    }

    /// Replaces the bytes, reusing a heap buffer if it is large enough (else one of
    /// exactly `new.len()` bytes, as [`heap_bytes_after_set`](Self::heap_bytes_after_set)
    /// says).
    pub(super) fn set(&mut self, new: &[u8]) {
        match self {
            Value::Heap(vec) if vec.capacity() >= new.len() => {
                vec.clear();
                vec.extend_from_slice(new);
            }
            Value::Heap(vec) => *vec = new.to_vec(),
            Value::Inline(state) => {
                if !state.set(new) {
                    *self = Value::Heap(new.to_vec());
                }
            }
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Value::Inline(state) => state.clear(),
            Value::Heap(vec) => vec.clear(),
        }
    }
}

/// Whether `builtin` keeps its state on the heap and grows it on hits (moving-window
/// logs; a built-in this crate does not know is assumed to).
pub(super) fn grows(builtin: BuiltIn) -> bool {
    !matches!(
        builtin,
        BuiltIn::FixedWindow | BuiltIn::SlidingWindow | BuiltIn::Gcra
    )
}

/// Runs `builtin` on `value` in place: inline states without a copy, logs on their
/// heap buffer. A moving-window log that starts inline (empty, or short bytes written
/// by compare-and-set) moves to the heap.
pub(super) fn run(
    builtin: BuiltIn,
    value: &mut Value,
    limit: &RateLimit,
    op: Op,
    at: Timestamp,
) -> Result<Transition, StateError> {
    match value {
        Value::Inline(state) => match builtin.apply_inline(limit, state, op, at) {
            Some(outcome) => outcome,
            None => {
                let mut vec = state.as_slice().to_vec();
                let outcome = builtin.strategy().apply(limit, &mut vec, op, at)?;
                if outcome.write.is_some() {
                    *value = Value::Heap(vec);
                }
                Ok(outcome)
            }
        },
        Value::Heap(vec) => builtin.strategy().apply(limit, vec, op, at),
    }
}
