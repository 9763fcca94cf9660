//! The Lua scripts, loaded once per server and run with EVALSHA.
//!
//! Each strategy script is three files joined at build time: `prelude.lua` (numbers,
//! errors, the stored value's version), the strategy's file (its rules, ported from
//! `core/src/strategy/*.rs`: `load`, `hit`, `refund` and `commit`), and an entry file:
//! `single.lua` for one operation on one key, `many.lua` for several operations on
//! one key in order (the limiter's coalesced calls), `batch.lua` for a multi-limit
//! hit, all or nothing, or `batch_many.lua` for several of those on the same keys in
//! order (the limiter's coalesced `hit_all` calls). `cas.lua` is the compare-and-set
//! of the required core, and `cas_many.lua` the same over several keys of one hash
//! slot at once (a wide unit of coalesced `hit_all` calls, decided in the client).
//!
//! Every script touches only the keys it is given, takes the time from its arguments
//! (never the server's `TIME`), and runs in one round trip. The storage reloads a
//! script transparently when the server answers `NOSCRIPT` (after a restart,
//! `SCRIPT FLUSH` or a failover).

use fred::types::scripts::Script;
use limiter_core::strategy::BuiltIn;

macro_rules! strategy_script {
    ($file:literal, $entry:literal) => {
        concat!(
            include_str!("prelude.lua"),
            include_str!($file),
            include_str!($entry)
        )
    };
}

/// Compare-and-set of one key (the required core).
pub const CAS: &str = include_str!("cas.lua");

/// Compare-and-set of several keys of one hash slot, all or nothing (a wide unit of
/// coalesced multi-limit hits, decided in the client).
pub const CAS_MANY: &str = include_str!("cas_many.lua");

/// The single-operation and batch scripts of each built-in strategy, in the order of
/// [`BuiltIn::ALL`].
pub const STRATEGIES: [(BuiltIn, &str, &str); 4] = [
    (
        BuiltIn::FixedWindow,
        strategy_script!("fixed_window.lua", "single.lua"),
        strategy_script!("fixed_window.lua", "batch.lua"),
    ),
    (
        BuiltIn::MovingWindow,
        strategy_script!("moving_window.lua", "single.lua"),
        strategy_script!("moving_window.lua", "batch.lua"),
    ),
    (
        BuiltIn::SlidingWindow,
        strategy_script!("sliding_window.lua", "single.lua"),
        strategy_script!("sliding_window.lua", "batch.lua"),
    ),
    (
        BuiltIn::Gcra,
        strategy_script!("gcra.lua", "single.lua"),
        strategy_script!("gcra.lua", "batch.lua"),
    ),
];

/// The several-operations script of each built-in strategy (`many.lua`), in the order
/// of [`BuiltIn::ALL`].
pub const MANY: [(BuiltIn, &str); 4] = [
    (
        BuiltIn::FixedWindow,
        strategy_script!("fixed_window.lua", "many.lua"),
    ),
    (
        BuiltIn::MovingWindow,
        strategy_script!("moving_window.lua", "many.lua"),
    ),
    (
        BuiltIn::SlidingWindow,
        strategy_script!("sliding_window.lua", "many.lua"),
    ),
    (BuiltIn::Gcra, strategy_script!("gcra.lua", "many.lua")),
];

/// The several-batches script of each built-in strategy (`batch_many.lua`), in the
/// order of [`BuiltIn::ALL`].
pub const BATCH_MANY: [(BuiltIn, &str); 4] = [
    (
        BuiltIn::FixedWindow,
        strategy_script!("fixed_window.lua", "batch_many.lua"),
    ),
    (
        BuiltIn::MovingWindow,
        strategy_script!("moving_window.lua", "batch_many.lua"),
    ),
    (
        BuiltIn::SlidingWindow,
        strategy_script!("sliding_window.lua", "batch_many.lua"),
    ),
    (
        BuiltIn::Gcra,
        strategy_script!("gcra.lua", "batch_many.lua"),
    ),
];

/// Every script, prepared (its SHA-1 computed) once per storage.
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub(crate) cas: Script,
    pub(crate) cas_many: Script,
    single: Vec<(BuiltIn, Script)>,
    many: Vec<(BuiltIn, Script)>,
    batch: Vec<(BuiltIn, Script)>,
    batch_many: Vec<(BuiltIn, Script)>,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            cas: Script::from_lua(CAS),
            cas_many: Script::from_lua(CAS_MANY),
            single: STRATEGIES
                .iter()
                .map(|(b, single, _)| (*b, Script::from_lua(*single)))
                .collect(),
            many: MANY
                .iter()
                .map(|(b, many)| (*b, Script::from_lua(*many)))
                .collect(),
            batch: STRATEGIES
                .iter()
                .map(|(b, _, batch)| (*b, Script::from_lua(*batch)))
                .collect(),
            batch_many: BATCH_MANY
                .iter()
                .map(|(b, script)| (*b, Script::from_lua(*script)))
                .collect(),
        }
    }

    /// The single-operation script of `strategy`, if it has one.
    pub(crate) fn single(&self, strategy: BuiltIn) -> Option<&Script> {
        self.single
            .iter()
            .find(|(b, _)| *b == strategy)
            .map(|(_, s)| s)
    }

    /// The several-operations script of `strategy`, if it has one.
    pub(crate) fn many(&self, strategy: BuiltIn) -> Option<&Script> {
        self.many
            .iter()
            .find(|(b, _)| *b == strategy)
            .map(|(_, s)| s)
    }

    /// The batch script of `strategy`, if it has one.
    pub(crate) fn batch(&self, strategy: BuiltIn) -> Option<&Script> {
        self.batch
            .iter()
            .find(|(b, _)| *b == strategy)
            .map(|(_, s)| s)
    }

    /// The several-batches script of `strategy`, if it has one.
    pub(crate) fn batch_many(&self, strategy: BuiltIn) -> Option<&Script> {
        self.batch_many
            .iter()
            .find(|(b, _)| *b == strategy)
            .map(|(_, s)| s)
    }
}
