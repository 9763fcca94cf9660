//! Randomised agreement: the storage's native path against its generic path, and the
//! storage against a plain model built on [`Strategy::apply`].
//!
//! Each case runs two seeded sequences of [`STEPS`] random steps (hits, tests, stats,
//! clears, multi-limit hits and tests with random costs from 1 to one above the
//! amount, clock advances from 0 to 1.5 windows, and steps back of up to 400 ms, as
//! from a process whose clock runs a little behind) over 3 keys and 2 limits, and
//! compares every decision (allowed, limit, cost, remaining, reset, retry) and, after
//! every step, the bytes stored for the keys it touched.
//!
//! The seeds are fixed, so runs are reproducible; set `LIMITER_CONFORMANCE_SEED` to
//! explore others. A failure prints the seed, the step number, the step and the steps
//! before it.

use std::collections::HashMap;
use std::fmt::Write as _;

use limiter_core::strategy::{Op, Strategy, Verdict};
use limiter_core::{Decision, Key, RateLimit, Retry, Timestamp, WindowStats};

use crate::ctx::Checked;
use crate::rng::Rng;
use crate::{Ctx, Mode};

/// Steps per sequence.
pub const STEPS: usize = 250;

/// The two limits of each sequence.
const LIMITS: [[&str; 2]; 2] = [
    ["4 per second", "9 per 5 seconds"],
    ["3 per 2 seconds", "7 per 10 seconds"],
];

/// The seed of sequence `variant` for the strategy under test.
fn seed(ctx: &Ctx, variant: u64) -> u64 {
    let base = match std::env::var("LIMITER_CONFORMANCE_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            ctx.ok(
                parsed,
                format_args!("parsing LIMITER_CONFORMANCE_SEED={text:?}"),
            )
        }
        Err(_) => 0x00C0_FFEE_5EED,
    };
    let strategy = ctx
        .strategy()
        .name()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    base ^ strategy.rotate_left(17) ^ variant.wrapping_mul(0x9E37_79B9)
}

/// The keys and limits of one sequence.
struct World {
    keys: Vec<Key>,
    limits: Vec<RateLimit>,
}

impl World {
    fn new(ctx: &Ctx, variant: usize) -> World {
        let tag = format!("seq{variant}");
        World {
            keys: vec![
                Key::new([tag.as_str(), "alice"]),
                Key::new([tag.as_str(), "bob", "/x"]),
                Key::new([tag.as_str(), ""]),
            ],
            limits: LIMITS[variant % LIMITS.len()]
                .iter()
                .map(|text| ctx.limit(text))
                .collect(),
        }
    }
}

/// One random step.
#[derive(Debug, Clone)]
enum Step {
    Advance(u64),
    /// The clock steps back, as another process's clock a little behind would.
    Rewind(u64),
    Hit {
        key: usize,
        limit: usize,
        cost: u64,
    },
    Test {
        key: usize,
        limit: usize,
        cost: u64,
    },
    Stats {
        key: usize,
        limit: usize,
    },
    Clear {
        key: usize,
        limit: usize,
    },
    HitAll {
        key: usize,
        limits: Vec<usize>,
        cost: u64,
    },
    TestAll {
        key: usize,
        limits: Vec<usize>,
        cost: u64,
    },
}

impl Step {
    fn random(rng: &mut Rng, world: &World) -> Step {
        let key = rng.index(world.keys.len());
        let limit = rng.index(world.limits.len());
        let amount = world.limits[limit].amount();
        let max_amount = world
            .limits
            .iter()
            .map(RateLimit::amount)
            .max()
            .unwrap_or(1);
        match rng.range(0, 99) {
            0..=14 => {
                let window = world.limits[limit].window_ms();
                if rng.chance(25) {
                    // Less than the state's second of grace, so that nothing a
                    // storage may have dropped matters again.
                    Step::Rewind(rng.range(1, 400))
                } else if rng.chance(40) {
                    Step::Advance(rng.range(0, window / 10))
                } else {
                    Step::Advance(rng.range(0, window * 3 / 2))
                }
            }
            15..=49 => Step::Hit {
                key,
                limit,
                cost: rng.range(1, amount + 1),
            },
            50..=57 => Step::Test {
                key,
                limit,
                cost: rng.range(1, amount + 1),
            },
            58..=65 => Step::Stats { key, limit },
            66..=68 => Step::Clear { key, limit },
            69..=89 => {
                let limits = limit_set(rng, limit);
                Step::HitAll {
                    key,
                    limits,
                    cost: rng.range(1, max_amount + 1),
                }
            }
            _ => {
                let limits = limit_set(rng, limit);
                Step::TestAll {
                    key,
                    limits,
                    cost: rng.range(1, max_amount + 1),
                }
            }
        }
    }

