//! The native operations: one Lua script, one round trip, per decision, or per unit
//! of coalesced calls on one key (`apply_many`) or on one client's keys
//! (`batch_many`); a wide unit goes as a read and a compare-and-set instead, and the
//! next unit on that key as the compare-and-set alone, see [`CAS_UNIT_MIN`].
//!
//! A limit whose numbers the scripts' double-precision arithmetic cannot hold exactly
//! is declined up front (the limiter then takes its generic path). A state whose
//! numbers cannot be held exactly (only near the end of the time domain, or written by
//! something else) makes the script answer "fall back" without writing; the operation
//! then runs on the generic compare-and-set path right here.

use fred::bytes::Bytes;
use fred::types::{Key, Value};
use limiter_core::observe::key_digest;
use limiter_core::storage::{
    apply_batch, apply_batches_in_turn, apply_in_turn, apply_with_cas, Answer, Batch, BatchItem,
    KeyOp, KeyRef, NativeStrategies,
};
use limiter_core::strategy::{BuiltIn, Op, Verdict};
use limiter_core::{RateLimit, StorageError, StorageErrorKind, Timestamp, DEFAULT_MAX_ATTEMPTS};

use crate::error;
use crate::memo::{Held, MAX_STATE_BYTES};
use crate::storage::{ttl_ms, RedisStorage};

/// The fewest coalesced operations on one key whose unit goes as a `GET` and one
/// compare-and-set, the strategy applied here, rather than as `many.lua`: the server
/// then stores one state instead of running every operation in Lua, and the wider
/// unit that two round trips collect costs the client less per decision. What such a
/// unit writes is held in this process (for a few hot keys, states up to 16 KiB), so
/// that the next unit on the key, of any width, goes as the compare-and-set alone,
/// at the version written: one round trip, exact, since versions never repeat (a key
/// that someone else wrote meanwhile, or that expired, fails it, and the unit goes by
/// script). A moving-window log longer than that goes by script for a while, which
/// appends its records in place. Likewise the fewest coalesced multi-limit hits whose
/// unit goes as one `MGET` and one `cas_many.lua` rather than as `batch_many.lua`.
/// Smaller units go by script in one round trip.
pub const CAS_UNIT_MIN: usize = 8;

/// After a unit's compare-and-set lost a race (another process wrote the key between
/// its read and its write: nothing was written, and the unit went by script), how
/// many units go by script before a compare-and-set is tried again: under contention
/// across processes, the atomic script decides without a wasted round trip.
pub const SCRIPT_UNITS_AFTER_RACE: u32 = 64;

/// The largest amount, window or cost (in units or milliseconds) run in a script.
pub const MAX_EXACT: u64 = 1 << 52;

/// The largest `amount × (window + 1)` and `cost × window` of the sliding window and
/// GCRA scripts, whose arithmetic multiplies them (and `burst × (window + 1)` of
/// GCRA).
pub const MAX_PRODUCT: u128 = 1 << 50;

/// Whether the script for `strategy` computes `op` under `limit` exactly.
pub fn runs_natively(strategy: BuiltIn, limit: &RateLimit, cost: u64) -> bool {
    let (amount, window) = (limit.amount(), limit.window_ms());
    if amount > MAX_EXACT || window > MAX_EXACT || cost > MAX_EXACT {
        return false;
    }
    let product = u128::from(amount) * (u128::from(window) + 1);
    let cost_product = u128::from(cost) * u128::from(window);
    let burst_product = u128::from(limit.burst()) * (u128::from(window) + 1);
    match strategy {
        BuiltIn::FixedWindow | BuiltIn::MovingWindow => true,
        BuiltIn::SlidingWindow => product <= MAX_PRODUCT,
        BuiltIn::Gcra => {
            product <= MAX_PRODUCT && cost_product <= MAX_PRODUCT && burst_product <= MAX_PRODUCT
        }
        _ => false,
    }
}

/// What a single-operation script answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptAnswer {
    /// The verdict, and the time-to-live written (`None`: nothing written).
    Decided(Verdict, Option<u64>),
    /// The state's numbers are out of the script's exact range: nothing was written,
    /// and the generic path must decide.
    Fallback,
}

