//! Rate-limiting algorithms.
//!
//! A [`Strategy`] is a pure state machine: given a limit, the state stored for a key,
//! an [`Op`] and the current time, it returns a [`Verdict`] and rewrites the state in
//! place. It performs no I/O. The [`RateLimiter`](crate::RateLimiter) reads and writes
//! the state through the [`Storage`](crate::Storage) core (a compare-and-set loop), or
//! hands the whole decision to the storage when the storage runs that algorithm
//! natively (see [`BuiltIn`]).
//!
//! | strategy | state per key | burst at a window edge | memory |
//! |---|---|---|---|
//! | [`FixedWindow`] | start and count | up to 2 × amount | O(1) |
//! | [`MovingWindow`] | a log of hits | none (exact) | O(amount) |
//! | [`SlidingWindow`] | two counts | small (weighted estimate) | O(1) |
//! | [`Gcra`] | one timestamp | none (smooth) | O(1) |
//!
//! # Rules shared by every built-in
//!
//! Each strategy's page gives its byte layout and every rule needed to run it
//! elsewhere (a storage script, say) without reading this crate. These rules hold for
//! all four:
//!
//! - **Layout.** A state is empty (the key has none: every strategy treats it as "no
//!   usage") or one tag byte followed by little-endian `u64` words (see [`state`]). A
//!   wrong tag, a wrong length or a value no strategy writes is a [`StateError`].
//! - **Costs.** A hit or test of `cost` passes when the counted usage plus `cost` is at
//!   most the amount; a hit of cost 0 always passes. A rejected hit consumes nothing
//!   and writes nothing; a test never writes. A cost above the amount is rejected and
//!   its verdict says it can never pass ([`Verdict::retry_at`] is `None`).
//! - **Verdicts.** `remaining` is the amount minus the counted usage, after the
//!   operation for an admitted hit or a refund, before it otherwise (never below zero).
//!   [`Verdict::reset_at`] is when the counted usage is back to zero if no more hits
//!   come (the effective time when nothing is counted). For a rejected hit of `cost`
//!   within the amount, [`Verdict::retry_at`] is the **earliest** instant at which the
//!   same operation on the same state passes; `None` only when that instant would lie
//!   past [`Timestamp::MAX`].
//! - **TTL.** A write returns `ttl = until − now + 1000 ms`, where `until` is the
//!   instant (in milliseconds, possibly past `Timestamp::MAX`) after which the state no
//!   longer matters at the writer's effective time, and `now` the caller's clock. The
//!   1000 ms grace covers storage clocks running a little behind.
//!
//! # Per-key monotonic time
//!
//! Processes that share a storage never have identical clocks, and a clock can step
//! back. So no strategy decides at the caller's `now` alone but at the key's
//! **effective time**: the later of `now` and the latest time the key's state has seen
//! (the fixed and sliding windows' start, the moving window's newest record, the GCRA's
//! theoretical arrival time minus one window). Every admitted hit is counted at its
//! effective time, and a key's effective time never goes back while its state is
//! stored. Each strategy's bound then holds in effective time, whatever the clocks do:
//!
//! | strategy | units admitted in any window-long interval of effective time |
//! |---|---|
//! | [`FixedWindow`] | at most 2 × amount (two consecutive windows) |
//! | [`SlidingWindow`] | at most 2 × amount (each window counts at most amount) |
//! | [`MovingWindow`] | at most amount |
//! | [`Gcra`] | at most `amount + ⌊(window − 1) × amount / window⌋` (a burst, then the refill) |
//!
//! **Clock skew.** Say every process's clock reads within `d` of every other's (a
//! clock that jumps about counts as one reading within `d` of the others at each
//! instant). A decision's effective time lies between the deciding process's reading
//! and the furthest-ahead reading so far, so an interval of real time of length `L` is
//! an interval of effective time of length at most `L + d`. With `d` below the window,
//! the moving window therefore admits at most `amount` in any real interval of
//! `window − d` and at most `2 × amount` in any window-long one; the GCRA admits at most
//! its effective-time bound of a `window + d` interval; fixed and sliding windows at
//! most `2 × amount` in any real interval of `window − d`. For any `d`, a window-long
//! interval of real time is covered by `1 + ⌈d / window⌉` window-long intervals of
//! effective time, so each strategy admits there at most `1 + ⌈d / window⌉` times its
//! bound above. A clock ahead by `d` or more that keeps jumping further ahead frees a
//! window at each jump: the bound grows with `d`, and no rule can stop that (see below).
//!
//! **One clock ahead by a constant offset.** When two processes' clocks differ by a
//! constant `d` of any size (one clock set wrong, say), the bound in real time does not
//! grow with `d`: in any window-long interval of real time each strategy admits at most
//! **twice** its effective-time bound (the moving window `2 × amount`, fixed and sliding
//! windows `4 × amount`, the GCRA `2 × (amount + ⌊(window − 1) × amount / window⌋)`),
//! whichever of the two clocks is right. The key's time follows the process behind
//! until the process ahead decides on the key; from then on the key's time is the
//! reading of the process ahead at its latest decision, and the process behind decides
//! at that time (so its hits count in the windows of the process ahead), until the
//! process ahead has left the key alone for `d`. So within a window-long interval of
//! real time the key's time jumps ahead at most once when `d ≥ window`, and the
//! decisions fall in two intervals of effective time no longer than the window in
//! total; when `d < window` they fall in one interval of `window + d`.
//!
//! **Why not less.** After the process behind has decided, the process ahead presents
//! the very state and time the process behind would present after a pause of `d`, when
//! its hits must pass: a decision depends only on the stored state and the caller's
//! clock, so it cannot tell a clock ahead from time passing. So for any `d > 0` the
//! moving window does admit `2 × amount` within a real interval of `window − d`
//! (within moments when `d ≥ window`) under any rule that lets a right clock pass
//! after a pause. Ignoring a stored time far ahead instead, and deciding on a
//! fresh state at the caller's clock, would be worse: two clocks would overwrite each
//! other's state and every hit would pass.
//!
//! **The process behind.** It decides at the key's time, up to `d` ahead of its clock,
//! and its `retry_at` and `reset_at` are instants of the key's time, up to `d` later
//! than on its own clock. While the process ahead keeps using the key, the process
//! behind shares the windows of the process ahead; the GCRA, whose key time is its
//! theoretical arrival time minus one window, finds the bucket full (but for under a
//! millisecond's refill) for every caller whose clock is behind that time, so it
//! rejects the process behind until its clock gets there. Its writes are kept up to
//! `d` longer than those of the process ahead.
//!
//! All of this holds while the state is stored: a clock more than the TTL grace
//! (1000 ms) behind the writer may find the state gone and start afresh.
//!
//! # Time domain
//!
//! Times run from 0 to [`Timestamp::MAX`] (2⁵³ − 1 ms). Stored times past it are a
//! [`StateError`]. At `MAX` time stands still: a window that has not ended never ends,
//! so nothing more than the amount is admitted there, and a retry instant past `MAX`
//! is reported as `None`. `reset_at` is clamped to `MAX`.