    /// The `(key, limit)` pairs whose state the step reads or writes.
    fn touched(&self) -> Vec<(usize, usize)> {
        match self {
            Step::Advance(_) | Step::Rewind(_) => Vec::new(),
            Step::Hit { key, limit, .. }
            | Step::Test { key, limit, .. }
            | Step::Stats { key, limit }
            | Step::Clear { key, limit } => vec![(*key, *limit)],
            Step::HitAll { key, limits, .. } | Step::TestAll { key, limits, .. } => {
                limits.iter().map(|l| (*key, *l)).collect()
            }
        }
    }
}

/// The limits of a multi-limit step: both in either order, with a duplicate, or one.
fn limit_set(rng: &mut Rng, one: usize) -> Vec<usize> {
    match rng.range(0, 3) {
        0 => vec![0, 1],
        1 => vec![1, 0],
        2 => vec![0, 1, 0],
        _ => vec![one],
    }
}

/// What a decision says, in comparable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    allowed: bool,
    limit: RateLimit,
    cost: u64,
    remaining: u64,
    reset_at: Option<Timestamp>,
    retry: Option<Retry>,
    decided_at: Timestamp,
}

impl View {
    fn of(d: &Decision) -> View {
        View {
            allowed: d.is_allowed(),
            limit: *d.limit(),
            cost: d.cost(),
            remaining: d.remaining(),
            reset_at: d.reset_at(),
            retry: d.retry(),
            decided_at: d.decided_at(),
        }
    }

    fn model(limit: RateLimit, cost: u64, v: &Verdict, now: Timestamp) -> View {
        View {
            allowed: v.allowed,
            limit,
            cost,
            remaining: v.remaining,
            reset_at: reset(v.reset_at),
            retry: match v.retry_at {
                _ if v.allowed => None,
                Some(at) => Some(Retry::After(at.saturating_since(now))),
                None => Some(Retry::Never),
            },
            decided_at: now,
        }
    }
}

/// A strategy's reset time as a decision reports it: none at the end of time, where
/// the limiter's time stands still.
fn reset(at: Timestamp) -> Option<Timestamp> {
    (at < Timestamp::MAX).then_some(at)
}

/// What one step returned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Advanced,
    Decision(View),
    Stats(WindowStats),
    Cleared,
}

fn pick_limits(world: &World, indices: &[usize]) -> Vec<RateLimit> {
    indices.iter().map(|i| world.limits[*i]).collect()
}

/// Runs `step` through a limiter.
async fn run(ctx: &Ctx, l: &Checked<'_>, world: &World, step: &Step) -> Seen {
    match step {
        Step::Advance(_) | Step::Rewind(_) => {
            let _ = ctx;
            Seen::Advanced
        }
        Step::Hit { key, limit, cost } => Seen::Decision(View::of(
            &l.hit(&world.limits[*limit], &world.keys[*key], *cost).await,
        )),
        Step::Test { key, limit, cost } => Seen::Decision(View::of(
            &l.test(&world.limits[*limit], &world.keys[*key], *cost)
                .await,
        )),
        Step::Stats { key, limit } => {
            Seen::Stats(l.stats(&world.limits[*limit], &world.keys[*key]).await)
        }
        Step::Clear { key, limit } => {
            l.clear(&world.limits[*limit], &world.keys[*key]).await;
            Seen::Cleared
        }
        Step::HitAll { key, limits, cost } => {
            let limits = pick_limits(world, limits);
            Seen::Decision(View::of(
                &l.hit_all(&limits, &world.keys[*key], *cost).await,
            ))
        }
        Step::TestAll { key, limits, cost } => {
            let limits = pick_limits(world, limits);
            Seen::Decision(View::of(
                &l.test_all(&limits, &world.keys[*key], *cost).await,
            ))
        }
    }
}