/// How a unit by compare-and-set ended.
enum CasUnit {
    /// Decided: written, or nothing to write on the state just read.
    Done(Vec<Verdict>),
    /// Not decided this way (nothing written): nothing to write on a held state.
    Declined,
    /// Another writer changed the key first: nothing written.
    Lost,
}

fn parts(op: Op) -> (&'static str, u64, u64) {
    match op {
        Op::Hit { cost } => ("hit", cost, 0),
        Op::Test { cost } => ("test", cost, 0),
        Op::Refund { cost, at } => ("refund", cost, at.as_millis()),
    }
}

/// A number argument, in decimal.
fn num(n: u64) -> Value {
    Value::from(n.to_string())
}

fn verdict(operation: &'static str, key: &str, words: &[i64]) -> Result<Verdict, StorageError> {
    let bad = || {
        error::protocol(
            operation,
            key,
            format!("unexpected script answer {words:?}"),
        )
    };
    let [allowed, remaining, reset_at, retry_at] = words else {
        return Err(bad());
    };
    let unsigned = |n: i64| u64::try_from(n).map_err(|_| bad());
    Ok(Verdict {
        allowed: match allowed {
            0 => false,
            1 => true,
            _ => return Err(bad()),
        },
        remaining: unsigned(*remaining)?,
        reset_at: Timestamp::from_millis(unsigned(*reset_at)?),
        retry_at: match retry_at {
            -1 => None,
            n => Some(Timestamp::from_millis(unsigned(*n)?)),
        },
    })
}

impl RedisStorage {
    /// Runs `strategy`'s single-operation script for `op`, as is: no declining, no
    /// fallback. For tests that replay the core's golden vectors through the scripts.
    ///
    /// # Errors
    ///
    /// The storage's errors; [`Corrupt`](limiter_core::StorageErrorKind::Corrupt) for a
    /// state the script cannot decode.
    #[doc(hidden)]
    pub async fn run_strategy_script(
        &self,
        strategy: BuiltIn,
        op: KeyOp<'_>,
    ) -> Result<ScriptAnswer, StorageError> {
        let redis_key = self.redis_key(&op.key.to_storage_key());
        self.run_single_script(strategy, &redis_key, op).await
    }

    /// `strategy`'s single-operation script for `op` on `redis_key`.
    async fn run_single_script(
        &self,
        strategy: BuiltIn,
        redis_key: &str,
        op: KeyOp<'_>,
    ) -> Result<ScriptAnswer, StorageError> {
        let operation = strategy.name();
        let Some(script) = self.scripts().single(strategy) else {
            return Err(StorageError::unsupported(operation));
        };
        let (kind, cost, at) = parts(op.op);
        let args = vec![
            Value::from(kind),
            num(op.limit.amount()),
            num(op.limit.window_ms()),
            num(op.now.as_millis()),
            num(cost),
            num(at),
            Value::Bytes(self.next_version()),
            num(op.limit.burst()),
        ];
        let keys = vec![Key::from(redis_key)];
        let words: Vec<i64> = self
            .run_script(script, operation, redis_key, keys, args)
            .await?;
        match words.as_slice() {
            [-1] => Ok(ScriptAnswer::Fallback),
            [head @ .., ttl] if head.len() == 4 => {
                let verdict = verdict(operation, redis_key, head)?;
                let ttl = match *ttl {
                    -1 => None,
                    n => Some(u64::try_from(n).map_err(|_| {
                        error::protocol(operation, redis_key, format!("negative ttl {n}"))
                    })?),
                };
                Ok(ScriptAnswer::Decided(verdict, ttl))
            }
            _ => Err(error::protocol(
                operation,
                redis_key,
                format!("unexpected script answer {words:?}"),
            )),
        }
    }