mod fixed_window;
mod gcra;
mod moving_window;
mod sliding_window;
pub mod state;

use std::fmt;
use std::time::Duration;

pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
pub use moving_window::MovingWindow;
pub use sliding_window::SlidingWindow;

use crate::clock::Timestamp;
use crate::limit::RateLimit;

/// An operation on one key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Consume `cost` if the limit allows it; a rejected hit consumes nothing.
    Hit {
        /// Units to consume (at least 1).
        cost: u64,
    },
    /// Answer whether a hit of `cost` would pass, changing nothing (the limiter's
    /// [`test`](crate::RateLimiter::test)).
    Test {
        /// Units the hit would consume.
        cost: u64,
    },
    /// Give back `cost` units consumed by a hit admitted at `at`. Used to undo the part
    /// of a multi-limit hit that was committed before another limit rejected it.
    Refund {
        /// Units to give back.
        cost: u64,
        /// The time of the hit being undone.
        at: Timestamp,
    },
}

impl Op {
    /// The number of units the operation concerns.
    pub fn cost(self) -> u64 {
        match self {
            Op::Hit { cost } | Op::Test { cost } | Op::Refund { cost, .. } => cost,
        }
    }
}

/// What a strategy decided for one key and one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the hit passes (for [`Op::Test`]: would pass).
    pub allowed: bool,
    /// Units still available after this operation.
    pub remaining: u64,
    /// When the full amount is available again if no more hits come.
    pub reset_at: Timestamp,
    /// For a rejected hit, the earliest time the same hit can pass; `None` when the hit
    /// was allowed, or when it can never pass: its cost exceeds the limit's amount, or
    /// the earliest such time lies past [`Timestamp::MAX`].
    pub retry_at: Option<Timestamp>,
}