/// The stored bytes of a pair, with absent read as empty (as the strategies read it).
async fn bytes(l: &Checked<'_>, world: &World, (key, limit): (usize, usize)) -> Vec<u8> {
    l.stored(&world.limits[limit], &world.keys[key])
        .await
        .map(|v| v.value)
        .unwrap_or_default()
}

/// A failure message with the sequence's context.
fn context(seed: u64, index: usize, history: &[Step]) -> String {
    let mut out = format!(
        "sequence seed {seed:#x} (rerun with LIMITER_CONFORMANCE_SEED), step {index}: {:?}\n  \
         steps before it:",
        history.last()
    );
    let from = history.len().saturating_sub(9);
    for (i, step) in history
        .iter()
        .enumerate()
        .take(history.len().saturating_sub(1))
        .skip(from)
    {
        let _ = write!(out, "\n    #{i}: {step:?}");
    }
    out
}

/// What a sequence on the storage under test is checked against: the generic path
/// over a second storage, or the model.
trait Oracle {
    /// What failure messages call this side.
    const NAME: &'static str;

    /// Forgets everything, before a new sequence.
    fn reset(&mut self);

    /// The answers `step` may get (several only where limits tie).
    async fn expect(&mut self, ctx: &Ctx, world: &World, step: &Step) -> Vec<Seen>;

    /// `Ok` when `stored` may be the bytes of `pair` after the step; otherwise the
    /// bytes this side expected.
    async fn check_bytes(
        &mut self,
        ctx: &Ctx,
        world: &World,
        pair: (usize, usize),
        stored: &[u8],
    ) -> Result<(), Vec<u8>>;
}

/// Runs the seeded sequences (one per entry of [`LIMITS`]) on `l` and on `oracle`,
/// comparing every answer and, after every step, the bytes of the keys it touched.
async fn drive<O: Oracle>(ctx: &Ctx, l: &Checked<'_>, salt: u64, oracle: &mut O) {
    for variant in 0..LIMITS.len() {
        let world = World::new(ctx, variant);
        oracle.reset();
        let seed = seed(ctx, variant as u64) ^ salt;
        let mut rng = Rng::new(seed);
        let mut history = Vec::with_capacity(STEPS);
        for index in 0..STEPS {
            let step = Step::random(&mut rng, &world);
            history.push(step.clone());
            match step {
                Step::Advance(ms) => ctx.advance_ms(ms),
                Step::Rewind(ms) => ctx.set_offset_ms(ctx.elapsed_ms().saturating_sub(ms)),
                _ => {}
            }
            let actual = run(ctx, l, &world, &step).await;
            let expected = oracle.expect(ctx, &world, &step).await;
            ensure!(
                ctx,
                expected.contains(&actual),
                "answer differs from the {}\n  expected: {}{expected:?}\n  actual:   {actual:?}\n{}",
                O::NAME,
                if expected.len() > 1 { "one of " } else { "" },
                context(seed, index, &history)
            );
            for pair in step.touched() {
                let stored = bytes(l, &world, pair).await;
                if let Err(wanted) = oracle.check_bytes(ctx, &world, pair, &stored).await {
                    ctx.fail(format_args!(
                        "stored bytes of {:?} under {} vs the {}\n  expected: {wanted:?}\n  \
                         actual:   {stored:?}\n{}",
                        world.keys[pair.0],
                        world.limits[pair.1],
                        O::NAME,
                        context(seed, index, &history)
                    ));
                }
            }
        }
    }
}

/// The generic path as an [`Oracle`]: a limiter over [`CasOnly`](crate::CasOnly) on a
/// second storage from the factory, in another namespace, with the same clock.
struct Generic<'a> {
    limiter: Checked<'a>,
}

