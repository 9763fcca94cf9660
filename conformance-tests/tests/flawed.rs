//! The suite catches broken storages: each flawed storage below must fail the cases
//! aimed at its flaw, while [`ReferenceStorage`] passes the same cases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use limiter_conformance::{cases, Capabilities, Ctx, Mode, ReferenceStorage, Setup};
use limiter_core::storage::{
    apply_with_cas, async_trait, Abilities, Answer, Batch, KeyOp, NativeStrategies, Storage,
    StorageKey, Version, Versioned,
};
use limiter_core::strategy::{BuiltIn, Op, Verdict};
use limiter_core::{StorageError, StorageErrorKind, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// `compare_and_set` writes whatever the expected version (and `get` yields, so
    /// concurrent read-modify-writes interleave).
    IgnoresVersion,
    /// Versions count per key from 1, so a re-created key reuses them (ABA).
    PerKeyVersions,
    /// Values go through a UTF-8 string.
    LossyValues,
    /// Time-to-live ignored.
    NeverExpires,
    /// Keys are lower-cased.
    LowercasesKeys,
    /// Native operations run one millisecond late, answered through a future.
    NativeOffByOne,
    /// Native operations run one millisecond late, answered at once.
    ReadyOffByOne,
    /// Native `batch` hits every limit, even when one rejects.
    BatchNotAllOrNothing,
    /// Native operations rewrite the state on a test.
    TestWrites,
}

/// A stored value: bytes, version, expiry.
type Entry = (Vec<u8>, u64, Option<Instant>);

#[derive(Debug)]
struct Flawed {
    flaw: Flaw,
    map: Mutex<HashMap<String, Entry>>,
    counter: Mutex<u64>,
}

impl Flawed {
    fn new(flaw: Flaw) -> Flawed {
        Flawed {
            flaw,
            map: Mutex::default(),
            counter: Mutex::default(),
        }
    }

    fn key(&self, key: &StorageKey) -> String {
        if self.flaw == Flaw::LowercasesKeys {
            key.as_str().to_lowercase()
        } else {
            key.as_str().to_owned()
        }
    }

    fn next_version(&self) -> u64 {
        let mut counter = self.counter.lock().unwrap_or_else(PoisonError::into_inner);
        *counter += 1;
        *counter
    }

    /// Runs `builtin` under the map's lock, one millisecond late.
    fn late(&self, builtin: BuiltIn, op: KeyOp<'_>) -> Result<Verdict, StorageError> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let key = self.key(&op.key.to_storage_key());
        let mut state = map.get(&key).map(|e| e.0.clone()).unwrap_or_default();
        let late = op.now.add_millis(1);
        let transition = builtin
            .strategy()
            .apply(op.limit, &mut state, op.op, late)
            .map_err(|e| StorageError::new(StorageErrorKind::Corrupt, "late", e.to_string()))?;
        if let Some(ttl) = transition.write {
            let version = self.next_version();
            map.insert(key, (state, version, Some(Instant::now() + ttl)));
        }
        Ok(transition.verdict)
    }

    async fn test_writes(&self, builtin: BuiltIn, op: KeyOp<'_>) -> Result<Verdict, StorageError> {
        let verdict = apply_with_cas(self, builtin.strategy(), 128, op).await?;
        let key = op.key.to_storage_key();
        if let Some(current) = self.get(&key, op.now).await? {
            let ttl = Duration::from_secs(60);
            self.compare_and_set(&key, Some(current.version), &current.value, ttl, op.now)
                .await?;
        }
        Ok(verdict)
    }
}

#[async_trait]
impl Storage for Flawed {
    async fn get(
        &self,
        key: &StorageKey,
        _now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        if self.flaw == Flaw::IgnoresVersion {
            tokio::task::yield_now().await;
        }
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map
            .get(&self.key(key))
            .and_then(|(value, version, expires)| {
                let live = expires.is_none_or(|at| Instant::now() < at);
                live.then(|| Versioned {
                    value: value.clone(),
                    version: Version(*version),
                })
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
        let current = self.get(key, now).await?.map(|v| v.version);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if current != expected && self.flaw != Flaw::IgnoresVersion {
            return Ok(false);
        }
        let version = if self.flaw == Flaw::PerKeyVersions {
            current.map_or(1, |v| v.0 + 1)
        } else {
            self.next_version()
        };
        let value = if self.flaw == Flaw::LossyValues {
            String::from_utf8_lossy(value).into_owned().into_bytes()
        } else {
            value.to_vec()
        };
        let expires = (self.flaw != Flaw::NeverExpires).then(|| Instant::now() + ttl);
        map.insert(self.key(key), (value, version, expires));
        Ok(true)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&self.key(key));
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities::new().native(self)
    }
}

impl NativeStrategies for Flawed {
    fn apply<'a>(&'a self, builtin: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict> {
        match self.flaw {
            Flaw::NativeOffByOne => Answer::pending(async move { self.late(builtin, op) }),
            Flaw::ReadyOffByOne => Answer::Ready(self.late(builtin, op)),
            Flaw::TestWrites if matches!(op.op, Op::Test { .. }) => {
                Answer::pending(self.test_writes(builtin, op))
            }
            _ => Answer::Declined,
        }
    }