/// A [`Verdict`] and whether the state must be written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The decision.
    pub verdict: Verdict,
    /// `Some(ttl)` when the state buffer changed and must be stored, to be kept at
    /// least `ttl`. `None` when nothing needs writing.
    pub write: Option<Duration>,
}

/// The built-in algorithms, which a storage may run natively in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuiltIn {
    /// [`FixedWindow`].
    FixedWindow,
    /// [`MovingWindow`].
    MovingWindow,
    /// [`SlidingWindow`].
    SlidingWindow,
    /// [`Gcra`].
    Gcra,
}

impl BuiltIn {
    /// Every built-in.
    pub const ALL: [BuiltIn; 4] = [
        BuiltIn::FixedWindow,
        BuiltIn::MovingWindow,
        BuiltIn::SlidingWindow,
        BuiltIn::Gcra,
    ];

    /// The stable name: `fixed-window`, `moving-window`, `sliding-window-counter`, `gcra`.
    pub const fn name(self) -> &'static str {
        match self {
            BuiltIn::FixedWindow => "fixed-window",
            BuiltIn::MovingWindow => "moving-window",
            BuiltIn::SlidingWindow => "sliding-window-counter",
            BuiltIn::Gcra => "gcra",
        }
    }

    /// The built-in named `name` (as [`name`](Self::name) returns it).
    pub fn from_name(name: &str) -> Option<BuiltIn> {
        BuiltIn::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Runs this built-in on a state held by value, in place: the same verdict and the
    /// same bytes as [`Strategy::apply`] on a `Vec` holding the same bytes, without the
    /// `Vec`. For in-process storages (see [`InlineState`](state::InlineState)).
    ///
    /// `None` for [`BuiltIn::MovingWindow`], whose log does not fit inline: run it with
    /// [`strategy`](Self::strategy) on a `Vec`.
    ///
    /// ```
    /// use limiter_core::strategy::{state::InlineState, BuiltIn, Gcra, Op, Strategy};
    /// use limiter_core::{RateLimit, Timestamp};
    ///
    /// let limit: RateLimit = "2 per second".parse()?;
    /// let (mut inline, mut vec) = (InlineState::default(), Vec::new());
    /// for ms in [0, 0, 0, 400, 500] {
    ///     let (op, now) = (Op::Hit { cost: 1 }, Timestamp::from_millis(ms));
    ///     let a = BuiltIn::Gcra.apply_inline(&limit, &mut inline, op, now).expect("inline")?;
    ///     assert_eq!(a, Gcra.apply(&limit, &mut vec, op, now)?);
    ///     assert_eq!(inline.as_slice(), vec.as_slice());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Inside the `Some`: a [`StateError`] when the state is not one this built-in wrote.
    pub fn apply_inline(
        self,
        limit: &RateLimit,
        state: &mut state::InlineState,
        op: Op,
        now: Timestamp,
    ) -> Option<Result<Transition, StateError>> {
        match self {
            BuiltIn::FixedWindow => Some(fixed_window::run(limit, state, op, now)),
            BuiltIn::SlidingWindow => Some(sliding_window::run(limit, state, op, now)),
            BuiltIn::Gcra => Some(gcra::run(limit, state, op, now)),
            BuiltIn::MovingWindow => None,
        }
    }

    /// The strategy object for this built-in.
    pub fn strategy(self) -> &'static dyn Strategy {
        match self {
            BuiltIn::FixedWindow => &FixedWindow,
            BuiltIn::MovingWindow => &MovingWindow,
            BuiltIn::SlidingWindow => &SlidingWindow,
            BuiltIn::Gcra => &Gcra,
        }
    }
}