impl Oracle for Generic<'_> {
    const NAME: &'static str = "generic path";

    fn reset(&mut self) {}

    async fn expect(&mut self, ctx: &Ctx, world: &World, step: &Step) -> Vec<Seen> {
        vec![run(ctx, &self.limiter, world, step).await]
    }

    async fn check_bytes(
        &mut self,
        _ctx: &Ctx,
        world: &World,
        pair: (usize, usize),
        stored: &[u8],
    ) -> Result<(), Vec<u8>> {
        let expected = bytes(&self.limiter, world, pair).await;
        if stored == expected.as_slice() {
            Ok(())
        } else {
            Err(expected)
        }
    }
}

/// The same random sequence on the storage under test and, with the same clock, on
/// [`CasOnly`](crate::CasOnly) over a second storage from the factory (another
/// namespace): every decision and stats answer is identical, and so are the stored
/// bytes after every step. In `native` mode this pins the storage's native operations
/// ([`Storage::apply`](limiter_core::storage::NativeStrategies::apply) and `batch`, whether they answer at
/// once or through a future) to the generic path; in `cas_only` mode both sides are
/// generic.
pub async fn native_and_generic_paths_agree(ctx: &Ctx) {
    let second = Mode::CasOnly.wrap(ctx.new_storage().await);
    let mut generic = Generic {
        limiter: ctx.checked(
            ctx.builder_on(second, ctx.strategy(), "-generic").build(),
            "generic limiter",
        ),
    };
    drive(ctx, &ctx.limiter(), 0, &mut generic).await;
}

/// The model: one byte buffer per stored key, driven by [`Strategy::apply`], with the
/// time on the limiter's clock until which the storage must keep it.
struct Model {
    strategy: &'static dyn Strategy,
    states: HashMap<(usize, usize), (Vec<u8>, Timestamp)>,
    /// The latest time of the sequence so far: a storage may have dropped every state
    /// whose time-to-live ended before it.
    latest: Timestamp,
}

impl Model {
    fn apply(
        &mut self,
        ctx: &Ctx,
        world: &World,
        pair: (usize, usize),
        op: Op,
        now: Timestamp,
    ) -> Verdict {
        let mut state = self.live(pair, now).to_vec();
        let outcome = self
            .strategy
            .apply(&world.limits[pair.1], &mut state, op, now);
        let outcome = ctx.ok(outcome, "the model's own Strategy::apply");
        if let Some(ttl) = outcome.write {
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            self.states.insert(pair, (state, now.add_millis(ttl_ms)));
        }
        outcome.verdict
    }

    /// The state of `pair` at `now`: empty once its time-to-live has passed on the
    /// limiter's clock (a storage may drop it then, and it must no longer matter).
    fn live(&self, pair: (usize, usize), now: Timestamp) -> &[u8] {
        match self.states.get(&pair) {
            Some((state, until)) if now < *until => state,
            _ => &[],
        }
    }

    /// Whether `stored` is what a storage may hold for `pair`: the model's state, or
    /// nothing once that state's time-to-live has passed at some time of the sequence.
    fn allows(&self, pair: (usize, usize), stored: &[u8]) -> bool {
        match self.states.get(&pair) {
            Some((state, until)) => {
                stored == state.as_slice() || (self.latest >= *until && stored.is_empty())
            }
            None => stored.is_empty(),
        }
    }