    /// The several-operations script for `ops` on `key`, then, from the first
    /// operation it could not compute exactly, each of the rest on its own (script or
    /// generic path).
    async fn run_many_script(
        &self,
        strategy: BuiltIn,
        key: KeyRef<'_>,
        redis_key: &str,
        limit: &RateLimit,
        ops: &[(Op, Timestamp)],
    ) -> Result<Vec<Verdict>, StorageError> {
        let operation = strategy.name();
        let Some(script) = self.scripts().many(strategy) else {
            return Err(StorageError::unsupported(operation));
        };
        let mut args = Vec::with_capacity(4 + 3 * ops.len());
        args.extend([
            num(limit.amount()),
            num(limit.window_ms()),
            num(limit.burst()),
            Value::Bytes(self.next_version()),
        ]);
        for &(op, now) in ops {
            // What the operation is: -1 a hit, -2 a test, else a refund's instant.
            let (cost, what) = match op {
                Op::Hit { cost } => (cost, Value::from("-1")),
                Op::Test { cost } => (cost, Value::from("-2")),
                Op::Refund { cost, at } => (cost, num(at.as_millis())),
            };
            args.extend([num(now.as_millis()), num(cost), what]);
        }
        let keys = vec![Key::from(redis_key)];
        let words: Vec<i64> = self
            .run_script(script, operation, redis_key, keys, args)
            .await?;
        // Four numbers per operation run, then -1 alone if the rest did not run.
        let (ran, fell_back) = match words.split_last() {
            Some((-1, ran)) if words.len() % 4 == 1 => (ran, true),
            _ => (words.as_slice(), false),
        };
        let bad = || {
            error::protocol(
                operation,
                redis_key,
                format!("{} numbers for {} operations", words.len(), ops.len()),
            )
        };
        if ran.len() % 4 != 0
            || ran.len() / 4 > ops.len()
            || (!fell_back && ran.len() / 4 != ops.len())
        {
            return Err(bad());
        }
        let mut verdicts = ran
            .chunks_exact(4)
            .map(|w| verdict(operation, redis_key, w))
            .collect::<Result<Vec<_>, _>>()?;
        // The rest, one by one: the rare state the script cannot compute exactly.
        for &(op, now) in ops.get(verdicts.len()..).unwrap_or_default() {
            let key_op = KeyOp {
                key,
                limit,
                op,
                now,
            };
            let verdict = match NativeStrategies::apply(self, strategy, key_op)
                .resolve()
                .await
            {
                Some(result) => result?,
                None => {
                    apply_with_cas(self, strategy.strategy(), DEFAULT_MAX_ATTEMPTS, key_op).await?
                }
            };
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    /// Whether one script may take all of `items`' keys: always outside a Cluster; in
    /// one, when they share a hash slot. Items of one `hit_all` share their group,
    /// hence their hash tag and slot; a caller passing keys of several groups gets the
    /// generic path, never CROSSSLOT.
    fn one_slot(&self, items: &[BatchItem<'_>]) -> bool {
        if !self.is_cluster() {
            return true;
        }
        let slot = |i: &BatchItem<'_>| {
            fred::util::redis_keyslot(self.redis_key(&i.key.to_storage_key()).as_bytes())
        };
        let mut slots = items.iter().map(slot);
        let first = slots.next();
        slots.all(|s| Some(s) == first)
    }

    /// The several-batches script: the verdicts of every call it ran, in order, and
    /// whether it stopped before the rest (a number it could not compute exactly).
    async fn run_batch_many_script(
        &self,
        strategy: BuiltIn,
        items: &[BatchItem<'_>],
        calls: &[(u64, Timestamp)],
    ) -> Result<(Vec<Vec<Verdict>>, bool), StorageError> {
        let operation = strategy.name();
        let keys: Vec<String> = items
            .iter()
            .map(|i| self.redis_key(&i.key.to_storage_key()))
            .collect();
        let first = keys.first().cloned().unwrap_or_default();
        let Some(script) = self.scripts().batch_many(strategy) else {
            return Err(StorageError::unsupported(operation));
        };
        let mut args = Vec::with_capacity(1 + 3 * items.len() + 2 * calls.len());
        args.push(Value::Bytes(self.next_version()));
        for item in items {
            args.push(num(item.limit.amount()));
            args.push(num(item.limit.window_ms()));
            args.push(num(item.limit.burst()));
        }
        for &(cost, now) in calls {
            args.push(num(now.as_millis()));
            args.push(num(cost));
        }
        let redis_keys = keys.iter().map(|k| Key::from(k.as_str())).collect();
        let words: Vec<i64> = self
            .run_script(script, operation, &first, redis_keys, args)
            .await?;
        // Four numbers per item per call run, then -1 alone if the rest did not run.
        let per_call = 4 * items.len();
        let (ran, stopped) = match words.split_last() {
            Some((-1, ran)) if words.len() % per_call == 1 => (ran, true),
            _ => (words.as_slice(), false),
        };
        if per_call == 0
            || ran.len() % per_call != 0
            || ran.len() / per_call > calls.len()
            || (!stopped && ran.len() / per_call != calls.len())
        {
            return Err(error::protocol(
                operation,
                &first,
                format!(
                    "{} numbers for {} calls of {} limits",
                    words.len(),
                    calls.len(),
                    items.len()
                ),
            ));
        }
        let verdicts = ran
            .chunks_exact(per_call)
            .map(|call| {
                call.chunks_exact(4)
                    .map(|w| verdict(operation, &first, w))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((verdicts, stopped))
    }

    /// The batch script; `None` when it fell back.
    async fn run_batch_script(
        &self,
        strategy: BuiltIn,
        items: &[BatchItem<'_>],
        cost: u64,
        now: Timestamp,
    ) -> Result<Option<Vec<Verdict>>, StorageError> {
        let operation = strategy.name();
        let keys: Vec<String> = items
            .iter()
            .map(|i| self.redis_key(&i.key.to_storage_key()))
            .collect();
        let first = keys.first().cloned().unwrap_or_default();
        let Some(script) = self.scripts().batch(strategy) else {
            return Err(StorageError::unsupported(operation));
        };
        let mut args = vec![
            num(cost),
            num(now.as_millis()),
            Value::Bytes(self.next_version()),
        ];
        for item in items {
            args.push(num(item.limit.amount()));
            args.push(num(item.limit.window_ms()));
            args.push(num(item.limit.burst()));
        }
        let redis_keys = keys.iter().map(|k| Key::from(k.as_str())).collect();
        let words: Vec<i64> = self
            .run_script(script, operation, &first, redis_keys, args)
            .await?;
        if words.as_slice() == [-1] {
            return Ok(None);
        }
        if words.len() != items.len() * 4 {
            return Err(error::protocol(
                operation,
                &first,
                format!("{} numbers for {} limits", words.len(), items.len()),
            ));
        }
        words
            .chunks_exact(4)
            .map(|w| verdict(operation, &first, w))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

impl NativeStrategies for RedisStorage {
    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict> {
        if self.scripts().single(strategy).is_none()
            || !runs_natively(strategy, op.limit, op.op.cost())
        {
            return Answer::Declined;
        }
        Answer::pending(async move {
            let redis_key = self.redis_key(&op.key.to_storage_key());
            let ops = [(op.op, op.now)];
            if let Some(verdicts) = self
                .cas_route(strategy, op.key, &redis_key, op.limit, &ops)
                .await?
            {
                let [verdict] = verdicts[..] else {
                    let message = format!("{} verdicts for one operation", verdicts.len());
                    return Err(error::protocol(strategy.name(), &redis_key, message));
                };
                return Ok(verdict);
            }
            match self.run_single_script(strategy, &redis_key, op).await? {
                ScriptAnswer::Decided(verdict, _) => Ok(verdict),
                ScriptAnswer::Fallback => {
                    apply_with_cas(self, strategy.strategy(), DEFAULT_MAX_ATTEMPTS, op).await
                }
            }
        })
    }

    fn batch<'a>(&'a self, strategy: BuiltIn, batch: Batch<'a>) -> Answer<'a, Vec<Verdict>> {
        let (items, cost) = (batch.items(), batch.cost());
        if self.scripts().batch(strategy).is_none()
            || !items.iter().all(|i| runs_natively(strategy, i.limit, cost))
        {
            return Answer::Declined;
        }
        if !self.one_slot(items) {
            return Answer::Declined;
        }
        Answer::pending(async move {
            match self
                .run_batch_script(strategy, items, cost, batch.now())
                .await?
            {
                Some(verdicts) => Ok(verdicts),
                // The rare state the script cannot compute exactly: the generic path.
                None => apply_batch(self, strategy.strategy(), DEFAULT_MAX_ATTEMPTS, batch).await,
            }
        })
    }

    fn batch_many<'a>(
        &'a self,
        strategy: BuiltIn,
        items: &'a [BatchItem<'a>],
        calls: &'a [(u64, Timestamp)],
    ) -> Answer<'a, Vec<Vec<Verdict>>> {
        if self.scripts().batch_many(strategy).is_none()
            || !calls
                .iter()
                .all(|&(cost, _)| items.iter().all(|i| runs_natively(strategy, i.limit, cost)))
            || !self.one_slot(items)
        {
            return Answer::Declined;
        }
        Answer::pending(async move {
            if self.cas_unit_due(strategy, calls.len()) {
                match self.batch_unit_with_cas(strategy, items, calls).await? {
                    Some(verdicts) => return Ok(verdicts),
                    None => self.lost_cas_race(items.first().map(|i| i.key), calls.len()),
                }
            }
            let (mut all, _) = self.run_batch_many_script(strategy, items, calls).await?;
            // The rest, one by one: the rare state the script cannot compute exactly.
            for &(cost, now) in calls.get(all.len()..).unwrap_or_default() {
                let batch = Batch::new(items, cost, now).map_err(|e| {
                    StorageError::new(StorageErrorKind::Other, "batch_many", e.to_string())
                })?;
                let verdicts = match NativeStrategies::batch(self, strategy, batch)
                    .resolve()
                    .await
                {
                    Some(result) => result?,
                    None => {
                        apply_batch(self, strategy.strategy(), DEFAULT_MAX_ATTEMPTS, batch).await?
                    }
                };
                all.push(verdicts);
            }
            Ok(all)
        })
    }

    fn apply_many<'a>(
        &'a self,
        strategy: BuiltIn,
        key: KeyRef<'a>,
        limit: &'a RateLimit,
        ops: &'a [(Op, Timestamp)],
    ) -> Answer<'a, Vec<Verdict>> {
        if self.scripts().many(strategy).is_none()
            || !ops
                .iter()
                .all(|(op, _)| runs_natively(strategy, limit, op.cost()))
        {
            return Answer::Declined;
        }
        Answer::pending(async move {
            let redis_key = self.redis_key(&key.to_storage_key());
            match self
                .cas_route(strategy, key, &redis_key, limit, ops)
                .await?
            {
                Some(verdicts) => Ok(verdicts),
                None => {
                    self.run_many_script(strategy, key, &redis_key, limit, ops)
                        .await
                }
            }
        })
    }
}

impl RedisStorage {
    /// A unit's compare-and-set on `key` lost a race: it goes by script, and so do the
    /// next [`SCRIPT_UNITS_AFTER_RACE`] units.
    fn lost_cas_race(&self, key: Option<KeyRef<'_>>, len: usize) {
        tracing::debug!(
            limiter.key.digest = key.map(|k| tracing::field::display(key_digest(&k.to_string()))),
            limiter.operations = len,
            "a unit's compare-and-set lost a race; units go by script for a while"
        );
        self.script_next_units(SCRIPT_UNITS_AFTER_RACE);
    }

    /// `ops` on `key` by compare-and-set, when that is the cheaper way: on the state
    /// this process last wrote there, if it holds it (see [`crate::memo`]); else, for
    /// a wide unit (see [`CAS_UNIT_MIN`]), on the state read with `GET`. The verdicts,
    /// or `None` when the unit goes by script (nothing written).
    async fn cas_route(
        &self,
        strategy: BuiltIn,
        key: KeyRef<'_>,
        redis_key: &str,
        limit: &RateLimit,
        ops: &[(Op, Timestamp)],
    ) -> Result<Option<Vec<Verdict>>, StorageError> {
        let mut outcome = CasUnit::Declined;
        if let Some(held) = self.memo().take(redis_key) {
            outcome = self
                .unit_with_cas(strategy, redis_key, limit, ops, Some(held))
                .await?;
        }
        if matches!(outcome, CasUnit::Declined) && self.cas_unit_due(strategy, ops.len()) {
            outcome = self
                .unit_with_cas(strategy, redis_key, limit, ops, None)
                .await?;
        }
        match outcome {
            CasUnit::Done(verdicts) => Ok(Some(verdicts)),
            CasUnit::Lost => {
                self.lost_cas_race(Some(key), ops.len());
                Ok(None)
            }
            CasUnit::Declined => Ok(None),
        }
    }

    /// `ops` in turn on `held` (`None`: on the state read now), written back with one
    /// compare-and-set at its version; what is written (or read, when nothing
    /// changes) is held for the next unit.
    async fn unit_with_cas(
        &self,
        strategy: BuiltIn,
        redis_key: &str,
        limit: &RateLimit,
        ops: &[(Op, Timestamp)],
        held: Option<Held>,
    ) -> Result<CasUnit, StorageError> {
        let confirmed = held.is_none();
        let (mut state, version) = match held {
            Some(held) => (held.state, Some(held.version)),
            None => match self.get_value(redis_key).await? {
                Some(read) => (read.value, Some(read.version.0)),
                None => (Vec::new(), None),
            },
        };
        if state.len() > MAX_STATE_BYTES {
            // A long log: rewriting it costs more than the script's append.
            self.script_next_units(SCRIPT_UNITS_AFTER_RACE);
        }
        let (verdicts, write) = apply_in_turn(strategy.strategy(), limit, &mut state, ops)
            .map_err(|e| e.with_key(redis_key))?;
        let Some((ttl, _)) = write else {
            // Nothing to write: the verdicts stand on a state just read, not on one
            // held, which no write confirms.
            if !confirmed {
                return Ok(CasUnit::Declined);
            }
            if let Some(version) = version {
                self.memo().keep(Held::new(redis_key, state, version));
            }
            return Ok(CasUnit::Done(verdicts));
        };
        match self.cas_script(redis_key, version, &state, ttl).await? {
            Some(written) => {
                self.memo().keep(Held::new(redis_key, state, written));
                Ok(CasUnit::Done(verdicts))
            }
            None => Ok(CasUnit::Lost),
        }
    }

    /// A unit of coalesced multi-limit hits (`calls` on `items`, all of one hash slot)
    /// as one `MGET` and one `cas_many.lua`, each call all or nothing, decided here;
    /// `None` when a key changed between the two (nothing written).
    async fn batch_unit_with_cas(
        &self,
        strategy: BuiltIn,
        items: &[BatchItem<'_>],
        calls: &[(u64, Timestamp)],
    ) -> Result<Option<Vec<Vec<Verdict>>>, StorageError> {
        let keys: Vec<String> = items
            .iter()
            .map(|i| self.redis_key(&i.key.to_storage_key()))
            .collect();
        let read = self.get_many(&keys).await?;
        let versions: Vec<Option<u64>> = read
            .iter()
            .map(|v| v.as_ref().map(|v| v.version.0))
            .collect();
        let mut states: Vec<Vec<u8>> = read
            .into_iter()
            .map(|v| v.map(|v| v.value).unwrap_or_default())
            .collect();
        if states.iter().any(|s| s.len() > MAX_STATE_BYTES) {
            // A long log: rewriting it costs more than the script's append.
            self.script_next_units(SCRIPT_UNITS_AFTER_RACE);
        }
        let (verdicts, ttls) =
            apply_batches_in_turn(strategy.strategy(), items, &mut states, calls)?;
        if ttls.iter().all(Option::is_none) {
            return Ok(Some(verdicts));
        }
        let mut args = Vec::with_capacity(1 + 3 * keys.len());
        args.push(Value::Bytes(self.next_version()));
        for ((version, state), ttl) in versions.iter().zip(&states).zip(&ttls) {
            args.push(Value::Bytes(match version {
                Some(v) => Bytes::copy_from_slice(&v.to_le_bytes()),
                None => Bytes::new(),
            }));
            match ttl {
                Some(ttl) => {
                    args.push(Value::Bytes(Bytes::copy_from_slice(state)));
                    args.push(Value::from(ttl_ms(*ttl).to_string()));
                }
                None => args.extend([Value::from(""), Value::from("")]),
            }
        }
        let first = keys.first().cloned().unwrap_or_default();
        let redis_keys = keys.iter().map(|k| Key::from(k.as_str())).collect();
        let wrote: i64 = self
            .run_script(
                &self.scripts().cas_many,
                "compare_and_set",
                &first,
                redis_keys,
                args,
            )
            .await?;
        Ok((wrote == 1).then_some(verdicts))
    }

    /// Whether a unit of `len` coalesced operations goes as a read and a
    /// compare-and-set (see [`CAS_UNIT_MIN`]).
    fn cas_unit_due(&self, strategy: BuiltIn, len: usize) -> bool {
        len >= CAS_UNIT_MIN
            && matches!(
                strategy,
                BuiltIn::FixedWindow
                    | BuiltIn::SlidingWindow
                    | BuiltIn::Gcra
                    | BuiltIn::MovingWindow
            )
            && self.cas_unit_allowed()
    }
}