/// The `Strategy` impl of every built-in: its [`BuiltIn`], and its module's `run`.
macro_rules! built_in {
    ($($strategy:ident => $run:path;)+) => {$(
        impl Strategy for $strategy {
            fn name(&self) -> &'static str {
                BuiltIn::$strategy.name()
            }

            fn builtin(&self) -> Option<BuiltIn> {
                Some(BuiltIn::$strategy)
            }

            fn apply(
                &self,
                limit: &RateLimit,
                state: &mut Vec<u8>,
                op: Op,
                now: Timestamp,
            ) -> Result<Transition, StateError> {
                $run(limit, state, op, now)
            }
        }
    )+};
}

built_in! {
    FixedWindow => fixed_window::run;
    MovingWindow => moving_window::run;
    SlidingWindow => sliding_window::run;
    Gcra => gcra::run;
}

impl fmt::Display for BuiltIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Stored state that a strategy could not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {strategy} state: {reason}")]
pub struct StateError {
    /// The strategy that read the state.
    pub strategy: &'static str,
    /// What was wrong.
    pub reason: &'static str,
}

/// A rate-limiting algorithm, as a pure state machine over a byte buffer.
///
/// Implement it to add an algorithm of your own: every storage then runs it through its
/// compare-and-set core, with no storage-specific code.
///
/// # Contract
///
/// - `state` holds the key's stored bytes, empty when the key has none. A state this
///   strategy did not write is never passed (keys include [`name`](Self::name)).
/// - The function is deterministic: it depends on its arguments only.
/// - For [`Op::Test`] it must not change `state`, and returns `write: None`.
/// - When it changes `state` it returns `write: Some(ttl)`; the storage keeps the state
///   at least `ttl`. Past that the state must no longer matter to any decision: TTLs
///   only reclaim memory.
/// - A rejected hit must leave `state` as it was.
///
/// # Examples
///
/// A strategy that allows `amount` hits ever, with no window:
///
/// ```
/// use limiter_core::strategy::{Op, Transition, StateError, Strategy, Verdict};
/// use limiter_core::{RateLimit, Timestamp};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Lifetime;
///
/// impl Strategy for Lifetime {
///     fn name(&self) -> &'static str {
///         "lifetime"
///     }
///
///     fn apply(&self, limit: &RateLimit, state: &mut Vec<u8>, op: Op, now: Timestamp)
///         -> Result<Transition, StateError>
///     {
///         let used = match state.as_slice() {
///             [] => 0,
///             bytes => u64::from_le_bytes(bytes.try_into().map_err(|_| StateError {
///                 strategy: "lifetime",
///                 reason: "wrong length",
///             })?),
///         };
///         let (allowed, used_after) = match op {
///             Op::Hit { cost } | Op::Test { cost } => {
///                 let after = used.saturating_add(cost);
///                 (after <= limit.amount(), if after <= limit.amount() { after } else { used })
///             }
///             Op::Refund { cost, .. } => (true, used.saturating_sub(cost)),
///         };
///         let write = !matches!(op, Op::Test { .. }) && used_after != used;
///         if write {
///             *state = used_after.to_le_bytes().to_vec();
///         }
///         let verdict = Verdict {
///             allowed,
///             remaining: limit.amount().saturating_sub(used_after),
///             reset_at: now,
///             retry_at: None,
///         };
///         Ok(Transition { verdict, write: write.then_some(Duration::from_secs(86_400 * 365)) })
///     }
/// }
/// ```
pub trait Strategy: Send + Sync + fmt::Debug + 'static {
    /// A stable name, part of every stored key (so strategies never read each other's
    /// state). Use lowercase words joined by `-`.
    fn name(&self) -> &'static str;

    /// The built-in this strategy is, which lets a storage run it natively.
    /// Custom strategies keep the default, `None`.
    fn builtin(&self) -> Option<BuiltIn> {
        None
    }

    /// Applies `op` to `state` at time `now` under `limit`.
    ///
    /// # Errors
    ///
    /// [`StateError`] when `state` is not a state this strategy wrote.
    fn apply(
        &self,
        limit: &RateLimit,
        state: &mut Vec<u8>,
        op: Op,
        now: Timestamp,
    ) -> Result<Transition, StateError>;
}