    /// Every answer the limiter may give to `step` (several only when limits tie).
    fn step(&mut self, ctx: &Ctx, world: &World, step: &Step, now: Timestamp) -> Vec<Seen> {
        match step {
            Step::Advance(_) | Step::Rewind(_) => vec![Seen::Advanced],
            Step::Hit { key, limit, cost } | Step::Test { key, limit, cost } => {
                let op = match step {
                    Step::Hit { .. } => Op::Hit { cost: *cost },
                    _ => Op::Test { cost: *cost },
                };
                let v = self.apply(ctx, world, (*key, *limit), op, now);
                vec![Seen::Decision(View::model(
                    world.limits[*limit],
                    *cost,
                    &v,
                    now,
                ))]
            }
            Step::Stats { key, limit } => {
                let v = self.apply(ctx, world, (*key, *limit), Op::Test { cost: 1 }, now);
                vec![Seen::Stats(WindowStats {
                    remaining: v.remaining,
                    reset_at: reset(v.reset_at),
                    now,
                })]
            }
            Step::Clear { key, limit } => {
                self.states.remove(&(*key, *limit));
                vec![Seen::Cleared]
            }
            Step::HitAll { key, limits, cost } | Step::TestAll { key, limits, cost } => {
                let mut distinct: Vec<usize> = Vec::new();
                for l in limits {
                    if !distinct
                        .iter()
                        .any(|d| world.limits[*d] == world.limits[*l])
                    {
                        distinct.push(*l);
                    }
                }
                let peek = Op::Test { cost: *cost };
                let mut verdicts: Vec<Verdict> = distinct
                    .iter()
                    .map(|l| self.apply(ctx, world, (*key, *l), peek, now))
                    .collect();
                if matches!(step, Step::HitAll { .. }) && verdicts.iter().all(|v| v.allowed) {
                    let hit = Op::Hit { cost: *cost };
                    verdicts = distinct
                        .iter()
                        .map(|l| self.apply(ctx, world, (*key, *l), hit, now))
                        .collect();
                }
                combine(world, &distinct, &verdicts, *cost, now)
            }
        }
    }
}

/// The decisions `RateLimiter::hit_all` may return: the rejecting limit that waits
/// longest (never passing counts as longest) or, when all pass, the one with the
/// fewest units left; every limit that ties.
fn combine(
    world: &World,
    limits: &[usize],
    verdicts: &[Verdict],
    cost: u64,
    now: Timestamp,
) -> Vec<Seen> {
    let pairs: Vec<(RateLimit, &Verdict)> = limits
        .iter()
        .map(|l| world.limits[*l])
        .zip(verdicts)
        .collect();
    let wait = |v: &Verdict| v.retry_at.map_or(u64::MAX, Timestamp::as_millis);
    let chosen: Vec<&(RateLimit, &Verdict)> = if pairs.iter().any(|(_, v)| !v.allowed) {
        let longest = pairs
            .iter()
            .filter(|(_, v)| !v.allowed)
            .map(|(_, v)| wait(v))
            .max();
        pairs
            .iter()
            .filter(|(_, v)| !v.allowed && Some(wait(v)) == longest)
            .collect()
    } else {
        let fewest = pairs.iter().map(|(_, v)| v.remaining).min();
        pairs
            .iter()
            .filter(|(_, v)| Some(v.remaining) == fewest)
            .collect()
    };
    chosen
        .into_iter()
        .map(|(limit, v)| Seen::Decision(View::model(*limit, cost, v, now)))
        .collect()
}

impl Oracle for Model {
    const NAME: &'static str = "model";

    fn reset(&mut self) {
        self.states.clear();
        self.latest = Timestamp::ZERO;
    }

    async fn expect(&mut self, ctx: &Ctx, world: &World, step: &Step) -> Vec<Seen> {
        self.latest = self.latest.max(ctx.now());
        self.step(ctx, world, step, ctx.now())
    }

    async fn check_bytes(
        &mut self,
        _ctx: &Ctx,
        _world: &World,
        pair: (usize, usize),
        stored: &[u8],
    ) -> Result<(), Vec<u8>> {
        if self.allows(pair, stored) {
            Ok(())
        } else {
            Err(self
                .states
                .get(&pair)
                .map(|(state, _)| state.clone())
                .unwrap_or_default())
        }
    }
}

/// A random sequence on the storage under test, checked against a model that applies
/// the built-in strategy directly to an in-memory byte buffer per key: every answer
/// must be the model's, and after every step the stored bytes of the touched keys must
/// equal the model's buffer (absent reads as empty, and so may a state whose
/// time-to-live has passed). This pins that the storage keeps state bytes exactly and
/// that its native operations write the documented layout.
pub async fn matches_the_reference_model(ctx: &Ctx) {
    let mut model = Model {
        strategy: ctx.strategy().strategy(),
        states: HashMap::new(),
        latest: Timestamp::ZERO,
    };
    drive(ctx, &ctx.limiter(), 0x004D_4F44_454C, &mut model).await;
}