    fn batch<'a>(&'a self, strategy: BuiltIn, batch: Batch<'a>) -> Answer<'a, Vec<Verdict>> {
        if self.flaw != Flaw::BatchNotAllOrNothing {
            return Answer::Declined;
        }
        Answer::pending(async move {
            let mut verdicts = Vec::new();
            for item in batch.items() {
                let op = KeyOp {
                    key: item.key,
                    limit: item.limit,
                    op: Op::Hit { cost: batch.cost() },
                    now: batch.now(),
                };
                verdicts.push(apply_with_cas(self, strategy.strategy(), 128, op).await?);
            }
            Ok(verdicts)
        })
    }
}

/// Whether `$case` passes on the storage `$storage` in `$mode` for `$strategy`.
macro_rules! passes {
    ($storage:expr, $mode:ident, $strategy:expr, $($case:ident)::+) => {{
        let setup = Setup {
            factory: || Box::pin(async { Arc::new($storage) as Arc<dyn Storage> }),
            capabilities: Capabilities::ALL,
        };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let name = stringify!($($case)::+);
                let ctx = Ctx::start(setup, Mode::$mode, $strategy, name, false).await;
                cases::$($case)::+(&ctx).await;
            });
        })
        .join()
        .is_ok()
    }};
}

/// `$case` fails on the flawed storage and passes on the reference.
macro_rules! caught {
    ($flaw:ident, $mode:ident, $strategy:expr, $($case:ident)::+) => {{
        assert!(
            passes!(ReferenceStorage::new(), $mode, $strategy, $($case)::+),
            "the reference storage fails {}",
            stringify!($($case)::+)
        );
        assert!(
            !passes!(Flawed::new(Flaw::$flaw), $mode, $strategy, $($case)::+),
            "{} did not catch {:?}",
            stringify!($($case)::+),
            Flaw::$flaw
        );
    }};
}

const FIXED: Option<BuiltIn> = Some(BuiltIn::FixedWindow);
const MOVING: Option<BuiltIn> = Some(BuiltIn::MovingWindow);
const SLIDING: Option<BuiltIn> = Some(BuiltIn::SlidingWindow);
const GCRA: Option<BuiltIn> = Some(BuiltIn::Gcra);

#[test]
fn ignoring_versions_is_caught() {
    caught!(
        IgnoresVersion,
        Native,
        None,
        cas::create_writes_only_when_absent
    );
    caught!(IgnoresVersion, Native, None, cas::stale_version_is_refused);
    caught!(
        IgnoresVersion,
        Native,
        None,
        cas::concurrent_writers_have_one_winner
    );
    caught!(
        IgnoresVersion,
        CasOnly,
        FIXED,
        concurrency::concurrent_hits_admit_exactly_the_limit
    );
}

#[test]
fn reused_versions_are_caught() {
    caught!(
        PerKeyVersions,
        Native,
        None,
        cas::recreated_key_never_reuses_a_version
    );
}

#[test]
fn lossy_values_are_caught() {
    caught!(LossyValues, Native, None, cas::values_round_trip_exactly);
    caught!(
        LossyValues,
        CasOnly,
        GCRA,
        model::matches_the_reference_model
    );
}

#[test]
fn missing_expiry_is_caught() {
    caught!(
        NeverExpires,
        Native,
        None,
        expiry::state_expires_after_its_ttl
    );
}

#[test]
fn normalised_keys_are_caught() {
    caught!(LowercasesKeys, Native, None, cas::keys_are_compared_exactly);
    caught!(
        LowercasesKeys,
        Native,
        FIXED,
        keys::awkward_identifiers_work_and_are_isolated
    );
}

#[test]
fn off_by_one_native_paths_are_caught_whether_ready_or_pending() {
    caught!(
        ReadyOffByOne,
        Native,
        MOVING,
        moving_window::moving_window_boundary_is_half_open
    );
    caught!(
        ReadyOffByOne,
        Native,
        SLIDING,
        model::native_and_generic_paths_agree
    );
    caught!(
        ReadyOffByOne,
        Native,
        GCRA,
        model::matches_the_reference_model
    );
    caught!(
        NativeOffByOne,
        Native,
        MOVING,
        moving_window::moving_window_boundary_is_half_open
    );
    caught!(
        NativeOffByOne,
        Native,
        FIXED,
        model::native_and_generic_paths_agree
    );
    caught!(
        NativeOffByOne,
        Native,
        GCRA,
        model::matches_the_reference_model
    );
    // The generic path does not use the flawed native operations.
    assert!(passes!(
        Flawed::new(Flaw::NativeOffByOne),
        CasOnly,
        MOVING,
        moving_window::moving_window_boundary_is_half_open
    ));
}

#[test]
fn batches_that_are_not_all_or_nothing_are_caught() {
    caught!(
        BatchNotAllOrNothing,
        Native,
        FIXED,
        multi_limit::hit_all_is_all_or_nothing
    );
    caught!(
        BatchNotAllOrNothing,
        Native,
        GCRA,
        model::native_and_generic_paths_agree
    );
}

#[test]
fn writing_tests_are_caught() {
    caught!(TestWrites, Native, MOVING, basics::test_never_mutates);
}