/// How long state must outlive `until` (its last relevant instant) so that a storage's
/// clock running a little behind ours never drops it early.
pub const TTL_GRACE_MS: u64 = 1_000;

/// `n / d` (`d > 0`), in 64 bits when both fit: a 128-bit division is a slow library
/// call, and on the hot path the operands nearly always fit.
pub(crate) fn div(n: u128, d: u128) -> u128 {
    match (u64::try_from(n), u64::try_from(d)) {
        (Ok(n), Ok(d)) => u128::from(n / d),
        _ => n / d,
    }
}

/// The TTL to store state with, for state that stops mattering at `until_ms`
/// (milliseconds, possibly past [`Timestamp::MAX`]): `until_ms − now + 1000 ms`, at
/// least the grace.
pub(crate) fn ttl_until(now: Timestamp, until_ms: u64) -> Duration {
    Duration::from_millis(
        until_ms
            .saturating_sub(now.as_millis())
            .saturating_add(TTL_GRACE_MS),
    )
}

/// A retry instant, or `None` past [`Timestamp::MAX`] (where time stands still).
pub(crate) fn retry_instant(ms: u64) -> Option<Timestamp> {
    Timestamp::checked_from_millis(ms)
}

/// What a strategy counts for a key at its effective time, before an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// Units available now.
    pub(crate) remaining: u64,
    /// When the counted usage is back to zero.
    pub(crate) reset_at: Timestamp,
}

impl Usage {
    /// An answer that changes nothing and writes nothing.
    pub(crate) fn unchanged(self, allowed: bool, retry_at: Option<Timestamp>) -> Transition {
        Transition {
            verdict: Verdict {
                allowed,
                remaining: self.remaining,
                reset_at: self.reset_at,
                retry_at,
            },
            write: None,
        }
    }
}

/// The skeleton of a hit or a test, shared by the built-ins: a cost above `amount`
/// never passes, a cost above the remaining units is rejected with `retry(ctx)`, a
/// test that fits is answered from `usage`, and a hit that fits calls `commit(ctx)`,
/// which writes the state and builds the answer.
pub(crate) fn hit_or_test<C>(
    ctx: &mut C,
    (amount, cost, test): (u64, u64, bool),
    usage: Usage,
    retry: impl FnOnce(&C) -> Result<Option<Timestamp>, StateError>,
    commit: impl FnOnce(&mut C) -> Result<Transition, StateError>,
) -> Result<Transition, StateError> {
    if cost > amount {
        Ok(usage.unchanged(false, None))
    } else if cost > usage.remaining {
        Ok(usage.unchanged(false, retry(ctx)?))
    } else if test {
        Ok(usage.unchanged(true, None))
    } else {
        commit(ctx)
    }
}

/// An allowed answer that wrote the state, kept until `until_ms`.
pub(crate) fn written(
    now: Timestamp,
    remaining: u64,
    reset_at: Timestamp,
    until_ms: u64,
) -> Transition {
    Transition {
        verdict: Verdict {
            allowed: true,
            remaining,
            reset_at,
            retry_at: None,
        },
        write: Some(ttl_until(now, until_ms)),
    }
}