/// [`apply_many`](limiter_core::storage::NativeStrategies::apply_many), what the
/// limiter's coalescing sends, against the same operations one at a time: seeded runs
/// of 1 to 12 operations (hits and tests of costs 1 to one above the amount, refunds
/// of earlier times, each with its own time, 0 to 400 ms apart and sometimes a step
/// back) on one key, and the same operations through
/// [`apply`](limiter_core::storage::NativeStrategies::apply) one by one on a second
/// key: the same verdicts in order, and the same stored bytes after every run; then
/// ten more runs a few seconds before [`Timestamp::MAX`], where a script engine's
/// numbers may run out of precision (and a storage hand some operations to the
/// generic path). A
/// storage that declines `apply_many` (or, in `cas_only` mode, has no native
/// operations) is reported as not running it: the limiter then sends the operations
/// one by one anyway.
pub async fn several_operations_equal_one_at_a_time(ctx: &Ctx) {
    use limiter_core::storage::{apply, Answer, KeyOp};
    use limiter_core::DEFAULT_MAX_ATTEMPTS;

    let storage = ctx.storage();
    let Some(native) = storage.abilities().get_native() else {
        ctx.not_run("native strategies");
        return;
    };
    let builtin = ctx.strategy();
    let limit = ctx.limit("5 per second");
    let limiter = ctx.builder().build();
    let (many, one) = (
        limiter.storage_key(&limit, &Key::from("many")),
        limiter.storage_key(&limit, &Key::from("one-by-one")),
    );
    let mut rng = Rng::new(seed(ctx, 7));
    let mut now = ctx.now().as_millis();
    let mut declined = 0;
    for run in 0..40 {
        if run == 30 {
            now = Timestamp::MAX.as_millis() - 5_000;
        }
        let mut ops = Vec::new();
        for _ in 0..rng.range(1, 12) {
            now = if rng.chance(10) {
                now.saturating_sub(rng.range(0, 300))
            } else {
                (now + rng.range(0, 400)).min(Timestamp::MAX.as_millis())
            };
            let at = Timestamp::from_millis(now);
            let cost = rng.range(1, limit.amount() + 1);
            let op = match rng.range(0, 9) {
                0..=5 => Op::Hit { cost },
                6..=7 => Op::Test { cost },
                _ => Op::Refund {
                    cost,
                    at: Timestamp::from_millis(now.saturating_sub(rng.range(0, 900))),
                },
            };
            ops.push((op, at));
        }
        let answer = native.apply_many(builtin, (&many).into(), &limit, &ops);
        let together = match answer {
            Answer::Ready(result) => result,
            Answer::Pending(future) => future.await,
            Answer::Declined => {
                declined += 1;
                continue;
            }
        };
        let together = ctx.ok(together, format_args!("run {run}: apply_many {ops:?}"));
        let mut alone = Vec::new();
        for &(op, at) in &ops {
            let key_op = KeyOp {
                key: (&one).into(),
                limit: &limit,
                op,
                now: at,
            };
            let result = apply(&**storage, builtin.strategy(), DEFAULT_MAX_ATTEMPTS, key_op).await;
            alone.push(ctx.ok(result, format_args!("run {run}: {op:?} at {at}")));
        }
        ensure_eq!(
            ctx,
            together,
            alone,
            "run {run}: the verdicts of {ops:?} together and one at a time"
        );
        let last = ops.iter().map(|(_, at)| *at).max().unwrap_or(ctx.now());
        let stored =
            |key| async move { ctx.ok(storage.get(key, last).await, "get").map(|v| v.value) };
        let (a, b) = (stored(&many).await, stored(&one).await);
        ensure_eq!(ctx, a, b, "run {run}: the bytes stored after {ops:?}");
    }
    if declined > 0 {
        ctx.note(format_args!("apply_many declined {declined} of 40 runs"));
    }
}

/// [`batch_many`](limiter_core::storage::NativeStrategies::batch_many), what the
/// limiter's coalescing sends for one client's queued
/// [`hit_all`](limiter_core::RateLimiter::hit_all) calls, against the same calls one at
/// a time through [`batch`](limiter_core::storage::NativeStrategies::batch): seeded
/// runs of 1 to 10 calls on two limits (`5 per second`, `12 per minute`), costs 1 to
/// 6, each at its own time (0 to 400 ms apart, sometimes a step back), on one pair of
/// keys, and the same calls one by one on a second pair: the same verdicts in order,
/// and the same stored bytes after every run; the last ten runs a few seconds before
/// [`Timestamp::MAX`], where a script engine's numbers may run out of precision. A
/// storage that declines `batch_many` (or `batch`) is reported as not running it: the
/// limiter then sends the calls one by one anyway.
pub async fn several_batches_equal_one_at_a_time(ctx: &Ctx) {
    use limiter_core::storage::{apply_batch, Answer, Batch, BatchItem};
    use limiter_core::DEFAULT_MAX_ATTEMPTS;

    let storage = ctx.storage();
    let Some(native) = storage.abilities().get_native() else {
        ctx.not_run("native strategies");
        return;
    };
    let builtin = ctx.strategy();
    let limits = [ctx.limit("5 per second"), ctx.limit("12 per minute")];
    let limiter = ctx.builder().build();
    let keys = |name: &str| {
        let key = Key::from(name);
        [
            limiter.storage_key(&limits[0], &key),
            limiter.storage_key(&limits[1], &key),
        ]
    };
    let (many, one) = (keys("many"), keys("one-by-one"));
    let many_items = [0, 1].map(|i| BatchItem {
        key: (&many[i]).into(),
        limit: &limits[i],
    });
    let one_items = [0, 1].map(|i| BatchItem {
        key: (&one[i]).into(),
        limit: &limits[i],
    });
    let mut rng = Rng::new(seed(ctx, 11));
    let mut now = ctx.now().as_millis();
    let mut declined = 0;
    for run in 0..30 {
        if run == 20 {
            now = Timestamp::MAX.as_millis() - 5_000;
        }
        let mut calls = Vec::new();
        for _ in 0..rng.range(1, 10) {
            now = if rng.chance(10) {
                now.saturating_sub(rng.range(0, 300))
            } else {
                (now + rng.range(0, 400)).min(Timestamp::MAX.as_millis())
            };
            calls.push((rng.range(1, 6), Timestamp::from_millis(now)));
        }
        let together = match native.batch_many(builtin, &many_items, &calls) {
            Answer::Ready(result) => result,
            Answer::Pending(future) => future.await,
            Answer::Declined => {
                declined += 1;
                continue;
            }
        };
        let together = ctx.ok(together, format_args!("run {run}: batch_many {calls:?}"));
        let mut alone = Vec::new();
        for &(cost, at) in &calls {
            let batch = ctx.ok(
                Batch::new(&one_items, cost, at).map_err(|e| e.to_string()),
                "batch",
            );
            let result = match native.batch(builtin, batch) {
                Answer::Ready(result) => result,
                Answer::Pending(future) => future.await,
                Answer::Declined => {
                    apply_batch(&**storage, builtin.strategy(), DEFAULT_MAX_ATTEMPTS, batch).await
                }
            };
            alone.push(ctx.ok(result, format_args!("run {run}: batch of {cost} at {at}")));
        }
        ensure_eq!(
            ctx,
            together,
            alone,
            "run {run}: the verdicts of {calls:?} together and one at a time"
        );
        let last = calls.iter().map(|(_, at)| *at).max().unwrap_or(ctx.now());
        for i in 0..2 {
            let stored =
                |key| async move { ctx.ok(storage.get(key, last).await, "get").map(|v| v.value) };
            let (a, b) = (stored(&many[i]).await, stored(&one[i]).await);
            ensure_eq!(
                ctx,
                a,
                b,
                "run {run}: limit {i}: the bytes stored after {calls:?}"
            );
        }
    }
    if declined > 0 {
        ctx.note(format_args!("batch_many declined {declined} of 30 runs"));
    }
}
